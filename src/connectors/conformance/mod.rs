//! One conformance suite for every connector: the connector, built by
//! [`crate::connectors::build`], against its simulator, built by
//! [`crate::simulator::build`] and mounted behind the fault layer as the server mounts it,
//! over real HTTP on 127.0.0.1:0. A connector joins by providing a [`Fixture`] (beside the
//! connector, in its `conformance.rs`) and one line in [`fixtures!`] below; a channel kind
//! in [`crate::connectors::KINDS`] without one fails `every_registered_kind_has_a_fixture`.
//!
//! Protocol-specific checks (published vectors, pay-action shapes, field rules, quirks)
//! stay beside each connector; what every provider must do the same way lives here once.

mod cases;
mod harness;
mod notifications;
mod outages;

use crate::connectors::RawCallback;
use crate::domain::{
    ChannelName, Currency, MerchantId, MerchantRef, Method, Money, Order, OrderId, OrderSpec,
    Payer, Refund, RefundId,
};
pub use harness::Harness;

/// How a connector treats a verified payment notification whose amount is not the
/// order's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WrongAmount {
    /// `check_notification` refuses it (`amount_mismatch`): nothing is applied.
    Refused,
    /// The connector reports the amount actually paid and the engine records the
    /// `amount_mismatch` anomaly (the order state machine's documented behaviour).
    ReportedAsPaid,
}

/// What the suite needs to know about one channel kind, and the few things only the
/// protocol can do (forge, tamper, re-date a notification).
pub trait Fixture: Sync {
    /// The channel kind, as in [`crate::connectors::KINDS`].
    fn kind(&self) -> &'static str;
    /// Channel settings that configure both the connector and its simulator.
    fn settings(&self) -> toml::Table;
    /// The methods the channel offers; every other one must fail `validate`.
    fn methods(&self) -> &'static [Method];
    /// The currencies it settles; the first is the one the suite pays in.
    fn currencies(&self) -> &'static [Currency];
    /// A method whose prepay is a server-to-server call (the fault cases need one).
    fn server_method(&self) -> Method;
    /// Whether refunds end by notification (answered pending first) rather than in
    /// the refund's answer.
    fn refunds_notify(&self) -> bool;
    /// The payer fields `method` needs at this provider.
    fn payer(&self, method: Method) -> Payer;
    /// `genuine` with its content changed and its signature kept.
    fn tamper(&self, genuine: &RawCallback) -> RawCallback;
    /// `genuine` signed again with a key that is not the provider's.
    fn forge(&self, genuine: &RawCallback) -> RawCallback;
    /// `genuine` signed again by the provider with a timestamp outside the protocol's
    /// window; `None` when the protocol signs no timestamp.
    fn stale(&self, genuine: &RawCallback) -> Option<RawCallback>;
    /// A refund notification for `refund` of `order`, signed with the simulator-side key,
    /// for providers whose simulator sends none (`refunds_notify` false). `paid` is the
    /// genuine payment notification of the same order.
    fn refund_notification(
        &self,
        paid: &RawCallback,
        order: &Order,
        refund: &Refund,
    ) -> Option<RawCallback>;
    fn wrong_amount(&self) -> WrongAmount;
    /// The `wallet` the suite's orders carry, for a channel that reaches several (one
    /// fixture per wallet, each listing that wallet's methods and currencies); `None` for
    /// a channel that is one wallet.
    fn wallet(&self) -> Option<&'static str> {
        None
    }
    /// A case the channel cannot run as written (its fixed amounts are not payable in the
    /// fixture's currency); the fixture's own tests cover it instead.
    fn skips(&self, _case: &str) -> bool {
        false
    }
    /// Every amount the suite pays and refunds is multiplied by this, for a provider whose
    /// smallest charge is above the suite's smallest orders (Stripe's THB 10.00).
    fn scale(&self) -> i64 {
        1
    }
}

thread_local! {
    /// The running fixture's [`Fixture::scale`], set by [`Harness::start_with`]; each
    /// case runs on its own test thread.
    static SCALE: std::cell::Cell<i64> = const { std::cell::Cell::new(1) };
}

/// `minor` as the running fixture pays it (see [`Fixture::scale`]).
pub fn scaled(minor: i64) -> i64 {
    minor * SCALE.with(|s| s.get())
}

pub(crate) fn set_scale(scale: i64) {
    SCALE.with(|s| s.set(scale));
}

/// An order of this fixture's channel; the merchant is `demo` (direct mode everywhere).
pub fn order(f: &dyn Fixture, method: Method, minor: i64) -> Order {
    let now = crate::clock::Clock::system().now();
    let spec = OrderSpec {
        merchant_id: MerchantId::parse("demo").unwrap(),
        merchant_order_no: MerchantRef::parse(&format!("m-{now}")).unwrap(),
        amount: Money::new(scaled(minor), f.currencies()[0]).unwrap(),
        channel: ChannelName::parse(f.kind()).unwrap(),
        method,
        subject: "Conformance <b>tea</b> & more".into(),
        notify_url: None,
        return_url: Some("https://shop.example/done?x=1".into()),
        expires_at: now + 15 * 60 * 1000,
        payer: f.payer(method),
        metadata: Default::default(),
        wallet: f.wallet().map(|w| crate::domain::Wallet::parse(w).unwrap()),
    };
    Order::new(OrderId::generate(now), spec, now)
}

pub fn refund_of(order: &Order, minor: i64) -> Refund {
    let now = crate::clock::Clock::system().now();
    Refund::new(
        RefundId::generate(now),
        MerchantRef::parse(&format!("r-{now}")).unwrap(),
        Money::new(scaled(minor), order.spec.amount.currency()).unwrap(),
        Some("customer asked".into()),
        now,
    )
}

/// Declares the fixture of every channel kind: one test module per fixture running every
/// case, and the lookup the registration test uses. A channel of many wallets has one
/// entry per wallet (`antom_tng`, ...), each naming its kind.
macro_rules! fixtures {
    ($($name:ident => $fixture:expr),* $(,)?) => {
        pub fn fixture(kind: &str) -> Option<&'static dyn Fixture> {
            let all: &[&'static dyn Fixture] = &[$(&$fixture),*];
            all.iter().copied().find(|f| f.kind() == kind)
        }
        $(
            mod $name {
                use super::*;
                cases!($fixture;
                    methods_and_currencies, pay_query_verify, close, refunds,
                    declined_refund, orphaned_refund, unknown_order, duplicate_and_out_of_order,
                    bad_signature, wrong_amount, stale_timestamp, outage_then_query,
                    lost_answer_then_query, timeout_then_query);
            }
        )*
    };
}

macro_rules! cases {
    ($fixture:expr; $($case:ident),*) => {
        $(
            #[actix_web::test]
            async fn $case() {
                if $fixture.skips(stringify!($case)) {
                    return;
                }
                let h = Harness::start(&$fixture).await;
                cases::$case(h).await;
            }
        )*
    };
}

fixtures! {
    sandbox => crate::connectors::sandbox::conformance::SandboxFixture,
    wechat_pay => crate::connectors::wechat_pay::conformance::WechatPayFixture,
    alipay => crate::connectors::alipay::conformance::AlipayFixture,
    antom_tng => crate::connectors::antom::conformance::TNG,
    antom_boost => crate::connectors::antom::conformance::BOOST,
    antom_grabpay => crate::connectors::antom::conformance::GRABPAY,
    antom_shopeepay => crate::connectors::antom::conformance::SHOPEEPAY,
    antom_fpx => crate::connectors::antom::conformance::FPX,
    antom_paynow => crate::connectors::antom::conformance::PAYNOW,
    antom_gcash => crate::connectors::antom::conformance::GCASH,
    antom_maya => crate::connectors::antom::conformance::MAYA,
    antom_dana => crate::connectors::antom::conformance::DANA,
    antom_ovo => crate::connectors::antom::conformance::OVO,
    antom_kakaopay => crate::connectors::antom::conformance::KAKAOPAY,
    antom_naverpay => crate::connectors::antom::conformance::NAVERPAY,
    antom_tosspay => crate::connectors::antom::conformance::TOSSPAY,
    antom_truemoney => crate::connectors::antom::conformance::TRUEMONEY,
    antom_rabbit_line_pay => crate::connectors::antom::conformance::RABBIT_LINE_PAY,
    antom_promptpay => crate::connectors::antom::conformance::PROMPTPAY,
    antom_alipay_hk => crate::connectors::antom::conformance::ALIPAY_HK,
    antom_alipay_cn => crate::connectors::antom::conformance::ALIPAY_CN,
    unionpay => crate::connectors::unionpay::conformance::UnionPayFixture,
    stripe => crate::connectors::stripe::conformance::CARD,
    stripe_alipay => crate::connectors::stripe::conformance::ALIPAY,
    stripe_wechat_pay => crate::connectors::stripe::conformance::WECHAT_PAY,
    stripe_paynow => crate::connectors::stripe::conformance::PAYNOW,
    stripe_grabpay => crate::connectors::stripe::conformance::GRABPAY,
    stripe_fpx => crate::connectors::stripe::conformance::FPX,
    stripe_promptpay => crate::connectors::stripe::conformance::PROMPTPAY,
}

#[test]
fn every_registered_kind_has_a_fixture() {
    for kind in crate::connectors::KINDS {
        let f = fixture(kind).unwrap_or_else(|| {
            panic!("channel kind `{kind}` has no conformance fixture (docs/connectors.md)")
        });
        assert_eq!(f.kind(), *kind);
        assert!(f.methods().contains(&f.server_method()), "{kind}");
    }
}
