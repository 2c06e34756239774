//! UnionPay online gateway (全渠道 / 云闪付), protocol 5.1.0. Pointing `base_url` at
//! `https://gateway.95516.com` (test: `https://gateway.test.95516.com`) with the merchant's
//! `.pfx` and UnionPay's production (test) root + middle certificates is the only change
//! needed to leave the simulator.
//!
//! # The protocol, as this connector speaks it (the simulator is written from this)
//!
//! Every request is a form POST (`application/x-www-form-urlencoded;charset=UTF-8`) with
//! `version=5.1.0`, `encoding=utf-8`, `signMethod=01`, `accessType=0`, `merId` (15
//! characters), `certId` (decimal serial of the merchant's signing certificate),
//! `txnType`, `txnSubType`, `bizType`, `channelType`, `orderId` (8–40 letters and digits,
//! unique per `merId` and day), `txnTime` (`YYYYMMDDhhmmss`, Beijing time), and
//! `signature` ([`sign`]). Amounts are `txnAmt` in fen with `currencyCode=156` (CNY only).
//!
//! | method | endpoint | txnType/SubType | bizType | answer |
//! |---|---|---|---|---|
//! | `pc_web`, `h5` | `gateway/api/frontTransReq.do`, posted by the payer's browser | 01/01 | 000201 | the cashier page |
//! | `app` | `gateway/api/appTransReq.do` | 01/01 | 000201 | `tn` for the UPPay / 云闪付 SDK |
//! | `native_qr` (申码) | `gateway/api/backTransReq.do` | 01/07 | 000000 | `qrCode` |
//! | `barcode` (被扫, `qrNo` = payer code) | `gateway/api/backTransReq.do` | 01/06 | 000000 | accepted; result by notification / query |
//! | undo (撤销): cancel a waiting payer code; same-day full refund | `gateway/api/backTransReq.do` | 31/00 | 000000 | accepted, `origQryId` = the consume's `queryId` |
//! | refund (退货) | `gateway/api/backTransReq.do` | 04/00 | 000201 / 000000 | accepted, `origQryId`; result by notification / query |
//! | query | `gateway/api/queryTrans.do` | 00/00 | 000000 | `origRespCode` of the transaction `orderId` + `txnTime` |
//!
//! Synchronous answers are raw `k=v&…` strings ([`wire`]), signed like notifications:
//! `signPubKeyCert` must pass [`certs::Trust::validate`] before its key checks `signature`.
//! `respCode` `00` = accepted (for back transactions the final result comes later);
//! `03`/`04`/`05` = outcome unknown, query; `34` on a query = no such transaction; any
//! other code is a refusal. A query's `origRespCode` is the transaction's result: `00`
//! (or `A6`) done, `03`/`04`/`05` still processing, anything else failed.
//!
//! backUrl notifications are form POSTs of the answer-shaped fields (`txnType` 01
//! payment, 04 refund, 31 undo; `respCode` 00/A6 = success), signed the same way. UnionPay
//! retries until it gets HTTP 200.
//!
//! Mapping choices: a payment's `txnTime` is the order's creation time, a refund's the
//! refund's, so queries can always name them. `close` has nothing to cancel for an unpaid
//! consume (UnionPay ends it at `payTimeout`, sent as the order's expiry); a payer code
//! still waiting for its payer is cancelled by an undo (txnType 31), so a payer code whose
//! outcome stayed unknown ends either paid or reversed. A refund of the whole payment on
//! the day of the consume is sent as an undo (消费撤销) under the refund's own `orderId`,
//! any other as a refund (退货); both settle by notification or query the same way.

use async_trait::async_trait;

use crate::domain::{Currency, Method, Order, PayAction, Refund};

use super::{
    require, Ack, Capabilities, Connector, ConnectorEnv, ConnectorError, Mismatch, Notification,
    ProviderPayment, ProviderRefund, QueryResult, RawCallback,
};

mod api;
pub mod certs;
mod notify;
pub mod settings;
pub mod sign;
pub mod simulator;
mod txn;
pub mod wire;

#[cfg(test)]
pub(crate) mod conformance;
#[cfg(test)]
pub(crate) mod tests;

use crate::protocol_primitives::rsa::RsaSigner;
use api::{txn_time, Fields, Txn, APP_TRANS, BACK_TRANS, FRONT_TRANS};
use certs::Trust;
use txn::{map_payment, map_refund};

/// `txnAmt` is N1..12 fen.
const MAX_TXN_AMT: i64 = 999_999_999_999;

pub struct UnionPayConnector {
    mer_id: String,
    cert_id: String,
    signer: RsaSigner,
    trust: Trust,
    pc_channel_type: String,
    mobile_channel_type: String,
    env: ConnectorEnv,
    /// The time certificates are checked at.
    now_ms: fn() -> i64,
    /// `queryId`s of consumes this connector saw verified as paid (query or notification),
    /// by `orderId`: a refund names the consume by `origQryId`, and an order handed to
    /// `refund` before the engine recorded its payment then needs no extra query.
    paid_ids: parking_lot::Mutex<std::collections::HashMap<String, String>>,
}

/// Bound of [`UnionPayConnector::paid_ids`]; past it the memory starts over (the engine's
/// recorded `provider_transaction_id` is the real source, this only saves a query).
const PAID_IDS_KEPT: usize = 10_000;

impl UnionPayConnector {
    pub fn new(table: &toml::Table, env: ConnectorEnv) -> Result<Self, ConnectorError> {
        let s = settings::Settings::parse(table).map_err(ConnectorError::Config)?;
        let loaded = s.load().map_err(ConnectorError::Config)?;
        Ok(UnionPayConnector {
            mer_id: s.mer_id,
            cert_id: loaded.cert_id,
            signer: loaded.signer,
            trust: loaded.trust,
            pc_channel_type: s.pc_channel_type,
            mobile_channel_type: s.mobile_channel_type,
            env,
            now_ms: crate::protocol_primitives::beijing_time::now_millis,
            paid_ids: Default::default(),
        })
    }

    fn consume_fields(
        &self,
        order: &Order,
        sub_type: &str,
        biz_type: &str,
        channel_type: &str,
        extra: Vec<(&str, String)>,
    ) -> Fields {
        let txn = Txn {
            txn_type: "01",
            sub_type,
            biz_type,
            channel_type,
            order_id: order.id.provider_ref(),
            txn_time: txn_time(order.created_at),
        };
        let mut all = vec![
            ("txnAmt", order.spec.amount.minor().to_string()),
            ("currencyCode", "156".into()),
            ("backUrl", self.env.callback_url.clone()),
            ("payTimeout", txn_time(order.spec.expires_at)),
        ];
        all.extend(extra);
        self.signed(&txn, &all)
    }

    /// The answer names our transaction, or it is not our answer.
    fn same_order(answer: &Fields, order_id: &str) -> Result<(), ConnectorError> {
        match answer.get("orderId") {
            Some(o) if o != order_id => Err(ConnectorError::Protocol(format!(
                "UnionPay answered for orderId {o}, not {order_id}"
            ))),
            _ => Ok(()),
        }
    }

    fn required(answer: &Fields, key: &str) -> Result<String, ConnectorError> {
        answer
            .get(key)
            .filter(|v| !v.is_empty())
            .cloned()
            .ok_or_else(|| ConnectorError::Protocol(format!("answer without `{key}`")))
    }
}

/// Whether `refund` gives back the whole payment, alone, on the Beijing day of the consume.
fn is_same_day_full_refund(order: &Order, refund: &Refund, now: i64) -> bool {
    let day = |ms: i64| txn_time(ms)[..8].to_string();
    refund.amount == order.spec.amount
        && order.refunds().iter().all(|r| r.id == refund.id)
        && day(order.created_at) == day(now)
}

#[async_trait]
impl Connector for UnionPayConnector {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            methods: vec![
                Method::PcWeb,
                Method::H5,
                Method::App,
                Method::NativeQr,
                Method::Barcode,
            ],
            wallets: Vec::new(),
            currencies: vec![Currency::Cny],
            min_amount: 1,
            max_amount: MAX_TXN_AMT,
        }
    }

    fn validate(&self, order: &Order) -> Result<(), ConnectorError> {
        super::check_offered(&self.capabilities(), order)?;
        let spec = &order.spec;
        require(spec.amount.currency() == Currency::Cny, || {
            "UnionPay's online gateway charges in CNY only".into()
        })?;
        if spec.amount.minor() > MAX_TXN_AMT {
            return Err(ConnectorError::InvalidRequest {
                param: "amount",
                message: "UnionPay's txnAmt is at most 12 digits of fen".into(),
            });
        }
        let id = order.id.provider_ref();
        if !(8..=40).contains(&id.len()) || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(ConnectorError::InvalidRequest {
                param: "order_id",
                message: "UnionPay's orderId is 8 to 40 letters and digits".into(),
            });
        }
        if let Some(code) = &spec.payer.auth_code {
            if code.is_empty() || code.len() > 32 || !code.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ConnectorError::InvalidRequest {
                    param: "auth_code",
                    message: "a UnionPay payment code (qrNo) is digits".into(),
                });
            }
        }
        Ok(())
    }

    async fn prepay(&self, order: &Order) -> Result<PayAction, ConnectorError> {
        self.validate(order)?;
        let front_url = order
            .spec
            .return_url
            .clone()
            .unwrap_or_else(|| self.env.public_url.clone());
        match order.spec.method {
            Method::PcWeb | Method::H5 => {
                let ch = if order.spec.method == Method::PcWeb {
                    &self.pc_channel_type
                } else {
                    &self.mobile_channel_type
                };
                let fields =
                    self.consume_fields(order, "01", "000201", ch, vec![("frontUrl", front_url)]);
                Ok(PayAction::Form {
                    action: self.url(FRONT_TRANS),
                    method: "POST".into(),
                    fields,
                })
            }
            Method::App => {
                let f =
                    self.consume_fields(order, "01", "000201", &self.mobile_channel_type, vec![]);
                let a = self.call(APP_TRANS, &f).await?;
                Self::same_order(&a, order.id.provider_ref())?;
                let tn = Self::required(&a, "tn")?;
                Ok(PayAction::SdkParams {
                    params: [("tn".to_string(), tn)].into(),
                })
            }
            Method::NativeQr => {
                let f =
                    self.consume_fields(order, "07", "000000", &self.mobile_channel_type, vec![]);
                let a = self.call(BACK_TRANS, &f).await?;
                Self::same_order(&a, order.id.provider_ref())?;
                Ok(PayAction::QrCode {
                    code_url: Self::required(&a, "qrCode")?,
                })
            }
            Method::Barcode => {
                let code = order.spec.payer.auth_code.clone().unwrap_or_default();
                let f = self.consume_fields(
                    order,
                    "06",
                    "000000",
                    &self.mobile_channel_type,
                    vec![("qrNo", code)],
                );
                let a = self.call(BACK_TRANS, &f).await?;
                Self::same_order(&a, order.id.provider_ref())?;
                Ok(PayAction::Nothing)
            }
            other => Err(ConnectorError::Unsupported(format!(
                "UnionPay does not offer `{}`",
                other.as_str()
            ))),
        }
    }

    async fn query(&self, order: &Order) -> Result<QueryResult, ConnectorError> {
        let Some(a) = self
            .query_txn(order.id.provider_ref(), txn_time(order.created_at))
            .await?
        else {
            return Ok(QueryResult {
                payment: ProviderPayment::NotFound,
                provider_status: "34".into(),
            });
        };
        let orig = Self::required(&a, "origRespCode")?;
        let payment = map_payment(&orig, &a)?;
        self.remember_paid(order.id.provider_ref(), &payment);
        if order.spec.method == Method::Barcode
            && matches!(
                payment,
                ProviderPayment::Pending | ProviderPayment::Paid { .. }
            )
            && self.undone(order).await?
        {
            return Ok(QueryResult {
                payment: ProviderPayment::Closed,
                provider_status: "undone".into(),
            });
        }
        Ok(QueryResult {
            payment,
            provider_status: orig,
        })
    }

    /// UnionPay has no close: an unpaid browser, app or QR consume ends at its
    /// `payTimeout` (the order's expiry), so there is nothing to send. A payer-code consume
    /// still waiting for the payer is cancelled by an undo. A paid consume is refused:
    /// the engine then records the payment (a refund gives the money back).
    async fn close(&self, order: &Order) -> Result<(), ConnectorError> {
        match self.query(order).await?.payment {
            ProviderPayment::NotFound | ProviderPayment::Closed | ProviderPayment::Failed(_) => {
                Ok(())
            }
            ProviderPayment::Pending if order.spec.method == Method::Barcode => {
                let a = self
                    .query_txn(order.id.provider_ref(), txn_time(order.created_at))
                    .await?
                    .ok_or_else(|| ConnectorError::Protocol("the consume vanished".into()))?;
                self.undo(order, &Self::required(&a, "queryId")?).await
            }
            ProviderPayment::Pending => Ok(()),
            ProviderPayment::Paid { .. } => Err(ConnectorError::Rejected {
                code: "00".into(),
                message: "the consume is paid".into(),
            }),
        }
    }

    async fn refund(
        &self,
        order: &Order,
        refund: &Refund,
    ) -> Result<ProviderRefund, ConnectorError> {
        if refund.amount.currency() != Currency::Cny {
            return Err(ConnectorError::InvalidRequest {
                param: "amount",
                message: "UnionPay refunds in CNY only".into(),
            });
        }
        let orig = self.paid_query_id(order).await?;
        // The whole payment given back on the day it was made is an undo (消费撤销): the
        // consume is cancelled before settlement. Anything else is a refund (退货).
        let undo = is_same_day_full_refund(order, refund, (self.now_ms)());
        let biz = match order.spec.method {
            _ if undo => "000000",
            Method::NativeQr | Method::Barcode => "000000",
            _ => "000201",
        };
        let txn = Txn {
            txn_type: if undo { "31" } else { "04" },
            sub_type: "00",
            biz_type: biz,
            channel_type: &self.mobile_channel_type,
            order_id: refund.id.provider_ref(),
            txn_time: txn_time(refund.created_at),
        };
        let f = self.signed(
            &txn,
            &[
                ("txnAmt", refund.amount.minor().to_string()),
                ("currencyCode", "156".into()),
                ("origQryId", orig),
                ("backUrl", self.env.callback_url.clone()),
            ],
        );
        match self.call(BACK_TRANS, &f).await {
            Ok(a) => {
                Self::same_order(&a, refund.id.provider_ref())?;
                Ok(ProviderRefund::Pending)
            }
            // 12: this refund was already received (a retry): its status tells.
            Err(ConnectorError::Rejected { code, .. }) if code == "12" => {
                self.refund_query(order, refund).await
            }
            Err(e) => Err(e),
        }
    }

    async fn refund_query(
        &self,
        _order: &Order,
        refund: &Refund,
    ) -> Result<ProviderRefund, ConnectorError> {
        let Some(a) = self
            .query_txn(refund.id.provider_ref(), txn_time(refund.created_at))
            .await?
        else {
            return Ok(ProviderRefund::NotFound);
        };
        let orig = Self::required(&a, "origRespCode")?;
        Ok(map_refund(&orig, &a))
    }

    fn parse_notification(&self, raw: &RawCallback) -> Result<Notification, ConnectorError> {
        notify::parse(self, raw)
    }

    fn check_notification(
        &self,
        raw: &RawCallback,
        _notification: &Notification,
        order: &Order,
        refund: Option<&Refund>,
    ) -> Result<(), Mismatch> {
        notify::check(raw, order, refund, &self.mer_id)
    }

    fn ack(&self, outcome: Result<(), &str>) -> Ack {
        notify::ack(outcome)
    }
}
