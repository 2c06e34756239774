//! The simulated WeChat cashier a payer lands on: the H5 `h5_url` points here
//! (`/checkout?prepay_id=…`), and `?out_trade_no=…` shows any trade (with its QR code for
//! Native). "Pay" calls the sandbox payer route, which runs [`Simulator::pay`].

use actix_web::{HttpRequest, HttpResponse};

use crate::domain::OrderId;

use super::WechatPaySimulator;

/// The code_url as an SVG QR code (error correction M), as WeChat's cashier shows it.
fn code_url_svg(code_url: &str) -> Option<String> {
    crate::qr::svg(code_url).ok()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

impl WechatPaySimulator {
    pub(super) fn checkout_page(&self, req: &HttpRequest) -> HttpResponse {
        let q = req.query_string();
        let param = |n: &str| {
            url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.into_owned())
        };
        let otn = match (param("prepay_id"), param("out_trade_no")) {
            (Some(p), _) => self
                .env
                .state
                .get::<String>(&format!("prepay/{p}"))
                .ok()
                .flatten(),
            (None, Some(o)) => Some(o),
            _ => None,
        };
        let trade = otn
            .as_deref()
            .and_then(|o| self.load_trade(o).ok().flatten());
        let Some(trade) = trade else {
            return HttpResponse::NotFound()
                .content_type("text/plain; charset=utf-8")
                .body("订单不存在 (no such trade)");
        };
        let order_id = OrderId::from_provider_ref(&trade.req.out_trade_no)
            .map(|o| o.to_string())
            .unwrap_or_default();
        let redirect =
            param("redirect_url").filter(|u| u.starts_with("http://") || u.starts_with("https://"));
        let qr = trade
            .code_url
            .as_deref()
            .and_then(code_url_svg)
            .unwrap_or_default();
        let total = trade.req.amount.total;
        let html = format!(
            r#"<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>微信支付 (sandbox)</title></head><body style="font-family:sans-serif;max-width:420px;margin:2em auto;text-align:center">
<h2>微信支付 · sandbox</h2><p>{desc}</p><p style="font-size:2em">¥{yuan}.{fen:02}</p>
<p>trade state: <b id="state">{state}</b></p><div>{qr}</div>
<button id="pay" style="font-size:1.2em;padding:.5em 2em">Pay</button>
<script>
document.getElementById('pay').onclick = async () => {{
  const r = await fetch({pay_url}, {{method: 'POST', headers: {{'content-type': 'application/json'}}, body: '{{}}'}});
  document.getElementById('state').textContent = r.ok ? 'SUCCESS' : ('error ' + r.status);
  const back = {redirect};
  if (r.ok && back) location.href = back;
}};
</script></body></html>"#,
            desc = escape(&trade.req.description),
            yuan = total / 100,
            fen = total % 100,
            state = escape(&trade.state),
            pay_url = serde_json::to_string(&format!(
                "{}/sandbox/pay/{order_id}",
                self.env.public_url.trim_end_matches('/')
            ))
            .unwrap_or_default(),
            redirect = serde_json::to_string(&redirect)
                .unwrap_or_else(|_| "null".into())
                .replace("</", "<\\/"),
        );
        HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .body(html)
    }
}
