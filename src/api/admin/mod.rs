//! `/admin`: the operator's view (admin token only; merchant keys are refused). Live actors,
//! channel health, one order's actor state and history, anomalies with acknowledgement,
//! statistics, risk rules, and a small read-only HTML console over the same JSON.

mod console;
mod orders;
mod stats;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Serialize;

use super::{json_response, Admin, ApiError, AppState};
use crate::actors::{ChannelHealth, ChannelReport, ChildView, EngineError, GetChannelStats};
use crate::telemetry::metrics;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/stats", web::get().to(stats::merchant_stats));
    cfg.service(
        web::scope("/admin")
            .route("/console", web::get().to(console::page))
            .route("/actors", web::get().to(actors))
            .route("/channels", web::get().to(channels))
            .route("/stats", web::get().to(stats::admin_stats))
            .route("/risk", web::get().to(risk_rules))
            .route("/risk/reload", web::post().to(risk_reload))
            .route("/orders", web::get().to(orders::recent))
            .route("/orders/{id}", web::get().to(orders::detail))
            .route("/anomalies", web::get().to(orders::anomalies))
            .route("/anomalies/{id}/ack", web::post().to(orders::ack))
            .route(
                "/anomalies/{order_id}/{index}/ack",
                web::post().to(orders::ack_indexed),
            ),
    );
}

/// One channel actor and its children: the supervision tree, one level per channel.
#[derive(Serialize)]
struct ChannelActors {
    channel: String,
    live_actors: u64,
    passivations: u64,
    /// Order actors restarted by this channel after a command panicked.
    restarts: u64,
    /// Times this channel actor itself was restarted.
    channel_actor_restarts: u64,
    /// Live order actors, the most recently active first, at most `limit`.
    orders: Vec<ChildView>,
}

#[derive(Serialize)]
struct ActorsView {
    live_actors: usize,
    /// Commands queued in or running on order actors (the mailbox backlog).
    mailbox_backlog: u64,
    idle_timeout_secs: u64,
    channels: Vec<ChannelActors>,
}

#[derive(serde::Deserialize)]
struct ActorsQuery {
    limit: Option<usize>,
}

/// Live orders listed per channel unless `limit` says otherwise (a busy channel has
/// hundreds of thousands; the counts are always whole).
const ORDERS_SHOWN: usize = 100;
const ORDERS_SHOWN_MAX: usize = 1000;

/// Every channel's report, asked of its channel actor, with up to `children` of its live
/// order actors.
async fn channel_reports(
    state: &AppState,
    children: usize,
) -> Result<Vec<ChannelReport>, ApiError> {
    let mut v = Vec::with_capacity(state.channel_actors.len());
    for a in &state.channel_actors {
        let r = a.send(GetChannelStats { children }).await.map_err(|_| {
            ApiError::from(EngineError::Unavailable(
                "a channel actor is not running; retry".into(),
            ))
        })?;
        v.push(r);
    }
    v.sort_by(|a, b| a.stats.channel.cmp(&b.stats.channel));
    Ok(v)
}

async fn actors(
    state: web::Data<AppState>,
    _: Admin,
    q: web::Query<ActorsQuery>,
) -> Result<HttpResponse, ApiError> {
    let e = &state.engine;
    let limit = q.limit.unwrap_or(ORDERS_SHOWN).min(ORDERS_SHOWN_MAX);
    Ok(json_response(
        StatusCode::OK,
        &ActorsView {
            live_actors: e.registry.live(),
            mailbox_backlog: e.registry.inflight(),
            idle_timeout_secs: e.deps.actors.idle_timeout_secs,
            channels: channel_reports(&state, limit)
                .await?
                .into_iter()
                .map(|r| ChannelActors {
                    channel: r.stats.channel,
                    live_actors: r.stats.live_actors,
                    passivations: r.stats.passivations,
                    restarts: r.stats.restarts,
                    channel_actor_restarts: r.stats.channel_actor_restarts,
                    orders: r.children,
                })
                .collect(),
        },
    ))
}

#[derive(Serialize)]
struct ChannelView {
    #[serde(flatten)]
    stats: crate::actors::ChannelStats,
    #[serde(flatten)]
    health: ChannelHealth,
}

async fn channels(state: web::Data<AppState>, _: Admin) -> Result<HttpResponse, ApiError> {
    let data: Vec<ChannelView> = channel_reports(&state, 0)
        .await?
        .into_iter()
        .map(|r| ChannelView {
            stats: r.stats,
            health: r.health,
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "data": data }),
    ))
}

async fn risk_rules(state: web::Data<AppState>, _: Admin) -> HttpResponse {
    json_response(
        StatusCode::OK,
        &serde_json::json!({
            "rules_file": state.risk.path().map(|p| p.display().to_string()),
            "rules": state.risk.rules(),
        }),
    )
}

/// Re-reads the rules file; an invalid one is refused (400, with the reason) and the
/// rules in force stay.
async fn risk_reload(state: web::Data<AppState>, _: Admin) -> Result<HttpResponse, ApiError> {
    match state.risk.reload() {
        Ok(()) => {
            metrics::RISK_RELOADS.with_label_values(&["ok"]).inc();
            Ok(json_response(
                StatusCode::OK,
                &serde_json::json!({ "status": "reloaded" }),
            ))
        }
        Err(e) => {
            metrics::RISK_RELOADS.with_label_values(&["refused"]).inc();
            tracing::warn!(error = %e, "risk rules reload refused; the old rules stay");
            Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_risk_rules",
                format!("{e}; the rules in force are unchanged"),
            ))
        }
    }
}
