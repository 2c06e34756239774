//! One test per rule of docs/design.md §3, and a property test over random event sequences.

use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

mod late;

const T0: Millis = 1_700_000_000_000;

fn cny(v: i64) -> Money {
    Money::new(v, Currency::Cny).unwrap()
}

fn order(amount: i64) -> Order {
    Order::new(
        OrderId::generate(T0),
        OrderSpec {
            merchant_id: MerchantId::parse("demo").unwrap(),
            merchant_order_no: MerchantRef::parse("M1").unwrap(),
            amount: cny(amount),
            channel: ChannelName::parse("sandbox").unwrap(),
            method: Method::NativeQr,
            subject: "tea".into(),
            notify_url: None,
            return_url: None,
            expires_at: T0 + 900_000,
            payer: Payer::default(),
            metadata: BTreeMap::new(),
            wallet: None,
        },
        T0,
    )
}

fn step(o: &Order, e: OrderEvent) -> Order {
    match o.apply(&e, T0).unwrap() {
        Applied::Changed { order, .. } => *order,
        Applied::Unchanged => o.clone(),
    }
}

fn accepted() -> OrderEvent {
    OrderEvent::PrepayAccepted {
        pay_action: PayAction::QrCode {
            code_url: "sandbox://qr/1".into(),
        },
    }
}

fn paid(amount: i64, txn: &str) -> OrderEvent {
    OrderEvent::PaymentReported {
        amount: cny(amount),
        provider_transaction_id: txn.into(),
        paid_at: T0 + 5,
    }
}

fn refund(amount: i64, n: u32) -> (RefundId, OrderEvent) {
    let id = RefundId::generate(T0 + n as i64);
    let r = Refund::new(
        id.clone(),
        MerchantRef::parse(&format!("R{n}")).unwrap(),
        cny(amount),
        None,
        T0,
    );
    (id, OrderEvent::RefundRequested { refund: r })
}

fn paid_order(amount: i64) -> Order {
    step(&step(&order(amount), accepted()), paid(amount, "T1"))
}

#[test]
fn happy_path_created_pending_paid() {
    let o = order(100);
    assert_eq!(o.status(), OrderStatus::Created);
    assert_eq!(o.version(), 1);
    let o = step(&o, accepted());
    assert_eq!(o.status(), OrderStatus::Pending);
    assert!(o.pay_action().is_some());
    match o.apply(&paid(100, "T1"), T0).unwrap() {
        Applied::Changed {
            order,
            notices,
            anomaly,
        } => {
            assert_eq!(order.status(), OrderStatus::Paid);
            assert_eq!(order.provider_transaction_id(), Some("T1"));
            assert_eq!(order.version(), 3);
            assert_eq!(notices, vec![MerchantNotice::OrderPaid]);
            assert!(anomaly.is_none());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_payment_reported_while_the_prepay_outcome_was_unknown_is_applied() {
    // The prepay timed out (order still `created`), yet the provider placed the trade and
    // the payer paid: the verified payment must not be dropped.
    let o = order(100);
    match o.apply(&paid(100, "T1"), T0).unwrap() {
        Applied::Changed { order, notices, .. } => {
            assert_eq!(order.status(), OrderStatus::Paid);
            assert_eq!(notices, vec![MerchantNotice::OrderPaid]);
        }
        other => panic!("{other:?}"),
    }
    let mismatch = o.apply(&paid(99, "T1"), T0).unwrap();
    assert!(
        matches!(mismatch, Applied::Changed { ref order, anomaly: Some(_), .. }
        if order.status() == OrderStatus::Created)
    );
}

#[test]
fn anomalies_are_deduplicated_by_the_whole_transaction_id() {
    let o = paid_order(100);
    let o = step(&o, paid(100, "T12"));
    assert_eq!(o.anomalies().len(), 1);
    // "T1" is the order's own transaction; "T123" is a new one, not a repeat of "T12".
    assert_eq!(o.apply(&paid(100, "T12"), T0).unwrap(), Applied::Unchanged);
    let o = step(&o, paid(100, "T123"));
    assert_eq!(o.anomalies().len(), 2);
}

#[test]
fn disallowed_events_are_typed_errors_not_ignored() {
    let o = order(100);
    let (_, r) = refund(10, 1);
    assert!(matches!(
        step(&o, accepted()).apply(&r, T0),
        Err(DomainError::InvalidTransition { .. })
    ));
    assert!(o.apply(&OrderEvent::Created, T0).is_err());
}

#[test]
fn duplicate_payment_notification_is_idempotent() {
    let o = paid_order(100);
    assert_eq!(o.apply(&paid(100, "T1"), T0).unwrap(), Applied::Unchanged);
}

#[test]
fn second_transaction_for_a_paid_order_is_an_anomaly_once() {
    let o = paid_order(100);
    let o2 = match o.apply(&paid(100, "T2"), T0).unwrap() {
        Applied::Changed { order, anomaly, .. } => {
            assert_eq!(anomaly.unwrap().kind, AnomalyKind::DuplicatePayment);
            assert_eq!(order.status(), OrderStatus::Paid);
            *order
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(o2.apply(&paid(100, "T2"), T0).unwrap(), Applied::Unchanged);
}

#[test]
fn wrong_amount_or_currency_is_an_anomaly_and_not_paid() {
    let o = step(&order(100), accepted());
    for ev in [
        paid(99, "T1"),
        OrderEvent::PaymentReported {
            amount: Money::new(100, Currency::Usd).unwrap(),
            provider_transaction_id: "T1".into(),
            paid_at: T0,
        },
    ] {
        match o.apply(&ev, T0).unwrap() {
            Applied::Changed {
                order,
                anomaly,
                notices,
            } => {
                assert_eq!(order.status(), OrderStatus::Pending);
                assert_eq!(anomaly.unwrap().kind, AnomalyKind::AmountMismatch);
                assert!(notices.is_empty());
                assert_eq!(order.anomalies().len(), 1);
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn payment_after_close_is_recorded_and_notified() {
    let o = step(
        &step(&order(100), accepted()),
        OrderEvent::CloseRequested {
            reason: CloseReason::Expired,
        },
    );
    assert_eq!(o.status(), OrderStatus::Closed);
    match o.apply(&paid(100, "T9"), T0).unwrap() {
        Applied::Changed {
            order,
            anomaly,
            notices,
        } => {
            assert_eq!(order.status(), OrderStatus::Closed);
            assert_eq!(anomaly.unwrap().kind, AnomalyKind::PaidAfterClose);
            assert_eq!(notices, vec![MerchantNotice::OrderPaidAfterClose]);
            assert_eq!(
                order.apply(&paid(100, "T9"), T0).unwrap(),
                Applied::Unchanged
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn close_rules() {
    let pending = step(&order(100), accepted());
    let closed = step(
        &pending,
        OrderEvent::CloseRequested {
            reason: CloseReason::Merchant,
        },
    );
    assert_eq!(closed.status(), OrderStatus::Closed);
    assert_eq!(closed.closed().unwrap().0, CloseReason::Merchant);
    assert_eq!(
        closed
            .apply(
                &OrderEvent::CloseRequested {
                    reason: CloseReason::Merchant
                },
                T0
            )
            .unwrap(),
        Applied::Unchanged
    );
    assert!(paid_order(100)
        .apply(
            &OrderEvent::CloseRequested {
                reason: CloseReason::Merchant
            },
            T0
        )
        .is_err());
}

#[test]
fn prepay_rejection_fails_the_order() {
    let o = step(
        &order(100),
        OrderEvent::PrepayRejected {
            failure: Failure {
                code: "X".into(),
                message: "no".into(),
            },
        },
    );
    assert_eq!(o.status(), OrderStatus::Failed);
    assert!(o.apply(&accepted(), T0).is_err());
}

#[test]
fn provider_end_closes_or_fails_pending_orders() {
    let pending = step(&order(100), accepted());
    assert_eq!(
        step(&pending, OrderEvent::ProviderEnded { failed: None }).status(),
        OrderStatus::Closed
    );
    let f = Failure {
        code: "PAYERROR".into(),
        message: "bank declined".into(),
    };
    assert_eq!(
        step(&pending, OrderEvent::ProviderEnded { failed: Some(f) }).status(),
        OrderStatus::Failed
    );
}

/// The provider closes its trade at the expiry paygate gave it, so whether paygate's
/// own timer or a status poll sees the end first, the merchant is told the same reason.
#[test]
fn a_provider_close_after_the_expiry_is_an_expiry() {
    let pending = step(&order(100), accepted());
    let expires_at = pending.spec.expires_at;
    let early = pending
        .apply(&OrderEvent::ProviderEnded { failed: None }, expires_at - 1)
        .unwrap();
    let late = pending
        .apply(&OrderEvent::ProviderEnded { failed: None }, expires_at)
        .unwrap();
    let reason = |a: Applied| match a {
        Applied::Changed { order, .. } => order.closed().map(|(r, _)| r),
        Applied::Unchanged => None,
    };
    assert_eq!(reason(early), Some(CloseReason::Provider));
    assert_eq!(reason(late), Some(CloseReason::Expired));
}

#[test]
fn partial_then_full_refund() {
    let o = paid_order(100);
    let (r1, ev1) = refund(30, 1);
    let o = step(&o, ev1);
    assert_eq!(o.status(), OrderStatus::Paid);
    assert_eq!(o.refundable(), 70);
    let o = step(
        &o,
        OrderEvent::RefundSucceeded {
            refund_id: r1.clone(),
            provider_refund_id: None,
        },
    );
    assert_eq!(o.status(), OrderStatus::PartiallyRefunded);
    assert_eq!(o.amount_refunded(), 30);
    let (r2, ev2) = refund(70, 2);
    let o = step(&o, ev2);
    let o = step(
        &o,
        OrderEvent::RefundSucceeded {
            refund_id: r2,
            provider_refund_id: Some("P2".into()),
        },
    );
    assert_eq!(o.status(), OrderStatus::Refunded);
    assert_eq!(o.amount_refunded(), 100);
    // Duplicate refund notifications change nothing.
    assert_eq!(
        o.apply(
            &OrderEvent::RefundSucceeded {
                refund_id: r1,
                provider_refund_id: None
            },
            T0
        )
        .unwrap(),
        Applied::Unchanged
    );
}

#[test]
fn refunds_never_exceed_the_paid_amount_pending_included() {
    let o = paid_order(100);
    let (_, ev1) = refund(60, 1);
    let o = step(&o, ev1);
    let (_, ev2) = refund(41, 2);
    assert_eq!(
        o.apply(&ev2, T0),
        Err(DomainError::RefundExceedsPaid {
            requested: 41,
            available: 40
        })
    );
}

#[test]
fn failed_refund_releases_its_amount() {
    let o = paid_order(100);
    let (r1, ev1) = refund(100, 1);
    let o = step(&o, ev1);
    let o = step(
        &o,
        OrderEvent::RefundFailed {
            refund_id: r1.clone(),
            failure: Failure {
                code: "E".into(),
                message: "insufficient balance".into(),
            },
        },
    );
    assert_eq!(o.status(), OrderStatus::Paid);
    assert_eq!(o.refund(&r1).unwrap().status(), RefundStatus::Failed);
    assert_eq!(o.refundable(), 100);
    // A contradicting success later is an anomaly, recorded once.
    let ev = OrderEvent::RefundSucceeded {
        refund_id: r1,
        provider_refund_id: None,
    };
    let o2 = step(&o, ev.clone());
    assert_eq!(o2.anomalies()[0].kind, AnomalyKind::RefundMismatch);
    assert_eq!(o2.apply(&ev, T0).unwrap(), Applied::Unchanged);
}

#[test]
fn an_unreceived_refund_fails_once_with_an_anomaly_and_releases_its_amount() {
    let o = paid_order(100);
    let (r1, ev1) = refund(70, 1);
    let o = step(&o, ev1);
    assert_eq!(o.refundable(), 30);
    let ev = OrderEvent::RefundNotReceived {
        refund_id: r1.clone(),
    };
    let Applied::Changed {
        order,
        notices,
        anomaly,
    } = o.apply(&ev, T0).unwrap()
    else {
        panic!("unchanged")
    };
    assert_eq!(notices, vec![MerchantNotice::RefundFailed(r1.clone())]);
    assert_eq!(anomaly.unwrap().kind, AnomalyKind::RefundNotReceived);
    let r = order.refund(&r1).unwrap();
    assert_eq!(r.status(), RefundStatus::Failed);
    assert_eq!(
        r.failure().unwrap().code,
        crate::domain::REFUND_NOT_RECEIVED
    );
    assert_eq!(order.status(), OrderStatus::Paid);
    assert_eq!(order.refundable(), 100);
    // Given up once; and an outcome the provider reported first is never overwritten.
    assert_eq!(order.apply(&ev, T0).unwrap(), Applied::Unchanged);
    let succeeded = step(
        &o,
        OrderEvent::RefundSucceeded {
            refund_id: r1.clone(),
            provider_refund_id: None,
        },
    );
    assert_eq!(succeeded.apply(&ev, T0).unwrap(), Applied::Unchanged);
}

#[test]
fn refund_currency_must_match() {
    let o = paid_order(100);
    let r = Refund::new(
        RefundId::generate(T0),
        MerchantRef::parse("R").unwrap(),
        Money::new(10, Currency::Usd).unwrap(),
        None,
        T0,
    );
    assert!(matches!(
        o.apply(&OrderEvent::RefundRequested { refund: r }, T0),
        Err(DomainError::CurrencyMismatch { .. })
    ));
}

#[test]
fn terminal_states_admit_no_transition() {
    let refunded = {
        let o = paid_order(100);
        let (r, ev) = refund(100, 1);
        step(
            &step(&o, ev),
            OrderEvent::RefundSucceeded {
                refund_id: r,
                provider_refund_id: None,
            },
        )
    };
    let (_, more) = refund(1, 9);
    assert!(refunded.apply(&more, T0).is_err());
    assert!(refunded
        .apply(
            &OrderEvent::CloseRequested {
                reason: CloseReason::Merchant
            },
            T0
        )
        .is_err());
}

// ---- property test -------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    Accept,
    Reject,
    Pay { amount_delta: i64, txn: u8 },
    Close,
    ProviderEnd(bool),
    RequestRefund(i64),
    RefundOk(usize),
    RefundFail(usize),
    RefundNotReceived(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        Just(Op::Accept),
        Just(Op::Reject),
        (prop_oneof![Just(0i64), -5i64..5], 0u8..3).prop_map(|(d, t)| Op::Pay {
            amount_delta: d,
            txn: t
        }),
        Just(Op::Close),
        any::<bool>().prop_map(Op::ProviderEnd),
        (1i64..120).prop_map(Op::RequestRefund),
        (0usize..6).prop_map(Op::RefundOk),
        (0usize..6).prop_map(Op::RefundFail),
        (0usize..6).prop_map(Op::RefundNotReceived),
    ]
}

proptest! {
    #[test]
    fn random_event_sequences_keep_the_invariants(amount in 1i64..200, ops in prop::collection::vec(op(), 0..40)) {
        let mut o = order(amount);
        let mut n = 0u32;
        for op in ops {
            n += 1;
            let ev = match op {
                Op::Accept => accepted(),
                Op::Reject => OrderEvent::PrepayRejected { failure: Failure { code: "E".into(), message: "m".into() } },
                Op::Pay { amount_delta, txn } => paid((amount + amount_delta).max(1), &format!("T{txn}")),
                Op::Close => OrderEvent::CloseRequested { reason: CloseReason::Merchant },
                Op::ProviderEnd(fail) => OrderEvent::ProviderEnded {
                    failed: fail.then(|| Failure { code: "PAYERROR".into(), message: "m".into() }),
                },
                Op::RequestRefund(a) => refund(a, n).1,
                Op::RefundOk(i) => match o.refunds().get(i) {
                    Some(r) => OrderEvent::RefundSucceeded { refund_id: r.id.clone(), provider_refund_id: None },
                    None => continue,
                },
                Op::RefundNotReceived(i) => match o.refunds().get(i) {
                    Some(r) => OrderEvent::RefundNotReceived { refund_id: r.id.clone() },
                    None => continue,
                },
                Op::RefundFail(i) => match o.refunds().get(i) {
                    Some(r) => OrderEvent::RefundFailed { refund_id: r.id.clone(), failure: Failure { code: "E".into(), message: "m".into() } },
                    None => continue,
                },
            };
            let before = o.clone();
            match o.apply(&ev, T0) {
                Ok(Applied::Changed { order, .. }) => {
                    prop_assert_eq!(order.version(), before.version() + 1);
                    if order.status().is_paid() && !before.status().is_paid() {
                        let exact = matches!(&ev, OrderEvent::PaymentReported { amount: a, .. } if a.minor() == amount);
                        prop_assert!(exact, "paid by an event that was not an exact payment: {:?}", ev);
                    }
                    if before.status().is_terminal() {
                        prop_assert_eq!(order.status(), before.status(), "left a terminal state");
                    }
                    o = *order;
                }
                Ok(Applied::Unchanged) => {}
                Err(_) => {}
            }
            // Invariants.
            // Refunds return either the order's payment or its late payments, never more.
            let paid_cap = if o.status().is_paid() { amount } else { o.amount_paid_late() };
            prop_assert!(o.amount_committed_to_refunds() <= paid_cap);
            prop_assert!(o.amount_refunded() <= paid_cap);
            prop_assert!(o.refundable() >= 0);
            if !o.status().accepts_late_refunds() {
                prop_assert!(o.late_payments().is_empty());
            }
            let mut txns: Vec<_> = o.late_payments().iter().map(|p| &p.provider_transaction_id).collect();
            txns.sort();
            txns.dedup();
            prop_assert_eq!(txns.len(), o.late_payments().len(), "a late payment recorded twice");
            if o.status().is_paid() {
                prop_assert!(o.paid_at().is_some());
                prop_assert!(o.provider_transaction_id().is_some());
            }
            if o.status() == OrderStatus::Refunded {
                prop_assert_eq!(o.amount_refunded(), amount);
            }
        }
    }
}
