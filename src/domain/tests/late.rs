//! Late payments (docs/design.md §3 `paid_after_close`): recorded once per transaction, refundable
//! up to what arrived, and refunds of them never move the closed/failed order.

use super::*;

fn closed_order(amount: i64) -> Order {
    step(
        &step(&order(amount), accepted()),
        OrderEvent::CloseRequested {
            reason: CloseReason::Merchant,
        },
    )
}

fn failed_order(amount: i64) -> Order {
    step(
        &order(amount),
        OrderEvent::PrepayRejected {
            failure: Failure {
                code: "E".into(),
                message: "m".into(),
            },
        },
    )
}

fn ok(id: &RefundId) -> OrderEvent {
    OrderEvent::RefundSucceeded {
        refund_id: id.clone(),
        provider_refund_id: Some("P1".into()),
    }
}

fn declined(id: &RefundId) -> OrderEvent {
    OrderEvent::RefundFailed {
        refund_id: id.clone(),
        failure: Failure {
            code: "DECLINED".into(),
            message: "balance too low".into(),
        },
    }
}

#[test]
fn a_late_payment_is_recorded_once_per_transaction() {
    let o = step(&closed_order(100), paid(100, "T9"));
    assert_eq!(o.late_payments().len(), 1);
    assert_eq!(o.late_payments()[0].provider_transaction_id, "T9");
    assert_eq!(o.late_payments()[0].amount, cny(100));
    assert_eq!(o.anomalies().len(), 1);
    assert_eq!(o.apply(&paid(100, "T9"), T0).unwrap(), Applied::Unchanged);
    // Another transaction is another late payment (and another anomaly).
    let o = step(&o, paid(40, "T10"));
    assert_eq!(o.late_payments().len(), 2);
    assert_eq!(o.amount_paid_late(), 140);
    assert_eq!(o.late_refundable(), 140);
    assert_eq!(o.refundable(), 140);
    assert_eq!(o.status(), OrderStatus::Closed);
}

#[test]
fn a_failed_order_records_late_payments_too() {
    let o = step(&failed_order(100), paid(100, "T9"));
    assert_eq!(o.status(), OrderStatus::Failed);
    assert_eq!(o.late_refundable(), 100);
}

#[test]
fn a_closed_order_without_late_payments_refuses_refunds() {
    let (_, ev) = refund(1, 1);
    assert!(matches!(
        closed_order(100).apply(&ev, T0),
        Err(DomainError::InvalidTransition {
            from: OrderStatus::Closed,
            ..
        })
    ));
    assert_eq!(closed_order(100).refundable(), 0);
    assert!(!closed_order(100).holds_money());
}

#[test]
fn late_refunds_never_exceed_the_late_payments_pending_included() {
    let o = step(&closed_order(100), paid(60, "T9"));
    assert!(o.holds_money());
    let (_, too_much) = refund(61, 1);
    assert_eq!(
        o.apply(&too_much, T0),
        Err(DomainError::RefundExceedsPaid {
            requested: 61,
            available: 60
        })
    );
    let (_, first) = refund(50, 2);
    let o = step(&o, first);
    assert_eq!(o.late_refundable(), 10);
    let (_, second) = refund(11, 3);
    assert!(matches!(
        o.apply(&second, T0),
        Err(DomainError::RefundExceedsPaid { available: 10, .. })
    ));
}

#[test]
fn late_refund_currency_must_match() {
    let o = step(&closed_order(100), paid(100, "T9"));
    let r = Refund::new(
        RefundId::generate(T0),
        MerchantRef::parse("R1").unwrap(),
        Money::new(100, Currency::Usd).unwrap(),
        None,
        T0,
    );
    assert!(matches!(
        o.apply(&OrderEvent::RefundRequested { refund: r }, T0),
        Err(DomainError::CurrencyMismatch { .. })
    ));
}

#[test]
fn a_late_refund_succeeds_and_the_order_stays_closed() {
    let o = step(&closed_order(100), paid(100, "T9"));
    let (id, ev) = refund(100, 1);
    let o = step(&o, ev);
    assert_eq!(o.status(), OrderStatus::Closed);
    match o.apply(&ok(&id), T0).unwrap() {
        Applied::Changed { order, notices, .. } => {
            assert_eq!(order.status(), OrderStatus::Closed);
            assert_eq!(order.refund(&id).unwrap().status(), RefundStatus::Succeeded);
            assert_eq!(order.amount_refunded(), 100);
            assert_eq!(order.late_refundable(), 0);
            assert_eq!(notices, vec![MerchantNotice::RefundSucceeded(id.clone())]);
            assert_eq!(order.apply(&ok(&id), T0).unwrap(), Applied::Unchanged);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_failed_late_refund_releases_its_amount_and_the_order_stays_failed() {
    let o = step(&failed_order(100), paid(100, "T9"));
    let (id, ev) = refund(100, 1);
    let o = step(&o, ev);
    match o.apply(&declined(&id), T0).unwrap() {
        Applied::Changed { order, notices, .. } => {
            assert_eq!(order.status(), OrderStatus::Failed);
            assert_eq!(order.late_refundable(), 100);
            assert_eq!(notices, vec![MerchantNotice::RefundFailed(id)]);
        }
        other => panic!("{other:?}"),
    }
}

/// paygate's own refund of a late payment (the number `late_refunds_due` names) failing
/// is an anomaly for operators; a merchant's own refund of it failing is not.
#[test]
fn a_failed_automatic_late_refund_is_an_anomaly_and_a_merchants_is_not() {
    let o = step(&closed_order(100), paid(100, "T9"));
    let due = o.late_refunds_due();
    assert_eq!(due.len(), 1);

    let auto_id = RefundId::generate(T0 + 7);
    let auto = step(
        &o,
        OrderEvent::RefundRequested {
            refund: Refund::new(
                auto_id.clone(),
                due[0].merchant_refund_no.clone(),
                due[0].amount,
                None,
                T0,
            ),
        },
    );
    match auto.apply(&declined(&auto_id), T0).unwrap() {
        Applied::Changed { order, anomaly, .. } => {
            let a = anomaly.expect("an anomaly");
            assert_eq!(a.kind, AnomalyKind::LateRefundFailed);
            assert!(a.detail.contains("DECLINED"), "{}", a.detail);
            assert_eq!(order.anomalies().last(), Some(&a));
            assert_eq!(order.late_refundable(), 100);
        }
        other => panic!("{other:?}"),
    }

    let (own_id, own) = refund(100, 1);
    let own = step(&o, own);
    match own.apply(&declined(&own_id), T0).unwrap() {
        Applied::Changed { anomaly, .. } => assert_eq!(anomaly, None),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_paid_order_has_no_late_refundable_amount() {
    let o = paid_order(100);
    assert_eq!(o.late_refundable(), 0);
    assert_eq!(o.refundable(), 100);
}

#[test]
fn automatic_refunds_are_due_once_per_late_payment_under_a_stable_number() {
    let o = step(&closed_order(100), paid(100, "T9"));
    let due = o.late_refunds_due();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].amount, cny(100));
    let no = due[0].merchant_refund_no.clone();
    assert!(no.as_str().starts_with(LATE_REFUND_PREFIX));
    assert_eq!(
        o.late_refunds_due()[0].merchant_refund_no,
        no,
        "deterministic"
    );
    let r = Refund::new(RefundId::generate(T0), no, cny(100), None, T0);
    let o = step(&o, OrderEvent::RefundRequested { refund: r });
    assert!(o.late_refunds_due().is_empty());
    // A second transaction gets its own number.
    let o = step(&o, paid(100, "T10"));
    let due = o.late_refunds_due();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].provider_transaction_id, "T10");
}

#[test]
fn automatic_refunds_never_return_what_the_merchant_already_refunded() {
    let o = step(&closed_order(100), paid(100, "T9"));
    let (_, manual) = refund(70, 1);
    let o = step(&o, manual);
    let due = o.late_refunds_due();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].amount, cny(30));
    let (_, rest) = refund(30, 2);
    assert!(step(&o, rest).late_refunds_due().is_empty());
    assert!(paid_order(100).late_refunds_due().is_empty());
}
