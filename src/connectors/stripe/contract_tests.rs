//! Stripe-specific flows of the connector against its simulator (the suite's harness):
//! events retried until acknowledged, and events signed with a secret paygate was not
//! given.

use std::sync::atomic::Ordering;

use super::conformance::{settings_with, PAYNOW};
use crate::connectors::conformance::{refund_of, Harness};
use crate::connectors::{ConnectorError, Notification, ProviderPayment, ProviderRefund};
use crate::domain::Method;
use crate::simulator::PayOptions;

#[actix_web::test]
async fn events_are_retried_until_acknowledged() {
    let mut h = Harness::start(&PAYNOW).await;
    let o = h.order(Method::NativeQr, 1000);
    h.conn.prepay(&o).await.unwrap();
    h.refuse_acks.store(true, Ordering::SeqCst);
    let paid = h.sim.pay(&o, PayOptions::default()).await.unwrap();
    assert_eq!(paid.callback_status, Some(400));
    h.next_callback().await.1.unwrap();
    h.refuse_acks.store(false, Ordering::SeqCst);
    // Sent again after the simulated Stripe's first back-off (1 s), signed anew.
    let (raw, again) = h.next_callback().await;
    assert!(matches!(
        again,
        Ok(Notification::Payment {
            payment: ProviderPayment::Paid { .. },
            ..
        })
    ));
    assert!(raw.header("stripe-signature").unwrap().contains(",v0="));
    // Refund events the same way.
    h.refuse_acks.store(true, Ordering::SeqCst);
    let r = refund_of(&o, 100);
    assert_eq!(
        h.conn.refund(&o, &r).await.unwrap(),
        ProviderRefund::Pending
    );
    h.next_callback().await.1.unwrap();
    h.refuse_acks.store(false, Ordering::SeqCst);
    assert!(matches!(
        h.next_callback().await.1,
        Ok(Notification::Refund {
            refund: ProviderRefund::Succeeded { .. },
            ..
        })
    ));
}

#[actix_web::test]
async fn an_event_signed_with_a_secret_paygate_does_not_hold_is_refused() {
    // The connector knows only the endpoint's previous secret: the simulator signs with
    // the new one, so every event is refused until the new secret is configured.
    let mut conn_settings = settings_with(&["payment_intent.succeeded"]);
    conn_settings.insert(
        "webhook_secrets".into(),
        toml::Value::Array(vec!["whsec_TEST_ONLY_previous".into()]),
    );
    let sim_settings = settings_with(&["payment_intent.succeeded"]);
    let mut h = Harness::start_with(&PAYNOW, conn_settings, sim_settings).await;
    let o = h.order(Method::NativeQr, 1000);
    h.conn.prepay(&o).await.unwrap();
    let paid = h.sim.pay(&o, PayOptions::default()).await.unwrap();
    assert_eq!(paid.callback_status, Some(400));
    assert!(matches!(
        h.next_callback().await.1,
        Err(ConnectorError::Signature(_))
    ));
}
