//! Logging setup and the Prometheus metrics every module reports to.

pub mod metrics;

use tracing_subscriber::{fmt, prelude::*, EnvFilter};

use crate::config::LogConfig;

/// Installs the global subscriber (once; later calls are ignored, which tests rely on).
/// JSON lines carry the innermost span (`span`) and the whole scope (`spans`, outermost
/// first), so a line logged deep inside order work still carries the request's
/// `request_id` from the `request` span at the root of its scope.
pub fn init(cfg: &LogConfig) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&cfg.level));
    let registry = tracing_subscriber::registry().with(filter);
    let _ = if cfg.format == "json" {
        registry
            .with(
                fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(true),
            )
            .try_init()
    } else {
        registry.with(fmt::layer().compact()).try_init()
    };
}

/// Counts every request by route pattern and status (`paygate_http_requests_total`,
/// `paygate_http_request_seconds`), and gives every request an id (the caller's `X-Request-Id` if sane, else a new one), runs
/// the request inside a span carrying it, and returns it in the `X-Request-Id` header.
pub async fn request_id(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    use actix_web::http::header::{HeaderName, HeaderValue};
    use tracing::Instrument;
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_string)
        .unwrap_or_else(|| format!("req_{:016x}", rand::random::<u64>()));
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.path());
    let started = std::time::Instant::now();
    let mut res = next.call(req).instrument(span.clone()).await?;
    let status = res.status().as_u16();
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_string());
    let method = res.request().method().as_str().to_string();
    metrics::HTTP_REQUESTS
        .with_label_values(&[&method, &route, &status.to_string()])
        .inc();
    metrics::HTTP_REQUEST_SECONDS
        .with_label_values(&[&method, &route])
        .observe(started.elapsed().as_secs_f64());
    span.in_scope(|| {
        tracing::debug!(
            status,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "request finished"
        )
    });
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut()
            .insert(HeaderName::from_static("x-request-id"), v);
    }
    Ok(res)
}
