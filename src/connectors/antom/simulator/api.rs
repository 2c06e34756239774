//! `POST /ams[/sandbox]/api/v1/payments/{api}`: authentication as Antom does it, then
//! `pay`, `inquiryPayment`, `cancel`, `refund`, `inquiryRefund`. Every answer, refusals
//! included, is signed with the simulator's Antom key.

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::{result, wire, AntomSimulator, Payment, RefundRec, METHOD_TYPES};
use crate::domain::{Currency, Money};
use crate::protocol_primitives::beijing_time::{format_rfc3339_cst, now_millis, parse_rfc3339};
use crate::protocol_primitives::emv;
use crate::simulator::faults::take_one;

/// How far `Request-Time` may be from the simulator's clock. Antom publishes no window;
/// this one only catches a client sending no time or a wrong one.
const REQUEST_TIME_SKEW_MS: i64 = 10 * 60 * 1000;

type Answer = Result<Value, Value>;

fn fail(code: &str, message: impl Into<String>) -> Value {
    json!({ "result": result(code, "F", &message.into()) })
}

fn illegal(message: impl Into<String>) -> Value {
    fail("PARAM_ILLEGAL", message)
}

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn id_field<'a>(v: &'a Value, key: &str) -> Result<&'a str, Value> {
    match text(v, key) {
        Some(s) if s.chars().count() <= 64 => Ok(s),
        Some(_) => Err(illegal(format!("{key} is longer than 64 characters"))),
        None => Err(illegal(format!("{key} is required"))),
    }
}

/// Antom takes IDR in whole rupiah.
fn check_unit(cur: Currency, minor: i64) -> Result<(), Value> {
    if cur == Currency::Idr && minor % 100 != 0 {
        return Err(illegal(
            "IDR amounts must be whole rupiah (value ending in 00)",
        ));
    }
    Ok(())
}

impl AntomSimulator {
    /// One API call: authenticate, carry out, answer signed.
    pub(super) fn api(self: &Arc<Self>, req: &HttpRequest, body: &[u8]) -> HttpResponse {
        let path = req.path().to_string();
        let api = req.match_info().get("api").unwrap_or_default().to_string();
        let answer = match self.authenticate(req, &path, body) {
            Err(refusal) => refusal,
            Ok(v) => {
                let done = match api.as_str() {
                    "pay" => self.do_pay(&v),
                    "inquiryPayment" => self.do_inquiry(&v),
                    "cancel" => self.do_cancel(&v),
                    "refund" => self.do_refund(&v),
                    "inquiryRefund" => self.do_inquiry_refund(&v),
                    _ => Err(fail("NO_INTERFACE_DEF", format!("no API `{api}`"))),
                };
                let answer = done.unwrap_or_else(|e| e);
                // `unknown_next`: done, but the answer does not know.
                if take_one(&self.unknown) {
                    json!({ "result": result("UNKNOWN_EXCEPTION", "U", "An API calling is failed, which is caused by unknown reasons.") })
                } else {
                    answer
                }
            }
        };
        self.signed(&path, answer)
    }

    /// Antom signs its answers like requests, over the request's path.
    fn signed(&self, path: &str, answer: Value) -> HttpResponse {
        let text = answer.to_string();
        let time = format_rfc3339_cst(now_millis());
        let content = wire::signed_content("POST", path, &self.client_id, &time, &text);
        let sig = self.antom.sign(content.as_bytes());
        HttpResponse::Ok()
            .content_type("application/json; charset=UTF-8")
            .insert_header(("client-id", self.client_id.as_str()))
            .insert_header(("response-time", time))
            .insert_header(("signature", wire::signature_header(&sig)))
            .body(text)
    }

    fn authenticate(&self, req: &HttpRequest, path: &str, body: &[u8]) -> Result<Value, Value> {
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
        let client = header("client-id").unwrap_or_default();
        if client != self.client_id {
            return Err(fail(
                "CLIENT_INVALID",
                format!("unknown client id `{client}`"),
            ));
        }
        let sandbox_path = path.contains("/ams/sandbox/api/");
        if sandbox_path != client.starts_with("SANDBOX_") {
            return Err(fail(
                "NO_INTERFACE_DEF",
                "SANDBOX_ client ids call /ams/sandbox/api, others /ams/api",
            ));
        }
        let time = header("request-time").ok_or_else(|| illegal("Request-Time is required"))?;
        let sent = wire::request_time_ms(time)
            .ok_or_else(|| illegal(format!("Request-Time `{time}` is not a time")))?;
        if (now_millis() - sent).abs() > REQUEST_TIME_SKEW_MS {
            return Err(illegal(format!(
                "Request-Time `{time}` is too far from now"
            )));
        }
        let sig = header("signature")
            .and_then(wire::header_signature)
            .ok_or_else(|| {
                fail(
                    "INVALID_SIGNATURE",
                    "no RSA256 signature in the Signature header",
                )
            })?;
        let text = std::str::from_utf8(body).map_err(|_| illegal("body is not UTF-8"))?;
        let content = wire::signed_content("POST", path, client, time, text);
        if !self.merchant.verify(content.as_bytes(), &sig) {
            return Err(fail("INVALID_SIGNATURE", "The signature is not validated."));
        }
        serde_json::from_str(text).map_err(|e| illegal(format!("body is not JSON: {e}")))
    }

    fn do_pay(&self, v: &Value) -> Answer {
        if text(v, "productCode") != Some("CASHIER_PAYMENT") {
            return Err(illegal("productCode must be CASHIER_PAYMENT"));
        }
        let request_id = id_field(v, "paymentRequestId")?;
        let (cur, minor) = wire::amount(v.get("paymentAmount")).map_err(illegal)?;
        let order = v.get("order").ok_or_else(|| illegal("order is required"))?;
        if wire::amount(order.get("orderAmount")).map_err(illegal)? != (cur, minor) {
            return Err(illegal("order.orderAmount differs from paymentAmount"));
        }
        text(order, "orderDescription")
            .ok_or_else(|| illegal("order.orderDescription is required"))?;
        text(order, "referenceOrderId")
            .ok_or_else(|| illegal("order.referenceOrderId is required"))?;
        let method_type = v
            .pointer("/paymentMethod/paymentMethodType")
            .and_then(Value::as_str)
            .ok_or_else(|| illegal("paymentMethod.paymentMethodType is required"))?;
        let &(_, takes, qr) = METHOD_TYPES
            .iter()
            .find(|(t, _, _)| *t == method_type)
            .ok_or_else(|| {
                fail(
                    "PAYMENT_METHOD_NOT_SUPPORTED",
                    format!("{method_type} is not enabled"),
                )
            })?;
        if cur != takes {
            return Err(fail(
                "CURRENCY_NOT_SUPPORT",
                format!("{method_type} does not take {}", cur.code()),
            ));
        }
        check_unit(cur, minor)?;
        let terminal = v
            .pointer("/env/terminalType")
            .and_then(Value::as_str)
            .filter(|t| matches!(*t, "WEB" | "WAP" | "APP"))
            .ok_or_else(|| illegal("env.terminalType must be WEB, WAP or APP"))?;
        let redirect = text(v, "paymentRedirectUrl")
            .ok_or_else(|| illegal("paymentRedirectUrl is required"))?;
        let notify = text(v, "paymentNotifyUrl").ok_or_else(|| {
            illegal("paymentNotifyUrl is required (this sandbox has no dashboard URL)")
        })?;
        let expiry_ms = match text(v, "paymentExpiryTime") {
            Some(t) => {
                Some(parse_rfc3339(t).ok_or_else(|| illegal("paymentExpiryTime is not ISO 8601"))?)
            }
            None => None,
        };
        let fingerprint = format!("{method_type}|{}|{minor}", cur.code());
        let _g = self.lock.lock();
        let p = match self
            .load(request_id)
            .map_err(|e| fail("UNKNOWN_EXCEPTION", e.to_string()))?
        {
            Some(p) if p.fingerprint != fingerprint => {
                return Err(fail(
                    "REPEAT_REQ_INCONSISTENT",
                    "paymentRequestId was used for another payment",
                ))
            }
            Some(p) if p.status == "SUCCESS" => {
                return Ok(self.pay_answer(&p, terminal, qr, result("SUCCESS", "S", "success")))
            }
            Some(p) if !p.payable() => {
                return Err(fail("ORDER_IS_CLOSED", "the payment is closed"))
            }
            Some(p) => p,
            None => {
                let p = Payment {
                    payment_request_id: request_id.into(),
                    payment_id: Self::new_id("1900"),
                    method_type: method_type.into(),
                    currency: cur,
                    amount: minor,
                    terminal: terminal.into(),
                    notify_url: notify.into(),
                    redirect_url: redirect.into(),
                    status: "PROCESSING".into(),
                    result_code: None,
                    create_time: format_rfc3339_cst(now_millis()),
                    expiry_ms,
                    payment_time: None,
                    paid: None,
                    fingerprint,
                    refunds: Vec::new(),
                };
                self.save(&p)
                    .map_err(|e| fail("UNKNOWN_EXCEPTION", e.to_string()))?;
                p
            }
        };
        Ok(self.pay_answer(
            &p,
            terminal,
            qr,
            result("PAYMENT_IN_PROCESS", "U", "payment in process"),
        ))
    }

    /// The placed payment and where the payer goes: the cashier page, the app link, and a
    /// code to scan for the methods that have one.
    fn pay_answer(&self, p: &Payment, terminal: &str, qr: bool, result: Value) -> Value {
        let cashier = format!("{}/cashier/{}", self.prefix(), p.payment_id);
        let mut a = json!({
            "result": result,
            "paymentRequestId": p.payment_request_id,
            "paymentId": p.payment_id,
            "paymentAmount": wire::amount_json(p.currency, p.amount),
            "paymentCreateTime": p.create_time,
            "normalUrl": cashier,
        });
        if terminal == "APP" {
            a["applinkUrl"] = json!(format!("{cashier}?app=1"));
            a["schemeUrl"] = json!(format!(
                "{}://antom/pay?paymentId={}",
                p.method_type.to_ascii_lowercase().replace('_', ""),
                p.payment_id
            ));
        }
        if qr && terminal == "WEB" {
            a["orderCodeForm"] = json!({
                "codeDetails": [{ "codeValue": self.code_value(p, &cashier), "displayType": "TEXT" }],
            });
        }
        a
    }

    /// PayNow and PromptPay are paid from an EMVCo payload; Alipay's wallets scan a URL.
    fn code_value(&self, p: &Payment, cashier: &str) -> String {
        let decimal = Money::new(p.amount, p.currency)
            .map(|m| m.to_decimal_string())
            .unwrap_or_default();
        let reference: String = p.payment_id.chars().rev().take(20).collect();
        let payload = match p.method_type.as_str() {
            "PAYNOW" => emv::PayNow {
                proxy_type: '2',
                proxy: "202612345A",
                amount: &decimal,
                editable: false,
                one_time: true,
                expiry: None,
                merchant_name: "ANTOM SANDBOX MERCHANT",
                reference: &reference,
            }
            .payload()
            .ok(),
            "PROMPTPAY" => promptpay(&decimal, &reference).ok(),
            _ => None,
        };
        payload.unwrap_or_else(|| format!("{cashier}?qr=1"))
    }

    fn find(&self, v: &Value) -> Result<Payment, Value> {
        let found = match (text(v, "paymentId"), text(v, "paymentRequestId")) {
            (Some(id), _) => self.load_by_payment_id(id),
            (None, Some(rid)) => self.load(rid),
            (None, None) => return Err(illegal("paymentRequestId or paymentId is required")),
        };
        found
            .map_err(|e| fail("UNKNOWN_EXCEPTION", e.to_string()))?
            .ok_or_else(|| fail("ORDER_NOT_EXIST", "The order does not exist."))
    }

    fn do_inquiry(&self, v: &Value) -> Answer {
        let p = self.find(v)?;
        let status = if p.expired() && matches!(p.status.as_str(), "PROCESSING" | "PENDING") {
            "CANCELLED"
        } else {
            p.status.as_str()
        };
        let mut a = json!({
            "result": result("SUCCESS", "S", "Success"),
            "paymentStatus": status,
            "paymentRequestId": p.payment_request_id,
            "paymentId": p.payment_id,
            "paymentAmount": wire::amount_json(p.currency, p.paid.unwrap_or(p.amount)),
            "paymentCreateTime": p.create_time,
            "paymentMethodType": p.method_type,
        });
        if let Some(t) = &p.payment_time {
            a["paymentTime"] = json!(t);
        }
        if let Some(c) = &p.result_code {
            a["paymentResultCode"] = json!(c);
            a["paymentResultMessage"] = json!("the payer's wallet declined");
        }
        Ok(a)
    }

    fn do_cancel(&self, v: &Value) -> Answer {
        let _g = self.lock.lock();
        let mut p = self.find(v)?;
        match p.status.as_str() {
            "SUCCESS" => return Err(fail("ORDER_STATUS_INVALID", "the payment succeeded")),
            "PENDING" => return Err(fail("ORDER_STATUS_INVALID", "the payment is being settled")),
            "PROCESSING" => {
                p.status = "CANCELLED".into();
                self.save(&p)
                    .map_err(|e| fail("UNKNOWN_EXCEPTION", e.to_string()))?;
            }
            _ => {}
        }
        Ok(json!({
            "result": result("SUCCESS", "S", "Success"),
            "paymentRequestId": p.payment_request_id,
            "paymentId": p.payment_id,
            "cancelTime": format_rfc3339_cst(now_millis()),
        }))
    }

    fn refund_answer(p: &Payment, r: &RefundRec) -> Value {
        let result = match r.status.as_str() {
            "SUCCESS" => result("SUCCESS", "S", "success"),
            "FAIL" => result("REFUND_FAIL", "F", "the refund was declined"),
            _ => result("REFUND_IN_PROCESS", "U", "The refund is being processed."),
        };
        let mut a = json!({
            "result": result,
            "refundRequestId": r.refund_request_id,
            "refundId": r.refund_id,
            "paymentId": p.payment_id,
            "refundAmount": wire::amount_json(p.currency, r.amount),
        });
        if let Some(t) = &r.time {
            a["refundTime"] = json!(t);
        }
        a
    }

    fn do_refund(self: &Arc<Self>, v: &Value) -> Answer {
        let refund_request_id = id_field(v, "refundRequestId")?;
        let payment_id = id_field(v, "paymentId")?;
        let (cur, minor) = wire::amount(v.get("refundAmount")).map_err(illegal)?;
        let _g = self.lock.lock();
        let mut p = self
            .load_by_payment_id(payment_id)
            .map_err(|e| fail("UNKNOWN_EXCEPTION", e.to_string()))?
            .ok_or_else(|| fail("ORDER_NOT_EXIST", "The order does not exist."))?;
        if cur != p.currency {
            return Err(illegal("refundAmount.currency differs from the payment's"));
        }
        check_unit(cur, minor)?;
        if let Some(r) = p
            .refunds
            .iter()
            .find(|r| r.refund_request_id == refund_request_id)
        {
            if r.amount != minor {
                return Err(fail(
                    "REPEAT_REQ_INCONSISTENT",
                    "refundRequestId was used for another amount",
                ));
            }
            return Ok(Self::refund_answer(&p, r));
        }
        if p.status != "SUCCESS" {
            return Err(fail(
                "ORDER_STATUS_INVALID",
                "only a successful payment can be refunded",
            ));
        }
        if p.committed_refunds() + minor > p.paid.unwrap_or(p.amount) {
            return Err(fail(
                "REFUND_AMOUNT_EXCEED",
                "The total refund amount exceeds the payment amount.",
            ));
        }
        let orphan = take_one(&self.orphan_refunds);
        let r = RefundRec {
            refund_request_id: refund_request_id.into(),
            refund_id: Self::new_id("1910"),
            amount: minor,
            status: "PROCESSING".into(),
            notify_url: text(v, "refundNotifyUrl").map(str::to_string),
            time: None,
            accepted_at: crate::simulator::refund_accepted_at(now_millis(), orphan),
        };
        p.refunds.push(r.clone());
        self.save(&p)
            .map_err(|e| fail("UNKNOWN_EXCEPTION", e.to_string()))?;
        // Refunds end later, and are told by notification.
        if !orphan {
            let sim = self.clone();
            let (rid, refund_rid) = (p.payment_request_id.clone(), r.refund_request_id.clone());
            actix_web::rt::spawn(async move { sim.finish_refund(rid, refund_rid).await });
        }
        Ok(Self::refund_answer(&p, &r))
    }

    fn do_inquiry_refund(self: &Arc<Self>, v: &Value) -> Answer {
        let refund_request_id = id_field(v, "refundRequestId")?;
        self.settle_if_orphaned(refund_request_id);
        let p = self
            .load_by_refund(refund_request_id)
            .map_err(|e| fail("UNKNOWN_EXCEPTION", e.to_string()))?;
        let found = p.as_ref().and_then(|p| {
            p.refunds
                .iter()
                .find(|r| r.refund_request_id == refund_request_id)
                .map(|r| (p, r))
        });
        let Some((p, r)) = found else {
            return Err(fail("REFUND_NOT_EXIST", "The refund does not exist."));
        };
        let mut a = json!({
            "result": result("SUCCESS", "S", "Success"),
            "refundStatus": r.status,
            "refundRequestId": r.refund_request_id,
            "refundId": r.refund_id,
            "refundAmount": wire::amount_json(p.currency, r.amount),
        });
        if let Some(t) = &r.time {
            a["refundTime"] = json!(t);
        }
        if r.status == "FAIL" {
            a["refundResultCode"] = json!("REFUND_FAIL");
            a["refundResultMessage"] = json!("the refund was declined");
        }
        Ok(a)
    }

    /// Settles and notifies a refund still PROCESSING long after it was accepted: its
    /// settling task died with the node that accepted it.
    fn settle_if_orphaned(self: &Arc<Self>, refund_request_id: &str) {
        let Ok(Some(p)) = self.load_by_refund(refund_request_id) else {
            return;
        };
        let orphaned = p.refunds.iter().any(|r| {
            r.refund_request_id == refund_request_id
                && r.status == "PROCESSING"
                && crate::simulator::refund_orphaned(r.accepted_at, now_millis())
        });
        if !orphaned {
            return;
        }
        let settled = self.settle_refund_now(&p.payment_request_id, refund_request_id, false);
        if let Some((done, currency)) = settled {
            let sim = self.clone();
            actix_web::rt::spawn(async move { sim.notify_refund(done, currency, false).await });
        }
    }
}

/// A dynamic Thai PromptPay bill-payment payload (tag 30), THB.
fn promptpay(amount: &str, reference: &str) -> Result<String, emv::EmvError> {
    let acct = emv::tlv("00", "A000000677010112")?
        + &emv::tlv("01", "010753600031508")?
        + &emv::tlv("02", reference)?;
    let s = emv::tlv("00", "01")?
        + &emv::tlv("01", "12")?
        + &emv::tlv("30", &acct)?
        + &emv::tlv("53", "764")?
        + &emv::tlv("54", amount)?
        + &emv::tlv("58", "TH")?;
    Ok(emv::with_crc(&s))
}
