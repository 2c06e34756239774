//! Sandbox routes (only when `[sandbox]` is enabled): each channel's simulator under
//! `/sandbox/{channel}` behind the fault layer (`POST /sandbox/{channel}/faults`), and `POST /sandbox/pay/{order_id}`, which makes the simulated
//! provider of the order's channel pay it and send its real callback.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use std::collections::HashMap;

use super::{json_response, parse_json, read_body, ApiError, AppState};
use crate::domain::{ChannelName, OrderId};
use crate::simulator::faults::Mounted;
use crate::simulator::{PayOptions, SimError};

pub fn routes(cfg: &mut web::ServiceConfig, simulators: &HashMap<ChannelName, Mounted>) {
    cfg.route("/sandbox/pay/{order_id}", web::post().to(pay));
    for (name, sim) in simulators {
        crate::simulator::faults::mount(cfg, name.as_str(), sim);
    }
}

async fn pay(
    state: web::Data<AppState>,
    req: HttpRequest,
    order_id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(&req, payload, 4096, true).await?;
    let opts: PayOptions = if body.is_empty() {
        PayOptions::default()
    } else {
        parse_json(&body)?
    };
    let id = OrderId::parse(&order_id).map_err(|_| ApiError::not_found("order"))?;
    let order = state
        .engine
        .deps
        .store
        .get_order(&id)?
        .ok_or_else(|| ApiError::not_found("order"))?;
    let sim = state.simulators.get(&order.spec.channel).ok_or_else(|| {
        ApiError::invalid(
            "order_id",
            "no_simulator",
            "this order's channel has no simulator",
        )
    })?;
    match sim.sim.pay(&order, opts).await {
        Ok(outcome) => Ok(json_response(StatusCode::OK, &outcome)),
        Err(SimError::UnknownTrade) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "unknown_trade",
            SimError::UnknownTrade.to_string(),
        )),
        Err(e @ SimError::NotPayable(_)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "invalid_request_error",
            "not_payable",
            e.to_string(),
        )),
        Err(e) => {
            tracing::error!(error = %e, "simulator failed");
            Err(ApiError::internal())
        }
    }
}
