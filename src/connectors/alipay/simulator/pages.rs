//! The cashier (收银台) pages a payer sees: for QR codes, wap and page payments.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::HttpResponse;

use super::protocol::{form_encode, string_to_sign, NOTIFY_UNSIGNED};
use super::{html, AlipaySimulator, PayOutcome, SimError, Trade};
use crate::protocol_primitives::beijing_time::{format_gmt8, now_millis as now_ms};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title></head>\
         <body style=\"font-family:sans-serif;max-width:32em;margin:2em auto\">\
         <h1>{t}</h1>{body}<p><small>paygate Alipay simulator — no real money moves</small></p></body></html>",
        t = esc(title)
    )
}

pub(super) fn error_page(code: &str, sub_code: &str, msg: &str) -> String {
    page(
        "支付宝 — 错误",
        &format!(
            "<p>code: {}</p><p>sub_code: <b id=\"sub_code\">{}</b></p><p>{}</p>",
            esc(code),
            esc(sub_code),
            esc(msg)
        ),
    )
}

impl AlipaySimulator {
    pub(super) fn cashier_page(&self, out_trade_no: &str) -> HttpResponse {
        let t = match self.load(out_trade_no) {
            Ok(Some(t)) => t,
            Ok(None) => {
                return html(
                    StatusCode::NOT_FOUND,
                    error_page("40004", "ACQ.TRADE_NOT_EXIST", "交易不存在"),
                )
            }
            Err(e) => {
                return html(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    error_page("20000", "isp.unknow-error", &e.to_string()),
                )
            }
        };
        let action = if t.status == "WAIT_BUYER_PAY" {
            format!(
                "<form method=\"post\" action=\"{}/checkout/{}/pay\"><button type=\"submit\">确认付款 Pay {}</button></form>",
                esc(&self.prefix()),
                esc(&t.out_trade_no),
                esc(&t.yuan(t.total_minor))
            )
        } else {
            String::new()
        };
        html(
            StatusCode::OK,
            page(
                "支付宝收银台 (sandbox)",
                &format!(
                    "<p>{}</p><p>¥ <b id=\"amount\">{}</b></p><p>out_trade_no: <code id=\"out_trade_no\">{}</code></p>\
                     <p>status: <b id=\"status\">{}</b></p>{action}",
                    esc(&t.subject),
                    esc(&t.yuan(t.total_minor)),
                    esc(&t.out_trade_no),
                    esc(&t.status),
                ),
            ),
        )
    }

    pub(super) fn paid_page(
        &self,
        out_trade_no: &str,
        outcome: Result<PayOutcome, SimError>,
    ) -> HttpResponse {
        match outcome {
            Ok(o) => {
                let back = self
                    .load(out_trade_no)
                    .ok()
                    .flatten()
                    .and_then(|t| self.return_link(&t))
                    .map(|url| {
                        format!(
                            "<p><a id=\"return\" href=\"{}\">返回商户 Return to merchant</a></p>",
                            esc(&url)
                        )
                    })
                    .unwrap_or_default();
                html(
                    StatusCode::OK,
                    page(
                        "支付成功 Paid",
                        &format!(
                            "<p>trade_no: <code>{}</code></p><p>notification answered: {:?} {}</p>{back}",
                            esc(&o.provider_transaction_id),
                            o.callback_status,
                            esc(o.callback_body.as_deref().unwrap_or(""))
                        ),
                    ),
                )
            }
            Err(e) => html(
                StatusCode::CONFLICT,
                error_page("40004", "ACQ.TRADE_STATUS_ERROR", &e.to_string()),
            ),
        }
    }

    /// The signed synchronous return (`<method>.return`, Alipay's published return example AL-3) for page/wap.
    fn return_link(&self, t: &Trade) -> Option<String> {
        let url = t.return_url.as_ref()?;
        let mut p: BTreeMap<String, String> = [
            ("app_id", self.app_id.clone()),
            ("auth_app_id", self.app_id.clone()),
            ("charset", "utf-8".to_string()),
            ("method", format!("{}.return", t.api_method)),
            ("out_trade_no", t.out_trade_no.clone()),
            ("seller_id", self.seller_id.clone()),
            ("timestamp", format_gmt8(now_ms())),
            ("total_amount", t.yuan(t.total_minor)),
            ("trade_no", t.trade_no.clone()),
            ("version", "1.0".to_string()),
            ("sign_type", "RSA2".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let sign = self
            .alipay
            .sign(string_to_sign(&p, NOTIFY_UNSIGNED).as_bytes());
        p.insert("sign".into(), sign);
        let sep = if url.contains('?') { '&' } else { '?' };
        Some(format!("{url}{sep}{}", form_encode(&p)))
    }
}
