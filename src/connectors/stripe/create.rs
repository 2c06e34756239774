//! Placing an order at Stripe: the PaymentIntent or Checkout Session parameters, built
//! from the order alone (no clock, no randomness) so that a retried create sends exactly
//! the first one's parameters under the same idempotency key, and the pay action read
//! from a confirmed PaymentIntent's `next_action`.

use serde_json::{json, Value};

use super::amounts::{self, WalletRule};
use super::objects::{str_of, FLOW_KEY, ORDER_KEY};
use super::StripeConnector;
use crate::connectors::ConnectorError;
use crate::domain::{Method, Order, PayAction};

impl StripeConnector {
    pub(super) fn return_url(&self, order: &Order) -> String {
        order
            .spec
            .return_url
            .clone()
            .unwrap_or_else(|| format!("{}/", self.env.public_url.trim_end_matches('/')))
    }

    /// Every parameter is derived from the order alone (no clock), so a retried create
    /// sends exactly the first one's parameters and Stripe replays its answer.
    pub(super) fn intent_params(
        &self,
        order: &Order,
        rule: &WalletRule,
    ) -> Result<Value, ConnectorError> {
        let (amount, currency) = amounts::to_stripe(order.spec.amount)?;
        let kind = rule.wallet;
        let mut p = json!({
            "amount": amount,
            "currency": currency,
            "confirm": true,
            "payment_method_types": [kind],
            "payment_method_data": {"type": kind},
            "description": order.spec.subject.chars().take(1000).collect::<String>(),
            "metadata": {ORDER_KEY: order.id.provider_ref()},
            "return_url": self.return_url(order),
        });
        if kind == "wechat_pay" {
            p["payment_method_options"] = json!({"wechat_pay": {"client": "web"}});
        }
        Ok(p)
    }

    pub(super) fn session_params(
        &self,
        order: &Order,
        rule: &WalletRule,
    ) -> Result<Value, ConnectorError> {
        let (amount, currency) = amounts::to_stripe(order.spec.amount)?;
        let created = order.created_at / 1000;
        // Stripe takes 30 minutes to 24 hours; paygate closes the session when the order
        // expires if that comes first.
        let expires_at =
            (order.spec.expires_at / 1000).clamp(created + 31 * 60, created + 23 * 3600);
        let back = self.return_url(order);
        Ok(json!({
            "mode": "payment",
            "line_items": [{
                "price_data": {
                    "currency": currency,
                    "unit_amount": amount,
                    "product_data": {"name": order.spec.subject.chars().take(250).collect::<String>()},
                },
                "quantity": 1,
            }],
            "payment_method_types": [rule.wallet],
            "client_reference_id": order.id.provider_ref(),
            "metadata": {ORDER_KEY: order.id.provider_ref()},
            "payment_intent_data": {"metadata": {ORDER_KEY: order.id.provider_ref(), FLOW_KEY: "checkout"}},
            "success_url": back,
            "cancel_url": back,
            "expires_at": expires_at,
        }))
    }

    /// What the payer's client does next, from a confirmed PaymentIntent's `next_action`.
    pub(super) fn intent_action(pi: &Value, method: Method) -> Result<PayAction, ConnectorError> {
        let na = pi
            .get("next_action")
            .filter(|v| !v.is_null())
            .ok_or_else(
                || match pi.get("last_payment_error").filter(|e| !e.is_null()) {
                    Some(e) => ConnectorError::Rejected {
                        code: str_of(e, "code").unwrap_or("payment_failed").to_string(),
                        message: str_of(e, "message").unwrap_or("payment failed").to_string(),
                    },
                    None => ConnectorError::Protocol(format!(
                        "PaymentIntent in `{}` without next_action",
                        str_of(pi, "status").unwrap_or("?")
                    )),
                },
            )?;
        let kind = str_of(na, "type").unwrap_or_default();
        let detail = na.get(kind).cloned().unwrap_or(Value::Null);
        let field = |k: &str| {
            str_of(&detail, k).map(str::to_string).ok_or_else(|| {
                ConnectorError::Protocol(format!("next_action {kind} without `{k}`"))
            })
        };
        let page = || field("hosted_instructions_url").or_else(|_| field("image_url_png"));
        match (kind, method) {
            ("wechat_pay_display_qr_code", Method::NativeQr) => Ok(PayAction::QrCode {
                code_url: field("data")?,
            }),
            ("paynow_display_qr_code" | "promptpay_display_qr_code", Method::NativeQr) => {
                Ok(PayAction::EmvQrCode {
                    code_url: page()?,
                    emv_payload: field("data")?,
                })
            }
            (
                "wechat_pay_display_qr_code"
                | "paynow_display_qr_code"
                | "promptpay_display_qr_code",
                _,
            ) => Ok(PayAction::Redirect { url: page()? }),
            ("alipay_handle_redirect" | "redirect_to_url", _) => {
                Ok(PayAction::Redirect { url: field("url")? })
            }
            (other, _) => Err(ConnectorError::Protocol(format!(
                "unexpected next_action `{other}`"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_actions_become_pay_actions() {
        let pi = |kind: &str, detail: Value| json!({"status": "requires_action", "next_action": {"type": kind, kind: detail}});
        let paynow = pi(
            "paynow_display_qr_code",
            json!({"data": "000201...6304ABCD", "hosted_instructions_url": "https://x/i", "image_url_png": "https://x/p.png"}),
        );
        assert_eq!(
            StripeConnector::intent_action(&paynow, Method::NativeQr).unwrap(),
            PayAction::EmvQrCode {
                code_url: "https://x/i".into(),
                emv_payload: "000201...6304ABCD".into()
            }
        );
        assert_eq!(
            StripeConnector::intent_action(&paynow, Method::H5).unwrap(),
            PayAction::Redirect {
                url: "https://x/i".into()
            }
        );
        let wx = pi(
            "wechat_pay_display_qr_code",
            json!({"data": "weixin://wxpay/bizpayurl?pr=x", "hosted_instructions_url": "https://x/w"}),
        );
        assert_eq!(
            StripeConnector::intent_action(&wx, Method::NativeQr).unwrap(),
            PayAction::QrCode {
                code_url: "weixin://wxpay/bizpayurl?pr=x".into()
            }
        );
        let ali = pi(
            "alipay_handle_redirect",
            json!({"url": "https://x/a", "return_url": "https://shop/"}),
        );
        assert_eq!(
            StripeConnector::intent_action(&ali, Method::H5).unwrap(),
            PayAction::Redirect {
                url: "https://x/a".into()
            }
        );
        let declined = json!({"status": "requires_payment_method", "last_payment_error": {"code": "payment_method_provider_decline", "message": "no"}});
        assert!(
            matches!(StripeConnector::intent_action(&declined, Method::H5), Err(ConnectorError::Rejected { code, .. }) if code == "payment_method_provider_decline")
        );
        assert!(
            StripeConnector::intent_action(&pi("use_stripe_sdk", json!({})), Method::H5).is_err()
        );
    }
}
