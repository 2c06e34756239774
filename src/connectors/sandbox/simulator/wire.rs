//! The JSON bodies as the provider sees them, written from the protocol text: requests it
//! parses strictly (an unknown field is a `PARAM_ERROR`, as a real provider would refuse
//! it), answers and callbacks it writes. Separate from the connector's types so that a field
//! renamed on one side breaks the contract tests instead of travelling to both.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `POST /v1/payments`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreatePayment {
    pub out_trade_no: String,
    pub amount: i64,
    pub currency: String,
    pub method: String,
    pub subject: String,
    pub notify_url: String,
    pub expires_at: i64,
    #[serde(default)]
    pub payer_ip: Option<String>,
    #[serde(default)]
    pub return_url: Option<String>,
    /// `barcode` only: the payer's payment code.
    #[serde(default)]
    pub auth_code: Option<String>,
    /// `paynow` asks for an EMVCo QR payload.
    #[serde(default)]
    pub wallet: Option<String>,
}

/// `POST /v1/payments/query` and `POST /v1/payments/close`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TradeRef {
    pub out_trade_no: String,
}

/// `POST /v1/refunds`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRefund {
    pub out_trade_no: String,
    pub out_refund_no: String,
    pub amount: i64,
    pub notify_url: String,
    #[serde(default)]
    pub reason: Option<String>,
}

/// `POST /v1/refunds/query`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefundRef {
    pub out_refund_no: String,
}

/// Answer of `payments`.
#[derive(Debug, Serialize)]
pub struct Created {
    pub trade_no: String,
    pub status: String,
    pub pay_action: PayAction,
}

/// What the payer's client does next, tagged by `type`.
#[derive(Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PayAction {
    QrCode {
        code_url: String,
    },
    Redirect {
        url: String,
    },
    SdkParams {
        params: BTreeMap<String, String>,
    },
    MiniProgram {
        params: BTreeMap<String, String>,
    },
    None,
    EmvQrCode {
        code_url: String,
        emv_payload: String,
    },
}

/// Answer of `payments/query` and `payments/close`.
#[derive(Debug, Serialize)]
pub struct TradeState {
    pub out_trade_no: String,
    pub trade_no: String,
    pub status: String,
    pub amount: i64,
    pub currency: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paid_at: Option<i64>,
}

/// Answer of `refunds` and `refunds/query`.
#[derive(Debug, Serialize)]
pub struct RefundState {
    pub refund_no: String,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<i64>,
}

/// Every 4xx answer, and the gateway's acknowledgement of a callback (`{"code":"SUCCESS"}`),
/// which is why it also parses, leniently.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    #[serde(default)]
    pub message: String,
}

/// The body of a callback, tagged by `event`.
#[derive(Debug, Serialize)]
#[serde(tag = "event")]
pub enum Callback {
    #[serde(rename = "payment.succeeded")]
    PaymentSucceeded {
        out_trade_no: String,
        trade_no: String,
        amount: i64,
        currency: String,
        paid_at: i64,
    },
    #[serde(rename = "refund.succeeded")]
    RefundSucceeded {
        out_trade_no: String,
        out_refund_no: String,
        refund_no: String,
        amount: i64,
    },
    #[serde(rename = "refund.failed")]
    RefundFailed {
        out_trade_no: String,
        out_refund_no: String,
        refund_no: String,
        amount: i64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The shapes the protocol documents, pinned on this side too.
    #[test]
    fn answers_and_callbacks_have_the_documented_shape() {
        let created = Created {
            trade_no: "SBT1".into(),
            status: "PENDING".into(),
            pay_action: PayAction::QrCode {
                code_url: "u".into(),
            },
        };
        assert_eq!(
            serde_json::to_value(&created).unwrap(),
            json!({"trade_no": "SBT1", "status": "PENDING",
                   "pay_action": {"type": "qr_code", "code_url": "u"}})
        );
        let cb = Callback::PaymentSucceeded {
            out_trade_no: "T".into(),
            trade_no: "N".into(),
            amount: 5,
            currency: "CNY".into(),
            paid_at: 7,
        };
        assert_eq!(
            serde_json::to_value(&cb).unwrap(),
            json!({"event": "payment.succeeded", "out_trade_no": "T", "trade_no": "N",
                   "amount": 5, "currency": "CNY", "paid_at": 7})
        );
        assert_eq!(
            serde_json::to_value(PayAction::None).unwrap(),
            json!({"type": "none"})
        );
    }

    #[test]
    fn requests_refuse_unknown_fields() {
        let e = serde_json::from_value::<TradeRef>(json!({"out_trade_no": "x", "extra": 1}))
            .unwrap_err();
        assert!(e.to_string().contains("extra"), "{e}");
        let r: CreateRefund = serde_json::from_value(json!({"out_trade_no": "T",
            "out_refund_no": "R", "amount": 1, "notify_url": "http://h/"}))
        .unwrap();
        assert_eq!(r.reason, None);
    }
}
