//! WeChat's own shapes: each method's pay action (signed with the merchant key), and
//! service-provider mode. Pay, query, refunds, close, lost and duplicate callbacks are
//! the conformance suite's (`connectors::conformance`).

use crate::connectors::wechat_pay::test_support::*;
use crate::connectors::{Notification, ProviderPayment, ProviderRefund};
use crate::domain::{Method, PayAction};
use crate::simulator::PayOptions;

use super::*;

#[actix_web::test]
async fn every_method_answers_its_pay_action() {
    let h = Harness::start().await;
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
                assert!(crate::qr::svg(code_url).unwrap().contains("<svg"));
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
        assert_eq!(q.provider_status, "NOTPAY");
    }
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
