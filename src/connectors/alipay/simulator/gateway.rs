//! `gateway.do`: common-parameter and signature checks, then one handler per method.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};

use super::protocol::{form_decode, response_key, string_to_sign, REQUEST_UNSIGNED};
use super::{html, AlipaySimulator, Trade, TradeRefund, SANDBOX_BUYER};
use crate::domain::{Currency, Money};
use crate::protocol_primitives::beijing_time::{format_gmt8, now_millis as now_ms, parse_gmt8};

/// How far a request `timestamp` may be from the gateway's clock. Alipay rejects stale
/// requests with `isv.invalid-timestamp`; the exact window is not published (assumed 30 min).
const TIMESTAMP_WINDOW_MS: i64 = 30 * 60 * 1000;

const API_METHODS: &[&str] = &[
    "alipay.trade.precreate",
    "alipay.trade.create",
    "alipay.trade.query",
    "alipay.trade.close",
    "alipay.trade.refund",
    "alipay.trade.fastpay.refund.query",
    "alipay.trade.pay",
];
/// Methods the payer's browser or APP brings to the gateway.
const CLIENT_METHODS: &[&str] = &[
    "alipay.trade.page.pay",
    "alipay.trade.wap.pay",
    "alipay.trade.app.pay",
];

/// An Alipay error answer.
pub(super) struct GwError {
    code: &'static str,
    sub_code: &'static str,
    sub_msg: String,
}

fn err(code: &'static str, sub_code: &'static str, sub_msg: impl Into<String>) -> GwError {
    GwError {
        code,
        sub_code,
        sub_msg: sub_msg.into(),
    }
}
fn missing(sub_code: &'static str, what: &str) -> GwError {
    err("40001", sub_code, format!("缺少参数 {what}"))
}
fn invalid(sub_code: &'static str, what: impl Into<String>) -> GwError {
    err("40002", sub_code, what)
}
fn acq(sub_code: &'static str, what: impl Into<String>) -> GwError {
    err("40004", sub_code, what)
}

fn msg_of(code: &str) -> &'static str {
    match code {
        "40001" => "Missing Required Arguments",
        "40002" => "Invalid Arguments",
        "40004" => "Business Failed",
        _ => "Success",
    }
}

impl AlipaySimulator {
    pub(super) fn gateway(&self, req: &HttpRequest, body: &[u8]) -> HttpResponse {
        let params = match collect_params(req, body) {
            Ok(p) => p,
            Err(e) => return self.error_response(e),
        };
        let method = match params.get("method").filter(|m| !m.is_empty()) {
            None => return self.error_response(missing("isv.missing-method", "method")),
            Some(m)
                if API_METHODS.contains(&m.as_str()) || CLIENT_METHODS.contains(&m.as_str()) =>
            {
                m.clone()
            }
            Some(m) => {
                return self
                    .error_response(invalid("isv.invalid-method", format!("不存在的方法名 {m}")))
            }
        };
        let outcome = self
            .check_common(&params)
            .and_then(|biz| self.dispatch(&method, &params, biz));
        if CLIENT_METHODS.contains(&method.as_str()) {
            return match outcome {
                Ok(fields) => {
                    self.cashier_page(fields["out_trade_no"].as_str().unwrap_or_default())
                }
                Err(e) => html(
                    StatusCode::BAD_REQUEST,
                    pages::error_page(e.code, e.sub_code, &e.sub_msg),
                ),
            };
        }
        let content = match outcome {
            // A method may answer another success code itself (`alipay.trade.pay`: 10003,
            // waiting for the buyer).
            Ok(mut fields) => {
                if !fields.contains_key("code") {
                    fields.insert("code".into(), json!("10000"));
                    fields.insert("msg".into(), json!("Success"));
                }
                fields
            }
            Err(e) => error_fields(&e),
        };
        self.signed_json(&response_key(&method), &Value::Object(content))
    }

    /// `{"<key>":<content>,"sign":"..."}`, signed over the exact content text.
    fn signed_json(&self, key: &str, content: &Value) -> HttpResponse {
        let text = content.to_string();
        let sign = self.alipay.sign(text.as_bytes());
        let mut body = format!(r#"{{"{key}":{text},"sign":"{sign}""#);
        if let Some(c) = &self.cert {
            body.push_str(&format!(r#","alipay_cert_sn":"{}""#, c.alipay_cert_sn));
        }
        body.push('}');
        HttpResponse::Ok()
            .content_type("text/html;charset=utf-8") // what the real gateway sends
            .body(body)
    }

    /// Errors before the method is known go out unsigned as `error_response`.
    fn error_response(&self, e: GwError) -> HttpResponse {
        let body = json!({ "error_response": Value::Object(error_fields(&e)) });
        HttpResponse::Ok()
            .content_type("text/html;charset=utf-8")
            .body(body.to_string())
    }

    /// The checks the real gateway makes before any business logic; returns biz_content.
    fn check_common(&self, p: &BTreeMap<String, String>) -> Result<Map<String, Value>, GwError> {
        let get = |k: &str| p.get(k).filter(|v| !v.is_empty());
        let app_id = get("app_id").ok_or_else(|| missing("isv.missing-app-id", "app_id"))?;
        if app_id != &self.app_id {
            return Err(invalid("isv.invalid-app-id", "无效的AppID参数"));
        }
        match get("sign_type").map(String::as_str) {
            None => return Err(missing("isv.missing-signature-type", "sign_type")),
            Some("RSA2") => {}
            Some(_) => return Err(invalid("isv.invalid-signature-type", "无效的签名类型")),
        }
        let sign = get("sign").ok_or_else(|| missing("isv.missing-signature", "sign"))?;
        let ts = get("timestamp").ok_or_else(|| missing("isv.missing-timestamp", "timestamp"))?;
        match parse_gmt8(ts) {
            Some(t) if t.abs_diff(now_ms()) <= TIMESTAMP_WINDOW_MS as u64 => {}
            _ => return Err(invalid("isv.invalid-timestamp", "非法的时间戳参数")),
        }
        match get("version").map(String::as_str) {
            None => return Err(missing("isv.missing-version", "version")),
            Some("1.0") => {}
            Some(_) => return Err(invalid("isv.invalid-version", "版本号不支持")),
        }
        if let Some(c) = get("charset") {
            if !c.eq_ignore_ascii_case("utf-8") {
                return Err(invalid("isv.invalid-charset", "字符集不合法"));
            }
        }
        if let Some(f) = get("format") {
            if !f.eq_ignore_ascii_case("JSON") {
                return Err(invalid("isv.invalid-format", "无效的数据格式"));
            }
        }
        if let Some(c) = &self.cert {
            if get("app_cert_sn") != Some(&c.app_cert_sn) {
                return Err(invalid(
                    "isv.invalid-app-cert-sn",
                    "应用公钥证书序列号不匹配",
                ));
            }
            if get("alipay_root_cert_sn") != Some(&c.alipay_root_cert_sn) {
                return Err(invalid(
                    "isv.alipay-root-cert-sn-invalid",
                    "支付宝根证书序列号不匹配",
                ));
            }
        }
        if !self
            .app_key
            .verify(string_to_sign(p, REQUEST_UNSIGNED).as_bytes(), sign)
        {
            return Err(invalid(
                "isv.invalid-signature",
                "验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配",
            ));
        }
        if let Some(url) = get("notify_url") {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(invalid("isv.invalid-parameter", "notify_url 不合法"));
            }
        }
        let biz =
            get("biz_content").ok_or_else(|| missing("isv.missing-parameter", "biz_content"))?;
        match serde_json::from_str::<Value>(biz) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(invalid(
                "isv.invalid-parameter",
                "biz_content 不是合法的JSON对象",
            )),
        }
    }

    fn dispatch(
        &self,
        method: &str,
        p: &BTreeMap<String, String>,
        biz: Map<String, Value>,
    ) -> Result<Map<String, Value>, GwError> {
        let _g = self.lock.lock();
        match method {
            "alipay.trade.query" => self.query(&biz),
            "alipay.trade.close" => self.close(&biz),
            "alipay.trade.refund" => self.refund(&biz),
            "alipay.trade.fastpay.refund.query" => self.refund_query(&biz),
            "alipay.trade.pay" => self.pay_by_code(p, &biz),
            _ => self.open_trade(method, p, &biz),
        }
    }

    /// `alipay.trade.pay` (当面付, scene `bar_code`): the merchant scanned the buyer's
    /// payment code. The sandbox's buyers pay at once, except codes starting with 0, whose
    /// buyer must still confirm in the app: 10003 (waiting), then `POST /sandbox/pay` or
    /// a close. A repeated request for a paid trade answers that trade (the same payment).
    fn pay_by_code(
        &self,
        p: &BTreeMap<String, String>,
        biz: &Map<String, Value>,
    ) -> Result<Map<String, Value>, GwError> {
        if text(biz, "scene").as_deref() != Some("bar_code") {
            return Err(acq("ACQ.INVALID_PARAMETER", "scene 只支持 bar_code"));
        }
        let code = text(biz, "auth_code").ok_or_else(|| biz_param("auth_code"))?;
        if !(16..=24).contains(&code.len()) || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(acq(
                "ACQ.PAYMENT_AUTH_CODE_INVALID",
                "支付失败，获取顾客账户信息失败",
            ));
        }
        let otn = text(biz, "out_trade_no").ok_or_else(|| biz_param("out_trade_no"))?;
        let existing = self.load(&otn).map_err(storage)?;
        let t = match existing {
            Some(t) if t.status == "TRADE_SUCCESS" && t.api_method == "alipay.trade.pay" => t,
            _ => {
                self.open_trade("alipay.trade.pay", p, biz)?;
                let t = self
                    .load(&otn)
                    .map_err(storage)?
                    .ok_or_else(|| acq("ACQ.SYSTEM_ERROR", "系统错误"))?;
                if t.status == "WAIT_BUYER_PAY" && !code.starts_with('0') {
                    self.mark_paid(t, None)
                        .map_err(|_| acq("ACQ.SYSTEM_ERROR", "系统错误"))?
                } else {
                    t
                }
            }
        };
        let mut m = Map::new();
        m.insert("out_trade_no".into(), json!(t.out_trade_no));
        m.insert("trade_no".into(), json!(t.trade_no));
        m.insert("total_amount".into(), json!(t.yuan(t.total_minor)));
        m.insert("buyer_user_id".into(), json!(t.buyer_id));
        if t.status == "TRADE_SUCCESS" {
            m.insert(
                "gmt_payment".into(),
                json!(t.gmt_payment.clone().unwrap_or_default()),
            );
        } else {
            m.insert("code".into(), json!("10003"));
            m.insert("msg".into(), json!(" order success pay inprocess"));
        }
        Ok(m)
    }

    /// precreate / create / page / wap / app: open (or re-present) a trade.
    fn open_trade(
        &self,
        method: &str,
        p: &BTreeMap<String, String>,
        biz: &Map<String, Value>,
    ) -> Result<Map<String, Value>, GwError> {
        let otn = text(biz, "out_trade_no").ok_or_else(|| biz_param("out_trade_no"))?;
        if otn.len() > 64 {
            return Err(acq("ACQ.INVALID_PARAMETER", "out_trade_no 超长"));
        }
        let subject = text(biz, "subject").ok_or_else(|| biz_param("subject"))?;
        if subject.chars().count() > 256 {
            return Err(acq("ACQ.INVALID_PARAMETER", "subject 超长"));
        }
        let trans_currency = text(biz, "trans_currency");
        let currency = match &trans_currency {
            Some(c) => c
                .parse::<Currency>()
                .map_err(|_| acq("ACQ.INVALID_PARAMETER", "trans_currency 不支持"))?,
            None => Currency::Cny,
        };
        let amount = text(biz, "total_amount").ok_or_else(|| biz_param("total_amount"))?;
        let total = Money::from_decimal_str(&amount, currency)
            .ok()
            .filter(|m| m.minor() <= 100_000_000 * 100)
            .ok_or_else(|| {
                acq(
                    "ACQ.INVALID_PARAMETER",
                    "total_amount 取值范围 [0.01,100000000]",
                )
            })?;
        let buyer_id = if method == "alipay.trade.create" {
            text(biz, "buyer_id")
                .or_else(|| text(biz, "buyer_open_id"))
                .ok_or_else(|| {
                    acq(
                        "ACQ.INVALID_PARAMETER",
                        "buyer_id 和 buyer_open_id 不能同时为空",
                    )
                })?
        } else {
            SANDBOX_BUYER.to_string()
        };
        if let Some(existing) = self.load(&otn).map_err(storage)? {
            match existing.status.as_str() {
                "TRADE_SUCCESS" | "TRADE_FINISHED" => {
                    return Err(acq("ACQ.TRADE_HAS_SUCCESS", "交易已被支付"))
                }
                "TRADE_CLOSED" => return Err(acq("ACQ.TRADE_HAS_CLOSE", "交易已经关闭")),
                _ if existing.total_minor != total.minor() || existing.subject != subject => {
                    return Err(acq("ACQ.CONTEXT_INCONSISTENT", "交易信息被篡改"))
                }
                _ => return Ok(self.open_answer(method, &existing)),
            }
        }
        let t = Trade {
            out_trade_no: otn,
            trade_no: Self::new_trade_no(),
            api_method: method.to_string(),
            total_minor: total.minor(),
            trans_currency,
            subject,
            notify_url: p.get("notify_url").filter(|u| !u.is_empty()).cloned(),
            return_url: p.get("return_url").filter(|u| !u.is_empty()).cloned(),
            buyer_id,
            status: "WAIT_BUYER_PAY".into(),
            gmt_create: format_gmt8(now_ms()),
            gmt_payment: None,
            paid_minor: None,
            refunds: Vec::new(),
        };
        self.save(&t).map_err(storage)?;
        Ok(self.open_answer(method, &t))
    }

    fn open_answer(&self, method: &str, t: &Trade) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("out_trade_no".into(), json!(t.out_trade_no));
        match method {
            "alipay.trade.precreate" => {
                m.insert(
                    "qr_code".into(),
                    json!(format!("{}/qr/{}", self.prefix(), t.out_trade_no)),
                );
            }
            "alipay.trade.create" => {
                m.insert("trade_no".into(), json!(t.trade_no));
            }
            _ => {}
        }
        m
    }

    fn find(&self, biz: &Map<String, Value>) -> Result<Trade, GwError> {
        let found = match (text(biz, "out_trade_no"), text(biz, "trade_no")) {
            (Some(otn), _) => self.load(&otn).map_err(storage)?,
            (None, Some(tn)) => self.load_by_trade_no(&tn).map_err(storage)?,
            (None, None) => return Err(biz_param("out_trade_no")),
        };
        found.ok_or_else(|| acq("ACQ.TRADE_NOT_EXIST", "交易不存在"))
    }

    fn query(&self, biz: &Map<String, Value>) -> Result<Map<String, Value>, GwError> {
        let t = self.find(biz)?;
        // Client-side trades nobody has paid are unknown to Alipay's query until opened;
        // we only store them once opened, so this is already faithful.
        let total = t.paid_minor.unwrap_or(t.total_minor);
        let mut m = Map::new();
        m.insert("trade_no".into(), json!(t.trade_no));
        m.insert("out_trade_no".into(), json!(t.out_trade_no));
        m.insert("buyer_logon_id".into(), json!("sbx***@sandbox.com"));
        m.insert("buyer_user_id".into(), json!(t.buyer_id));
        m.insert("trade_status".into(), json!(t.status));
        m.insert("total_amount".into(), json!(t.yuan(total)));
        let paid = t
            .paid_minor
            .map(|p| t.yuan(p))
            .unwrap_or_else(|| "0.00".into());
        m.insert("buyer_pay_amount".into(), json!(paid));
        m.insert("receipt_amount".into(), json!(paid));
        m.insert("point_amount".into(), json!("0.00"));
        m.insert("invoice_amount".into(), json!(paid));
        if let Some(c) = &t.trans_currency {
            m.insert("trans_currency".into(), json!(c));
        }
        if let Some(at) = &t.gmt_payment {
            m.insert("send_pay_date".into(), json!(at));
        }
        Ok(m)
    }

    fn close(&self, biz: &Map<String, Value>) -> Result<Map<String, Value>, GwError> {
        let mut t = self.find(biz)?;
        if t.status != "WAIT_BUYER_PAY" {
            return Err(acq("ACQ.TRADE_STATUS_ERROR", "交易状态不合法"));
        }
        t.status = "TRADE_CLOSED".into();
        self.save(&t).map_err(storage)?;
        let mut m = Map::new();
        m.insert("trade_no".into(), json!(t.trade_no));
        m.insert("out_trade_no".into(), json!(t.out_trade_no));
        Ok(m)
    }

    fn refund(&self, biz: &Map<String, Value>) -> Result<Map<String, Value>, GwError> {
        let mut t = self.find(biz)?;
        let amount = text(biz, "refund_amount").ok_or_else(|| biz_param("refund_amount"))?;
        let amount = Money::from_decimal_str(&amount, t.currency())
            .map_err(|_| acq("ACQ.INVALID_PARAMETER", "refund_amount 不合法"))?
            .minor();
        // Without out_request_no Alipay treats the request as a full refund of the trade.
        let req_no = text(biz, "out_request_no").unwrap_or_else(|| t.out_trade_no.clone());
        let answer = |t: &Trade, change: &str| {
            let mut m = Map::new();
            m.insert("trade_no".into(), json!(t.trade_no));
            m.insert("out_trade_no".into(), json!(t.out_trade_no));
            m.insert("buyer_logon_id".into(), json!("sbx***@sandbox.com"));
            m.insert("buyer_user_id".into(), json!(t.buyer_id));
            m.insert("fund_change".into(), json!(change));
            m.insert("refund_fee".into(), json!(t.yuan(t.refunded_minor())));
            m.insert("gmt_refund_pay".into(), json!(format_gmt8(now_ms())));
            m
        };
        if let Some(prev) = t.refunds.iter().find(|r| r.out_request_no == req_no) {
            return if prev.amount_minor == amount {
                Ok(answer(&t, "N"))
            } else {
                Err(acq("ACQ.DISCORDANT_REPEAT_REQUEST", "请求信息不一致"))
            };
        }
        if t.status != "TRADE_SUCCESS" {
            return Err(acq("ACQ.TRADE_STATUS_ERROR", "交易状态不合法"));
        }
        let paid = t.paid_minor.unwrap_or(t.total_minor);
        if t.refunded_minor() + amount > paid {
            return Err(acq("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", "退款金额超限"));
        }
        t.refunds.push(TradeRefund {
            out_request_no: req_no,
            amount_minor: amount,
            gmt_refund_pay: format_gmt8(now_ms()),
        });
        if t.refunded_minor() == paid {
            t.status = "TRADE_CLOSED".into();
        }
        self.save(&t).map_err(storage)?;
        Ok(answer(&t, "Y"))
    }

    fn refund_query(&self, biz: &Map<String, Value>) -> Result<Map<String, Value>, GwError> {
        let t = self.find(biz)?;
        let req_no = text(biz, "out_request_no").ok_or_else(|| biz_param("out_request_no"))?;
        let mut m = Map::new();
        m.insert("trade_no".into(), json!(t.trade_no));
        m.insert("out_trade_no".into(), json!(t.out_trade_no));
        // An unknown out_request_no is answered 10000 with no refund data, as Alipay does.
        if let Some(r) = t.refunds.iter().find(|r| r.out_request_no == req_no) {
            m.insert("out_request_no".into(), json!(r.out_request_no));
            m.insert("total_amount".into(), json!(t.yuan(t.total_minor)));
            m.insert("refund_amount".into(), json!(t.yuan(r.amount_minor)));
            m.insert("refund_status".into(), json!("REFUND_SUCCESS"));
            m.insert("gmt_refund_pay".into(), json!(r.gmt_refund_pay));
        }
        Ok(m)
    }
}

use super::pages;

fn error_fields(e: &GwError) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("code".into(), json!(e.code));
    m.insert("msg".into(), json!(msg_of(e.code)));
    m.insert("sub_code".into(), json!(e.sub_code));
    m.insert("sub_msg".into(), json!(e.sub_msg));
    m
}

fn biz_param(name: &str) -> GwError {
    acq("ACQ.INVALID_PARAMETER", format!("缺少参数 {name}"))
}

fn storage(e: super::SimError) -> GwError {
    err("20000", "isp.unknow-error", format!("系统繁忙: {e}"))
}

fn text(m: &Map<String, Value>, k: &str) -> Option<String> {
    match m.get(k) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// Query string and form body together, as the gateway reads them; a key given twice
/// with different values is refused.
fn collect_params(req: &HttpRequest, body: &[u8]) -> Result<BTreeMap<String, String>, GwError> {
    let bad = |e: String| invalid("isv.invalid-parameter", e);
    let mut p = form_decode(req.query_string().as_bytes()).map_err(bad)?;
    let is_form = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if is_form || (!body.is_empty() && req.method() == actix_web::http::Method::POST) {
        for (k, v) in form_decode(body).map_err(bad)? {
            if let Some(old) = p.get(&k) {
                if old != &v {
                    return Err(bad(format!("parameter `{k}` given twice")));
                }
            }
            p.insert(k, v);
        }
    }
    Ok(p)
}
