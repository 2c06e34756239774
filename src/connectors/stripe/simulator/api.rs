//! The REST endpoints: authentication, `Stripe-Version`, idempotency, then one handler
//! per operation. Handlers run under the simulator's lock and return the answer plus the
//! events it caused; events are sent after the lock is released.

use std::sync::Arc;

use actix_web::http::Method as HttpMethod;
use actix_web::{HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::resources::int;
use super::state::Saved;
use super::wire::{self, invalid, not_found, Reply};
use super::{field, StripeSimulator};

type Events = Vec<Value>;

impl StripeSimulator {
    fn authenticate(&self, req: &HttpRequest) -> Result<(), Reply> {
        let auth = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        let key = match auth {
            Some(a) if a.starts_with("Bearer ") => a["Bearer ".len()..].to_string(),
            // `curl -u sk_test_…:`: the key as the user name, no password.
            Some(a) if a.starts_with("Basic ") => {
                use base64::Engine;
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(&a["Basic ".len()..])
                    .unwrap_or_default();
                let text = String::from_utf8_lossy(&raw).into_owned();
                text.split(':').next().unwrap_or_default().to_string()
            }
            _ => {
                return Err(wire::error(
                    401,
                    "invalid_request_error",
                    None,
                    "You did not provide an API key.",
                    None,
                ));
            }
        };
        let expected = self.settings.secret_key.expose().as_bytes();
        if !bool::from(subtle::ConstantTimeEq::ct_eq(key.as_bytes(), expected)) {
            let shown: String = key.chars().take(8).collect();
            return Err(wire::error(
                401,
                "invalid_request_error",
                None,
                &format!("Invalid API Key provided: {shown}****"),
                None,
            ));
        }
        Ok(())
    }

    fn check_version(req: &HttpRequest) -> Result<(), Reply> {
        let Some(v) = req.headers().get("stripe-version") else {
            return Ok(());
        };
        let v = v.to_str().unwrap_or_default();
        let date = v.split('.').next().unwrap_or_default();
        let ok = date.len() == 10
            && date.bytes().enumerate().all(|(i, b)| {
                if i == 4 || i == 7 {
                    b == b'-'
                } else {
                    b.is_ascii_digit()
                }
            });
        if ok {
            Ok(())
        } else {
            Err(invalid(
                "api_version_invalid",
                &format!("Invalid Stripe API version: {v}"),
                None,
            ))
        }
    }

    /// Every `/v1/…` request.
    pub(super) fn api(self: &Arc<Self>, req: &HttpRequest, body: &[u8]) -> HttpResponse {
        let path = req
            .match_info()
            .get("tail")
            .map(|t| format!("/v1/{t}"))
            .unwrap_or_default();
        if let Err(r) = self
            .authenticate(req)
            .and_then(|_| Self::check_version(req))
        {
            return r.into_response(false);
        }
        let mut events = Vec::new();
        let (reply, replayed) = if req.method() == HttpMethod::POST {
            match self.post(req, &path, body, &mut events) {
                Ok(x) => x,
                Err(r) => (r, false),
            }
        } else if req.method() == HttpMethod::GET {
            let query = wire::decode(req.query_string().as_bytes()).unwrap_or(Value::Null);
            let _g = self.lock.lock();
            let reply = self.get_route(&path, &query, &mut events);
            (reply.unwrap_or_else(|r| r), false)
        } else {
            (
                invalid(
                    "unrecognized_request_url",
                    &format!("Unrecognized request URL ({} {path}).", req.method()),
                    None,
                ),
                false,
            )
        };
        for ev in events {
            self.deliver(ev);
        }
        reply.into_response(replayed)
    }

    fn post(
        self: &Arc<Self>,
        req: &HttpRequest,
        path: &str,
        body: &[u8],
        events: &mut Events,
    ) -> Result<(Reply, bool), Reply> {
        let params = wire::decode(body).map_err(|m| invalid("parameter_unknown", &m, None))?;
        let key = req
            .headers()
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if key.as_ref().is_some_and(|k| k.len() > 255 || k.is_empty()) {
            return Err(invalid(
                "idempotency_key_invalid",
                "Idempotency keys are 1 to 255 characters",
                None,
            ));
        }
        let method_path = format!("POST {path}");
        let _g = self.lock.lock();
        if let Some(k) = &key {
            if let Some(saved) = self.saved(k) {
                if saved.method_path == method_path && saved.params == params {
                    return Ok((saved.reply, true));
                }
                return Err(wire::error(
                    400,
                    "idempotency_error",
                    None,
                    &format!("Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '{k}' if you meant to execute a different request."),
                    None,
                ));
            }
        }
        let reply = self.post_route(path, &params, events).unwrap_or_else(|r| r);
        // Stripe saves answers of requests that started executing; a parameter rejected
        // by validation (400) can be corrected and sent again under the same key.
        if let Some(k) = &key {
            if reply.status == 200 || reply.status == 402 || reply.status >= 500 {
                self.save(
                    k,
                    &Saved {
                        method_path,
                        params,
                        reply: reply.clone(),
                    },
                );
            }
        }
        Ok((reply, false))
    }

    fn post_route(&self, path: &str, p: &Value, ev: &mut Events) -> Result<Reply, Reply> {
        let parts: Vec<&str> = path.trim_start_matches("/v1/").split('/').collect();
        match parts.as_slice() {
            ["payment_intents"] => self.create_intent(p),
            ["payment_intents", id, "cancel"] => self.cancel_intent(id, p, ev),
            ["checkout", "sessions"] => self.create_session(p),
            ["checkout", "sessions", id, "expire"] => self.expire_session(id, ev),
            ["refunds"] => self.create_refund(p),
            _ => Err(invalid(
                "unrecognized_request_url",
                &format!("Unrecognized request URL (POST: {path})."),
                None,
            )),
        }
    }

    fn get_route(&self, path: &str, q: &Value, events: &mut Vec<Value>) -> Result<Reply, Reply> {
        let parts: Vec<&str> = path.trim_start_matches("/v1/").split('/').collect();
        let one = |id: &str, prefix: &str, kind: &str| {
            self.get(id)
                .filter(|_| id.starts_with(prefix))
                .map(Reply::ok)
                .ok_or_else(|| not_found(kind, id, "id"))
        };
        match parts.as_slice() {
            ["payment_intents"] => self.list("payment_intent", "/v1/payment_intents", q, |_| true),
            ["payment_intents", id] => one(id, "pi_", "payment_intent"),
            ["checkout", "sessions"] => {
                self.list("checkout.session", "/v1/checkout/sessions", q, |_| true)
            }
            ["checkout", "sessions", id] => one(id, "cs_", "checkout.session"),
            ["refunds"] => {
                let pi = q
                    .get("payment_intent")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                for id in self.ids("refund") {
                    events.extend(self.settle_orphaned_refund(&id, pi.as_deref()));
                }
                self.list("refund", "/v1/refunds", q, |r| {
                    pi.is_none() || field(r, "payment_intent") == pi.as_deref()
                })
            }
            ["refunds", id] => {
                // An orphaned refund (its settling node died) is settled by this read.
                events.extend(self.settle_orphaned_refund(id, None));
                one(id, "re_", "refund")
            }
            _ => Err(invalid(
                "unrecognized_request_url",
                &format!("Unrecognized request URL (GET: {path})."),
                None,
            )),
        }
    }

    /// A list endpoint: newest first, `created[gte|gt|lte|lt]`, `limit` (1–100, default
    /// 10), `starting_after`.
    fn list(
        &self,
        kind: &str,
        url: &str,
        q: &Value,
        keep: impl Fn(&Value) -> bool,
    ) -> Result<Reply, Reply> {
        let created = q.get("created").cloned().unwrap_or(Value::Null);
        let bound = |k: &str| -> Result<Option<i64>, Reply> { int(&created, k) };
        let (gte, gt, lte, lt) = (bound("gte")?, bound("gt")?, bound("lte")?, bound("lt")?);
        let limit = int(q, "limit")?.unwrap_or(10);
        if !(1..=100).contains(&limit) {
            return Err(invalid(
                "parameter_invalid_integer",
                "limit must be between 1 and 100",
                Some("limit"),
            ));
        }
        let after = q.get("starting_after").and_then(Value::as_str);
        let mut ids = self.ids(kind);
        ids.reverse();
        if let Some(a) = after {
            match ids.iter().position(|id| id == a) {
                Some(i) => ids.drain(..=i).for_each(drop),
                None => return Err(not_found(kind, a, "starting_after")),
            }
        }
        let mut data = Vec::new();
        let mut has_more = false;
        for id in ids {
            let Some(obj) = self.get(&id) else { continue };
            let c = obj.get("created").and_then(Value::as_i64).unwrap_or(0);
            let inside = gte.map_or(true, |b| c >= b)
                && gt.map_or(true, |b| c > b)
                && lte.map_or(true, |b| c <= b)
                && lt.map_or(true, |b| c < b);
            if !inside || !keep(&obj) {
                continue;
            }
            if data.len() as i64 == limit {
                has_more = true;
                break;
            }
            data.push(obj);
        }
        Ok(Reply::ok(
            json!({"object": "list", "url": url, "has_more": has_more, "data": data}),
        ))
    }
}
