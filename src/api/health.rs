//! Liveness, readiness, Prometheus metrics and the merchant API's OpenAPI document.

use actix_web::{web, HttpResponse};

use super::AppState;
use crate::telemetry::metrics;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(prometheus))
        .route("/openapi.json", web::get().to(openapi));
}

/// The merchant API's OpenAPI 3.0.3 document (`docs/openapi.json`, kept true by
/// `tests/openapi.rs`), served as is and without authentication.
const OPENAPI: &str = include_str!("../../docs/openapi.json");

async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(OPENAPI)
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(r#"{"status":"ok"}"#)
}

/// Ready when storage answers reads and its writer is running.
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let store = &state.engine.deps.store;
    if !store.writable() {
        return HttpResponse::ServiceUnavailable()
            .content_type("application/json")
            .body(r#"{"status":"unavailable","reason":"storage_writer"}"#);
    }
    match store.next_timer() {
        Ok(_) => HttpResponse::Ok()
            .content_type("application/json")
            .body(r#"{"status":"ready"}"#),
        Err(e) => {
            tracing::error!(error = %e, "readiness check failed");
            HttpResponse::ServiceUnavailable()
                .content_type("application/json")
                .body(r#"{"status":"unavailable","reason":"storage"}"#)
        }
    }
}

async fn prometheus() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(metrics::render())
}
