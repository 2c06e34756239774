//! `/v1/orders` and `/v1/refunds`: the merchant's view of its orders.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::{idempotency, json_response, parse_json, read_body, ApiError, AppState, Authed};
use crate::actors::command::{Close, Create, Prepay, Verified, Verify};
use crate::actors::EngineError;
use crate::domain::{
    ChannelName, Currency, MerchantRef, Method, Money, Order, OrderId, OrderSpec, Payer,
};
use crate::views::OrderView;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/v1")
            .route("/orders", web::post().to(create_order))
            .route("/orders", web::get().to(list_orders))
            .route("/orders/{id}", web::get().to(get_order))
            .route("/orders/{id}/qr.svg", web::get().to(super::qr::qr_svg))
            .route("/orders/{id}/qr.png", web::get().to(super::qr::qr_png))
            .route("/orders/{id}/verify", web::post().to(verify_order))
            .route("/orders/{id}/close", web::post().to(close_order))
            .route(
                "/orders/{id}/refunds",
                web::post().to(super::refunds::create_refund),
            )
            .route("/refunds/{id}", web::get().to(super::refunds::get_refund)),
    );
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateOrderRequest {
    merchant_order_no: String,
    amount: i64,
    currency: String,
    channel: String,
    method: String,
    subject: String,
    #[serde(default)]
    notify_url: Option<String>,
    #[serde(default)]
    return_url: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    payer: Option<PayerRequest>,
    #[serde(default)]
    metadata: Option<BTreeMap<String, String>>,
    /// The payment method inside an aggregator channel (`tng`, `paynow`, `card`, ...).
    #[serde(default)]
    wallet: Option<String>,
    /// `barcode` only: the payer's payment code as scanned.
    #[serde(default)]
    auth_code: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PayerRequest {
    #[serde(default)]
    ip: Option<String>,
    #[serde(default)]
    openid: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    device_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    merchant_order_no: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    starting_after: Option<String>,
}

fn check_url(param: &str, u: &str) -> Result<String, ApiError> {
    match url::Url::parse(u) {
        Ok(p)
            if matches!(p.scheme(), "http" | "https") && p.host().is_some() && u.len() <= 2048 =>
        {
            Ok(u.to_string())
        }
        _ => Err(ApiError::invalid(
            param,
            "invalid_url",
            format!("{param} must be an http(s) URL of at most 2048 characters"),
        )),
    }
}

/// [`check_url`], then the egress rule: an internal literal address is refused here, with
/// nothing stored, rather than accepted and dead-lettered at the first delivery.
fn check_notify_url(state: &AppState, u: &str) -> Result<String, ApiError> {
    let u = check_url("notify_url", u)?;
    if !state.config.notifier.allow_private_targets {
        let parsed = url::Url::parse(&u).map_err(|_| ApiError::internal())?;
        crate::egress::check_url(&parsed).map_err(|why| {
            ApiError::invalid(
                "notify_url",
                "notify_url_forbidden",
                format!("notify_url is refused ({why}): webhooks go to public addresses only"),
            )
        })?;
    }
    Ok(u)
}

pub(super) fn check_text(param: &str, s: &str, max: usize) -> Result<(), ApiError> {
    if s.is_empty() || s.chars().count() > max || s.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            param,
            "invalid_text",
            format!("{param} must be 1-{max} characters without control characters"),
        ));
    }
    Ok(())
}

impl CreateOrderRequest {
    /// Validates everything the merchant sent; nothing is created on failure.
    fn into_spec(
        self,
        state: &AppState,
        merchant: &crate::domain::MerchantId,
        now: i64,
    ) -> Result<OrderSpec, ApiError> {
        let merchant_order_no = MerchantRef::parse(&self.merchant_order_no).map_err(|e| {
            ApiError::invalid("merchant_order_no", "invalid_reference", e.to_string())
        })?;
        let currency: Currency = self.currency.parse()?;
        let amount = Money::new(self.amount, currency)?;
        let method: Method = self.method.parse()?;
        let channel = ChannelName::parse(&self.channel)
            .ok()
            .filter(|c| state.engine.deps.channel(c).is_some())
            .ok_or_else(|| {
                let known: Vec<_> = state
                    .engine
                    .deps
                    .channels
                    .keys()
                    .map(|c| c.to_string())
                    .collect();
                ApiError::invalid(
                    "channel",
                    "unknown_channel",
                    format!("unknown channel; configured: {known:?}"),
                )
            })?;
        check_text("subject", &self.subject, 256)?;
        let actors = &state.config.actors;
        // A scanned payment code is a payer at the till: its outcome is settled (paid or
        // reversed) within `barcode_settle_secs`, whatever was asked.
        let expires_in = match method {
            Method::Barcode => self
                .expires_in
                .unwrap_or(actors.barcode_settle_secs)
                .min(actors.barcode_settle_secs),
            _ => self.expires_in.unwrap_or(actors.default_expires_in_secs),
        };
        if expires_in == 0 || expires_in > actors.max_expires_in_secs {
            return Err(ApiError::invalid(
                "expires_in",
                "invalid_expiry",
                format!(
                    "expires_in must be 1-{} seconds",
                    actors.max_expires_in_secs
                ),
            ));
        }
        let wallet = self
            .wallet
            .as_deref()
            .map(crate::domain::Wallet::parse)
            .transpose()?;
        let auth_code = match (method, self.auth_code) {
            (Method::Barcode, Some(c))
                if (10..=32).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_digit()) =>
            {
                Some(c)
            }
            (Method::Barcode, _) => return Err(ApiError::invalid(
                "auth_code",
                "invalid_auth_code",
                "method barcode needs auth_code: the payer's payment code, 10-32 digits as scanned",
            )),
            (_, Some(_)) => {
                return Err(ApiError::invalid(
                    "auth_code",
                    "invalid_auth_code",
                    "auth_code is only for method barcode",
                ))
            }
            (_, None) => None,
        };
        let payer = self.payer.unwrap_or_default();
        if let Some(ip) = &payer.ip {
            ip.parse::<std::net::IpAddr>().map_err(|_| {
                ApiError::invalid(
                    "payer.ip",
                    "invalid_ip",
                    "payer.ip must be an IPv4 or IPv6 address",
                )
            })?;
        }
        for (name, v) in [
            ("payer.openid", &payer.openid),
            ("payer.user_id", &payer.user_id),
            ("payer.device_id", &payer.device_id),
        ] {
            if let Some(v) = v {
                check_text(name, v, 128)?;
            }
        }
        let metadata = self.metadata.unwrap_or_default();
        if metadata.len() > 20
            || metadata
                .iter()
                .any(|(k, v)| k.is_empty() || k.len() > 40 || v.len() > 500)
        {
            return Err(ApiError::invalid(
                "metadata",
                "invalid_metadata",
                "metadata holds at most 20 keys of 1-40 characters with values of at most 500",
            ));
        }
        Ok(OrderSpec {
            merchant_id: merchant.clone(),
            merchant_order_no,
            amount,
            channel,
            method,
            subject: self.subject,
            notify_url: self
                .notify_url
                .as_deref()
                .map(|u| check_notify_url(state, u))
                .transpose()?,
            return_url: self
                .return_url
                .as_deref()
                .map(|u| check_url("return_url", u))
                .transpose()?,
            expires_at: now + expires_in as i64 * 1000,
            payer: Payer {
                ip: payer.ip,
                openid: payer.openid,
                user_id: payer.user_id,
                device_id: payer.device_id,
                auth_code,
            },
            metadata,
            wallet,
        })
    }
}

pub(super) fn to_body<T: Serialize>(
    status: StatusCode,
    v: &T,
) -> Result<(StatusCode, Vec<u8>), ApiError> {
    Ok((
        status,
        serde_json::to_vec(v).map_err(|_| ApiError::internal())?,
    ))
}

pub(super) fn admit(state: &AppState, channel: &ChannelName) -> Result<(), ApiError> {
    let ch = state
        .engine
        .deps
        .channel(channel)
        .ok_or_else(ApiError::internal)?;
    ch.admit().map_err(|retry_after_secs| {
        EngineError::RateLimited {
            channel: channel.to_string(),
            retry_after_secs,
        }
        .into()
    })
}

#[tracing::instrument(name = "create_order", skip_all, fields(merchant_id = %auth.0.id, order_id, channel))]
async fn create_order(
    state: web::Data<AppState>,
    auth: Authed,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(&req, payload, state.config.server.max_body_bytes, true).await?;
    let merchant = &auth.0.id;
    let (state, body) = (&state, &body);
    let recover = |resource: &str| recover_order(state, merchant, resource);
    idempotency::run_creating(state, merchant, &req, body, recover, |claim| async move {
        let input: CreateOrderRequest = parse_json(body)?;
        let now = state.engine.deps.clock.now();
        let spec = input.into_spec(state, merchant, now)?;
        let order = Order::new(OrderId::generate(now), spec.clone(), now);
        tracing::Span::current()
            .record("order_id", order.id.as_str())
            .record("channel", order.spec.channel.as_str());
        let ch = state
            .engine
            .deps
            .channel(&order.spec.channel)
            .ok_or_else(ApiError::internal)?;
        ch.connector.validate(&order)?;
        // The order actor owns the rest: risk (with the channel limiter as its gate), the
        // provider call, the one durable commit, giving back a cap reservation on failure.
        claim.resource(order.id.as_str())?;
        // A `merchant_order_no` already taken is found with the order's risk reservation
        // (one round trip on postgres), or at its commit when two creates race.
        match state
            .engine
            .send(&order.id.clone(), Create(Box::new(order)))
            .await
        {
            Ok(o) => to_body(StatusCode::CREATED, &OrderView::from(&*o)),
            Err(EngineError::DuplicateOrder(existing)) => {
                let existing = OrderId::parse(&existing).map_err(|_| ApiError::internal())?;
                retry_or_duplicate(state, existing, &spec).await
            }
            Err(e) => Err(e.into()),
        }
    })
    .await
}

/// Answers a create whose first request (same Idempotency-Key and body) created order
/// `resource` but was never answered: 201 with the order as it now is. An order still
/// `created` (its prepay outcome unknown) is `None`, so the request runs again and drives
/// the prepay as a retried create does ([`retry_or_duplicate`]).
fn recover_order(
    state: &AppState,
    merchant: &crate::domain::MerchantId,
    resource: &str,
) -> Result<Option<(StatusCode, Vec<u8>)>, ApiError> {
    let Ok(id) = OrderId::parse(resource) else {
        return Ok(None);
    };
    match state.engine.deps.store.get_order(&id)? {
        Some(o)
            if &o.spec.merchant_id == merchant
                && o.status() != crate::domain::OrderStatus::Created =>
        {
            to_body(StatusCode::CREATED, &OrderView::from(&o)).map(Some)
        }
        _ => Ok(None),
    }
}

/// The same `merchant_order_no` again. If that order's first prepay ended with an unknown
/// outcome (provider timeout or 5xx: the order is still `created`) and the request is the
/// same payment, the prepay is driven again for that order (providers treat a repeated
/// `out_trade_no` with the same content as the same trade) and the merchant gets the order
/// it asked for. Anything else is a duplicate.
async fn retry_or_duplicate(
    state: &AppState,
    existing: OrderId,
    spec: &OrderSpec,
) -> Result<(StatusCode, Vec<u8>), ApiError> {
    let duplicate = || EngineError::DuplicateOrder(existing.to_string()).into();
    let store = &state.engine.deps.store;
    // A "duplicate" answer must not be about an order a crash could still take back.
    store.settled().await?;
    let Some(prior) = store.get_order(&existing)? else {
        return Err(duplicate());
    };
    let p = &prior.spec;
    let same_payment = p.amount == spec.amount
        && p.channel == spec.channel
        && p.method == spec.method
        && p.subject == spec.subject;
    if prior.status() != crate::domain::OrderStatus::Created || !same_payment {
        return Err(duplicate());
    }
    admit(state, &p.channel)?;
    let o = state.engine.send(&prior.id, Prepay).await?;
    to_body(StatusCode::CREATED, &OrderView::from(&*o))
}

/// Loads an order the merchant owns; another merchant's order is "not found".
pub(super) fn owned_order(state: &AppState, auth: &Authed, id: &str) -> Result<Order, ApiError> {
    let id = OrderId::parse(id).map_err(|_| ApiError::not_found("order"))?;
    match state.engine.deps.store.get_order(&id)? {
        Some(o) if o.spec.merchant_id == auth.0.id => Ok(o),
        _ => Err(ApiError::not_found("order")),
    }
}

async fn get_order(
    state: web::Data<AppState>,
    auth: Authed,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let o = owned_order(&state, &auth, &id)?;
    // What was read is on disk before it is shown (a merchant may ship on it).
    state.engine.deps.store.settled().await?;
    Ok(json_response(StatusCode::OK, &OrderView::from(&o)))
}

/// The order's `qr_code` pay action rendered as an SVG QR code, for merchants that show
/// the code on a web page (WeChat Native, Alipay precreate, ...).

#[derive(Serialize)]
struct ListView {
    object: &'static str,
    data: Vec<OrderView>,
    has_more: bool,
}

async fn list_orders(
    state: web::Data<AppState>,
    auth: Authed,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q = web::Query::<ListQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::invalid("query", "invalid_query", e.to_string()))?
        .into_inner();
    let store = &state.engine.deps.store;
    if let Some(no) = q.merchant_order_no {
        let no = MerchantRef::parse(&no).map_err(|e| {
            ApiError::invalid("merchant_order_no", "invalid_reference", e.to_string())
        })?;
        let data: Vec<OrderView> = match store.find_order_by_merchant_ref(&auth.0.id, &no).await? {
            Some(id) => store.get_order(&id)?.iter().map(OrderView::from).collect(),
            None => Vec::new(),
        };
        store.settled().await?;
        return Ok(json_response(
            StatusCode::OK,
            &ListView {
                object: "list",
                data,
                has_more: false,
            },
        ));
    }
    let limit = q.limit.unwrap_or(10);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            "invalid_limit",
            "limit must be 1-100",
        ));
    }
    let after = q
        .starting_after
        .as_deref()
        .map(|s| {
            OrderId::parse(s).map_err(|_| {
                ApiError::invalid(
                    "starting_after",
                    "invalid_cursor",
                    "starting_after must be an order id",
                )
            })
        })
        .transpose()?;
    let (orders, has_more) = store.list_orders(&auth.0.id, after.as_ref(), limit)?;
    store.settled().await?;
    Ok(json_response(
        StatusCode::OK,
        &ListView {
            object: "list",
            data: orders.iter().map(OrderView::from).collect(),
            has_more,
        },
    ))
}

#[derive(Serialize)]
struct VerifyView {
    order: OrderView,
    verified: bool,
    provider_status: String,
}

async fn verify_order(
    state: web::Data<AppState>,
    auth: Authed,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let o = owned_order(&state, &auth, &id)?;
    idempotency::run(&state, &auth.0.id, &req, b"", || async {
        admit(&state, &o.spec.channel)?;
        let Verified {
            order,
            provider_status,
            verified,
        } = state.engine.send(&o.id, Verify).await?;
        to_body(
            StatusCode::OK,
            &VerifyView {
                order: OrderView::from(&*order),
                verified,
                provider_status,
            },
        )
    })
    .await
}

async fn close_order(
    state: web::Data<AppState>,
    auth: Authed,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let o = owned_order(&state, &auth, &id)?;
    idempotency::run(&state, &auth.0.id, &req, b"", || async {
        admit(&state, &o.spec.channel)?;
        let o = state.engine.send(&o.id, Close).await?;
        to_body(StatusCode::OK, &OrderView::from(&*o))
    })
    .await
}
