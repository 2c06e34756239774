//! What a payer sees: the cashier (收银台) for browser consumes and merchant QR codes.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;

use super::UnionPaySimulator;
use crate::simulator::{PayOutcome, SimError};

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
             <h1>{t}</h1>{body}<p><small>paygate UnionPay simulator — no real money moves</small></p></body></html>",
            t = esc(title)
        ))
}

pub(super) fn error_page(code: &str, why: &str) -> HttpResponse {
    page(
        StatusCode::BAD_REQUEST,
        "银联 — 交易失败",
        &format!(
            "<p>respCode: <b id=\"respCode\">{}</b></p><p>{}</p>",
            esc(code),
            esc(why)
        ),
    )
}

fn fen(a: i64) -> String {
    format!("{}.{:02}", a / 100, a % 100)
}

impl UnionPaySimulator {
    pub(super) fn cashier_page(&self, order_id: &str) -> HttpResponse {
        let t = match self.load(order_id) {
            Ok(Some(t)) => t,
            Ok(None) => return error_page("34", "查无此交易"),
            Err(e) => return error_page("60", &e.to_string()),
        };
        let action = if t.result == "05" {
            format!(
                "<form method=\"post\" action=\"{}/cashier/{}/pay\"><button type=\"submit\">确认付款 Pay ¥{}</button></form>",
                esc(&self.prefix()),
                esc(&t.order_id),
                fen(t.amount)
            )
        } else {
            String::new()
        };
        page(
            StatusCode::OK,
            "银联在线支付 云闪付 (sandbox)",
            &format!(
                "<p>¥ <b id=\"amount\">{}</b></p><p>orderId: <code id=\"orderId\">{}</code></p>\
                 <p>status: <b id=\"status\">{}</b></p>{action}",
                fen(t.amount),
                esc(&t.order_id),
                esc(super::resp_msg(&t.result)),
            ),
        )
    }

    pub(super) fn paid_page(
        &self,
        order_id: &str,
        outcome: Result<PayOutcome, SimError>,
    ) -> HttpResponse {
        match outcome {
            Ok(o) => {
                let back = self
                    .load(order_id)
                    .ok()
                    .flatten()
                    .map(|t| t.front_url)
                    .filter(|u| !u.is_empty())
                    .map(|u| format!("<p><a id=\"frontUrl\" href=\"{}\">返回商户 Back to the merchant</a></p>", esc(&u)))
                    .unwrap_or_default();
                page(
                    StatusCode::OK,
                    "支付成功",
                    &format!(
                        "<p>queryId: <code id=\"queryId\">{}</code></p><p>¥ {}</p>{back}",
                        esc(&o.provider_transaction_id),
                        fen(o.amount)
                    ),
                )
            }
            Err(e) => error_page("60", &e.to_string()),
        }
    }
}
