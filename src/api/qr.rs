//! `GET /v1/orders/{id}/qr.svg` and `.png`: the order's QR code pay action as an image, for
//! every channel that answers one (an EMVCo QR carries its payload), so a merchant page or
//! a till can show it without a QR library of its own.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};

use super::orders::owned_order;
use super::{ApiError, AppState, Authed};

fn content(state: &AppState, auth: &Authed, id: &str) -> Result<String, ApiError> {
    let o = owned_order(state, auth, id)?;
    o.pay_action()
        .and_then(crate::qr::content_of)
        .map(str::to_string)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "invalid_request_error",
                "no_qr_code",
                "this order has no QR code to show (method or status)",
            )
        })
}

fn rendering_failed(e: crate::qr::QrError) -> ApiError {
    ApiError::invalid("pay_action", "qr_not_renderable", e.to_string())
}

pub(super) async fn qr_svg(
    state: web::Data<AppState>,
    auth: Authed,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let svg = crate::qr::svg(&content(&state, &auth, &id)?).map_err(rendering_failed)?;
    Ok(HttpResponse::Ok().content_type("image/svg+xml").body(svg))
}

pub(super) async fn qr_png(
    state: web::Data<AppState>,
    auth: Authed,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let png = crate::qr::png(&content(&state, &auth, &id)?).map_err(rendering_failed)?;
    Ok(HttpResponse::Ok().content_type("image/png").body(png))
}
