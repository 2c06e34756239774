//! Wire DTOs of the APIv3 endpoints the connector calls (the simulator has its own).
//! Direct merchants use `appid`/`mchid`; service providers (服务商) the partner endpoints
//! with `sp_appid`/`sp_mchid` + `sub_appid`/`sub_mchid`, so both sets are optional.

use serde::{Deserialize, Serialize};

use crate::connectors::{ProviderPayment, ProviderRefund};
use crate::domain::{Currency, Failure, Money};

use super::time::parse_rfc3339;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PrepayRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mchid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sp_appid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sp_mchid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_appid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_mchid: Option<String>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub out_trade_no: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_expire: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attach: Option<String>,
    #[serde(default)]
    pub notify_url: String,
    #[serde(default)]
    pub amount: AmountReq,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer: Option<Payer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scene_info: Option<SceneInfo>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AmountReq {
    #[serde(default)]
    pub total: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Payer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sp_openid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_openid: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SceneInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer_client_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub h5_info: Option<H5Info>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct H5Info {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_url: Option<String>,
}

/// `{"prepay_id"}` (JSAPI, APP), `{"h5_url"}`, `{"code_url"}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PrepayResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prepay_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub h5_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_url: Option<String>,
}

/// Close body: `{"mchid"}` or `{"sp_mchid","sub_mchid"}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CloseRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mchid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sp_mchid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_mchid: Option<String>,
}

/// The `Transaction` of a query answer and of a decrypted `TRANSACTION.SUCCESS` resource.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Transaction {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mchid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sp_appid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sp_mchid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_appid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_mchid: Option<String>,
    pub out_trade_no: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trade_type: Option<String>,
    pub trade_state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trade_state_desc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bank_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attach: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer: Option<Payer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<TransactionAmount>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TransactionAmount {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer_total: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer_currency: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RefundRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_mchid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_trade_no: Option<String>,
    #[serde(default)]
    pub out_refund_no: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_url: Option<String>,
    #[serde(default)]
    pub amount: RefundAmountReq,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RefundAmountReq {
    #[serde(default)]
    pub refund: i64,
    #[serde(default)]
    pub total: i64,
    #[serde(default)]
    pub currency: String,
}

/// A refund as answered by create/query (`status`) and as decrypted from a `REFUND.*`
/// callback (`refund_status`, plus `mchid`/`sp_mchid`/`sub_mchid`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RefundRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mchid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sp_mchid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_mchid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_id: Option<String>,
    pub out_refund_no: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_trade_no: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_received_account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub funds_account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<RefundAmount>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RefundAmount {
    pub total: i64,
    pub refund: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer_total: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer_refund: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

/// The callback envelope; only `resource` is encrypted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NotifyEnvelope {
    pub id: String,
    pub create_time: String,
    pub resource_type: String,
    pub event_type: String,
    #[serde(default)]
    pub summary: String,
    pub resource: EncryptedResource,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EncryptedResource {
    #[serde(default)]
    pub original_type: String,
    pub algorithm: String,
    pub ciphertext: String,
    #[serde(default)]
    pub associated_data: Option<String>,
    pub nonce: String,
}

/// WeChat's error body: `{"code":"PARAM_ERROR","message":"..."}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

/// Maps a `trade_state`. `REFUND` means the trade was paid (and later refunded).
pub fn map_trade(tx: &Transaction) -> Result<ProviderPayment, String> {
    Ok(match tx.trade_state.as_str() {
        "NOTPAY" | "USERPAYING" => ProviderPayment::Pending,
        "CLOSED" | "REVOKED" => ProviderPayment::Closed,
        "PAYERROR" => ProviderPayment::Failed(Failure {
            code: "PAYERROR".into(),
            message: tx
                .trade_state_desc
                .clone()
                .unwrap_or_else(|| "payment failed".into()),
        }),
        "SUCCESS" | "REFUND" => {
            let amount = tx.amount.as_ref().ok_or("paid trade without amount")?;
            let total = amount.total.ok_or("paid trade without amount.total")?;
            let currency: Currency = amount
                .currency
                .as_deref()
                .unwrap_or("CNY")
                .parse()
                .map_err(|_| "unknown currency in trade")?;
            ProviderPayment::Paid {
                amount: Money::new(total, currency).map_err(|e| e.to_string())?,
                provider_transaction_id: tx
                    .transaction_id
                    .clone()
                    .ok_or("paid trade without transaction_id")?,
                paid_at: tx
                    .success_time
                    .as_deref()
                    .and_then(parse_rfc3339)
                    .ok_or("paid trade without a valid success_time")?,
            }
        }
        other => return Err(format!("unknown trade_state `{other}`")),
    })
}

/// Maps a refund `status` / `refund_status`.
pub fn map_refund(r: &RefundRecord) -> Result<ProviderRefund, String> {
    let status = r
        .status
        .as_deref()
        .or(r.refund_status.as_deref())
        .ok_or("refund without status")?;
    Ok(match status {
        "SUCCESS" => ProviderRefund::Succeeded {
            provider_refund_id: r.refund_id.clone(),
        },
        "PROCESSING" => ProviderRefund::Pending,
        "CLOSED" => ProviderRefund::Failed(Failure {
            code: "CLOSED".into(),
            message: "refund closed by WeChat Pay".into(),
        }),
        "ABNORMAL" => ProviderRefund::Failed(Failure {
            code: "ABNORMAL".into(),
            message: "refund abnormal: the payer's account cannot receive it; handle it in the merchant platform".into(),
        }),
        other => return Err(format!("unknown refund status `{other}`")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tx(state: &str) -> Transaction {
        Transaction {
            out_trade_no: "X".into(),
            trade_state: state.into(),
            transaction_id: Some("4200000001".into()),
            success_time: Some("2024-01-02T03:04:05+08:00".into()),
            amount: Some(TransactionAmount {
                total: Some(100),
                currency: Some("CNY".into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn every_trade_state_is_mapped() {
        assert_eq!(map_trade(&tx("NOTPAY")).unwrap(), ProviderPayment::Pending);
        assert_eq!(
            map_trade(&tx("USERPAYING")).unwrap(),
            ProviderPayment::Pending
        );
        assert_eq!(map_trade(&tx("CLOSED")).unwrap(), ProviderPayment::Closed);
        assert_eq!(map_trade(&tx("REVOKED")).unwrap(), ProviderPayment::Closed);
        assert!(
            matches!(map_trade(&tx("PAYERROR")).unwrap(), ProviderPayment::Failed(f) if f.code == "PAYERROR")
        );
        for paid in ["SUCCESS", "REFUND"] {
            match map_trade(&tx(paid)).unwrap() {
                ProviderPayment::Paid {
                    amount,
                    provider_transaction_id,
                    ..
                } => {
                    assert_eq!(amount, Money::new(100, Currency::Cny).unwrap());
                    assert_eq!(provider_transaction_id, "4200000001");
                }
                other => panic!("{paid}: {other:?}"),
            }
        }
        assert!(map_trade(&tx("WEIRD")).is_err());
    }

    #[test]
    fn every_refund_status_is_mapped() {
        let r = |s: &str| RefundRecord {
            out_refund_no: "R".into(),
            status: Some(s.into()),
            refund_id: Some("50000".into()),
            ..Default::default()
        };
        assert_eq!(
            map_refund(&r("SUCCESS")).unwrap(),
            ProviderRefund::Succeeded {
                provider_refund_id: Some("50000".into())
            }
        );
        assert_eq!(
            map_refund(&r("PROCESSING")).unwrap(),
            ProviderRefund::Pending
        );
        assert!(matches!(
            map_refund(&r("CLOSED")).unwrap(),
            ProviderRefund::Failed(_)
        ));
        assert!(matches!(
            map_refund(&r("ABNORMAL")).unwrap(),
            ProviderRefund::Failed(_)
        ));
        assert!(map_refund(&r("??")).is_err());
    }
}
