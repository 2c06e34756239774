use super::*;
use crate::domain::*;
use crate::store::{test_store as temp_store, OutboxStatus};
use std::collections::BTreeMap;

fn new_order(no: &str, now: Millis) -> Order {
    Order::new(
        OrderId::generate(now),
        OrderSpec {
            merchant_id: MerchantId::parse("demo").unwrap(),
            merchant_order_no: MerchantRef::parse(no).unwrap(),
            amount: Money::new(100, Currency::Cny).unwrap(),
            channel: ChannelName::parse("sandbox").unwrap(),
            method: Method::NativeQr,
            subject: "s".into(),
            notify_url: None,
            return_url: None,
            expires_at: now + 1000,
            payer: Payer::default(),
            metadata: BTreeMap::new(),
            wallet: None,
        },
        now,
    )
}

fn create(o: &Order) -> OrderWrite {
    OrderWrite {
        order: o.clone(),
        prev_version: 0,
        events: vec![StoredEvent {
            seq: 1,
            at: o.created_at,
            event: OrderEvent::Created,
            status_after: o.status(),
            risk: None,
        }],
        outbox: vec![],
        wake: Wake::At(o.spec.expires_at),
    }
}

#[tokio::test]
async fn create_read_and_unique_merchant_order_no() {
    let (_d, s) = temp_store();
    let o = new_order("A1", 1000);
    s.commit(&create(&o)).await.unwrap();
    assert_eq!(s.get_order(&o.id).unwrap().unwrap(), o);
    assert_eq!(
        s.find_order_by_merchant_ref(&o.spec.merchant_id, &o.spec.merchant_order_no)
            .await
            .unwrap(),
        Some(o.id.clone())
    );
    let dup = new_order("A1", 1001);
    assert!(matches!(
        s.commit(&create(&dup)).await,
        Err(StoreError::DuplicateMerchantOrderNo(_))
    ));
    assert!(s.get_order(&dup.id).unwrap().is_none());
    assert_eq!(s.events(&o.id).unwrap().len(), 1);
}

/// A create learns that its merchant reference is taken from its daily-cap reservation
/// (postgres: in the batched reservation's round trip), and then nothing is reserved;
/// every other order of the batch reserves as usual.
#[tokio::test]
async fn a_reservation_for_a_taken_merchant_reference_is_refused_and_reserves_nothing() {
    let (_d, s) = temp_store();
    let o = new_order("A1", 1000);
    s.commit(&create(&o)).await.unwrap();
    let refs: Vec<MerchantRef> = ["A1", "A2", "A3"]
        .iter()
        .map(|n| MerchantRef::parse(n).unwrap())
        .collect();
    let r = |no| crate::store::DailyReservation {
        merchant: "demo",
        day: 20_000,
        currency: "CNY",
        amount: 100,
        max_count: None,
        max_amount: None,
        new_order: Some(no),
    };
    let (a1, a2, a3) = (r(&refs[0]), r(&refs[1]), r(&refs[2]));
    let (taken, free, another) = tokio::join!(
        s.risk_reserve_daily(&a1),
        s.risk_reserve_daily(&a2),
        s.risk_reserve_daily(&a3)
    );
    assert_eq!(
        taken.unwrap(),
        Err(crate::store::Refused::Taken(o.id.clone()))
    );
    assert!(free.unwrap().is_ok() && another.unwrap().is_ok());
    let usage = s.risk_daily_usage("demo", 20_000).unwrap();
    assert_eq!((usage.count, usage.amounts["CNY"]), (2, 200));
    // Another merchant's order of the same reference is no duplicate.
    let mut other = r(&refs[0]);
    other.merchant = "partner_shop";
    assert!(s.risk_reserve_daily(&other).await.unwrap().is_ok());
}

#[tokio::test]
async fn stale_version_is_refused() {
    let (_d, s) = temp_store();
    let o = new_order("A1", 1000);
    s.commit(&create(&o)).await.unwrap();
    let mut w = create(&o);
    w.prev_version = 7;
    assert!(matches!(
        s.commit(&w).await,
        Err(StoreError::VersionConflict {
            expected: 7,
            found: 1
        })
    ));
}

#[tokio::test]
async fn timers_move_with_the_order() {
    let (_d, s) = temp_store();
    let o = new_order("A1", 1000);
    s.commit(&create(&o)).await.unwrap();
    assert_eq!(s.due_timers(1999, 10).unwrap().len(), 0);
    assert_eq!(s.due_timers(2000, 10).unwrap(), vec![(2000, o.id.clone())]);
    let Applied::Changed { order, .. } = o
        .apply(
            &OrderEvent::CloseRequested {
                reason: CloseReason::Merchant,
            },
            1500,
        )
        .unwrap()
    else {
        panic!()
    };
    s.commit(&OrderWrite {
        order: *order,
        prev_version: 1,
        events: vec![StoredEvent {
            seq: 2,
            at: 1500,
            event: OrderEvent::CloseRequested {
                reason: CloseReason::Merchant,
            },
            status_after: OrderStatus::Closed,
            risk: None,
        }],
        outbox: vec![],
        wake: Wake::Clear,
    })
    .await
    .unwrap();
    assert!(s.due_timers(i64::MAX - 1, 10).unwrap().is_empty());
    assert_eq!(s.next_timer().unwrap(), None);
}

#[tokio::test]
async fn list_is_newest_first_with_cursor() {
    let (_d, s) = temp_store();
    let mut ids = vec![];
    for i in 0..5 {
        let o = new_order(&format!("N{i}"), 1000 + i);
        s.commit(&create(&o)).await.unwrap();
        ids.push(o.id);
    }
    let m = MerchantId::parse("demo").unwrap();
    let (p1, more) = s.list_orders(&m, None, 2).unwrap();
    assert!(more);
    assert_eq!(
        p1.iter().map(|o| &o.id).collect::<Vec<_>>(),
        vec![&ids[4], &ids[3]]
    );
    let (p2, _) = s.list_orders(&m, Some(&ids[3]), 10).unwrap();
    assert_eq!(p2.len(), 3);
    assert_eq!(p2[0].id, ids[2]);
    let other = MerchantId::parse("other").unwrap();
    assert!(s.list_orders(&other, None, 10).unwrap().0.is_empty());
}

#[tokio::test]
async fn concurrent_writers_share_flushes() {
    let (_d, s) = temp_store();
    let mut tasks = vec![];
    for i in 0..200 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let o = new_order(&format!("C{i}"), 1000 + i);
            s.commit(&create(&o)).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let (flushes, writes, _) = s.flush_stats();
    assert_eq!(writes, 200);
    assert!(flushes < 200, "{flushes} flushes for 200 writes");
    assert_eq!(s.order_count(), 200);
}

#[tokio::test]
async fn the_anomaly_index_holds_exactly_the_orders_with_anomalies() {
    let (_d, s) = temp_store();
    let plain = new_order("N1", 1000);
    s.commit(&create(&plain)).await.unwrap();
    let odd = new_order("N2", 1001);
    s.commit(&create(&odd)).await.unwrap();
    // A wrong amount reported for `odd` (still `created`) is an anomaly, not a payment.
    let ev = OrderEvent::PaymentReported {
        amount: Money::new(99, Currency::Cny).unwrap(),
        provider_transaction_id: "T9".into(),
        paid_at: 1002,
    };
    let Applied::Changed { order, .. } = odd.apply(&ev, 1002).unwrap() else {
        panic!("an anomaly is a change");
    };
    assert_eq!(order.anomalies().len(), 1);
    s.commit(&OrderWrite {
        order: (*order).clone(),
        prev_version: odd.version(),
        events: vec![],
        outbox: vec![],
        wake: Wake::Keep,
    })
    .await
    .unwrap();
    let listed: Vec<OrderId> = s.anomalous_orders().map(|o| o.unwrap().id).collect();
    assert_eq!(listed, vec![odd.id.clone()]);
}

/// Writes queued together share one transaction, yet each stays all-or-nothing: a rejected
/// write (a merchant_order_no taken by a neighbour in the same batch, a stale version)
/// writes nothing and does not fail the others.
#[tokio::test]
async fn a_batch_judges_each_write_on_its_own() {
    use std::pin::pin;
    let (_d, s) = temp_store();
    // Hold the writer in the flush of a first write, so the next three queue up together.
    s.pause_flushes(true);
    let first = new_order("F", 1000);
    let w_first = create(&first);
    let mut f = pin!(s.commit(&w_first));
    assert!(futures::poll!(f.as_mut()).is_pending());
    while s.flush_stats().2 < 1 {
        tokio::task::yield_now().await;
    }
    let ok = new_order("B", 1001);
    let dup = new_order("B", 1002);
    let mut stale = create(&new_order("C", 1003));
    stale.prev_version = 3;
    let (w_ok, w_dup) = (create(&ok), create(&dup));
    let mut a = pin!(s.commit(&w_ok));
    let mut b = pin!(s.commit(&w_dup));
    let mut c = pin!(s.commit(&stale));
    assert!(futures::poll!(a.as_mut()).is_pending());
    assert!(futures::poll!(b.as_mut()).is_pending());
    assert!(futures::poll!(c.as_mut()).is_pending());
    s.pause_flushes(false);

    f.await.unwrap();
    a.await.unwrap();
    assert!(
        matches!(b.await, Err(StoreError::DuplicateMerchantOrderNo(id)) if id == ok.id.as_str())
    );
    assert!(matches!(
        c.await,
        Err(StoreError::VersionConflict {
            expected: 3,
            found: 0
        })
    ));
    assert_eq!(
        s.flush_stats().2,
        2,
        "the three queued writes shared one transaction"
    );
    assert_eq!(s.order_count(), 2);
    assert!(s.get_order(&dup.id).unwrap().is_none());
    assert!(s.events(&dup.id).unwrap().is_empty());
    let m = MerchantId::parse("demo").unwrap();
    assert_eq!(s.list_orders(&m, None, 10).unwrap().0.len(), 2);
    let due: Vec<OrderId> = s
        .due_timers(i64::MAX - 1, 10)
        .unwrap()
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    assert_eq!(due, vec![first.id, ok.id]);
}

/// A reader that can see a write is never told it is settled before that write's flush:
/// the writer counts a batch before making it visible.
#[tokio::test]
async fn a_visible_write_settles_only_with_its_flush() {
    use std::pin::pin;
    // sled's writes are visible before their flush; postgres's only once committed.
    let (_d, s) = crate::store::temp_sled();
    let s = crate::store::Store::from(s);
    s.pause_flushes(true);
    let o = new_order("V", 1000);
    let w = create(&o);
    let mut commit = pin!(s.commit(&w));
    assert!(futures::poll!(commit.as_mut()).is_pending());
    while s.get_order(&o.id).unwrap().is_none() {
        tokio::task::yield_now().await;
    }
    let mut settled = pin!(s.settled());
    assert!(futures::poll!(settled.as_mut()).is_pending());
    s.pause_flushes(false);
    settled.await.unwrap();
    commit.await.unwrap();
}

/// Leasing pushes a due timer back so it is not dispatched twice; a lease of a due time
/// the order no longer has takes nothing.
#[tokio::test]
async fn leases_move_due_timers_once() {
    let (_d, s) = temp_store();
    let a = new_order("L1", 1000);
    let b = new_order("L2", 1001);
    s.commit(&create(&a)).await.unwrap();
    s.commit(&create(&b)).await.unwrap();
    let due = s.due_timers(2001, 10).unwrap();
    assert_eq!(due, vec![(2000, a.id.clone()), (2001, b.id.clone())]);
    let stale = vec![(1999, a.id.clone())];
    assert_eq!(s.lease_timers(&stale, 9000).await.unwrap(), vec![false]);
    assert_eq!(s.lease_timers(&due, 9000).await.unwrap(), vec![true, true]);
    assert!(s.due_timers(8999, 10).unwrap().is_empty());
    assert_eq!(
        s.lease_timers(&due, 9500).await.unwrap(),
        vec![false, false]
    );
    assert_eq!(s.order_wake(&a.id).unwrap(), Some(9000));
    assert_eq!(s.due_timers(9000, 10).unwrap().len(), 2);
}

#[tokio::test]
async fn key_counts_name_each_tree_a_create_writes() {
    // sled's trees (postgres counts its tables).
    let (_d, s) = crate::store::temp_sled();
    let s = crate::store::Store::from(s);
    for (i, no) in ["K1", "K2"].into_iter().enumerate() {
        s.commit(&create(&new_order(no, 1000 + i as i64)))
            .await
            .unwrap();
    }
    let counts: BTreeMap<String, usize> = s.key_counts().into_iter().collect();
    for tree in [
        "orders",
        "events",
        "merchant_orders",
        "merchant_list",
        "timers",
    ] {
        assert_eq!(counts.get(tree), Some(&2), "{tree}: {counts:?}");
    }
    assert!(!counts.contains_key("refunds"), "empty trees are left out");
}

/// Far past any clock the tests use, so every id generated here is older.
const RETENTION_EDGE: Millis = 5_000_000_000_000;

fn outbox_record(o: &Order, status: OutboxStatus, delivered_at: Option<Millis>) -> OutboxRecord {
    OutboxRecord {
        id: EventId::generate(o.created_at),
        merchant_id: o.spec.merchant_id.clone(),
        order_id: o.id.clone(),
        event_type: "order.paid".into(),
        payload: b"{}".to_vec(),
        created_at: o.created_at,
        notify_url: None,
        status,
        attempts: 1,
        next_due: o.created_at,
        last_error: None,
        delivered_at,
    }
}

#[tokio::test]
async fn purge_removes_only_deliveries_older_than_the_retention_edge() {
    let (_d, s) = temp_store();
    let o = new_order("P1", 1000);
    let records = [
        outbox_record(&o, OutboxStatus::Delivered, Some(RETENTION_EDGE - 1)),
        outbox_record(&o, OutboxStatus::Delivered, Some(RETENTION_EDGE + 5000)),
        outbox_record(&o, OutboxStatus::Pending, None),
        outbox_record(&o, OutboxStatus::Dead, None),
    ];
    let mut w = create(&o);
    w.outbox = records.to_vec();
    s.commit(&w).await.unwrap();

    assert_eq!(s.purge_delivered(RETENTION_EDGE).unwrap(), 1);
    assert_eq!(s.get_outbox(&records[0].id).unwrap(), None);
    for kept in &records[1..] {
        assert_eq!(s.get_outbox(&kept.id).unwrap().as_ref(), Some(kept));
    }
    // Records created after the edge are not even read: one delivered "before" it (a
    // clock that stepped back) waits for a later run.
    let late = new_order("P2", RETENTION_EDGE + 10);
    let mut early_delivery = outbox_record(&late, OutboxStatus::Delivered, Some(1));
    early_delivery.created_at = late.created_at;
    let mut w = create(&late);
    w.outbox = vec![early_delivery.clone()];
    s.commit(&w).await.unwrap();
    assert_eq!(s.purge_delivered(RETENTION_EDGE).unwrap(), 0);
    assert_eq!(s.purge_delivered(RETENTION_EDGE + 1000).unwrap(), 1);
    assert_eq!(s.get_outbox(&early_delivery.id).unwrap(), None);
}
