//! WeChat Pay's own protocol against its simulator, on the conformance harness
//! (`connectors::conformance`, which runs the flows every provider shares): pay-action
//! shapes, service-provider mode, and the rejection cases.

mod flows;
mod rejections;

use std::sync::Arc;

use crate::config::ChannelConfig;
use crate::connectors::conformance;
use crate::connectors::{Connector, ConnectorEnv, ConnectorError, Notification, ProviderPayment};
use crate::domain::{ChannelName, Order};
use crate::simulator::PayOptions;

use crate::connectors::wechat_pay::conformance::WechatPayFixture;
use crate::connectors::wechat_pay::sign::RsaPublicKey;
use crate::connectors::wechat_pay::test_support::*;
use crate::connectors::wechat_pay::WechatPayConnector;

pub(super) type Parsed = Result<Notification, ConnectorError>;

/// The conformance harness, plus the connector as its concrete type for raw API calls.
pub(super) struct Harness {
    pub(super) conn: Arc<WechatPayConnector>,
    pub(super) public_url: String,
    pub(super) http: reqwest::Client,
    inner: conformance::Harness,
}

pub(super) fn channel_config(settings: toml::Table) -> ChannelConfig {
    ChannelConfig {
        kind: "wechat_pay".into(),
        enabled: true,
        base_url: None,
        rate_limit_per_sec: 100,
        burst: 100,
        timeout_ms: 5_000,
        settings,
    }
}

pub(super) fn connector_env(public_url: &str, http: &reqwest::Client) -> ConnectorEnv {
    ConnectorEnv {
        channel: ChannelName::parse("wechat_pay").unwrap(),
        http: http.clone(),
        base_url: format!("{public_url}/sandbox/wechat_pay"),
        callback_url: format!("{public_url}/callbacks/wechat_pay"),
        public_url: public_url.to_string(),
    }
}

impl Harness {
    pub(super) async fn start() -> Harness {
        let inner = conformance::Harness::start(&WechatPayFixture).await;
        let (public_url, http) = (inner.public.clone(), inner.http.clone());
        let conn = WechatPayConnector::new(
            &channel_config(settings_table()),
            connector_env(&public_url, &http),
        );
        Harness {
            conn: Arc::new(conn.unwrap()),
            public_url,
            http,
            inner,
        }
    }

    pub(super) fn other_connector(
        &self,
        edit: impl FnOnce(&mut toml::Table),
    ) -> Result<WechatPayConnector, ConnectorError> {
        let mut t = settings_table();
        edit(&mut t);
        WechatPayConnector::new(
            &channel_config(t),
            connector_env(&self.public_url, &self.http),
        )
    }

    pub(super) async fn next(&mut self) -> Parsed {
        self.inner.next_callback().await.1
    }

    pub(super) async fn pay(
        &mut self,
        order: &Order,
        opts: PayOptions,
    ) -> (crate::simulator::PayOutcome, Option<Parsed>) {
        let drop = opts.drop_callback;
        let out = self.inner.sim.pay(order, opts).await.unwrap();
        let n = if drop { None } else { Some(self.next().await) };
        (out, n)
    }
}

pub(super) fn merchant_key() -> RsaPublicKey {
    RsaPublicKey::from_pem(&read_fixture("TEST_ONLY_merchant_public_key.pem")).unwrap()
}

pub(super) fn assert_paid(n: &Parsed, order: &Order, minor: i64) -> String {
    match n {
        Ok(Notification::Payment {
            order_ref,
            payment:
                ProviderPayment::Paid {
                    amount,
                    provider_transaction_id,
                    ..
                },
        }) => {
            assert_eq!(order_ref, order.id.provider_ref());
            assert_eq!(amount.minor(), minor);
            provider_transaction_id.clone()
        }
        other => panic!("expected a paid notification, got {other:?}"),
    }
}

pub(super) fn rejected_code(r: Result<impl std::fmt::Debug, ConnectorError>) -> String {
    match r {
        Err(ConnectorError::Rejected { code, .. }) => code,
        other => panic!("expected a provider refusal, got {other:?}"),
    }
}
