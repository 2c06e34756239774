//! `Idempotency-Key` (docs/design.md §5) as a small wrapper: the first request with a key runs and
//! its answer is stored durably; the same key with the same request replays it byte for
//! byte; with a different request it is refused (409). Concurrent duplicates wait for the
//! first to finish and then replay its answer. 5xx answers are not stored, so a retry runs
//! anew.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};
use std::future::Future;
use std::time::{Duration, Instant};

use super::{ApiError, AppState};
use crate::domain::MerchantId;
use crate::store::{IdemBegin, StoredResponse};

const HEADER: &str = "Idempotency-Key";
const WAIT_FOR_FIRST: Duration = Duration::from_secs(30);

fn key_of(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(v) = req.headers().get(HEADER) else {
        return Ok(None);
    };
    let k = v.to_str().unwrap_or("");
    if k.is_empty() || k.len() > 255 || !k.bytes().all(|b| (0x21..0x7f).contains(&b)) {
        return Err(ApiError::invalid(
            "Idempotency-Key",
            "invalid_idempotency_key",
            "Idempotency-Key must be 1-255 visible ASCII characters",
        ));
    }
    Ok(Some(k.to_string()))
}

fn replay(r: StoredResponse) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(r.status).unwrap_or(StatusCode::OK))
        .content_type("application/json")
        .insert_header(("Idempotent-Replayed", "true"))
        .body(r.body)
}

/// Runs `handler` at most once per (merchant, key) and answers accordingly.
pub async fn run<F, Fut>(
    state: &AppState,
    merchant: &MerchantId,
    req: &HttpRequest,
    body: &[u8],
    handler: F,
) -> Result<HttpResponse, ApiError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<(StatusCode, Vec<u8>), ApiError>>,
{
    run_creating(state, merchant, req, body, |_| Ok(None), |_| handler()).await
}

/// What a creating handler holds: [`Claim::resource`] names what it is about to create.
pub struct Claim {
    store: crate::store::Store,
    merchant: MerchantId,
    key: Option<String>,
}

impl Claim {
    /// Call right before the command that creates `id` (an order or refund id): if the
    /// request is then cut off (a crash, the client gone), a retry with its key is
    /// answered from `id` instead of running again.
    pub fn resource(&self, id: &str) -> Result<(), ApiError> {
        if let Some(key) = &self.key {
            self.store.idem_claim(&self.merchant, key, id)?;
        }
        Ok(())
    }
}

/// [`run`] for a request that creates something. `recover` answers a retry whose first
/// request claimed a resource but was never answered (Stripe's semantics: the retry gets
/// what the first request created): `Ok(None)` when that resource does not exist, and
/// then the request runs anew.
pub async fn run_creating<R, F, Fut>(
    state: &AppState,
    merchant: &MerchantId,
    req: &HttpRequest,
    body: &[u8],
    recover: R,
    handler: F,
) -> Result<HttpResponse, ApiError>
where
    R: Fn(&str) -> Result<Option<(StatusCode, Vec<u8>)>, ApiError>,
    F: FnOnce(Claim) -> Fut,
    Fut: Future<Output = Result<(StatusCode, Vec<u8>), ApiError>>,
{
    let store = &state.engine.deps.store;
    let claim = |key: Option<String>| Claim {
        store: store.clone(),
        merchant: merchant.clone(),
        key,
    };
    let Some(key) = key_of(req)? else {
        return Ok(respond(handler(claim(None)).await));
    };
    let mut h = Sha256::new();
    h.update(req.method().as_str());
    h.update([0]);
    h.update(req.path());
    h.update([0]);
    h.update(body);
    let hash: [u8; 32] = h.finalize().into();
    let clock = &state.engine.deps.clock;
    let started = Instant::now();
    loop {
        match store.idem_begin(merchant, &key, hash, clock.now())? {
            IdemBegin::Started => break,
            IdemBegin::Replay(r) => return Ok(replay(r)),
            IdemBegin::Unanswered(resource) => match recover(&resource)? {
                Some((status, bytes)) => {
                    let r = StoredResponse {
                        status: status.as_u16(),
                        body: bytes,
                    };
                    store
                        .idem_complete(merchant, &key, hash, r.clone(), clock.now())
                        .await?;
                    return Ok(replay(r));
                }
                // Cut off before its resource was created: nothing to answer from.
                None => store.idem_abort(merchant, &key)?,
            },
            IdemBegin::Mismatch => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "idempotency_error",
                    "idempotency_key_reused",
                    "this Idempotency-Key was used with a different request",
                ))
            }
            IdemBegin::InProgress if started.elapsed() < WAIT_FOR_FIRST => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            IdemBegin::InProgress => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "idempotency_error",
                    "idempotency_key_in_use",
                    "a request with this Idempotency-Key is still being processed",
                ))
            }
        }
    }
    let guard = Release {
        store,
        merchant,
        key: &key,
        now: clock.now(),
        armed: true,
    };
    let (status, bytes, retry_after) = match handler(claim(Some(key.clone()))).await {
        Ok((s, b)) => (s, b, None),
        Err(e) => (e.status, e.body_bytes(), e.retry_after),
    };
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        // The outcome is unknown or refused for now; a claimed resource may exist
        // (a create whose provider call timed out), so a claimed key is kept as
        // unanswered and the retry is answered from it.
        store.idem_cut_off(merchant, &key, clock.now())?;
        guard.disarm();
    } else {
        guard.disarm();
        store
            .idem_complete(
                merchant,
                &key,
                hash,
                StoredResponse {
                    status: status.as_u16(),
                    body: bytes.clone(),
                },
                clock.now(),
            )
            .await?;
    }
    let mut resp = HttpResponse::build(status);
    resp.content_type("application/json");
    if let Some(s) = retry_after {
        resp.insert_header((actix_web::http::header::RETRY_AFTER, s.to_string()));
    }
    Ok(resp.body(bytes))
}

/// Releases a started key when the request is dropped before it was answered (the client
/// went away and actix dropped the handler's future): otherwise the key would read "in
/// progress" until the next restart and every retry with it would be refused. The command
/// may still have run, so a retry runs again and meets what it left (for an order: the
/// `merchant_order_no` rules).
struct Release<'a> {
    store: &'a crate::store::Store,
    merchant: &'a MerchantId,
    key: &'a str,
    now: crate::domain::Millis,
    armed: bool,
}

impl Release<'_> {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for Release<'_> {
    fn drop(&mut self) {
        if self.armed {
            if let Err(e) = self.store.idem_cut_off(self.merchant, self.key, self.now) {
                tracing::warn!(error = %e, "could not release an abandoned idempotency key");
            }
        }
    }
}

fn respond(r: Result<(StatusCode, Vec<u8>), ApiError>) -> HttpResponse {
    match r {
        Ok((s, b)) => HttpResponse::build(s)
            .content_type("application/json")
            .body(b),
        Err(e) => actix_web::ResponseError::error_response(&e),
    }
}
