//! JSON bodies of the sandbox protocol as the gateway writes requests and reads answers
//! (the simulator has its own types for the other direction). Requests would be parsed
//! strictly by a provider (unknown fields are a `PARAM_ERROR`), answers and callbacks are
//! read leniently, as a client of a real provider must tolerate fields added later.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `POST /v1/payments`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreatePayment {
    pub out_trade_no: String,
    pub amount: i64,
    pub currency: String,
    pub method: String,
    pub subject: String,
    pub notify_url: String,
    pub expires_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_url: Option<String>,
    /// `barcode` only: the payer's payment code, 10-32 digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_code: Option<String>,
    /// The wallet the payer pays with, where the merchant chose one (`paynow` answers an
    /// EMVCo QR payload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wallet: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Created {
    pub trade_no: String,
    pub status: String,
    pub pay_action: WirePayAction,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WirePayAction {
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
    /// `barcode`: nothing for the payer to do.
    None,
    /// An EMVCo merchant-presented QR (PayNow): the payload the payer's banking app scans,
    /// and a checkout page showing it.
    EmvQrCode {
        code_url: String,
        emv_payload: String,
    },
}

/// `POST /v1/payments/query` and `POST /v1/payments/close`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TradeRef {
    pub out_trade_no: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TradeState {
    pub out_trade_no: String,
    pub trade_no: String,
    /// `PENDING`, `PAID`, `CLOSED` or `FAILED`.
    pub status: String,
    /// The paid amount once `PAID`, the requested amount before.
    pub amount: i64,
    pub currency: String,
    /// Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paid_at: Option<i64>,
}

/// `POST /v1/refunds`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRefund {
    pub out_trade_no: String,
    pub out_refund_no: String,
    pub amount: i64,
    pub notify_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `POST /v1/refunds/query`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefundRef {
    pub out_refund_no: String,
}

/// Answer of both `refunds` (`amount` included) and `refunds/query`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundState {
    pub refund_no: String,
    /// `PROCESSING`, `SUCCESS` or `FAILED`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<i64>,
}

/// Every 4xx answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    #[serde(default)]
    pub message: String,
}

/// Body of a provider callback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event")]
pub enum Callback {
    #[serde(rename = "payment.succeeded")]
    PaymentSucceeded {
        out_trade_no: String,
        trade_no: String,
        amount: i64,
        currency: String,
        /// Unix seconds.
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

    /// Golden shapes: a renamed field would pass every round trip through these same types;
    /// these pin the names on the wire.
    #[test]
    fn request_and_callback_field_names_are_fixed() {
        let req = CreatePayment {
            out_trade_no: "0123456789ABCDEFGHJKMNPQ".into(),
            amount: 1234,
            currency: "CNY".into(),
            method: "native_qr".into(),
            subject: "Tea".into(),
            notify_url: "http://127.0.0.1:8080/callbacks/sandbox".into(),
            expires_at: 1_700_000_900,
            payer_ip: None,
            return_url: Some("https://shop.example/done".into()),
            auth_code: None,
            wallet: None,
        };
        assert_eq!(
            serde_json::to_value(&req).unwrap(),
            json!({"out_trade_no": "0123456789ABCDEFGHJKMNPQ", "amount": 1234, "currency": "CNY",
                   "method": "native_qr", "subject": "Tea",
                   "notify_url": "http://127.0.0.1:8080/callbacks/sandbox",
                   "expires_at": 1_700_000_900, "return_url": "https://shop.example/done"})
        );
        let cb = Callback::RefundSucceeded {
            out_trade_no: "T".into(),
            out_refund_no: "R".into(),
            refund_no: "N".into(),
            amount: 5,
        };
        assert_eq!(
            serde_json::to_value(&cb).unwrap(),
            json!({"event": "refund.succeeded", "out_trade_no": "T", "out_refund_no": "R",
                   "refund_no": "N", "amount": 5})
        );
        let pa = WirePayAction::QrCode {
            code_url: "u".into(),
        };
        assert_eq!(
            serde_json::to_value(&pa).unwrap(),
            json!({"type": "qr_code", "code_url": "u"})
        );
    }

    #[test]
    fn requests_refuse_unknown_fields_answers_tolerate_them() {
        let e = serde_json::from_value::<TradeRef>(json!({"out_trade_no": "x", "extra": 1}))
            .unwrap_err();
        assert!(e.to_string().contains("extra"), "{e}");
        let ok: ErrorBody =
            serde_json::from_value(json!({"code": "X", "message": "m", "hint": "h"})).unwrap();
        assert_eq!(ok.code, "X");
    }
}
