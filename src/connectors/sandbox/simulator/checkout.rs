//! The payer's side: `GET checkout/{trade_no}` shows the trade and a Pay button, whose
//! `POST checkout/{trade_no}/pay` pays exactly like `POST /sandbox/pay/{order_id}` and shows
//! what the gateway answered to the callback. Everything echoed is HTML-escaped: subjects
//! and gateway answers come from outside.

use actix_web::{web, HttpRequest, HttpResponse};
use std::sync::Arc;

use super::state::{is_trade_no, Trade, TradeStatus};
use super::{sign, PayOptions, SandboxSimulator};
use crate::domain::{Currency, Money};

pub fn routes(sim: Arc<SandboxSimulator>, cfg: &mut web::ServiceConfig) {
    let s = sim.clone();
    cfg.route(
        "/checkout/{trade_no}",
        web::get().to(move |req: HttpRequest| {
            let s = s.clone();
            async move { s.checkout_page(req.match_info().get("trade_no").unwrap_or_default()) }
        }),
    );
    cfg.route(
        "/checkout/{trade_no}/pay",
        web::post().to(move |req: HttpRequest| {
            let s = sim.clone();
            async move {
                s.checkout_pay(req.match_info().get("trade_no").unwrap_or_default())
                    .await
            }
        }),
    );
}

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn display_amount(minor: i64, currency: &str) -> String {
    match currency.parse::<Currency>().map(|c| Money::new(minor, c)) {
        Ok(Ok(m)) => m.to_string(),
        _ => format!("{minor} {currency} (minor units)"),
    }
}

fn page(status: u16, title: &str, body_html: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap_or_default())
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(format!(
            "<!doctype html><html><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width\">\
             <title>{}</title></head><body style=\"font-family:sans-serif;max-width:32em;margin:2em auto\">\
             <h1>{}</h1>{body_html}<p><small>paygate sandbox provider — no real money moves.</small></p>\
             </body></html>",
            escape(title),
            escape(title)
        ))
}

impl SandboxSimulator {
    /// The trade behind a checkout link, or the page to show instead.
    fn find_by_no(&self, trade_no: &str) -> Result<Trade, Box<HttpResponse>> {
        let found = if is_trade_no(trade_no) {
            self.books
                .trade_by_no(trade_no, sign::now_secs())
                .map_err(|e| {
                    page(
                        500,
                        "Sandbox checkout",
                        &format!("<p>{}</p>", escape(&e.message)),
                    )
                })?
        } else {
            None
        };
        found.ok_or_else(|| {
            Box::new(page(
                404,
                "Unknown trade",
                "<p>This sandbox trade does not exist.</p>",
            ))
        })
    }

    fn checkout_page(&self, trade_no: &str) -> HttpResponse {
        let t = match self.find_by_no(trade_no) {
            Err(resp) => return *resp,
            Ok(t) => t,
        };
        let mut html = format!(
            "<p><b>{}</b></p><p style=\"font-size:1.6em\">{}</p><p>Trade {} · status {}</p>",
            escape(&t.subject),
            escape(&display_amount(t.amount, &t.currency)),
            escape(&t.trade_no),
            t.status.as_str()
        );
        if t.status == TradeStatus::Pending {
            html.push_str(&format!(
                "<form method=\"post\" action=\"{}/pay\"><button type=\"submit\" \
                 style=\"font-size:1.3em;padding:.4em 2em\">Pay</button></form>",
                escape(&t.trade_no)
            ));
        }
        page(200, "Sandbox checkout", &html)
    }

    async fn checkout_pay(&self, trade_no: &str) -> HttpResponse {
        let t = match self.find_by_no(trade_no) {
            Err(resp) => return *resp,
            Ok(t) => t,
        };
        match self.pay_trade(&t.out_trade_no, PayOptions::default()).await {
            Ok(out) => {
                let mut html = format!(
                    "<p>Paid {} for <b>{}</b>.</p><p>The gateway answered the callback with \
                     HTTP {}:</p><pre>{}</pre>",
                    escape(&display_amount(out.amount, &t.currency)),
                    escape(&t.subject),
                    out.callback_status
                        .map_or("-".to_string(), |s| s.to_string()),
                    escape(out.callback_body.as_deref().unwrap_or(""))
                );
                if let Some(u) = t.return_url.as_deref().filter(|u| u.starts_with("http")) {
                    html.push_str(&format!(
                        "<p><a href=\"{}\">Return to the merchant</a></p>",
                        escape(u)
                    ));
                }
                page(200, "Payment done", &html)
            }
            Err(e) => page(
                409,
                "Payment not possible",
                &format!("<p>{}</p>", escape(&e.to_string())),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape(r#"<script>alert("x&y")</script>'"#),
            "&lt;script&gt;alert(&quot;x&amp;y&quot;)&lt;/script&gt;&#39;"
        );
    }

    #[test]
    fn amounts_show_as_decimals() {
        assert_eq!(display_amount(1234, "CNY"), "12.34 CNY");
        assert_eq!(display_amount(500, "JPY"), "500 JPY");
    }
}
