//! Notifications as a gateway meets them: repeated, out of order, forged, tampered with,
//! for another amount, late.

use super::cases::paid_notification;
use super::{refund_of, Harness, WrongAmount};
use crate::connectors::{ConnectorError, Notification, ProviderRefund};
use crate::simulator::PayOptions;

fn is_signature<T: std::fmt::Debug>(r: &Result<T, ConnectorError>) -> bool {
    matches!(r, Err(ConnectorError::Signature(_)))
}

pub async fn duplicate_and_out_of_order(mut h: Harness) {
    let o = h.order(h.fixture.server_method(), 1000);
    let (_, (paid_raw, paid)) = h.place_and_pay(&o, PayOptions::default()).await;
    paid_notification(&paid, &o, 1000);
    let r = refund_of(&o, 400);
    let refund_raw = if h.fixture.refunds_notify() {
        assert_eq!(
            h.conn.refund(&o, &r).await.unwrap(),
            ProviderRefund::Pending
        );
        let (raw, parsed) = h.next_callback().await;
        parsed.unwrap();
        raw
    } else {
        assert!(matches!(
            h.conn.refund(&o, &r).await.unwrap(),
            ProviderRefund::Succeeded { .. }
        ));
        h.fixture
            .refund_notification(&paid_raw, &o, &r)
            .expect("a simulator that sends no refund notification needs the fixture to build one")
    };

    // The refund's notification before the payment's: each stands on its own.
    let refund = h.conn.parse_notification(&refund_raw).unwrap();
    match &refund {
        Notification::Refund {
            refund_ref,
            refund: ProviderRefund::Succeeded { .. },
            ..
        } => assert_eq!(refund_ref, r.id.provider_ref()),
        other => panic!("expected a refund notification, got {other:?}"),
    }
    h.conn
        .check_notification(&refund_raw, &refund, &o, Some(&r))
        .unwrap();
    // The payment's, twice (providers re-send until acknowledged): the same fact each time.
    let first = h.conn.parse_notification(&paid_raw).unwrap();
    let again = h.conn.parse_notification(&paid_raw).unwrap();
    assert_eq!(first, again);
    assert_eq!(Ok(first.clone()), paid);
    h.conn
        .check_notification(&paid_raw, &first, &o, None)
        .unwrap();
    h.conn
        .check_notification(&paid_raw, &again, &o, None)
        .unwrap();
    assert_eq!(h.conn.parse_notification(&refund_raw).unwrap(), refund);
}

pub async fn bad_signature(mut h: Harness) {
    let o = h.order(h.fixture.server_method(), 1000);
    let (_, (raw, parsed)) = h.place_and_pay(&o, PayOptions::default()).await;
    parsed.unwrap();
    let tampered = h.fixture.tamper(&raw);
    assert_ne!(tampered.body, raw.body, "the fixture changed the content");
    assert!(
        is_signature(&h.conn.parse_notification(&tampered)),
        "tampered"
    );
    let forged = h.fixture.forge(&raw);
    let parsed = h.conn.parse_notification(&forged);
    assert!(is_signature(&parsed), "forged: {parsed:?}");
    // Refused so that the provider retries; the genuine one still reads.
    assert_ne!(h.conn.ack(Err("signature")), h.conn.ack(Ok(())));
    h.conn.parse_notification(&raw).unwrap();
}

pub async fn wrong_amount(mut h: Harness) {
    let o = h.order(h.fixture.server_method(), 1000);
    let underpaid = PayOptions {
        amount: Some(super::scaled(999)),
        drop_callback: false,
    };
    let (out, (raw, parsed)) = h.place_and_pay(&o, underpaid).await;
    assert_eq!(out.amount, super::scaled(999));
    // What was paid is reported as paid, never rounded to the order's amount.
    paid_notification(&parsed, &o, 999);
    let check = h.conn.check_notification(&raw, &parsed.unwrap(), &o, None);
    match h.fixture.wrong_amount() {
        WrongAmount::Refused => assert_eq!(check.map_err(|m| m.kind), Err("amount_mismatch")),
        WrongAmount::ReportedAsPaid => assert_eq!(check, Ok(())),
    }
}

pub async fn stale_timestamp(mut h: Harness) {
    let o = h.order(h.fixture.server_method(), 1000);
    let (_, (raw, parsed)) = h.place_and_pay(&o, PayOptions::default()).await;
    let genuine = parsed.unwrap();
    // The genuine notification, received an hour late.
    let mut late = raw.clone();
    late.received_at += 3_600_000;
    match h.fixture.stale(&raw) {
        Some(stale) => {
            assert!(is_signature(&h.conn.parse_notification(&stale)), "re-dated");
            assert!(is_signature(&h.conn.parse_notification(&late)), "late");
        }
        // Nothing to go stale: a late copy is the same fact, deduplicated by the engine.
        None => assert_eq!(h.conn.parse_notification(&late).unwrap(), genuine),
    }
}
