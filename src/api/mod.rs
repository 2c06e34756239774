//! The REST facade (docs/design.md §5): thin handlers that parse, authorise, send a message to an
//! order actor and map the reply. One route group per file.

mod admin;
mod admission;
mod auth;
mod callbacks;
mod channels;
mod error;
mod events;
mod health;
mod idempotency;
mod orders;
mod qr;
mod refunds;
mod sandbox;

pub use admission::{admission, Admission};
pub use auth::{Admin, Authed, Merchant, Merchants};
pub use error::ApiError;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;

use crate::actors::Engine;
use crate::config::Config;
use crate::domain::ChannelName;
use crate::risk::RiskEngine;
use crate::simulator::faults::Mounted;

/// Shared by every handler.
pub struct AppState {
    pub engine: Engine,
    pub merchants: Merchants,
    pub config: Arc<Config>,
    pub simulators: HashMap<ChannelName, Mounted>,
    pub notifier: actix::Addr<crate::actors::notifier::NotifierActor>,
    pub risk: Arc<RiskEngine>,
    /// One supervisor per configured channel; operators read channels through them.
    pub channel_actors: Vec<actix::Addr<crate::actors::ChannelActor>>,
    /// The bound on merchant API requests in flight (`[server] max_in_flight`).
    pub admission: Arc<Admission>,
}

/// Mounts every route.
pub fn routes(cfg: &mut web::ServiceConfig, simulators: &HashMap<ChannelName, Mounted>) {
    health::routes(cfg);
    // Before the `/v1` scope of orders, which would otherwise claim every `/v1/...` path.
    events::routes(cfg);
    // Before `orders`: its `/v1` scope would otherwise swallow `/v1/stats`.
    admin::routes(cfg);
    channels::routes(cfg);
    orders::routes(cfg);
    callbacks::routes(cfg);
    if !simulators.is_empty() {
        sandbox::routes(cfg, simulators);
    }
    cfg.default_service(web::to(|| async {
        Err::<HttpResponse, _>(ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "route_not_found",
            "no such route",
        ))
    }));
}

/// Reads a request body up to `limit` bytes (413 beyond), requiring JSON when a content
/// type is given.
pub(crate) async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
    require_json: bool,
) -> Result<web::Bytes, ApiError> {
    if require_json {
        if let Some(ct) = req.headers().get(actix_web::http::header::CONTENT_TYPE) {
            let ct = ct.to_str().unwrap_or("");
            if !ct.starts_with("application/json") {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "invalid_request_error",
                    "unsupported_media_type",
                    "request bodies must be application/json",
                ));
            }
        }
    }
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            "body_too_large",
            format!("request body exceeds {limit} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "bad_body",
                e.to_string(),
            )
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Parses JSON into `T`, answering 400 with serde's explanation (unknown field, wrong type,
/// missing field, malformed JSON).
/// Parses a JSON body into `T`, answering 400 with what is wrong and where: `invalid_json`
/// for a syntax error, `unknown_field` / `missing_field` / `invalid_field` (a wrong type or
/// value) with `param` naming the field by its path (`payer.ip`).
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed: Result<T, _> = serde_path_to_error::deserialize(&mut de);
    let value = parsed.map_err(|e| {
        let path = e.path().to_string();
        let inner = e.inner();
        let message = format!("invalid request body: {inner}");
        let err = |code| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                code,
                message.clone(),
            )
        };
        if inner.is_syntax() || inner.is_eof() {
            return err("invalid_json");
        }
        let text = inner.to_string();
        // serde names the offending field between backticks.
        let named = text.split('`').nth(1).unwrap_or_default();
        let join = |parent: &str, field: &str| {
            if parent == "." || parent.is_empty() {
                field.to_string()
            } else {
                format!("{parent}.{field}")
            }
        };
        if text.starts_with("unknown field") {
            // The path already ends with the unknown field.
            err("unknown_field").param(path)
        } else if text.starts_with("missing field") {
            err("missing_field").param(join(&path, named))
        } else if path == "." {
            err("invalid_field")
        } else {
            err("invalid_field").param(path)
        }
    })?;
    // Trailing characters after the value are a malformed body too.
    de.end().map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "invalid_json",
            format!("invalid request body: {e}"),
        )
    })?;
    Ok(value)
}

pub(crate) fn json_response<T: serde::Serialize>(status: StatusCode, v: &T) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/json")
        .body(serde_json::to_vec(v).unwrap_or_default())
}
