//! The flows every provider must carry the same way: methods, pay → callback → query,
//! close, refunds (partial, full, unknown, declined), unknown orders.

use super::{refund_of, Harness};
use crate::connectors::{ConnectorError, Notification, ProviderPayment, ProviderRefund};
use crate::domain::{Currency, Method, Money, Order, Refund};
use crate::simulator::{PayOptions, SimError};

pub use super::notifications::*;
pub use super::outages::*;

/// Reads a paid payment notification for `order`; returns the transaction id.
pub fn paid_notification(
    n: &Result<Notification, ConnectorError>,
    order: &Order,
    minor: i64,
) -> String {
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
            assert_eq!(
                (amount.minor(), amount.currency()),
                (super::scaled(minor), order.spec.amount.currency())
            );
            provider_transaction_id.clone()
        }
        other => panic!("expected a paid notification, got {other:?}"),
    }
}

pub fn is_rejected<T: std::fmt::Debug>(r: &Result<T, ConnectorError>) -> bool {
    matches!(r, Err(ConnectorError::Rejected { .. }))
}

/// Requests `refund` and follows it to its end: `Succeeded` or `Failed`, from the
/// answer or (for providers that notify) from the refund notification.
pub async fn refund_to_end(h: &mut Harness, order: &Order, refund: &Refund) -> ProviderRefund {
    let answer = h.conn.refund(order, refund).await.unwrap();
    if !h.fixture.refunds_notify() {
        return answer;
    }
    assert_eq!(
        answer,
        ProviderRefund::Pending,
        "refunds that notify are answered pending"
    );
    match h.next_callback().await.1 {
        Ok(Notification::Refund {
            order_ref,
            refund_ref,
            refund: outcome,
        }) => {
            assert_eq!(refund_ref, refund.id.provider_ref());
            let ours = order.id.provider_ref();
            assert_eq!(order_ref.as_deref().unwrap_or(ours), ours);
            outcome
        }
        other => panic!("expected a refund notification, got {other:?}"),
    }
}

pub async fn methods_and_currencies(h: Harness) {
    let f = h.fixture;
    // What `GET /v1/channels` tells merchants is what the connector does.
    let mut offered = h.conn.capabilities().methods;
    let mut expected = f.methods().to_vec();
    offered.sort_by_key(|m| m.as_str());
    expected.sort_by_key(|m| m.as_str());
    match f.wallet() {
        None => assert_eq!(offered, expected, "capabilities() and the fixture disagree"),
        // One wallet of several: its methods are among the channel's.
        Some(w) => {
            assert!(
                expected.iter().all(|m| offered.contains(m)),
                "{w}: {expected:?} not in {offered:?}"
            );
            assert!(
                h.conn.capabilities().wallets.contains(&w),
                "{w} not in capabilities()"
            );
        }
    }
    for method in Method::ALL {
        let o = h.order(method, 1234);
        if !f.methods().contains(&method) {
            assert!(h.conn.validate(&o).is_err(), "{method:?} is not offered");
            continue;
        }
        h.conn.validate(&o).unwrap();
        let action = h.conn.prepay(&o).await.unwrap();
        // A retried prepay (after a timeout, say) is the same trade, not a second one.
        let again = h.conn.prepay(&o).await.unwrap();
        assert_eq!(
            std::mem::discriminant(&again),
            std::mem::discriminant(&action)
        );
    }
    for currency in Currency::ALL {
        if f.currencies().contains(&currency) {
            continue;
        }
        let mut o = h.order(f.server_method(), 100);
        o.spec.amount = Money::new(100, currency).unwrap();
        let e = match h.conn.validate(&o) {
            Err(e) => e,
            Ok(()) => h.conn.prepay(&o).await.unwrap_err(),
        };
        assert!(
            matches!(e.kind(), "unsupported" | "invalid_request"),
            "{currency:?}: {e:?}"
        );
    }
}

pub async fn pay_query_verify(mut h: Harness) {
    for &method in h.fixture.methods() {
        let o = h.order(method, 1999);
        h.conn.prepay(&o).await.unwrap();
        let q = h.conn.query(&o).await.unwrap().payment;
        // Page trades of some providers exist only once the payer opens them.
        assert!(
            matches!(q, ProviderPayment::Pending | ProviderPayment::NotFound),
            "{method:?}: {q:?}"
        );
        let out = h.sim.pay(&o, PayOptions::default()).await.unwrap();
        let (_, parsed) = h.next_callback().await;
        let txid = paid_notification(&parsed, &o, 1999);
        assert_eq!(txid, out.provider_transaction_id);
        let ack = h.conn.ack(Ok(()));
        assert_eq!(out.callback_status, Some(ack.status), "{method:?}");
        // Verify: the provider's own word agrees with the callback.
        match h.conn.query(&o).await.unwrap().payment {
            ProviderPayment::Paid {
                amount,
                provider_transaction_id,
                ..
            } => {
                assert_eq!(amount, o.spec.amount);
                assert_eq!(provider_transaction_id, txid);
            }
            other => panic!("{method:?}: verify answered {other:?}"),
        }
        // Lost callback: paid at the provider, found by query.
        let silent = h.order(method, 500);
        h.conn.prepay(&silent).await.unwrap();
        let drop = PayOptions {
            drop_callback: true,
            ..Default::default()
        };
        assert_eq!(
            h.sim.pay(&silent, drop).await.unwrap().callback_status,
            None
        );
        assert!(h.no_callback_pending());
        assert!(matches!(
            h.conn.query(&silent).await.unwrap().payment,
            ProviderPayment::Paid { .. }
        ));
    }
}

pub async fn close(mut h: Harness) {
    let o = h.order(h.fixture.server_method(), 700);
    h.conn.prepay(&o).await.unwrap();
    h.conn.close(&o).await.unwrap();
    h.conn.close(&o).await.unwrap();
    assert_eq!(
        h.conn.query(&o).await.unwrap().payment,
        ProviderPayment::Closed
    );
    assert!(matches!(
        h.sim.pay(&o, PayOptions::default()).await,
        Err(SimError::NotPayable(_))
    ));
    assert!(h.no_callback_pending(), "a closed trade sends nothing");
    // A paid trade cannot be closed.
    let paid = h.order(h.fixture.server_method(), 700);
    h.place_and_pay(&paid, PayOptions::default())
        .await
        .1
         .1
        .unwrap();
    assert!(is_rejected(&h.conn.close(&paid).await));
}

pub async fn refunds(mut h: Harness) {
    let o = h.order(h.fixture.server_method(), 1000);
    h.conn.prepay(&o).await.unwrap();
    assert!(
        is_rejected(&h.conn.refund(&o, &refund_of(&o, 100)).await),
        "an unpaid trade cannot be refunded"
    );
    h.sim.pay(&o, PayOptions::default()).await.unwrap();
    h.next_callback().await.1.unwrap();

    let r1 = refund_of(&o, 300);
    assert!(matches!(
        refund_to_end(&mut h, &o, &r1).await,
        ProviderRefund::Succeeded { .. }
    ));
    assert!(matches!(
        h.conn.refund_query(&o, &r1).await.unwrap(),
        ProviderRefund::Succeeded { .. }
    ));
    // The same refund again (a retry) is the existing refund, not a second one.
    assert!(matches!(
        h.conn.refund(&o, &r1).await.unwrap(),
        ProviderRefund::Succeeded { .. }
    ));
    let rest = refund_of(&o, 700);
    assert!(matches!(
        refund_to_end(&mut h, &o, &rest).await,
        ProviderRefund::Succeeded { .. }
    ));
    assert!(
        is_rejected(&h.conn.refund(&o, &refund_of(&o, 1)).await),
        "nothing is left to refund"
    );
    assert_eq!(
        h.conn.refund_query(&o, &refund_of(&o, 1)).await.unwrap(),
        ProviderRefund::NotFound,
        "a refund the provider never received"
    );
    // A fully refunded trade was still paid.
    assert!(matches!(
        h.conn.query(&o).await.unwrap().payment,
        ProviderPayment::Paid { .. }
    ));
}

pub async fn declined_refund(mut h: Harness) {
    let o = h.order(h.fixture.server_method(), 800);
    h.place_and_pay(&o, PayOptions::default())
        .await
        .1
         .1
        .unwrap();
    h.faults(serde_json::json!({"fail_next_refund": 1})).await;
    let r = refund_of(&o, 800);
    let declined = match h.conn.refund(&o, &r).await {
        // Providers that answer refunds synchronously decline in the answer.
        Err(ConnectorError::Rejected { .. }) => true,
        Ok(ProviderRefund::Failed(_)) => true,
        Ok(ProviderRefund::Pending) if h.fixture.refunds_notify() => matches!(
            h.next_callback().await.1,
            Ok(Notification::Refund { refund: ProviderRefund::Failed(_), ref refund_ref, .. })
                if refund_ref == r.id.provider_ref()
        ),
        other => panic!("unexpected answer to a declined refund: {other:?}"),
    };
    assert!(declined);
    assert!(matches!(
        h.conn.refund_query(&o, &r).await.unwrap(),
        ProviderRefund::Failed(_) | ProviderRefund::NotFound
    ));
    // The declined amount is refundable again.
    assert!(matches!(
        refund_to_end(&mut h, &o, &refund_of(&o, 800)).await,
        ProviderRefund::Succeeded { .. }
    ));
}

/// A refund accepted by a node that died before settling it (several paygate nodes share
/// the simulator's books) does not stay processing for ever: a later query, from any
/// node, finds it orphaned, settles it and notifies, as the provider would have.
pub async fn orphaned_refund(mut h: Harness) {
    if !h.fixture.refunds_notify() {
        return; // answered in full at once: nothing is left to settle later
    }
    let o = h.order(h.fixture.server_method(), 700);
    h.place_and_pay(&o, PayOptions::default())
        .await
        .1
         .1
        .unwrap();
    h.faults(serde_json::json!({"orphan_next_refund": 1})).await;
    let r = refund_of(&o, 700);
    assert_eq!(
        h.conn.refund(&o, &r).await.unwrap(),
        ProviderRefund::Pending
    );
    assert!(
        h.no_callback_pending(),
        "an orphaned refund was settled by the node that accepted it"
    );
    assert!(matches!(
        h.conn.refund_query(&o, &r).await.unwrap(),
        ProviderRefund::Succeeded { .. }
    ));
    match h.next_callback().await.1 {
        Ok(Notification::Refund {
            refund: ProviderRefund::Succeeded { .. },
            refund_ref,
            ..
        }) => assert_eq!(refund_ref, r.id.provider_ref()),
        other => panic!("expected the orphaned refund's notification, got {other:?}"),
    }
    // Settled once: a second query finds it settled and nothing more is sent.
    assert!(matches!(
        h.conn.refund_query(&o, &r).await.unwrap(),
        ProviderRefund::Succeeded { .. }
    ));
}

pub async fn unknown_order(h: Harness) {
    let o = h.order(h.fixture.server_method(), 100);
    assert_eq!(
        h.conn.query(&o).await.unwrap().payment,
        ProviderPayment::NotFound
    );
    h.conn.close(&o).await.unwrap();
    assert!(is_rejected(&h.conn.refund(&o, &refund_of(&o, 100)).await));
    assert!(matches!(
        h.sim.pay(&o, PayOptions::default()).await,
        Err(SimError::UnknownTrade)
    ));
}
