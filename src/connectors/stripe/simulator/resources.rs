//! The resources: PaymentIntents (create, confirm server-side, cancel), Checkout Sessions
//! (create, expire) and Refunds (create; they settle afterwards, see `payments.rs`), with
//! the checks Stripe makes on each and its error codes.

use serde_json::{json, Value};

use super::now_secs;
use super::wire::{self, invalid, missing, not_found, Reply};
use super::{field, StripeSimulator};

type Events = Vec<Value>;

/// Smallest charge per currency (Stripe's "Minimum and maximum charge amounts") and the
/// currencies the sandbox account can charge in.
fn minimum(currency: &str) -> Option<i64> {
    Some(match currency {
        "usd" | "eur" | "aud" | "cad" | "nzd" | "sgd" | "inr" | "chf" => 50,
        "gbp" => 30,
        "hkd" => 400,
        "jpy" => 50,
        "myr" => 200,
        "thb" => 1000,
        "cny" => 400,
        _ => return None,
    })
}

/// The currencies each payment method type takes (Stripe's payment method pages).
fn method_currencies(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "card" => &[
            "usd", "eur", "aud", "cad", "nzd", "sgd", "inr", "chf", "gbp", "hkd", "jpy", "myr",
            "thb", "cny",
        ],
        "alipay" => &[
            "aud", "cad", "eur", "gbp", "hkd", "jpy", "nzd", "sgd", "usd", "myr", "cny",
        ],
        "wechat_pay" => &[
            "aud", "cad", "cny", "eur", "gbp", "hkd", "jpy", "sgd", "usd", "chf",
        ],
        "paynow" => &["sgd"],
        "grabpay" => &["sgd", "myr"],
        "fpx" => &["myr"],
        "promptpay" => &["thb"],
        _ => return None,
    })
}

/// Methods whose confirmation sends the customer away and back.
fn needs_return_url(kind: &str) -> bool {
    matches!(kind, "alipay" | "grabpay" | "fpx")
}

pub(super) fn int(params: &Value, key: &str) -> Result<Option<i64>, Reply> {
    match params.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_str()
            .and_then(|s| s.parse::<i64>().ok())
            .map(Some)
            .ok_or_else(|| {
                invalid(
                    "parameter_invalid_integer",
                    &format!("Invalid integer: {v}"),
                    Some(key),
                )
            }),
    }
}

fn check_amount(amount: i64, currency: &str, param: &str) -> Result<(), Reply> {
    let min = minimum(currency).ok_or_else(|| {
        invalid(
            "parameter_invalid_string",
            &format!("Invalid currency: {currency}."),
            Some("currency"),
        )
    })?;
    if amount < min {
        return Err(invalid(
            "amount_too_small",
            &format!("Amount must be at least {min} {currency}"),
            Some(param),
        ));
    }
    if amount > 99_999_999 {
        return Err(invalid(
            "amount_too_large",
            "Amount must be no more than 99999999",
            Some(param),
        ));
    }
    Ok(())
}

impl StripeSimulator {
    pub(super) fn create_intent(&self, p: &Value) -> Result<Reply, Reply> {
        let amount = int(p, "amount")?.ok_or_else(|| missing("amount"))?;
        let currency = field(p, "currency")
            .ok_or_else(|| missing("currency"))?
            .to_string();
        check_amount(amount, &currency, "amount")?;
        let confirm = field(p, "confirm") == Some("true");
        let data_type = p
            .get("payment_method_data")
            .and_then(|d| field(d, "type"))
            .map(str::to_string);
        let types: Vec<String> = match p.get("payment_method_types").and_then(Value::as_array) {
            Some(list) => list
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            None => data_type.iter().cloned().collect(),
        };
        if types.is_empty() {
            return Err(missing("payment_method_types"));
        }
        for t in &types {
            let ok = method_currencies(t).ok_or_else(|| {
                invalid(
                    "payment_intent_invalid_parameter",
                    &format!("The payment method type \"{t}\" is invalid."),
                    Some("payment_method_types"),
                )
            })?;
            if !ok.contains(&currency.as_str()) {
                return Err(invalid(
                    "payment_intent_invalid_parameter",
                    &format!("The currency provided ({currency}) is invalid for one or more payment method types on this PaymentIntent: {t}."),
                    Some("currency"),
                ));
            }
        }
        let return_url = field(p, "return_url").map(str::to_string);
        if return_url.is_some() && !confirm {
            return Err(invalid(
                "parameter_invalid_string",
                "return_url can only be passed when confirm=true.",
                Some("return_url"),
            ));
        }
        let mut pi = json!({
            "id": wire::new_id("pi"),
            "object": "payment_intent",
            "amount": amount,
            "amount_received": 0,
            "currency": currency,
            "status": "requires_payment_method",
            "created": now_secs(),
            "livemode": false,
            "description": p.get("description").cloned().unwrap_or(Value::Null),
            "metadata": p.get("metadata").cloned().unwrap_or(json!({})),
            "payment_method_types": types,
            "payment_method": null,
            "latest_charge": null,
            "last_payment_error": null,
            "next_action": null,
            "cancellation_reason": null,
            "canceled_at": null,
            "capture_method": field(p, "capture_method").unwrap_or("automatic"),
        });
        pi["client_secret"] = json!(format!(
            "{}_secret_{}",
            field(&pi, "id").unwrap_or_default(),
            wire::new_id("s")
        ));
        if confirm {
            let kind = data_type.ok_or_else(|| missing("payment_method_data[type]"))?;
            if !types.contains(&kind) {
                return Err(invalid(
                    "payment_intent_invalid_parameter",
                    "payment_method_data[type] is not in payment_method_types",
                    Some("payment_method_data[type]"),
                ));
            }
            if kind == "card" {
                return Err(invalid(
                    "parameter_missing",
                    "Card details are collected on the hosted Checkout page in this sandbox.",
                    Some("payment_method_data[card]"),
                ));
            }
            if needs_return_url(&kind) && return_url.is_none() {
                return Err(missing("return_url"));
            }
            pi["payment_method"] = json!(wire::new_id("pm"));
            pi["status"] = json!("requires_action");
            pi["next_action"] = self.next_action(&pi, &kind, return_url.as_deref());
        }
        let order = pi
            .get("metadata")
            .and_then(|m| field(m, "paygate_order"))
            .map(str::to_string);
        self.create("payment_intent", &pi, order.as_deref());
        Ok(Reply::ok(pi))
    }

    pub(super) fn cancel_intent(
        &self,
        id: &str,
        p: &Value,
        ev: &mut Events,
    ) -> Result<Reply, Reply> {
        let mut pi = self
            .get(id)
            .filter(|_| id.starts_with("pi_"))
            .ok_or_else(|| not_found("payment_intent", id, "intent"))?;
        let reason = field(p, "cancellation_reason");
        if let Some(r) = reason {
            if ![
                "abandoned",
                "duplicate",
                "fraudulent",
                "requested_by_customer",
            ]
            .contains(&r)
            {
                return Err(invalid(
                    "parameter_invalid_string",
                    &format!("Invalid cancellation_reason: {r}"),
                    Some("cancellation_reason"),
                ));
            }
        }
        let status = field(&pi, "status").unwrap_or_default().to_string();
        if ![
            "requires_payment_method",
            "requires_capture",
            "requires_confirmation",
            "requires_action",
            "processing",
        ]
        .contains(&status.as_str())
        {
            return Err(invalid(
                "payment_intent_unexpected_state",
                &format!("You cannot cancel this PaymentIntent because it has a status of {status}. Only a PaymentIntent with one of the following statuses may be canceled: requires_payment_method, requires_capture, requires_confirmation, requires_action, processing."),
                None,
            ));
        }
        pi["status"] = json!("canceled");
        pi["next_action"] = Value::Null;
        pi["cancellation_reason"] = json!(reason.unwrap_or("requested_by_customer"));
        pi["canceled_at"] = json!(now_secs());
        self.put(&pi);
        self.event(ev, "payment_intent.canceled", &pi);
        Ok(Reply::ok(pi))
    }

    pub(super) fn create_session(&self, p: &Value) -> Result<Reply, Reply> {
        if field(p, "mode") != Some("payment") {
            return Err(invalid(
                "parameter_invalid_string",
                "This sandbox supports mode=payment only.",
                Some("mode"),
            ));
        }
        let item = p
            .get("line_items")
            .and_then(|l| l.get(0))
            .ok_or_else(|| missing("line_items"))?;
        let price = item
            .get("price_data")
            .ok_or_else(|| missing("line_items[0][price_data]"))?;
        let currency = field(price, "currency")
            .ok_or_else(|| missing("line_items[0][price_data][currency]"))?
            .to_string();
        let unit = int(price, "unit_amount")?
            .ok_or_else(|| missing("line_items[0][price_data][unit_amount]"))?;
        let quantity = int(item, "quantity")?.ok_or_else(|| missing("line_items[0][quantity]"))?;
        price
            .get("product_data")
            .and_then(|d| field(d, "name"))
            .ok_or_else(|| missing("line_items[0][price_data][product_data][name]"))?;
        let total = unit
            .checked_mul(quantity)
            .ok_or_else(|| invalid("amount_too_large", "Amount too large", Some("line_items")))?;
        check_amount(total, &currency, "line_items[0][price_data][unit_amount]")?;
        let success = field(p, "success_url").ok_or_else(|| missing("success_url"))?;
        let types: Vec<String> = p
            .get("payment_method_types")
            .and_then(Value::as_array)
            .map(|l| {
                l.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_else(|| vec!["card".into()]);
        for t in &types {
            if !method_currencies(t).is_some_and(|c| c.contains(&currency.as_str())) {
                return Err(invalid(
                    "parameter_invalid_string",
                    &format!("The payment method `{t}` does not support {currency}."),
                    Some("payment_method_types"),
                ));
            }
        }
        let now = now_secs();
        let expires = int(p, "expires_at")?.unwrap_or(now + 86_400);
        if expires < now + 1800 || expires > now + 86_400 {
            return Err(invalid("parameter_invalid_integer", "The `expires_at` timestamp must be between 30 minutes and 24 hours from Checkout Session creation.", Some("expires_at")));
        }
        let id = format!("cs_test_{}", &wire::new_id("x")[2..]);
        let cs = json!({
            "id": id,
            "object": "checkout.session",
            "mode": "payment",
            "status": "open",
            "payment_status": "unpaid",
            "amount_total": total,
            "amount_subtotal": total,
            "currency": currency,
            "created": now,
            "expires_at": expires,
            "livemode": false,
            "client_reference_id": p.get("client_reference_id").cloned().unwrap_or(Value::Null),
            "metadata": p.get("metadata").cloned().unwrap_or(json!({})),
            "payment_intent": null,
            "payment_method_types": types,
            "success_url": success,
            "cancel_url": p.get("cancel_url").cloned().unwrap_or(Value::Null),
            "url": format!("{}/hosted/{id}", self.base()),
            "ui_mode": field(p, "ui_mode").unwrap_or("hosted_page"),
        });
        // Kept beside the session, not in it: what the PaymentIntent it makes will carry.
        let intent_meta = p
            .get("payment_intent_data")
            .and_then(|d| d.get("metadata"))
            .cloned()
            .unwrap_or(json!({}));
        let _ = self
            .env
            .state
            .put(&format!("intent_meta:{id}"), &intent_meta);
        let order = field(&cs, "client_reference_id").map(str::to_string);
        self.create("checkout.session", &cs, order.as_deref());
        Ok(Reply::ok(cs))
    }

    pub(super) fn expire_session(&self, id: &str, ev: &mut Events) -> Result<Reply, Reply> {
        let mut cs = self
            .get(id)
            .filter(|_| id.starts_with("cs_"))
            .ok_or_else(|| not_found("checkout.session", id, "session"))?;
        if field(&cs, "status") != Some("open") {
            return Err(invalid(
                "checkout_session_unexpected_state",
                &format!("Only Checkout Sessions with a status in [\"open\"] can be expired. This Checkout Session has a status of \"{}\".", field(&cs, "status").unwrap_or("?")),
                None,
            ));
        }
        cs["status"] = json!("expired");
        cs["url"] = Value::Null;
        self.put(&cs);
        self.event(ev, "checkout.session.expired", &cs);
        Ok(Reply::ok(cs))
    }

    pub(super) fn create_refund(&self, p: &Value) -> Result<Reply, Reply> {
        let pi_id = field(p, "payment_intent").ok_or_else(|| missing("payment_intent"))?;
        let pi = self
            .get(pi_id)
            .filter(|_| pi_id.starts_with("pi_"))
            .ok_or_else(|| not_found("payment_intent", pi_id, "payment_intent"))?;
        if field(&pi, "status") != Some("succeeded") {
            return Err(invalid(
                "payment_intent_unexpected_state",
                &format!(
                    "This PaymentIntent ({pi_id}) does not have a successful charge to refund."
                ),
                None,
            ));
        }
        if let Some(r) = field(p, "reason") {
            if !["duplicate", "fraudulent", "requested_by_customer"].contains(&r) {
                return Err(invalid(
                    "parameter_invalid_string",
                    &format!("Invalid reason: {r}"),
                    Some("reason"),
                ));
            }
        }
        let received = pi
            .get("amount_received")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let left = received - self.refunded(pi_id);
        if left <= 0 {
            return Err(invalid(
                "charge_already_refunded",
                &format!(
                    "Charge {} has already been refunded.",
                    field(&pi, "latest_charge").unwrap_or("?")
                ),
                None,
            ));
        }
        let amount = int(p, "amount")?.unwrap_or(left);
        if amount <= 0 {
            return Err(invalid(
                "parameter_invalid_integer",
                "Refund amount must be positive",
                Some("amount"),
            ));
        }
        if amount > left {
            return Err(invalid(
                "amount_too_large",
                &format!(
                    "Refund amount ({amount}) is greater than unrefunded amount on charge ({left})"
                ),
                Some("amount"),
            ));
        }
        let orphan = crate::simulator::faults::take_one(&self.orphan_refunds);
        let re = json!({
            "id": wire::new_id("re"),
            "object": "refund",
            "amount": amount,
            "currency": field(&pi, "currency"),
            "payment_intent": pi_id,
            "charge": field(&pi, "latest_charge"),
            "status": "pending",
            "reason": p.get("reason").cloned().unwrap_or(Value::Null),
            "failure_reason": null,
            "created": crate::simulator::refund_accepted_at(now_secs() * 1000, orphan) / 1000,
            "metadata": p.get("metadata").cloned().unwrap_or(json!({})),
        });
        self.create("refund", &re, None);
        if !orphan {
            self.schedule_refund(field(&re, "id").unwrap_or_default().to_string());
        }
        Ok(Reply::ok(re))
    }

    /// What the refunds of a PaymentIntent hold back: pending and succeeded ones.
    pub(super) fn refunded(&self, pi_id: &str) -> i64 {
        self.ids("refund")
            .iter()
            .filter_map(|id| self.get(id))
            .filter(|r| field(r, "payment_intent") == Some(pi_id))
            .filter(|r| {
                matches!(
                    field(r, "status"),
                    Some("pending" | "requires_action" | "succeeded")
                )
            })
            .map(|r| r.get("amount").and_then(Value::as_i64).unwrap_or(0))
            .sum()
    }
}
