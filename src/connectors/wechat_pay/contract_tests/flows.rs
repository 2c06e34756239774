//! The happy paths and recoveries: every method, refunds, close, lost and duplicate
//! callbacks, service-provider mode.

use crate::connectors::wechat_pay::test_support::*;
use crate::connectors::{Notification, ProviderPayment, ProviderRefund};
use crate::domain::{Method, PayAction};
use crate::simulator::{PayOptions, SimError};

use super::*;

#[actix_web::test]
async fn every_method_prepays_pays_and_queries() {
    let mut h = Harness::start().await;
    for method in [
        Method::NativeQr,
        Method::H5,
        Method::App,
        Method::Jsapi,
        Method::MiniProgram,
    ] {
        let order = order(method, "demo", 1999);
        let action = h.conn.prepay(&order).await.unwrap();
        match (&action, method) {
            (PayAction::QrCode { code_url }, Method::NativeQr) => {
                assert!(
                    code_url.starts_with("weixin://wxpay/bizpayurl?pr="),
                    "{code_url}"
                );
                assert!(crate::connectors::wechat_pay::code_url_svg(code_url)
                    .unwrap()
                    .contains("<svg"));
            }
            (PayAction::Redirect { url }, Method::H5) => {
                assert!(
                    url.starts_with(&format!(
                        "{}/sandbox/wechat_pay/checkout?prepay_id=wx",
                        h.public_url
                    )),
                    "{url}"
                );
                assert!(
                    url.ends_with("&redirect_url=https%3A%2F%2Fshop.example.com%2Fdone%3Fx%3D1"),
                    "{url}"
                );
                let page = h.http.get(url).send().await.unwrap();
                assert_eq!(page.status(), 200);
                assert!(page
                    .text()
                    .await
                    .unwrap()
                    .contains(&format!("/sandbox/pay/{}", order.id)));
            }
            (PayAction::SdkParams { params }, Method::App) => {
                assert_eq!(params["appid"], APP_APPID);
                assert_eq!(params["partnerid"], MCHID);
                assert_eq!(params["package"], "Sign=WXPay");
                let msg = format!(
                    "{}\n{}\n{}\n{}\n",
                    params["appid"], params["timestamp"], params["noncestr"], params["prepayid"]
                );
                assert!(
                    merchant_key().verify(msg.as_bytes(), &params["sign"]),
                    "APP sign verifies with the merchant public key"
                );
            }
            (PayAction::MiniProgram { params }, Method::Jsapi | Method::MiniProgram) => {
                let appid = if method == Method::Jsapi {
                    APPID
                } else {
                    MINI_APPID
                };
                assert_eq!(params["appId"], appid);
                assert_eq!(params["signType"], "RSA");
                assert!(params["package"].starts_with("prepay_id=wx"));
                let msg = format!(
                    "{}\n{}\n{}\n{}\n",
                    params["appId"], params["timeStamp"], params["nonceStr"], params["package"]
                );
                assert!(
                    merchant_key().verify(msg.as_bytes(), &params["paySign"]),
                    "paySign verifies with the merchant public key"
                );
            }
            other => panic!("{method:?} answered {other:?}"),
        }
        // Placing the same order again (a retry) gives the same answer, never a second trade.
        if method == Method::NativeQr {
            assert_eq!(h.conn.prepay(&order).await.unwrap(), action);
        }

        let q = h.conn.query(&order).await.unwrap();
        assert_eq!(
            (q.payment, q.provider_status.as_str()),
            (ProviderPayment::Pending, "NOTPAY")
        );

        let (out, n) = h.pay(&order, PayOptions::default()).await;
        assert_eq!(out.callback_status, Some(204), "{:?}", out.callback_body);
        let txid = assert_paid(n.as_ref().unwrap(), &order, 1999);
        assert_eq!(txid, out.provider_transaction_id);

        let q = h.conn.query(&order).await.unwrap();
        assert_eq!(q.provider_status, "SUCCESS");
        assert!(
            matches!(q.payment, ProviderPayment::Paid { provider_transaction_id, .. } if provider_transaction_id == txid)
        );
    }
}

#[actix_web::test]
async fn partial_refunds_notify_and_are_queried() {
    let mut h = Harness::start().await;
    let order = order(Method::NativeQr, "demo", 1000);
    h.conn.prepay(&order).await.unwrap();
    let (_, n) = h.pay(&order, PayOptions::default()).await;
    assert_paid(n.as_ref().unwrap(), &order, 1000);

    for amount in [300, 700] {
        let r = refund(amount);
        assert_eq!(
            h.conn.refund(&order, &r).await.unwrap(),
            ProviderRefund::Pending,
            "answered PROCESSING"
        );
        match h.next().await.unwrap() {
            Notification::Refund {
                order_ref,
                refund_ref,
                refund: ProviderRefund::Succeeded { provider_refund_id },
            } => {
                assert_eq!(order_ref.as_deref(), Some(order.id.provider_ref()));
                assert_eq!(refund_ref, r.id.provider_ref());
                assert!(provider_refund_id.unwrap().starts_with("50"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            h.conn.refund_query(&order, &r).await.unwrap(),
            ProviderRefund::Succeeded { .. }
        ));
        // A retried refund request is answered from the existing refund.
        assert!(matches!(
            h.conn.refund(&order, &r).await.unwrap(),
            ProviderRefund::Succeeded { .. }
        ));
    }
    assert_eq!(
        rejected_code(h.conn.refund(&order, &refund(1)).await),
        "INVALID_REQUEST",
        "nothing left to refund"
    );
    // 404 RESOURCE_NOT_EXISTS: WeChat never received it, which the order actor re-sends.
    assert_eq!(
        h.conn.refund_query(&order, &refund(1)).await.unwrap(),
        ProviderRefund::NotFound
    );

    let q = h.conn.query(&order).await.unwrap();
    assert_eq!(q.provider_status, "REFUND");
    assert!(
        matches!(q.payment, ProviderPayment::Paid { .. }),
        "a refunded trade was paid"
    );
    assert_eq!(rejected_code(h.conn.close(&order).await), "ORDERPAID");
}

#[actix_web::test]
async fn closing_unpaid_and_unknown_trades() {
    let mut h = Harness::start().await;
    let order = order(Method::Jsapi, "demo", 500);
    h.conn.prepay(&order).await.unwrap();
    h.conn.close(&order).await.unwrap();
    h.conn.close(&order).await.unwrap();
    let q = h.conn.query(&order).await.unwrap();
    assert_eq!(
        (q.payment, q.provider_status.as_str()),
        (ProviderPayment::Closed, "CLOSED")
    );
    assert!(matches!(
        h.sim.pay(&order, PayOptions::default()).await,
        Err(SimError::NotPayable(_))
    ));
    assert_eq!(rejected_code(h.conn.prepay(&order).await), "ORDER_CLOSED");

    let never_placed =
        crate::connectors::wechat_pay::test_support::order(Method::NativeQr, "demo", 500);
    h.conn.close(&never_placed).await.unwrap();
    assert_eq!(
        h.conn.query(&never_placed).await.unwrap().payment,
        ProviderPayment::NotFound
    );
    assert!(matches!(
        h.sim.pay(&never_placed, PayOptions::default()).await,
        Err(SimError::UnknownTrade)
    ));
    assert!(h.rx.try_recv().is_err(), "no callbacks for closed trades");
}

#[actix_web::test]
async fn lost_duplicate_and_odd_amount_callbacks() {
    let mut h = Harness::start().await;
    let order = order(Method::App, "demo", 888);
    h.conn.prepay(&order).await.unwrap();
    let (out, _) = h
        .pay(
            &order,
            PayOptions {
                amount: None,
                drop_callback: true,
            },
        )
        .await;
    assert_eq!(out.callback_status, None);
    assert!(h.rx.try_recv().is_err(), "the callback was dropped");
    assert!(
        matches!(
            h.conn.query(&order).await.unwrap().payment,
            ProviderPayment::Paid { .. }
        ),
        "query recovers it"
    );
    // WeChat notifies again: the same transaction arrives twice.
    let (_, n) = h.pay(&order, PayOptions::default()).await;
    assert_eq!(
        assert_paid(n.as_ref().unwrap(), &order, 888),
        out.provider_transaction_id
    );

    let odd = crate::connectors::wechat_pay::test_support::order(Method::NativeQr, "demo", 888);
    h.conn.prepay(&odd).await.unwrap();
    let (_, n) = h
        .pay(
            &odd,
            PayOptions {
                amount: Some(1),
                drop_callback: false,
            },
        )
        .await;
    assert_paid(n.as_ref().unwrap(), &odd, 1);
}

#[actix_web::test]
async fn service_provider_mode_uses_the_partner_endpoints() {
    let mut h = Harness::start().await;
    let order = order(Method::Jsapi, "partner_shop", 2500);
    let PayAction::MiniProgram { params } = h.conn.prepay(&order).await.unwrap() else {
        panic!()
    };
    assert_eq!(
        params["appId"], SUB_APPID,
        "sub_openid payers sign with the sub_appid"
    );
    let (_, n) = h.pay(&order, PayOptions::default()).await;
    assert_paid(n.as_ref().unwrap(), &order, 2500);
    // The sub-merchant's mini program has its own appid.
    let mini = crate::connectors::wechat_pay::test_support::order(
        Method::MiniProgram,
        "partner_shop",
        300,
    );
    let PayAction::MiniProgram { params } = h.conn.prepay(&mini).await.unwrap() else {
        panic!()
    };
    assert_eq!(params["appId"], SUB_MINI_APPID);
    let msg = format!(
        "{}\n{}\n{}\n{}\n",
        params["appId"], params["timeStamp"], params["nonceStr"], params["package"]
    );
    assert!(merchant_key().verify(msg.as_bytes(), &params["paySign"]));
    let (_, n) = h.pay(&mini, PayOptions::default()).await;
    assert_paid(n.as_ref().unwrap(), &mini, 300);
    assert!(matches!(
        h.conn.query(&order).await.unwrap().payment,
        ProviderPayment::Paid { .. }
    ));
    // The trade belongs to the sub-merchant: a direct-merchant query cannot see it.
    let direct = h
        .conn
        .call(
            reqwest::Method::GET,
            &format!(
                "/v3/pay/transactions/out-trade-no/{}?mchid={MCHID}",
                order.id.provider_ref()
            ),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        (direct.status, direct.error_code().as_deref()),
        (404, Some("ORDER_NOT_EXIST"))
    );

    let r = refund(500);
    assert_eq!(
        h.conn.refund(&order, &r).await.unwrap(),
        ProviderRefund::Pending
    );
    assert!(matches!(
        h.next().await,
        Ok(Notification::Refund {
            refund: ProviderRefund::Succeeded { .. },
            ..
        })
    ));
    assert!(matches!(
        h.conn.refund_query(&order, &r).await.unwrap(),
        ProviderRefund::Succeeded { .. }
    ));

    let unpaid =
        crate::connectors::wechat_pay::test_support::order(Method::NativeQr, "partner_shop", 100);
    h.conn.prepay(&unpaid).await.unwrap();
    h.conn.close(&unpaid).await.unwrap();
    assert_eq!(
        h.conn.query(&unpaid).await.unwrap().payment,
        ProviderPayment::Closed
    );
}
