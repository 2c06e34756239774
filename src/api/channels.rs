//! `GET /v1/channels`: what each configured channel accepts — methods, wallets,
//! currencies, amount limits — so a merchant's checkout offers only buttons that can work.
//! The connectors' own `validate` enforces the same at create.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Serialize;

use super::{json_response, AppState, Authed};

#[derive(Debug, Serialize)]
struct ChannelView {
    channel: String,
    kind: String,
    methods: Vec<&'static str>,
    /// Empty: the channel is one wallet and takes no `wallet`.
    wallets: Vec<&'static str>,
    currencies: Vec<&'static str>,
    min_amount: i64,
    max_amount: i64,
}

#[derive(Debug, Serialize)]
struct ChannelList {
    data: Vec<ChannelView>,
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/channels", web::get().to(list));
}

async fn list(state: web::Data<AppState>, _: Authed) -> HttpResponse {
    let mut data: Vec<ChannelView> = state
        .engine
        .deps
        .channels
        .values()
        .map(|ch| {
            let c = ch.connector.capabilities();
            ChannelView {
                channel: ch.name.to_string(),
                kind: ch.kind.clone(),
                methods: c.methods.iter().map(|m| m.as_str()).collect(),
                wallets: c.wallets,
                currencies: c.currencies.iter().map(|c| c.code()).collect(),
                min_amount: c.min_amount,
                max_amount: c.max_amount,
            }
        })
        .collect();
    data.sort_by(|a, b| a.channel.cmp(&b.channel));
    json_response(StatusCode::OK, &ChannelList { data })
}
