//! Placing a payment (`pay`, CASHIER_PAYMENT) and reading payments (`inquiryPayment`):
//! the request body, where the answer sends the payer, and `paymentStatus`.

use serde_json::{json, Value};

use super::api::{self, amount_json, parse_amount, Answer};
use super::{AntomConnector, MAX_DESCRIPTION_CHARS};
use crate::connectors::{ConnectorError, ProviderPayment};
use crate::domain::{Failure, Method, Order, PayAction};

impl AntomConnector {
    pub(super) fn pay_body(&self, order: &Order) -> Result<Value, ConnectorError> {
        let spec = &order.spec;
        let wallet = self.wallet(order)?;
        let method_type = wallet
            .method_type(spec.amount.currency())
            .ok_or_else(|| ConnectorError::Unsupported("currency".into()))?;
        let terminal = match spec.method {
            Method::App => "APP",
            Method::H5 => "WAP",
            _ => "WEB",
        };
        let reference = order.id.provider_ref();
        let amount = amount_json(&spec.amount);
        let redirect = spec
            .return_url
            .clone()
            .or_else(|| self.default_redirect_url.clone())
            .unwrap_or_else(|| self.env.public_url.clone());
        Ok(json!({
            "productCode": "CASHIER_PAYMENT",
            "paymentRequestId": reference,
            "order": {
                "referenceOrderId": reference,
                "orderDescription": spec.subject.chars().take(MAX_DESCRIPTION_CHARS).collect::<String>(),
                "orderAmount": amount,
            },
            "paymentAmount": amount,
            "paymentMethod": { "paymentMethodType": method_type },
            "env": { "terminalType": terminal },
            "paymentRedirectUrl": redirect,
            "paymentNotifyUrl": self.env.callback_url,
            "paymentExpiryTime": crate::protocol_primitives::beijing_time::format_rfc3339_cst(spec.expires_at),
        }))
    }

    /// What the payer's client needs, from a placed payment's answer.
    pub(super) fn pay_action(method: Method, a: &Answer) -> Result<PayAction, ConnectorError> {
        let missing = |what: &str| {
            ConnectorError::Protocol(format!(
                "pay answered without {what} for `{}`",
                method.as_str()
            ))
        };
        match method {
            Method::App => a
                .str("applinkUrl")
                .or_else(|| a.str("schemeUrl"))
                .or_else(|| a.str("normalUrl"))
                .map(|u| PayAction::AppLink { url: u.into() })
                .ok_or_else(|| missing("applinkUrl / schemeUrl")),
            Method::NativeQr => {
                let code = a
                    .body
                    .pointer("/orderCodeForm/codeDetails")
                    .and_then(Value::as_array)
                    .and_then(|d| d.iter().filter_map(|c| api::str_at(c, "codeValue")).next())
                    .ok_or_else(|| missing("orderCodeForm codeValue"))?;
                Ok(if crate::protocol_primitives::emv::parse(code).is_ok() {
                    PayAction::EmvQrCode {
                        code_url: code.into(),
                        emv_payload: code.into(),
                    }
                } else {
                    PayAction::QrCode {
                        code_url: code.into(),
                    }
                })
            }
            _ => a
                .str("normalUrl")
                .map(|u| PayAction::Redirect { url: u.into() })
                .ok_or_else(|| missing("normalUrl")),
        }
    }
}

/// `paymentStatus` → the state machine's view.
pub(super) fn map_payment(a: &Answer, now: i64) -> Result<ProviderPayment, ConnectorError> {
    let status = a.str("paymentStatus").unwrap_or_default();
    Ok(match status {
        "SUCCESS" => ProviderPayment::Paid {
            amount: parse_amount(a.body.get("paymentAmount"))
                .map_err(ConnectorError::Protocol)?
                .ok_or_else(|| ConnectorError::Protocol("paid without paymentAmount".into()))?,
            provider_transaction_id: a
                .str("paymentId")
                .ok_or_else(|| ConnectorError::Protocol("paid without paymentId".into()))?
                .into(),
            paid_at: a
                .str("paymentTime")
                .and_then(crate::protocol_primitives::beijing_time::parse_rfc3339)
                .unwrap_or(now),
        },
        "PROCESSING" | "PENDING" => ProviderPayment::Pending,
        "CANCELLED" => ProviderPayment::Closed,
        "FAIL" => ProviderPayment::Failed(Failure {
            code: a.str("paymentResultCode").unwrap_or("FAIL").into(),
            message: a.str("paymentResultMessage").unwrap_or_default().into(),
        }),
        other => {
            return Err(ConnectorError::Protocol(format!(
                "unknown paymentStatus `{other}`"
            )))
        }
    })
}

pub(super) fn now() -> i64 {
    crate::protocol_primitives::beijing_time::now_millis()
}
