//! The transaction-level steps under the `Connector` methods: queries of one transaction,
//! the undo (撤销), the consume's `queryId`, and `origRespCode` / `respCode` → paygate's
//! payment and refund states.

use super::api::parse_txn_time;
use super::api::{txn_time, Fields, Txn, BACK_TRANS, QUERY_TRANS};
use super::{UnionPayConnector, PAID_IDS_KEPT};
use crate::connectors::{Connector, ConnectorError, ProviderPayment, ProviderRefund};
use crate::domain::{Currency, Failure, Money, Order};

impl UnionPayConnector {
    /// queryTrans.do for one transaction: `None` when UnionPay has none (`34`).
    pub(super) async fn query_txn(
        &self,
        order_id: &str,
        time: String,
    ) -> Result<Option<Fields>, ConnectorError> {
        let txn = Txn {
            txn_type: "00",
            sub_type: "00",
            biz_type: "000000",
            channel_type: "",
            order_id,
            txn_time: time,
        };
        match self.call(QUERY_TRANS, &self.signed(&txn, &[])).await {
            Ok(a) => {
                Self::same_order(&a, order_id)?;
                Ok(Some(a))
            }
            Err(ConnectorError::Rejected { code, .. }) if code == "34" => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Undo (撤销) of a payer-code consume: cancels one still waiting for the payer, or
    /// reverses one that went through the same day. Its `orderId` and `txnTime` derive from
    /// the consume's, so a retried close re-sends the same undo and a query can find it.
    pub(super) async fn undo(&self, order: &Order, query_id: &str) -> Result<(), ConnectorError> {
        let undo_ref = undo_order_id(order.id.provider_ref());
        let txn = Txn {
            txn_type: "31",
            sub_type: "00",
            biz_type: "000000",
            channel_type: &self.mobile_channel_type,
            order_id: &undo_ref,
            txn_time: txn_time(order.created_at),
        };
        let f = self.signed(
            &txn,
            &[
                ("txnAmt", order.spec.amount.minor().to_string()),
                ("origQryId", query_id.to_string()),
                ("backUrl", self.env.callback_url.clone()),
            ],
        );
        match self.call(BACK_TRANS, &f).await {
            Ok(_) => Ok(()),
            // 12: this undo was already received (a retry).
            Err(ConnectorError::Rejected { code, .. }) if code == "12" => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl UnionPayConnector {
    pub(super) fn remember_paid(&self, order_ref: &str, payment: &ProviderPayment) {
        if let ProviderPayment::Paid {
            provider_transaction_id,
            ..
        } = payment
        {
            let mut ids = self.paid_ids.lock();
            if ids.len() >= PAID_IDS_KEPT {
                ids.clear();
            }
            ids.insert(order_ref.to_string(), provider_transaction_id.clone());
        }
    }

    /// Whether UnionPay has carried out an undo of this order's consume.
    pub(super) async fn undone(&self, order: &Order) -> Result<bool, ConnectorError> {
        let undo_ref = undo_order_id(order.id.provider_ref());
        Ok(
            match self
                .query_txn(&undo_ref, txn_time(order.created_at))
                .await?
            {
                Some(a) => a.get("origRespCode").map(String::as_str) == Some("00"),
                None => false,
            },
        )
    }

    /// The consume's `queryId` (`origQryId` of refunds): recorded with the payment, or
    /// asked for. A consume that is not paid cannot be refunded.
    pub(super) async fn paid_query_id(&self, order: &Order) -> Result<String, ConnectorError> {
        if let Some(id) = order.provider_transaction_id() {
            return Ok(id.to_string());
        }
        if let Some(id) = self.paid_ids.lock().get(order.id.provider_ref()) {
            return Ok(id.clone());
        }
        match self.query(order).await?.payment {
            ProviderPayment::Paid {
                provider_transaction_id,
                ..
            } => Ok(provider_transaction_id),
            other => Err(ConnectorError::Rejected {
                code: "35".into(),
                message: format!("the consume is not paid ({other:?})"),
            }),
        }
    }
}

/// The undo's own `orderId`: derived from the consume's, so a retried close re-sends
/// the same one (UnionPay refuses a duplicate with `12`).
pub(crate) fn undo_order_id(order_ref: &str) -> String {
    format!("{order_ref}U")
}

/// `origRespCode` (or a notification's `respCode`) of a consume → the payment.
pub(super) fn map_payment(code: &str, fields: &Fields) -> Result<ProviderPayment, ConnectorError> {
    match code {
        "00" | "A6" => {
            if fields
                .get("currencyCode")
                .map(String::as_str)
                .unwrap_or("156")
                != "156"
            {
                return Err(ConnectorError::Protocol("currencyCode is not 156".into()));
            }
            let amt: i64 = UnionPayConnector::required(fields, "txnAmt")?
                .parse()
                .map_err(|_| ConnectorError::Protocol("txnAmt is not a number".into()))?;
            Ok(ProviderPayment::Paid {
                amount: Money::new(amt, Currency::Cny)
                    .map_err(|e| ConnectorError::Protocol(format!("txnAmt: {e}")))?,
                provider_transaction_id: UnionPayConnector::required(fields, "queryId")?,
                paid_at: fields
                    .get("txnTime")
                    .and_then(|t| parse_txn_time(t))
                    .unwrap_or_else(crate::protocol_primitives::beijing_time::now_millis),
            })
        }
        "03" | "04" | "05" => Ok(ProviderPayment::Pending),
        other => Ok(ProviderPayment::Failed(Failure {
            code: other.to_string(),
            message: fields
                .get("origRespMsg")
                .or_else(|| fields.get("respMsg"))
                .cloned()
                .unwrap_or_default(),
        })),
    }
}

pub(super) fn map_refund(code: &str, fields: &Fields) -> ProviderRefund {
    match code {
        "00" | "A6" => ProviderRefund::Succeeded {
            provider_refund_id: fields.get("queryId").cloned(),
        },
        "03" | "04" | "05" => ProviderRefund::Pending,
        other => ProviderRefund::Failed(Failure {
            code: other.to_string(),
            message: fields
                .get("origRespMsg")
                .or_else(|| fields.get("respMsg"))
                .cloned()
                .unwrap_or_default(),
        }),
    }
}
