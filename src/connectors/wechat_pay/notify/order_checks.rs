//! Signed callbacks held against the order they name: the appid / mchid this order was
//! placed with (not just any of ours), its out_trade_no, and for refunds the amounts.

use super::*;
use crate::connectors::wechat_pay::api::RefundAmount;
use crate::connectors::wechat_pay::contract_tests::{channel_config, connector_env};
use crate::connectors::wechat_pay::simulator::wire;
use crate::connectors::wechat_pay::test_support::*;
use crate::connectors::wechat_pay::time::{format_cst, now_secs};
use crate::connectors::wechat_pay::WechatPayConnector;
use crate::connectors::Connector;
use crate::domain::Method;

fn connector() -> WechatPayConnector {
    let http = reqwest::Client::new();
    WechatPayConnector::new(
        &channel_config(settings_table()),
        connector_env("http://127.0.0.1:9", &http),
    )
    .unwrap()
}

fn signed<T: serde::Serialize>(event: &str, original: &str, resource: &T) -> RawCallback {
    let body = wire::encode_callback(
        APIV3_KEY.as_bytes(),
        event,
        "summary",
        original,
        resource,
        1_718_000_000_000,
    )
    .unwrap();
    raw_callback(&body, &pubkey_platform_signer(), PUBKEY_ID, now_secs())
}

fn paid(order: &Order) -> Transaction {
    Transaction {
        out_trade_no: order.id.provider_ref().to_string(),
        transaction_id: Some("4200001234202406241234567890".into()),
        trade_state: "SUCCESS".into(),
        success_time: Some(format_cst(1_718_000_000_000)),
        amount: Some(crate::connectors::wechat_pay::api::TransactionAmount {
            total: Some(order.spec.amount.minor()),
            currency: Some("CNY".into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Parses (signature, decryption, "one of ours") and then checks against `order`.
fn outcome(
    c: &WechatPayConnector,
    raw: &RawCallback,
    order: &Order,
    refund: Option<&Refund>,
) -> Result<(), &'static str> {
    let n = c
        .parse_notification(raw)
        .expect("signed, ours: parse accepts it");
    c.check_notification(raw, &n, order, refund)
        .map_err(|m| m.kind)
}

#[test]
fn a_payment_must_carry_the_appid_and_mchid_its_order_used() {
    let c = connector();
    let order = order(Method::Jsapi, "demo", 1999);
    let genuine = Transaction {
        appid: Some(APPID.into()),
        mchid: Some(MCHID.into()),
        ..paid(&order)
    };
    let ok = signed("TRANSACTION.SUCCESS", "transaction", &genuine);
    assert_eq!(outcome(&c, &ok, &order, None), Ok(()));
    // Our mini program's appid is "one of ours", but not the one this jsapi order used.
    for appid in [MINI_APPID, APP_APPID, SUB_APPID] {
        let other = Transaction {
            appid: Some(appid.into()),
            ..genuine.clone()
        };
        let raw = signed("TRANSACTION.SUCCESS", "transaction", &other);
        assert_eq!(
            outcome(&c, &raw, &order, None),
            Err("party_mismatch"),
            "{appid}"
        );
    }
    // Another order's resource, signed and ours, is not this order's.
    let other_order =
        crate::connectors::wechat_pay::test_support::order(Method::Jsapi, "demo", 1999);
    let raw = signed("TRANSACTION.SUCCESS", "transaction", &genuine);
    assert_eq!(
        outcome(&c, &raw, &other_order, None),
        Err("reference_mismatch")
    );
}

#[test]
fn a_partner_payment_must_carry_the_sub_merchant_ids_its_order_used() {
    let c = connector();
    let order = order(Method::MiniProgram, "partner_shop", 2500);
    let genuine = Transaction {
        sp_mchid: Some(MCHID.into()),
        sp_appid: Some(MINI_APPID.into()),
        sub_mchid: Some(SUB_MCHID.into()),
        sub_appid: Some(SUB_MINI_APPID.into()),
        ..paid(&order)
    };
    let ok = signed("TRANSACTION.SUCCESS", "transaction", &genuine);
    assert_eq!(outcome(&c, &ok, &order, None), Ok(()));
    for forged in [
        // The sub-merchant's official-account appid: ours, but not this method's.
        Transaction {
            sub_appid: Some(SUB_APPID.into()),
            ..genuine.clone()
        },
        Transaction {
            sub_appid: None,
            ..genuine.clone()
        },
        Transaction {
            sp_appid: Some(APPID.into()),
            ..genuine.clone()
        },
        // As if placed directly by the service provider.
        Transaction {
            mchid: Some(MCHID.into()),
            appid: Some(MINI_APPID.into()),
            ..paid(&order)
        },
    ] {
        let raw = signed("TRANSACTION.SUCCESS", "transaction", &forged);
        assert_eq!(
            outcome(&c, &raw, &order, None),
            Err("party_mismatch"),
            "{forged:?}"
        );
    }
}

#[test]
fn a_refund_must_name_its_order_and_amounts() {
    let c = connector();
    let order = order(Method::NativeQr, "demo", 1000);
    let r = refund(300);
    let genuine = RefundRecord {
        mchid: Some(MCHID.into()),
        out_trade_no: Some(order.id.provider_ref().into()),
        out_refund_no: r.id.provider_ref().into(),
        refund_id: Some("50000000382019052709732678859".into()),
        refund_status: Some("SUCCESS".into()),
        amount: Some(RefundAmount {
            total: 1000,
            refund: 300,
            currency: Some("CNY".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let ok = signed("REFUND.SUCCESS", "refund", &genuine);
    assert_eq!(outcome(&c, &ok, &order, Some(&r)), Ok(()));
    let cases = [
        (
            RefundRecord {
                out_trade_no: Some("01J0000000OTHERORDER00000".into()),
                ..genuine.clone()
            },
            "reference_mismatch",
        ),
        (
            RefundRecord {
                out_trade_no: None,
                ..genuine.clone()
            },
            "reference_mismatch",
        ),
        (
            RefundRecord {
                amount: Some(RefundAmount {
                    total: 1000,
                    refund: 1000,
                    ..Default::default()
                }),
                ..genuine.clone()
            },
            "amount_mismatch",
        ),
        (
            RefundRecord {
                amount: Some(RefundAmount {
                    total: 5000,
                    refund: 300,
                    ..Default::default()
                }),
                ..genuine.clone()
            },
            "amount_mismatch",
        ),
        (
            RefundRecord {
                amount: None,
                ..genuine.clone()
            },
            "amount_mismatch",
        ),
        (
            RefundRecord {
                mchid: None,
                sp_mchid: Some(MCHID.into()),
                sub_mchid: Some(SUB_MCHID.into()),
                ..genuine.clone()
            },
            "party_mismatch",
        ),
    ];
    for (forged, kind) in cases {
        let raw = signed("REFUND.SUCCESS", "refund", &forged);
        assert_eq!(outcome(&c, &raw, &order, Some(&r)), Err(kind), "{forged:?}");
    }
}
