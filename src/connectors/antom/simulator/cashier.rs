//! The cashier page a payer meets at `normalUrl` / `applinkUrl`: the wallet, the amount
//! and three buttons: pay, decline (the wallet refuses), leave pending (the payer
//! confirmed, the wallet has not settled: `PAYMENT_PENDING`). The same actions are
//! reachable as `POST {mount}/cashier/{paymentId}/{pay|decline|pending}` for tests.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::{AntomSimulator, Payment};
use crate::domain::Money;
use crate::simulator::PayOptions;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn page(status: StatusCode, title: &str, body: &str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title></head>\
             <body style=\"font-family:sans-serif;max-width:32em;margin:2em auto\">\
             <h1>{t}</h1>{body}<p><small>paygate Antom simulator: no real money moves</small></p></body></html>",
            t = esc(title)
        ))
}

pub(super) fn routes(sim: Arc<AntomSimulator>, cfg: &mut web::ServiceConfig) {
    let s = sim.clone();
    cfg.route(
        "/cashier/{payment_id}",
        web::get().to(move |req: HttpRequest| {
            let s = s.clone();
            async move {
                let id = req.match_info().get("payment_id").unwrap_or_default();
                s.cashier(id)
            }
        }),
    );
    cfg.route(
        "/cashier/{payment_id}/{action}",
        web::post().to(move |req: HttpRequest| {
            let s = sim.clone();
            async move {
                let id = req.match_info().get("payment_id").unwrap_or_default();
                let action = req.match_info().get("action").unwrap_or_default();
                s.cashier_action(id, action).await
            }
        }),
    );
}

impl AntomSimulator {
    fn by_payment_id(&self, id: &str) -> Result<Payment, Box<HttpResponse>> {
        match self.load_by_payment_id(id) {
            Ok(Some(p)) => Ok(p),
            Ok(None) => Err(Box::new(page(
                StatusCode::NOT_FOUND,
                "Antom",
                "<p>ORDER_NOT_EXIST</p>",
            ))),
            Err(e) => Err(Box::new(page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Antom",
                &esc(&e.to_string()),
            ))),
        }
    }

    fn cashier(&self, id: &str) -> HttpResponse {
        let p = match self.by_payment_id(id) {
            Ok(p) => p,
            Err(r) => return *r,
        };
        let amount = Money::new(p.amount, p.currency)
            .map(|m| m.to_string())
            .unwrap_or_default();
        let actions = if p.payable() {
            ["pay", "decline", "pending"]
                .iter()
                .map(|a| {
                    format!(
                        "<form method=\"post\" action=\"{}/cashier/{}/{a}\"><button id=\"{a}\" type=\"submit\">{a}</button></form>",
                        esc(&self.prefix()),
                        esc(&p.payment_id)
                    )
                })
                .collect::<String>()
        } else {
            format!(
                "<p>payment status: <b id=\"status\">{}</b></p>",
                esc(&p.status)
            )
        };
        page(
            StatusCode::OK,
            &format!("{} (Antom)", p.method_type),
            &format!("<p>Pay <b id=\"amount\">{}</b></p>{actions}", esc(&amount)),
        )
    }

    async fn cashier_action(&self, id: &str, action: &str) -> HttpResponse {
        let status = match action {
            "pay" => "SUCCESS",
            "decline" => "FAIL",
            "pending" => "PENDING",
            _ => return page(StatusCode::NOT_FOUND, "Antom", "<p>unknown action</p>"),
        };
        let p = match self.by_payment_id(id) {
            Ok(p) => p,
            Err(r) => return *r,
        };
        match self
            .settle(&p.payment_request_id, status, PayOptions::default())
            .await
        {
            Ok(out) => page(
                StatusCode::OK,
                "Antom",
                &format!(
                    "<p>payment <b id=\"status\">{status}</b>; merchant answered {}</p><p><a href=\"{}\">back to the shop</a></p>",
                    out.callback_status.map_or("nothing".into(), |s| s.to_string()),
                    esc(&p.redirect_url)
                ),
            ),
            Err(e) => page(StatusCode::CONFLICT, "Antom", &esc(&e.to_string())),
        }
    }
}
