//! Provider outages through the fault layer: the connector answers
//! `ConnectorError::Transport` (outcome unknown) and a query tells what happened.

use super::harness::CLIENT_TIMEOUT;
use super::{refund_of, Harness};
use crate::connectors::{ConnectorError, ProviderPayment, ProviderRefund};
use crate::simulator::PayOptions;
use serde_json::json;

fn is_transport<T: std::fmt::Debug>(r: &Result<T, ConnectorError>) -> bool {
    matches!(r, Err(ConnectorError::Transport(_)))
}

pub async fn outage_then_query(mut h: Harness) {
    let o = h.order(h.fixture.server_method(), 1000);
    h.faults(json!({"fail_next": 1})).await;
    assert!(is_transport(&h.conn.prepay(&o).await));
    // Nothing was done: the provider has no trade, and placing it again works.
    assert_eq!(
        h.conn.query(&o).await.unwrap().payment,
        ProviderPayment::NotFound
    );
    h.conn.prepay(&o).await.unwrap();
    assert_eq!(
        h.conn.query(&o).await.unwrap().payment,
        ProviderPayment::Pending
    );

    h.sim.pay(&o, PayOptions::default()).await.unwrap();
    h.next_callback().await.1.unwrap();
    let r = refund_of(&o, 100);
    h.faults(json!({"fail_next": 1})).await;
    assert!(is_transport(&h.conn.refund(&o, &r).await));
    assert_eq!(
        h.conn.refund_query(&o, &r).await.unwrap(),
        ProviderRefund::NotFound
    );
    // `{}` clears every fault.
    h.faults(json!({"fail_next": 5})).await;
    h.faults(json!({})).await;
    h.conn.query(&o).await.unwrap();
    // No fault is believed in that would not happen.
    assert_eq!(h.try_faults(&json!({"fail_next_payment": 1})).await.0, 400);
    if h.fixture.kind() != "sandbox" {
        let (status, text) = h.try_faults(&json!({"ignore_next_close": 1})).await;
        assert_eq!(status, 400, "{text}");
        assert!(text.contains("ignore_next_close"), "{text}");
    }
    h.faults(json!({"fail_next": 1})).await;
    assert!(
        is_transport(&h.conn.query(&o).await),
        "a refused body changed nothing"
    );
}

pub async fn lost_answer_then_query(mut h: Harness) {
    let o = h.order(h.fixture.server_method(), 1000);
    h.faults(json!({"lose_next": 1})).await;
    assert!(is_transport(&h.conn.prepay(&o).await));
    // Done all the same: the trade exists and waits for the payer.
    assert_eq!(
        h.conn.query(&o).await.unwrap().payment,
        ProviderPayment::Pending
    );
    h.conn.prepay(&o).await.unwrap();

    h.sim.pay(&o, PayOptions::default()).await.unwrap();
    h.next_callback().await.1.unwrap();
    let r = refund_of(&o, 100);
    h.faults(json!({"lose_next": 1})).await;
    assert!(is_transport(&h.conn.refund(&o, &r).await));
    assert!(matches!(
        h.conn.refund_query(&o, &r).await.unwrap(),
        ProviderRefund::Pending | ProviderRefund::Succeeded { .. }
    ));
}

pub async fn timeout_then_query(h: Harness) {
    let o = h.order(h.fixture.server_method(), 1000);
    let delay = CLIENT_TIMEOUT.as_millis() as u64 + 500;
    h.faults(json!({ "delay_next_ms": delay })).await;
    assert!(is_transport(&h.conn.prepay(&o).await));
    // Whether the provider went on after the gateway gave up or not, a query says which,
    // and placing the order again settles it.
    let seen = h.conn.query(&o).await.unwrap().payment;
    assert!(
        matches!(seen, ProviderPayment::Pending | ProviderPayment::NotFound),
        "{seen:?}"
    );
    h.conn.prepay(&o).await.unwrap();
    assert_eq!(
        h.conn.query(&o).await.unwrap().payment,
        ProviderPayment::Pending
    );
}
