//! The pages a payer meets: Stripe's hosted page per payment (`next_action` URLs and the
//! Checkout Session `url`) with Pay and Decline, a 3-D-Secure-style authentication step for
//! cards, and the QR images of `*_display_qr_code`.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value;

use super::{field, StripeSimulator};
use crate::simulator::SimError;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn html(status: StatusCode, title: &str, body: &str) -> HttpResponse {
    HttpResponse::build(status).content_type("text/html; charset=utf-8").body(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title></head>\
         <body style=\"font-family:sans-serif;max-width:32em;margin:2em auto\"><h1>{t}</h1>{body}</body></html>",
        t = esc(title)
    ))
}

fn button(action: &str, label: &str) -> String {
    format!(
        "<form method=\"post\" action=\"{}\"><button type=\"submit\">{}</button></form>",
        esc(action),
        esc(label)
    )
}

fn qr_svg(data: &str) -> Option<String> {
    let code = qrcode::QrCode::new(data.as_bytes()).ok()?;
    Some(
        code.render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(200, 200)
            .build(),
    )
}

fn qr_png(data: &str) -> Option<Vec<u8>> {
    let code = qrcode::QrCode::new(data.as_bytes()).ok()?;
    let (n, scale, quiet) = (code.width(), 6usize, 4usize);
    let side = (n + 2 * quiet) * scale;
    let mut px = vec![255u8; side * side];
    for (i, c) in code.to_colors().iter().enumerate() {
        if *c == qrcode::Color::Dark {
            let (x, y) = ((i % n + quiet) * scale, (i / n + quiet) * scale);
            for row in y..y + scale {
                px[row * side + x..row * side + x + scale].fill(0);
            }
        }
    }
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, side as u32, side as u32);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header().ok()?.write_image_data(&px).ok()?;
    Some(out)
}

/// The QR content of a PaymentIntent's `next_action`, if it shows one.
fn qr_data(pi: &Value) -> Option<String> {
    let na = pi.get("next_action")?;
    let kind = field(na, "type")?;
    na.get(kind)
        .and_then(|d| field(d, "data"))
        .map(str::to_string)
}

impl StripeSimulator {
    fn hosted(&self, id: &str) -> HttpResponse {
        let Some(obj) = self.get(id) else {
            return html(
                StatusCode::NOT_FOUND,
                "Not found",
                "<p>No such payment.</p>",
            );
        };
        let base = format!("{}/hosted/{}", self.base(), esc(id));
        let amount = obj
            .get("amount_total")
            .or_else(|| obj.get("amount"))
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let currency = field(&obj, "currency").unwrap_or_default().to_uppercase();
        let kind = obj
            .get("payment_method_types")
            .and_then(|t| t.get(0))
            .and_then(Value::as_str)
            .unwrap_or("card")
            .to_string();
        let status = field(&obj, "status").unwrap_or_default();
        let payable = matches!(status, "open" | "requires_action");
        let mut body = format!(
            "<p>Amount: <b id=\"amount\">{amount}</b> {} (smallest unit)</p><p>Method: <code id=\"method\">{}</code></p>\
             <p>Status: <b id=\"status\">{}</b></p>",
            esc(&currency),
            esc(&kind),
            esc(status)
        );
        if let Some(data) = qr_data(&obj) {
            body += &format!(
                "<div>{}</div><p><code id=\"qr_data\">{}</code></p>",
                qr_svg(&data).unwrap_or_default(),
                esc(&data)
            );
        }
        if payable {
            body += &button(&format!("{base}/pay"), "Pay");
            if kind == "card" {
                body += &format!(
                    "<p><a href=\"{base}/3ds\">Pay with a card that needs 3-D Secure</a></p>"
                );
            }
            body += &button(&format!("{base}/decline"), "Decline");
        }
        html(StatusCode::OK, "Stripe sandbox checkout", &body)
    }

    fn three_d_secure(&self, id: &str) -> HttpResponse {
        let base = format!("{}/hosted/{}", self.base(), esc(id));
        html(
            StatusCode::OK,
            "3-D Secure authentication (sandbox)",
            &format!(
                "<p>Your bank asks you to confirm this payment.</p>{}{}",
                button(&format!("{base}/pay"), "Complete authentication"),
                button(
                    &format!("{base}/decline?code=payment_intent_authentication_failure"),
                    "Fail authentication"
                ),
            ),
        )
    }

    /// Where the payer's browser goes after the page: the session's success or cancel
    /// URL, or the PaymentIntent's `return_url`.
    fn back_to_shop(&self, id: &str, paid: bool) -> HttpResponse {
        let obj = self.get(id).unwrap_or(Value::Null);
        let url = if id.starts_with("cs_") {
            field(&obj, if paid { "success_url" } else { "cancel_url" }).map(str::to_string)
        } else {
            None
        };
        match url {
            Some(u) => HttpResponse::SeeOther()
                .insert_header(("Location", u))
                .finish(),
            None => html(
                StatusCode::OK,
                if paid { "Paid" } else { "Declined" },
                "<p>You can close this page.</p>",
            ),
        }
    }

    async fn submit(self: Arc<Self>, id: String, pay: bool, code: Option<String>) -> HttpResponse {
        let done = {
            let _g = self.lock.lock();
            if pay {
                self.settle_payment(&id, None).map(|(_, _, ev)| ev)
            } else {
                self.decline(
                    &id,
                    code.as_deref().unwrap_or("payment_method_provider_decline"),
                )
            }
        };
        match done {
            // The browser is sent back once the endpoint has had the first attempt at
            // each event, so the shop's return page finds the outcome already known.
            Ok(events) => {
                for ev in events {
                    match self.send_event(&ev).await {
                        Ok((status, _)) if (200..300).contains(&status) => {}
                        _ => self.retry_later(ev),
                    }
                }
                self.back_to_shop(&id, pay)
            }
            Err(SimError::UnknownTrade) => html(
                StatusCode::NOT_FOUND,
                "Not found",
                "<p>No such payment.</p>",
            ),
            Err(e) => html(
                StatusCode::CONFLICT,
                "Cannot pay",
                &format!("<p>{}</p>", esc(&e.to_string())),
            ),
        }
    }

    fn qr_image(&self, file: &str) -> HttpResponse {
        let (id, ext) = file.rsplit_once('.').unwrap_or((file, ""));
        let Some(data) = self.get(id).and_then(|pi| qr_data(&pi)) else {
            return HttpResponse::NotFound().finish();
        };
        match ext {
            "svg" => {
                qr_svg(&data).map(|s| HttpResponse::Ok().content_type("image/svg+xml").body(s))
            }
            "png" => qr_png(&data).map(|p| HttpResponse::Ok().content_type("image/png").body(p)),
            _ => None,
        }
        .unwrap_or_else(|| HttpResponse::NotFound().finish())
    }
}

pub(super) fn routes(sim: Arc<StripeSimulator>, cfg: &mut web::ServiceConfig) {
    let s = sim.clone();
    cfg.route(
        "/hosted/{id}",
        web::get().to(move |req: HttpRequest| {
            let s = s.clone();
            async move { s.hosted(req.match_info().get("id").unwrap_or_default()) }
        }),
    );
    let s = sim.clone();
    cfg.route(
        "/hosted/{id}/3ds",
        web::get().to(move |req: HttpRequest| {
            let s = s.clone();
            async move { s.three_d_secure(req.match_info().get("id").unwrap_or_default()) }
        }),
    );
    for (action, pay) in [("pay", true), ("decline", false)] {
        let s = sim.clone();
        cfg.route(
            &format!("/hosted/{{id}}/{action}"),
            web::post().to(move |req: HttpRequest| {
                let s = s.clone();
                let id = req.match_info().get("id").unwrap_or_default().to_string();
                let code = url::form_urlencoded::parse(req.query_string().as_bytes())
                    .find(|(k, _)| k == "code")
                    .map(|(_, v)| v.into_owned());
                async move { s.submit(id, pay, code).await }
            }),
        );
    }
    let s = sim;
    cfg.route(
        "/qr/{file}",
        web::get().to(move |req: HttpRequest| {
            let s = s.clone();
            async move { s.qr_image(req.match_info().get("file").unwrap_or_default()) }
        }),
    );
}
