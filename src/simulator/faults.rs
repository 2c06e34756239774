//! Fault injection for every simulator through one endpoint, `POST /sandbox/{channel}/faults`.
//!
//! Outages, lost answers and slow answers look the same whatever the protocol, so they are
//! produced here, in front of the simulator's routes, and no simulator has to know about
//! them: only the simulator can tell which of its requests are provider API calls (a
//! payer's browser opening a cashier page must not eat an outage meant for the gateway),
//! hence [`Simulator::is_api_call`]. A call meets its fault before the simulator
//! authenticates it, as an outage in front of a provider would. Declining a refund needs
//! the protocol's own answer, so it goes to [`Simulator::set_protocol_faults`], as do the
//! sandbox's extra faults.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::{web, HttpResponse};
use futures::future::{ready, LocalBoxFuture, Ready};
use serde::{Deserialize, Serialize};
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use super::Simulator;

/// Body of `POST /sandbox/{channel}/faults`, the same for every simulator. Each POST
/// replaces the whole fault state (an absent field is 0), so `{}` clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    /// Answer the next N API calls 500 without carrying them out (a provider outage).
    pub fail_next: u32,
    /// Carry out the next N API calls, then answer 500 (the answer lost on the way back).
    pub lose_next: u32,
    /// Answer the next API call only after this many ms (a slow provider).
    pub delay_next_ms: u64,
    /// Decline the next N refunds, as a provider does when the merchant's balance is too
    /// low: the refund ends failed (synchronously or by notification, as the protocol
    /// answers refunds).
    pub fail_next_refund: u32,
    /// sandbox only: answer the next N closes "closed" but leave the trade payable.
    pub ignore_next_close: u32,
    /// sandbox only: answer the next N refund requests 500 without recording them.
    pub drop_next_refunds: u32,
    /// antom only: carry out the next N API calls, then answer them with the protocol's
    /// own "outcome unknown" (`resultStatus` U), which must be resolved by a query.
    pub unknown_next: u32,
    /// Simulators whose refunds end by notification: accept the next N refunds as a node
    /// does that dies right after answering, so nothing settles them, and record them as
    /// accepted [`super::ORPHAN_REFUND_SETTLE_SECS`] ago, so that the next query finds
    /// them orphaned and settles them (see [`super::refund_orphaned`]).
    pub orphan_next_refund: u32,
}

impl Faults {
    pub fn protocol(&self) -> ProtocolFaults {
        ProtocolFaults {
            fail_next_refund: self.fail_next_refund,
            ignore_next_close: self.ignore_next_close,
            drop_next_refunds: self.drop_next_refunds,
            unknown_next: self.unknown_next,
            orphan_next_refund: self.orphan_next_refund,
        }
    }
}

/// The faults of [`Faults`] that need the simulator's own protocol logic; see
/// [`Simulator::set_protocol_faults`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProtocolFaults {
    pub fail_next_refund: u32,
    pub ignore_next_close: u32,
    pub drop_next_refunds: u32,
    pub unknown_next: u32,
    pub orphan_next_refund: u32,
}

impl ProtocolFaults {
    /// Refuses every non-zero fault not in `supported`, naming them, so a test or a demo
    /// never believes in a fault that will not happen.
    pub fn only(&self, supported: &[&str]) -> Result<(), String> {
        let asked = [
            ("fail_next_refund", self.fail_next_refund),
            ("ignore_next_close", self.ignore_next_close),
            ("drop_next_refunds", self.drop_next_refunds),
            ("unknown_next", self.unknown_next),
            ("orphan_next_refund", self.orphan_next_refund),
        ];
        let refused: Vec<&str> = asked
            .iter()
            .filter(|(name, n)| *n > 0 && !supported.contains(name))
            .map(|(name, _)| *name)
            .collect();
        if refused.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "this simulator does not support {}",
                refused.join(", ")
            ))
        }
    }
}

/// What one API call met, decided when it arrives.
enum Due {
    Fail,
    Lose,
    Pass,
}

#[derive(Default)]
struct Counters {
    fail_next: AtomicU32,
    lose_next: AtomicU32,
    delay_next_ms: AtomicU64,
}

impl Counters {
    fn take(&self) -> (Due, u64) {
        let delay = self.delay_next_ms.swap(0, SeqCst);
        let due = if take_one(&self.fail_next) {
            Due::Fail
        } else if take_one(&self.lose_next) {
            Due::Lose
        } else {
            Due::Pass
        };
        (due, delay)
    }
}

/// Decrements a fault counter; true when a fault was due.
pub fn take_one(counter: &AtomicU32) -> bool {
    counter
        .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

/// One API request as the fault layer sees it, for [`Simulator::is_api_call`].
pub struct CallHead<'a> {
    pub method: &'a actix_web::http::Method,
    /// The path below the simulator's mount point (`/v1/payments`, `/gateway.do`, ``).
    pub path: &'a str,
    pub query: &'a str,
    pub body: &'a [u8],
}

impl CallHead<'_> {
    /// A field of a form-encoded query string or body, for protocols that name the
    /// operation inside the form (Alipay's `method`).
    pub fn form_field(&self, name: &str) -> Option<String> {
        let from = |s: &[u8]| {
            url::form_urlencoded::parse(s)
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        from(self.query.as_bytes()).or_else(|| from(self.body))
    }
}

/// A simulator with its fault state. Made once per simulator, outside the per-worker app
/// factory, so a fault armed through one worker meets the call another worker serves.
#[derive(Clone)]
pub struct Mounted {
    pub sim: Arc<dyn Simulator>,
    counters: Arc<Counters>,
}

impl Mounted {
    pub fn new(sim: Arc<dyn Simulator>) -> Mounted {
        Mounted {
            sim,
            counters: Arc::default(),
        }
    }
}

/// Mounts the simulator at `/sandbox/{name}` behind the fault layer, with its `/faults`
/// route. The server and the conformance suite both mount simulators through here, so
/// what the suite exercises is what runs.
pub fn mount(cfg: &mut web::ServiceConfig, name: &str, m: &Mounted) {
    let prefix = format!("/sandbox/{name}");
    let (counters, sim) = (m.counters.clone(), m.sim.clone());
    let (c, s) = (counters.clone(), sim.clone());
    cfg.service(
        web::scope(&prefix)
            .wrap(FaultLayer {
                counters,
                sim: sim.clone(),
                prefix: prefix.clone(),
            })
            .route(
                "/faults",
                web::post().to(move |body: web::Json<Faults>| {
                    let (c, s) = (c.clone(), s.clone());
                    async move { set(&c, &*s, body.into_inner()) }
                }),
            )
            .configure(move |cfg| sim.routes(cfg)),
    );
}

fn set(c: &Counters, sim: &dyn Simulator, f: Faults) -> HttpResponse {
    if let Err(message) = sim.set_protocol_faults(&f.protocol()) {
        return HttpResponse::BadRequest().json(serde_json::json!({
            "error": {"type": "invalid_request_error", "code": "fault_not_supported", "message": message}
        }));
    }
    c.fail_next.store(f.fail_next, SeqCst);
    c.lose_next.store(f.lose_next, SeqCst);
    c.delay_next_ms.store(f.delay_next_ms, SeqCst);
    HttpResponse::Ok().json(f)
}

struct FaultLayer {
    counters: Arc<Counters>,
    sim: Arc<dyn Simulator>,
    prefix: String,
}

impl<S, B> Transform<S, ServiceRequest> for FaultLayer
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = actix_web::Error;
    type Transform = FaultService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(FaultService {
            service: Rc::new(service),
            counters: self.counters.clone(),
            sim: self.sim.clone(),
            prefix: self.prefix.clone(),
        }))
    }
}

pub struct FaultService<S> {
    service: Rc<S>,
    counters: Arc<Counters>,
    sim: Arc<dyn Simulator>,
    prefix: String,
}

impl<S, B> Service<ServiceRequest> for FaultService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, mut req: ServiceRequest) -> Self::Future {
        let (service, counters, sim) = (
            self.service.clone(),
            self.counters.clone(),
            self.sim.clone(),
        );
        let prefix = self.prefix.clone();
        Box::pin(async move {
            // The body is read here to classify the call, then handed on untouched.
            let body = req.extract::<web::Bytes>().await?;
            req.set_payload(body.clone().into());
            let path = req.path().strip_prefix(&prefix).unwrap_or_default();
            let api = path != "/faults"
                && sim.is_api_call(&CallHead {
                    method: req.method(),
                    path,
                    query: req.query_string(),
                    body: &body,
                });
            if !api {
                return service.call(req).await.map(|r| r.map_into_boxed_body());
            }
            let (due, delay) = counters.take();
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            match due {
                Due::Fail => Ok(req.into_response(injected("provider unavailable"))),
                Due::Lose => {
                    let done = service.call(req).await?;
                    let (req, _) = done.into_parts();
                    Ok(ServiceResponse::new(req, injected("answer lost")))
                }
                Due::Pass => service.call(req).await.map(|r| r.map_into_boxed_body()),
            }
        })
    }
}

/// An unsigned 500: what a load balancer in front of any provider answers when the
/// provider is down, which every connector must read as "outcome unknown".
fn injected(what: &str) -> HttpResponse {
    HttpResponse::InternalServerError().json(serde_json::json!({
        "code": "SYSTEM_ERROR",
        "message": format!("injected fault: {what}"),
    }))
}
