//! WeChat Pay API v3 (境内直连商户 and 服务商): JSAPI / mini program, APP, H5 and Native QR
//! payments, query, close, refunds, and verified + decrypted callbacks.
//!
//! Everything WeChat sends back is verified with a platform key before it is believed;
//! every request is signed with the merchant API key. The published test vectors are in
//! `sign/tests.rs`.

use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

use crate::config::ChannelConfig;
use crate::connectors::{
    Ack, Connector, ConnectorEnv, ConnectorError, Mismatch, Notification, ProviderPayment,
    ProviderRefund, QueryResult, RawCallback,
};
use crate::domain::{Currency, Method, Order, PayAction, Refund};

pub mod aead;
pub mod api;
mod client;
mod notify;
mod prepay;
pub mod settings;
pub mod sign;
pub mod simulator;
pub mod time;

#[cfg(test)]
pub(crate) mod conformance;
#[cfg(test)]
mod contract_tests;
#[cfg(test)]
pub(crate) mod test_support;

use api::{
    CloseRequest, PrepayResponse, RefundAmountReq, RefundRecord, RefundRequest, Transaction,
};
use settings::{Resolved, Settings, SubMerchant};

/// WeChat's `int` amounts: at most 2^31-1 fen.
const MAX_FEN: i64 = i32::MAX as i64;

pub struct WechatPayConnector {
    cfg: Arc<Resolved>,
    env: ConnectorEnv,
    timeout: Duration,
}

/// Direct merchant, or a sub-merchant served through the partner endpoints.
enum Party<'a> {
    Direct,
    Partner(&'a SubMerchant),
}

/// The merchant and app ids one order's trade was placed with (as `build_prepay` sends
/// them): exactly what WeChat's notifications about it carry back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Placed<'a> {
    mchid: Option<&'a str>,
    appid: Option<&'a str>,
    sp_mchid: Option<&'a str>,
    sp_appid: Option<&'a str>,
    sub_mchid: Option<&'a str>,
    sub_appid: Option<&'a str>,
}

impl WechatPayConnector {
    pub fn new(cfg: &ChannelConfig, env: ConnectorEnv) -> Result<Self, ConnectorError> {
        let resolved = Settings::parse(&cfg.settings)
            .and_then(|s| {
                // Real credentials never sit in the config text: an inline APIv3 key is
                // for the built-in simulator only (the shipped sandbox config).
                if cfg.base_url.is_some() && s.apiv3_key.is_some() {
                    return Err(settings::SettingsError {
                        field: "apiv3_key".into(),
                        reason: "an inline APIv3 key is accepted only for the built-in simulator (no base_url); use apiv3_key_file or apiv3_key_env".into(),
                    });
                }
                s.resolve()
            })
            .map_err(|e| {
                ConnectorError::Config(format!("channels.{}.settings.{e}", env.channel))
            })?;
        Ok(WechatPayConnector {
            cfg: Arc::new(resolved),
            env,
            timeout: Duration::from_millis(cfg.timeout_ms),
        })
    }

    fn party(&self, order: &Order) -> Party<'_> {
        match self
            .cfg
            .s
            .sub_merchants
            .get(order.spec.merchant_id.as_str())
        {
            Some(sub) => Party::Partner(sub),
            None => Party::Direct,
        }
    }

    fn appid_for(&self, method: Method) -> &str {
        let s = &self.cfg.s;
        match method {
            Method::App => s.app_appid.as_deref().unwrap_or(&s.appid),
            Method::MiniProgram => s.mini_program_appid.as_deref().unwrap_or(&s.appid),
            _ => &s.appid,
        }
    }

    fn placed(&self, order: &Order) -> Placed<'_> {
        let (mchid, appid) = (
            Some(self.cfg.s.mchid.as_str()),
            Some(self.appid_for(order.spec.method)),
        );
        match self.party(order) {
            Party::Direct => Placed {
                mchid,
                appid,
                sp_mchid: None,
                sp_appid: None,
                sub_mchid: None,
                sub_appid: None,
            },
            Party::Partner(sub) => Placed {
                mchid: None,
                appid: None,
                sp_mchid: mchid,
                sp_appid: appid,
                sub_mchid: Some(sub.sub_mchid.as_str()),
                sub_appid: sub.appid_for(order.spec.method),
            },
        }
    }

    fn trade_path(&self, order: &Order) -> String {
        let otn = order.id.provider_ref();
        match self.party(order) {
            Party::Direct => format!("/v3/pay/transactions/out-trade-no/{otn}"),
            Party::Partner(_) => format!("/v3/pay/partner/transactions/out-trade-no/{otn}"),
        }
    }

    fn check_refund(&self, order: &Order, refund: &Refund) -> Result<(), ConnectorError> {
        if refund.amount.currency() != Currency::Cny {
            return Err(invalid(
                "amount.currency",
                "WeChat Pay refunds are in CNY only",
            ));
        }
        if refund.amount.minor() > order.spec.amount.minor() {
            return Err(invalid("amount", "a refund cannot exceed the order amount"));
        }
        if let Some(r) = &refund.reason {
            if r.chars().count() > 80 {
                return Err(invalid(
                    "reason",
                    "WeChat Pay accepts at most 80 characters",
                ));
            }
        }
        check_reference("out_refund_no", refund.id.provider_ref(), 1, 64)
    }
}

fn invalid(param: &'static str, message: impl Into<String>) -> ConnectorError {
    ConnectorError::InvalidRequest {
        param,
        message: message.into(),
    }
}

/// WeChat's reference rule: digits, letters and `_-|*@`.
fn check_reference(
    param: &'static str,
    v: &str,
    min: usize,
    max: usize,
) -> Result<(), ConnectorError> {
    let ok = (min..=max).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-|*@".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            param,
            format!("must be {min}-{max} of [A-Za-z0-9_-|*@]"),
        ))
    }
}

#[async_trait]
impl Connector for WechatPayConnector {
    fn capabilities(&self) -> crate::connectors::Capabilities {
        crate::connectors::Capabilities {
            methods: vec![
                Method::NativeQr,
                Method::H5,
                Method::App,
                Method::Jsapi,
                Method::MiniProgram,
            ],
            wallets: Vec::new(),
            currencies: vec![Currency::Cny],
            min_amount: 1,
            max_amount: MAX_FEN,
        }
    }

    fn validate(&self, order: &Order) -> Result<(), ConnectorError> {
        let spec = &order.spec;
        if spec.method == Method::PcWeb {
            return Err(ConnectorError::Unsupported(
                "WeChat Pay has no PC web cashier; use native_qr".into(),
            ));
        }
        // Also `barcode`: WeChat Pay API v3 has no payment-code API for this channel.
        crate::connectors::check_offered(&self.capabilities(), order)?;
        if spec.amount.currency() != Currency::Cny {
            return Err(invalid(
                "currency",
                "WeChat Pay (domestic) settles CNY only",
            ));
        }
        if spec.amount.minor() > MAX_FEN {
            return Err(invalid("amount", format!("at most {MAX_FEN} fen")));
        }
        check_reference("out_trade_no", order.id.provider_ref(), 6, 32)?;
        if spec.subject.trim().is_empty() || spec.subject.len() > 127 {
            return Err(invalid(
                "subject",
                "WeChat Pay needs a description of 1-127 bytes (UTF-8)",
            ));
        }
        match spec.method {
            Method::Jsapi | Method::MiniProgram => match spec.payer.openid.as_deref() {
                Some(o) if !o.is_empty() && o.len() <= 128 => {}
                _ => {
                    return Err(invalid(
                        "payer.openid",
                        "required for jsapi and mini_program (1-128 characters)",
                    ))
                }
            },
            Method::H5 => match spec.payer.ip.as_deref() {
                Some(ip) if ip.parse::<std::net::IpAddr>().is_ok() => {}
                _ => {
                    return Err(invalid(
                        "payer.ip",
                        "H5 payments need the payer's IPv4/IPv6 address",
                    ))
                }
            },
            _ => {}
        }
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(order_id = %order.id, channel = %self.env.channel))]
    async fn prepay(&self, order: &Order) -> Result<PayAction, ConnectorError> {
        self.validate(order)?;
        let (path, req) = self.build_prepay(order);
        let body = serde_json::to_string(&req).expect("prepay request serializes");
        let resp = self.call(reqwest::Method::POST, &path, Some(body)).await?;
        if !resp.is_success() {
            return Err(resp.into_error());
        }
        let answer: PrepayResponse = resp.json()?;
        self.pay_action(order, answer)
    }

    #[tracing::instrument(skip_all, fields(order_id = %order.id, channel = %self.env.channel))]
    async fn query(&self, order: &Order) -> Result<QueryResult, ConnectorError> {
        let query = match self.party(order) {
            Party::Direct => format!("mchid={}", self.cfg.s.mchid),
            Party::Partner(sub) => {
                format!("sp_mchid={}&sub_mchid={}", self.cfg.s.mchid, sub.sub_mchid)
            }
        };
        let resp = self
            .call(
                reqwest::Method::GET,
                &format!("{}?{query}", self.trade_path(order)),
                None,
            )
            .await?;
        if !resp.is_success() {
            if resp.status == 404
                && resp.verified
                && resp.error_code().as_deref() == Some("ORDER_NOT_EXIST")
            {
                return Ok(QueryResult {
                    payment: ProviderPayment::NotFound,
                    provider_status: "ORDER_NOT_EXIST".into(),
                });
            }
            return Err(resp.into_error());
        }
        let tx: Transaction = resp.json()?;
        if tx.out_trade_no != order.id.provider_ref() {
            return Err(ConnectorError::Protocol(
                "query answered another out_trade_no".into(),
            ));
        }
        let payment = api::map_trade(&tx).map_err(ConnectorError::Protocol)?;
        Ok(QueryResult {
            payment,
            provider_status: tx.trade_state,
        })
    }

    #[tracing::instrument(skip_all, fields(order_id = %order.id, channel = %self.env.channel))]
    async fn close(&self, order: &Order) -> Result<(), ConnectorError> {
        let body = match self.party(order) {
            Party::Direct => CloseRequest {
                mchid: Some(self.cfg.s.mchid.clone()),
                ..Default::default()
            },
            Party::Partner(sub) => CloseRequest {
                sp_mchid: Some(self.cfg.s.mchid.clone()),
                sub_mchid: Some(sub.sub_mchid.clone()),
                ..Default::default()
            },
        };
        let resp = self
            .call(
                reqwest::Method::POST,
                &format!("{}/close", self.trade_path(order)),
                Some(serde_json::to_string(&body).expect("close body serializes")),
            )
            .await?;
        if resp.is_success() {
            return Ok(());
        }
        if resp.verified
            && matches!(
                resp.error_code().as_deref(),
                Some("ORDER_NOT_EXIST" | "ORDER_CLOSED")
            )
        {
            return Ok(());
        }
        Err(resp.into_error())
    }

    #[tracing::instrument(skip_all, fields(order_id = %order.id, refund_id = %refund.id, channel = %self.env.channel))]
    async fn refund(
        &self,
        order: &Order,
        refund: &Refund,
    ) -> Result<ProviderRefund, ConnectorError> {
        self.check_refund(order, refund)?;
        let req = RefundRequest {
            sub_mchid: match self.party(order) {
                Party::Direct => None,
                Party::Partner(sub) => Some(sub.sub_mchid.clone()),
            },
            transaction_id: None,
            out_trade_no: Some(order.id.provider_ref().to_string()),
            out_refund_no: refund.id.provider_ref().to_string(),
            reason: refund.reason.clone(),
            notify_url: Some(self.env.callback_url.clone()),
            amount: RefundAmountReq {
                refund: refund.amount.minor(),
                total: order.spec.amount.minor(),
                currency: "CNY".into(),
            },
        };
        let resp = self
            .call(
                reqwest::Method::POST,
                "/v3/refund/domestic/refunds",
                Some(serde_json::to_string(&req).expect("refund body serializes")),
            )
            .await?;
        if !resp.is_success() {
            return Err(resp.into_error());
        }
        let rec: RefundRecord = resp.json()?;
        if rec.out_refund_no != refund.id.provider_ref() {
            return Err(ConnectorError::Protocol(
                "refund answered another out_refund_no".into(),
            ));
        }
        api::map_refund(&rec).map_err(ConnectorError::Protocol)
    }

    #[tracing::instrument(skip_all, fields(order_id = %order.id, refund_id = %refund.id, channel = %self.env.channel))]
    async fn refund_query(
        &self,
        order: &Order,
        refund: &Refund,
    ) -> Result<ProviderRefund, ConnectorError> {
        let mut path = format!("/v3/refund/domestic/refunds/{}", refund.id.provider_ref());
        if let Party::Partner(sub) = self.party(order) {
            path.push_str(&format!("?sub_mchid={}", sub.sub_mchid));
        }
        let resp = self.call(reqwest::Method::GET, &path, None).await?;
        if !resp.is_success() {
            return match resp.into_error() {
                // 404 RESOURCE_NOT_EXISTS: WeChat never received this out_refund_no.
                ConnectorError::Rejected { code, .. } if code == "RESOURCE_NOT_EXISTS" => {
                    Ok(ProviderRefund::NotFound)
                }
                e => Err(e),
            };
        }
        let rec: RefundRecord = resp.json()?;
        if rec.out_refund_no != refund.id.provider_ref() {
            return Err(ConnectorError::Protocol(
                "refund query answered another out_refund_no".into(),
            ));
        }
        api::map_refund(&rec).map_err(ConnectorError::Protocol)
    }

    fn parse_notification(&self, raw: &RawCallback) -> Result<Notification, ConnectorError> {
        notify::parse(&self.cfg, raw)
    }

    fn check_notification(
        &self,
        raw: &RawCallback,
        _notification: &Notification,
        order: &Order,
        refund: Option<&Refund>,
    ) -> Result<(), Mismatch> {
        notify::check(&self.cfg, raw, &self.placed(order), order, refund)
    }

    fn ack(&self, outcome: Result<(), &str>) -> Ack {
        notify::ack(outcome)
    }
}
