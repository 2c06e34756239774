//! `POST /callbacks/{channel}`: provider notifications. The connector verifies the
//! signature over the raw request before anything is parsed; a verified notification is
//! routed to its order actor, and the provider's success acknowledgement is sent only once
//! the resulting transition is durable. Everything else gets the provider's failure answer
//! so it retries.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::{read_body, AppState};
use crate::actors::command::Notify;
use crate::actors::EngineError;
use crate::connectors::{Ack, Connector, ConnectorError, Notification, RawCallback};
use crate::domain::{ChannelName, OrderId, RefundId};
use crate::telemetry::metrics;

const MAX_CALLBACK_BYTES: usize = 256 * 1024;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/callbacks/{channel}", web::post().to(callback));
}

fn ack_response(a: Ack) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(a.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .content_type(a.content_type)
        .body(a.body)
}

fn reject(connector: &dyn Connector, channel: &str, outcome: &str, reason: &str) -> HttpResponse {
    metrics::CALLBACKS
        .with_label_values(&[channel, outcome])
        .inc();
    tracing::warn!(channel, outcome, reason, "callback rejected");
    ack_response(connector.ack(Err(reason)))
}

/// A verified notification no order can take: refusing it would only make the provider
/// send the same content again, for as long as it retries. It is acknowledged, changes
/// nothing, and is raised once for operators on the order it names (one of this channel's;
/// otherwise it is refused like any notification for an unknown order).
fn unappliable(
    state: &AppState,
    connector: &dyn Connector,
    channel: &str,
    order_ref: Option<&str>,
    detail: &str,
) -> HttpResponse {
    let store = &state.engine.deps.store;
    let order = order_ref
        .and_then(|r| OrderId::from_provider_ref(r).ok())
        .and_then(|id| store.get_order(&id).ok().flatten())
        .filter(|o| o.spec.channel.as_str() == channel);
    let Some(order) = order else {
        return reject(
            connector,
            channel,
            "unknown_order",
            "no such order on this channel",
        );
    };
    tracing::warn!(channel, order_id = %order.id, detail, "verified notification cannot be applied; acknowledged");
    state
        .risk
        .callback_unappliable(store, channel, &order, detail);
    metrics::CALLBACKS
        .with_label_values(&[channel, "unappliable"])
        .inc();
    ack_response(connector.ack(Ok(())))
}

#[tracing::instrument(name = "callback", skip_all, fields(channel = %channel, order_id, merchant_id))]
async fn callback(
    state: web::Data<AppState>,
    req: HttpRequest,
    channel: web::Path<String>,
    payload: web::Payload,
) -> HttpResponse {
    let Some(ch) = ChannelName::parse(&channel)
        .ok()
        .and_then(|c| state.engine.deps.channel(&c).cloned())
    else {
        return HttpResponse::NotFound().finish();
    };
    let name = ch.name.as_str();
    let connector = ch.connector.as_ref();
    let body = match read_body(&req, payload, MAX_CALLBACK_BYTES, false).await {
        Ok(b) => b,
        Err(e) => return reject(connector, name, "unreadable", &e.message),
    };
    let raw = RawCallback {
        headers: req
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        query: req.query_string().to_string(),
        body,
        received_at: state.engine.deps.clock.now(),
    };
    let notification = match connector.parse_notification(&raw) {
        Ok(n) => n,
        Err(ConnectorError::Unappliable { order_ref, detail }) => {
            return unappliable(&state, connector, name, order_ref.as_deref(), &detail);
        }
        Err(e) => {
            // Bulk verification failures from one source are an operator signal (probing,
            // a misconfigured key, a replay attack); the peer address is the source.
            if let Some(peer) = req.peer_addr() {
                state.risk.callback_rejected(
                    &state.engine.deps.store,
                    name,
                    &peer.ip().to_string(),
                );
            }
            return reject(connector, name, e.kind(), &e.to_string());
        }
    };
    let store = &state.engine.deps.store;
    let order_id = match &notification {
        Notification::Payment { order_ref, .. } => OrderId::from_provider_ref(order_ref).ok(),
        Notification::Refund {
            refund_ref,
            order_ref,
            ..
        } => RefundId::from_provider_ref(refund_ref)
            .ok()
            .and_then(|rid| store.order_of_refund(&rid).ok().flatten())
            // A refund paygate did not make still names its trade.
            .or_else(|| {
                order_ref
                    .as_deref()
                    .and_then(|r| OrderId::from_provider_ref(r).ok())
            }),
    };
    let order = order_id.and_then(|id| store.get_order(&id).ok().flatten());
    let Some(order) = order.filter(|o| o.spec.channel == ch.name) else {
        return reject(
            connector,
            name,
            "unknown_order",
            "no such order on this channel",
        );
    };
    tracing::Span::current()
        .record("order_id", order.id.as_str())
        .record("merchant_id", order.spec.merchant_id.as_str());
    // Signed is not enough: the notification must also fit this order (its app and
    // merchant ids, references, amounts). A mismatch changes nothing; the provider is told
    // to retry (it may be a key shared with another app) and operators hear of it once.
    let refund_ref = match &notification {
        Notification::Refund { refund_ref, .. } => Some(refund_ref.clone()),
        Notification::Payment { .. } => None,
    };
    let refund = refund_ref
        .as_deref()
        .and_then(|r| RefundId::from_provider_ref(r).ok())
        .and_then(|rid| order.refund(&rid));
    if let Err(m) = connector.check_notification(&raw, &notification, &order, refund) {
        state.risk.callback_mismatch(store, name, &order, &m);
        return reject(connector, name, m.kind, &m.to_string());
    }
    match state
        .engine
        .send(&order.id, Notify(Box::new(notification)))
        .await
    {
        Ok(_) => {
            metrics::CALLBACKS
                .with_label_values(&[name, "accepted"])
                .inc();
            ack_response(connector.ack(Ok(())))
        }
        Err(EngineError::NotFound) => {
            // The order is ours (and the notification fits it) but the refund is not: one
            // made outside paygate. Retries cannot fix that, so it is acknowledged and
            // operators are told once.
            if let Some(r) = refund_ref {
                state.risk.callback_unknown_refund(store, name, &order, &r);
            }
            metrics::CALLBACKS
                .with_label_values(&[name, "unknown_refund"])
                .inc();
            ack_response(connector.ack(Ok(())))
        }
        Err(e) => {
            tracing::error!(error = %e, "callback could not be applied; provider will retry");
            metrics::CALLBACKS
                .with_label_values(&[name, "failed"])
                .inc();
            ack_response(connector.ack(Err("temporarily unable to process")))
        }
    }
}
