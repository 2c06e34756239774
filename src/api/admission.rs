//! Admission control in front of the merchant API (`/v1/...`): a bound on requests handled
//! at once, overall and per merchant. Beyond it a request is refused before any work (no
//! body read, no storage, no actor), so what is admitted keeps its unloaded latency and a
//! client told `Retry-After` comes back instead of waiting behind everyone else.
//!
//! Why a bound on requests in flight rather than on queue time: an actix-web worker reads
//! every request of every connection it holds and starts its handler, so the queue is the
//! set of handlers in progress, not a backlog in front of the workers. Counting those is
//! exact and cheap; the time a request spent in the kernel before a worker read it cannot
//! be seen from here. Health, readiness, metrics, provider callbacks and the simulators
//! stay outside: probes must answer under load, and a refused provider callback only
//! comes back later with the same work.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{web, ResponseError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::{ApiError, AppState};
use crate::config::ServerConfig;
use crate::domain::MerchantId;
use crate::telemetry::metrics;

/// Seconds a refused client is asked to wait: requests in flight here finish in
/// milliseconds, so a second is enough for room to have come back.
const RETRY_AFTER_SECS: u64 = 1;

pub struct Admission {
    /// 0 = no bound.
    max: usize,
    in_flight: AtomicUsize,
    /// 0 = no bound of a merchant's own.
    per_merchant: usize,
    merchants: HashMap<MerchantId, AtomicUsize>,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The server as a whole is at its bound: 503.
    Overloaded,
    /// The merchant is at its own bound: 429.
    Merchant,
}

impl Refused {
    fn label(self) -> &'static str {
        match self {
            Refused::Overloaded => "overloaded",
            Refused::Merchant => "merchant",
        }
    }

    pub fn error(self) -> ApiError {
        let mut e = match self {
            Refused::Overloaded => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "api_error",
                "overloaded",
                format!("the server is at its bound of requests in flight; retry after {RETRY_AFTER_SECS} s"),
            ),
            Refused::Merchant => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "merchant_concurrency_limit",
                format!("this merchant has as many requests in flight as it may; retry after {RETRY_AFTER_SECS} s"),
            ),
        };
        e.retry_after = Some(RETRY_AFTER_SECS);
        e
    }
}

/// One admitted request; gives its places back when dropped (also when the client goes
/// away and the handler's future is dropped mid-way).
pub struct Permit {
    admission: Arc<Admission>,
    merchant: Option<MerchantId>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let a = &self.admission;
        if a.max > 0 {
            a.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
        if let Some(n) = self.merchant.as_ref().and_then(|m| a.merchants.get(m)) {
            n.fetch_sub(1, Ordering::AcqRel);
        }
        metrics::API_IN_FLIGHT.with_label_values(&[]).dec();
    }
}

/// Takes a place under `max` unless all are taken.
fn take(n: &AtomicUsize, max: usize) -> bool {
    n.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
        (v < max).then_some(v + 1)
    })
    .is_ok()
}

impl Admission {
    pub fn new<'a>(
        cfg: &ServerConfig,
        merchants: impl IntoIterator<Item = &'a MerchantId>,
    ) -> Self {
        Admission {
            max: cfg.max_in_flight,
            in_flight: AtomicUsize::new(0),
            per_merchant: cfg.max_in_flight_per_merchant,
            merchants: merchants
                .into_iter()
                .map(|m| (m.clone(), AtomicUsize::new(0)))
                .collect(),
        }
    }

    /// Whether a merchant bound applies (so the caller need not identify the merchant).
    pub fn per_merchant(&self) -> bool {
        self.per_merchant > 0
    }

    /// Admits a request of `merchant` (None: not identified; only the overall bound
    /// applies, and authentication refuses it later). The merchant's own bound is checked
    /// first, so a merchant over it hears 429 (its doing) rather than 503.
    pub fn admit(self: &Arc<Self>, merchant: Option<&MerchantId>) -> Result<Permit, Refused> {
        let mine = merchant
            .filter(|_| self.per_merchant > 0)
            .and_then(|m| Some((m, self.merchants.get(m)?)));
        if let Some((_, n)) = mine {
            if !take(n, self.per_merchant) {
                return Err(self.refuse(Refused::Merchant));
            }
        }
        if self.max > 0 && !take(&self.in_flight, self.max) {
            if let Some((_, n)) = mine {
                n.fetch_sub(1, Ordering::AcqRel);
            }
            return Err(self.refuse(Refused::Overloaded));
        }
        metrics::API_IN_FLIGHT.with_label_values(&[]).inc();
        Ok(Permit {
            admission: self.clone(),
            merchant: mine.map(|(m, _)| m.clone()),
        })
    }

    fn refuse(&self, why: Refused) -> Refused {
        metrics::REQUESTS_SHED
            .with_label_values(&[why.label()])
            .inc();
        why
    }
}

/// The middleware: gates `/v1/...` and lets everything else through untouched.
pub async fn admission(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if !req.path().starts_with("/v1/") {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let state = req
        .app_data::<web::Data<AppState>>()
        .expect("app state")
        .clone();
    let admission = &state.admission;
    let merchant = if admission.per_merchant() {
        super::auth::merchant_of(req.request(), &state.merchants).map(|m| m.id.clone())
    } else {
        None
    };
    match admission.admit(merchant.as_ref()) {
        Ok(permit) => {
            let res = next.call(req).await;
            drop(permit);
            Ok(res?.map_into_left_body())
        }
        Err(why) => {
            drain(&mut req, state.config.server.max_body_bytes).await;
            let resp = why.error().error_response();
            Ok(req.into_response(resp).map_into_right_body())
        }
    }
}

/// Reads and drops the body of a refused request. Answered with its body unread, the
/// connection is closed (HTTP/1.1 cannot tell where the next request starts), and every
/// refusal then costs the client a reconnect and the server an accept: under overload
/// that doubled the work of a refusal and failed the client's next request. A body larger
/// than any accepted one is left unread (the connection closes).
async fn drain(req: &mut ServiceRequest, limit: usize) {
    use futures::StreamExt;
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        .unwrap_or(0);
    if declared == 0 || declared > limit {
        return;
    }
    let mut payload = actix_web::HttpMessage::take_payload(req);
    let mut read = 0;
    while let Some(Ok(chunk)) = payload.next().await {
        read += chunk.len();
        if read > limit {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(max: usize, per_merchant: usize) -> ServerConfig {
        let mut c: ServerConfig = toml::from_str("bind = \"127.0.0.1:0\"").unwrap();
        c.max_in_flight = max;
        c.max_in_flight_per_merchant = per_merchant;
        c
    }

    #[test]
    fn refuses_beyond_the_bound_and_admits_again_once_a_permit_is_dropped() {
        let a = Arc::new(Admission::new(&cfg(2, 0), []));
        let p1 = a.admit(None).unwrap();
        let _p2 = a.admit(None).unwrap();
        assert_eq!(a.admit(None).err(), Some(Refused::Overloaded));
        drop(p1);
        assert!(a.admit(None).is_ok());
    }

    #[test]
    fn a_merchant_at_its_own_bound_hears_429_and_others_still_get_in() {
        let (m, o) = (
            MerchantId::parse("m").unwrap(),
            MerchantId::parse("o").unwrap(),
        );
        let a = Arc::new(Admission::new(&cfg(3, 1), [&m, &o]));
        let _held = a.admit(Some(&m)).unwrap();
        assert_eq!(a.admit(Some(&m)).err(), Some(Refused::Merchant));
        let _other = a.admit(Some(&o)).unwrap();
        let _anon = a.admit(None).unwrap();
        // The server is full now; a refusal by the overall bound gives the merchant's
        // place back, so `o` is not left counted for a request that never ran.
        let o2 = MerchantId::parse("o").unwrap();
        drop(_other);
        let _x = a.admit(None).unwrap();
        assert_eq!(a.admit(Some(&o2)).err(), Some(Refused::Overloaded));
        assert_eq!(a.merchants[&o].load(Ordering::Relaxed), 0);
    }

    #[test]
    fn zero_means_no_bound() {
        let a = Arc::new(Admission::new(&cfg(0, 0), []));
        let held: Vec<_> = (0..10_000).map(|_| a.admit(None).unwrap()).collect();
        assert_eq!(held.len(), 10_000);
    }
}
