//! What happens at the payer's end: the `next_action` a confirmed PaymentIntent answers
//! (QR payloads, hosted pages, redirects), paying or declining, and refunds settling.

use serde_json::{json, Value};

use super::wire::new_id;
use super::{field, StripeSimulator};
use crate::protocol_primitives::emv;
use crate::simulator::{check_payable, faults::take_one, SimError};

/// The sandbox account's PayNow UEN and PromptPay biller id (made up, of the documented
/// shapes).
const PAYNOW_UEN: &str = "201912345K";
const PROMPTPAY_BILLER: &str = "010556012345601";

fn decimal(amount: i64) -> String {
    format!("{}.{:02}", amount / 100, amount % 100)
}

/// A one-time PayNow payload for `pi` (SGD), as Stripe's `paynow_display_qr_code.data`.
fn paynow_payload(pi: &Value) -> String {
    let amount = decimal(pi.get("amount").and_then(Value::as_i64).unwrap_or(0));
    let id = field(pi, "id").unwrap_or_default();
    emv::PayNow {
        proxy_type: '2',
        proxy: PAYNOW_UEN,
        amount: &amount,
        editable: false,
        one_time: true,
        expiry: None,
        merchant_name: "PAYGATE SANDBOX",
        reference: &id[..id.len().min(25)],
    }
    .payload()
    .unwrap_or_default()
}

/// A Thai QR (PromptPay bill payment, tag 30) for `pi` (THB).
fn promptpay_payload(pi: &Value) -> String {
    let amount = decimal(pi.get("amount").and_then(Value::as_i64).unwrap_or(0));
    let id = field(pi, "id").unwrap_or_default();
    let build = || -> Result<String, emv::EmvError> {
        let acct = emv::tlv("00", "A000000677010112")?
            + &emv::tlv("01", PROMPTPAY_BILLER)?
            + &emv::tlv("02", &id[3..id.len().min(23)])?;
        let s = emv::tlv("00", "01")?
            + &emv::tlv("01", "12")?
            + &emv::tlv("30", &acct)?
            + &emv::tlv("53", "764")?
            + &emv::tlv("54", &amount)?
            + &emv::tlv("58", "TH")?
            + &emv::tlv("59", "PAYGATE SANDBOX")?
            + &emv::tlv("60", "Bangkok")?;
        Ok(emv::with_crc(&s))
    };
    build().unwrap_or_default()
}

impl StripeSimulator {
    /// `next_action` of a PaymentIntent just confirmed with `kind`.
    pub(super) fn next_action(&self, pi: &Value, kind: &str, return_url: Option<&str>) -> Value {
        let id = field(pi, "id").unwrap_or_default();
        let page = format!("{}/hosted/{id}", self.base());
        let qr = |data: String| {
            json!({
                "data": data,
                "hosted_instructions_url": page,
                "image_url_png": format!("{}/qr/{id}.png", self.base()),
                "image_url_svg": format!("{}/qr/{id}.svg", self.base()),
            })
        };
        let (t, detail) = match kind {
            "wechat_pay" => (
                "wechat_pay_display_qr_code",
                qr(format!("weixin://wxpay/bizpayurl?pr={}", &id[3..])),
            ),
            "paynow" => ("paynow_display_qr_code", qr(paynow_payload(pi))),
            "promptpay" => ("promptpay_display_qr_code", qr(promptpay_payload(pi))),
            "alipay" => (
                "alipay_handle_redirect",
                json!({"url": page, "return_url": return_url, "native_url": null, "native_data": null}),
            ),
            _ => (
                "redirect_to_url",
                json!({"url": page, "return_url": return_url}),
            ),
        };
        json!({"type": t, t: detail})
    }

    /// The payer pays object `id` (a PaymentIntent awaiting its customer, or an open
    /// Checkout Session), `paid` minor units if given. Returns the PaymentIntent id, the
    /// amount, and the events to send. Called under the lock.
    pub(super) fn settle_payment(
        &self,
        id: &str,
        paid: Option<i64>,
    ) -> Result<(String, i64, Vec<Value>), SimError> {
        let obj = self.get(id).ok_or(SimError::UnknownTrade)?;
        let mut events = Vec::new();
        if id.starts_with("cs_") {
            let mut cs = obj;
            if field(&cs, "status") != Some("open") {
                return Err(SimError::NotPayable(format!(
                    "the Checkout Session is {}",
                    field(&cs, "status").unwrap_or("?")
                )));
            }
            let amount =
                paid.unwrap_or_else(|| cs.get("amount_total").and_then(Value::as_i64).unwrap_or(0));
            check_payable(amount)?;
            let mut pi = match field(&cs, "payment_intent").and_then(|p| self.get(p)) {
                Some(pi) => pi,
                None => self.session_intent(&cs),
            };
            Self::succeed(&mut pi, amount);
            cs["status"] = json!("complete");
            cs["payment_status"] = json!("paid");
            cs["payment_intent"] = pi["id"].clone();
            cs["amount_total"] = json!(amount);
            cs["url"] = Value::Null;
            self.put(&pi);
            self.put(&cs);
            self.event(&mut events, "payment_intent.succeeded", &pi);
            self.event(&mut events, "checkout.session.completed", &cs);
            return Ok((
                field(&pi, "id").unwrap_or_default().to_string(),
                amount,
                events,
            ));
        }
        let mut pi = obj;
        if field(&pi, "status") != Some("requires_action") {
            return Err(SimError::NotPayable(format!(
                "the PaymentIntent is {}",
                field(&pi, "status").unwrap_or("?")
            )));
        }
        let amount = paid.unwrap_or_else(|| pi.get("amount").and_then(Value::as_i64).unwrap_or(0));
        check_payable(amount)?;
        Self::succeed(&mut pi, amount);
        self.put(&pi);
        self.event(&mut events, "payment_intent.succeeded", &pi);
        Ok((id.to_string(), amount, events))
    }

    /// The PaymentIntent a Checkout Session makes when its payer first submits.
    fn session_intent(&self, cs: &Value) -> Value {
        let sid = field(cs, "id").unwrap_or_default();
        let meta: Value = self
            .env
            .state
            .get(&format!("intent_meta:{sid}"))
            .ok()
            .flatten()
            .unwrap_or(json!({}));
        let kind = cs
            .get("payment_method_types")
            .and_then(|t| t.get(0))
            .and_then(Value::as_str)
            .unwrap_or("card");
        let pi = json!({
            "id": new_id("pi"),
            "object": "payment_intent",
            "amount": cs.get("amount_total"),
            "amount_received": 0,
            "currency": field(cs, "currency"),
            "status": "requires_payment_method",
            "created": cs.get("created"),
            "livemode": false,
            "metadata": meta,
            "payment_method_types": [kind],
            "payment_method": null,
            "latest_charge": null,
            "last_payment_error": null,
            "next_action": null,
            "cancellation_reason": null,
            "canceled_at": null,
        });
        self.append("payment_intent", field(&pi, "id").unwrap_or_default());
        pi
    }

    fn succeed(pi: &mut Value, amount: i64) {
        pi["status"] = json!("succeeded");
        pi["amount_received"] = json!(amount);
        pi["next_action"] = Value::Null;
        pi["last_payment_error"] = Value::Null;
        pi["latest_charge"] = json!(new_id("ch"));
        if pi["payment_method"].is_null() {
            pi["payment_method"] = json!(new_id("pm"));
        }
    }

    /// The payer's attempt fails (`code`): a PaymentIntent goes back to
    /// `requires_payment_method` with `last_payment_error`; a Checkout Session stays open
    /// for another attempt. Called under the lock.
    pub(super) fn decline(&self, id: &str, code: &str) -> Result<Vec<Value>, SimError> {
        let obj = self.get(id).ok_or(SimError::UnknownTrade)?;
        let mut pi = if id.starts_with("cs_") {
            let mut cs = obj;
            if field(&cs, "status") != Some("open") {
                return Err(SimError::NotPayable(
                    "the Checkout Session is not open".into(),
                ));
            }
            let pi = match field(&cs, "payment_intent").and_then(|p| self.get(p)) {
                Some(pi) => pi,
                None => self.session_intent(&cs),
            };
            cs["payment_intent"] = pi["id"].clone();
            self.put(&cs);
            pi
        } else {
            if field(&obj, "status") != Some("requires_action") {
                return Err(SimError::NotPayable(
                    "the PaymentIntent awaits no payer".into(),
                ));
            }
            obj
        };
        pi["status"] = json!("requires_payment_method");
        pi["next_action"] = Value::Null;
        pi["last_payment_error"] = json!({
            "type": "card_error",
            "code": code,
            "message": match code {
                "payment_intent_authentication_failure" => "The provided PaymentMethod has failed authentication.",
                _ => "The customer declined the payment.",
            },
        });
        self.put(&pi);
        let mut events = Vec::new();
        self.event(&mut events, "payment_intent.payment_failed", &pi);
        Ok(events)
    }

    /// Refunds settle after their answer, as Stripe's do: `succeeded`, or `failed` while
    /// `fail_next_refund` is armed.
    pub(super) fn schedule_refund(&self, refund_id: String) {
        let declined = take_one(&self.decline_refunds);
        let Some(me) = self.me.get().and_then(|w| w.upgrade()) else {
            return;
        };
        actix_web::rt::spawn(async move {
            let events = {
                let _g = me.lock.lock();
                me.settle_refund(&refund_id, declined)
            };
            for ev in events {
                me.deliver(ev);
            }
        });
    }

    /// Settles a refund (of `intent`, when given) still `pending` long after it was
    /// accepted (`simulator::refund_orphaned`): its settling task died with the node that
    /// accepted it. Reads that show refunds call it first; the caller holds the lock and
    /// delivers the events.
    pub(super) fn settle_orphaned_refund(&self, id: &str, intent: Option<&str>) -> Vec<Value> {
        let orphaned = self.get(id).is_some_and(|re| {
            let created = re.get("created").and_then(Value::as_i64).unwrap_or(0);
            field(&re, "status") == Some("pending")
                && intent.map_or(true, |pi| field(&re, "payment_intent") == Some(pi))
                && crate::simulator::refund_orphaned(created * 1000, super::now_secs() * 1000)
        });
        if orphaned {
            self.settle_refund(id, false)
        } else {
            Vec::new()
        }
    }

    fn settle_refund(&self, id: &str, declined: bool) -> Vec<Value> {
        let Some(mut re) = self.get(id) else {
            return Vec::new();
        };
        if field(&re, "status") != Some("pending") {
            return Vec::new();
        }
        let mut events = Vec::new();
        if declined {
            re["status"] = json!("failed");
            re["failure_reason"] = json!("insufficient_funds");
            self.put(&re);
            self.event(&mut events, "refund.updated", &re);
            return events;
        }
        re["status"] = json!("succeeded");
        self.put(&re);
        self.event(&mut events, "refund.updated", &re);
        if let Some(pi) = field(&re, "payment_intent").and_then(|p| self.get(p)) {
            let received = pi
                .get("amount_received")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let refunded = self.refunded(field(&pi, "id").unwrap_or_default());
            let charge = json!({
                "id": pi.get("latest_charge"),
                "object": "charge",
                "amount": received,
                "amount_captured": received,
                "amount_refunded": refunded,
                "refunded": refunded >= received,
                "currency": pi.get("currency"),
                "payment_intent": pi.get("id"),
                "metadata": pi.get("metadata"),
                "status": "succeeded",
                "paid": true,
                "created": pi.get("created"),
            });
            self.event(&mut events, "charge.refunded", &charge);
        }
        events
    }
}

/// The simulator's own `Arc`, for work that outlives a request (refund settlement), set
/// when its routes are mounted; weak, so the simulator is not kept alive by itself.
pub(super) type SelfRef = std::sync::OnceLock<std::sync::Weak<StripeSimulator>>;
