//! `POST /v1/orders/{id}/refunds` and `GET /v1/refunds/{id}` (routes mounted with the
//! orders' `/v1` scope): partial refunds up to the paid amount, each with the merchant's
//! own unique `merchant_refund_no`. A closed/failed order that received a late payment is
//! refunded here too, up to that payment.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::orders::{admit, check_text, owned_order, to_body};
use super::{idempotency, json_response, parse_json, read_body, ApiError, AppState, Authed};
use crate::actors::command::{RefundAccepted, RequestRefund};
use crate::actors::EngineError;
use crate::domain::{MerchantRef, Money, Refund, RefundId};
use crate::views::RefundView;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRefundRequest {
    merchant_refund_no: String,
    amount: i64,
    #[serde(default)]
    reason: Option<String>,
}

pub(super) async fn create_refund(
    state: web::Data<AppState>,
    auth: Authed,
    req: HttpRequest,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(&req, payload, state.config.server.max_body_bytes, true).await?;
    let o = &owned_order(&state, &auth, &id)?;
    let (state, body, auth) = (&state, &body, &auth);
    // A refund created by a first request that was never answered: 201 with it as it is.
    let recover = |resource: &str| {
        let Ok(rid) = RefundId::parse(resource) else {
            return Ok(None);
        };
        let order = state.engine.deps.store.get_order(&o.id)?;
        match order
            .as_ref()
            .and_then(|order| order.refund(&rid).map(|r| (order, r)))
        {
            Some((order, r)) => to_body(StatusCode::CREATED, &RefundView::new(order, r)).map(Some),
            None => Ok(None),
        }
    };
    idempotency::run_creating(state, &auth.0.id, &req, body, recover, |claim| async move {
        let input: CreateRefundRequest = parse_json(body)?;
        let no = MerchantRef::parse(&input.merchant_refund_no).map_err(|e| {
            ApiError::invalid("merchant_refund_no", "invalid_reference", e.to_string())
        })?;
        let amount = Money::new(input.amount, o.spec.amount.currency())?;
        if let Some(r) = &input.reason {
            check_text("reason", r, 256)?;
        }
        let store = &state.engine.deps.store;
        if let Some(existing) = store.find_refund_by_merchant_ref(&auth.0.id, &no)? {
            return Err(EngineError::DuplicateRefund(existing.to_string()).into());
        }
        // Paid orders refund their payment, closed/failed ones their late payments; other
        // states are left to the state machine's typed refusal (409).
        if o.holds_money() && amount.minor() > o.refundable() {
            return Err(crate::domain::DomainError::RefundExceedsPaid {
                requested: amount.minor(),
                available: o.refundable(),
            }
            .into());
        }
        admit(state, &o.spec.channel)?;
        let now = state.engine.deps.clock.now();
        let refund = Refund::new(RefundId::generate(now), no, amount, input.reason, now);
        claim.resource(refund.id.as_str())?;
        let RefundAccepted { order, refund_id } = state
            .engine
            .send(&o.id, RequestRefund(Box::new(refund)))
            .await?;
        let r = order.refund(&refund_id).ok_or_else(ApiError::internal)?;
        state.risk.refund_requested(store, &order, r);
        to_body(StatusCode::CREATED, &RefundView::new(&order, r))
    })
    .await
}

pub(super) async fn get_refund(
    state: web::Data<AppState>,
    auth: Authed,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let rid = RefundId::parse(&id).map_err(|_| ApiError::not_found("refund"))?;
    let store = &state.engine.deps.store;
    let order = match store.order_of_refund(&rid)? {
        Some(oid) => store.get_order(&oid)?,
        None => None,
    };
    store.settled().await?;
    match order {
        Some(o) if o.spec.merchant_id == auth.0.id => {
            let r = o
                .refund(&rid)
                .ok_or_else(|| ApiError::not_found("refund"))?;
            Ok(json_response(StatusCode::OK, &RefundView::new(&o, r)))
        }
        _ => Err(ApiError::not_found("refund")),
    }
}
