//! The provider's books under concurrency: decisions on one trade are taken once.

use super::state::{Books, PayRefusal, TradeStatus};
use super::wire;

/// On the test store (sled, or PostgreSQL in the postgres pass): the races below are
/// between nodes there.
fn books() -> (crate::store::TestStoreGuard, Books) {
    let (dir, store) = crate::store::test_store();
    (dir, Books::new(store.kv_tree("sandbox").unwrap()))
}

fn create_req(out_trade_no: &str, amount: i64) -> wire::CreatePayment {
    wire::CreatePayment {
        out_trade_no: out_trade_no.into(),
        amount,
        currency: "CNY".into(),
        method: "h5".into(),
        subject: "s".into(),
        notify_url: "http://127.0.0.1:1/cb".into(),
        expires_at: 2_000_000_000,
        payer_ip: None,
        return_url: None,
        auth_code: None,
        wallet: None,
    }
}

fn refund_req(out_refund_no: &str, amount: i64) -> wire::CreateRefund {
    wire::CreateRefund {
        out_trade_no: "TRADE000001".into(),
        out_refund_no: out_refund_no.into(),
        amount,
        notify_url: "http://127.0.0.1:1/cb".into(),
        reason: None,
    }
}

const NOW: i64 = 1_700_000_000;

#[test]
fn concurrent_creates_of_one_out_trade_no_make_one_trade() {
    let (_d, b) = books();
    let nos: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    b.create(&create_req("TRADE000001", 100), NOW)
                        .unwrap()
                        .trade_no
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(nos.iter().all(|n| n == &nos[0]), "{nos:?}");
    let t = b.trade_by_no(&nos[0], NOW).unwrap().unwrap();
    assert_eq!(t.out_trade_no, "TRADE000001");
}

#[test]
fn racing_refunds_never_exceed_the_paid_amount() {
    let (_d, b) = books();
    b.create(&create_req("TRADE000001", 1000), NOW).unwrap();
    b.pay("TRADE000001", None, NOW).unwrap().unwrap();
    let outcomes: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8)
            .map(|i| {
                let b = &b;
                s.spawn(move || b.refund(&refund_req(&format!("REFUND00{i}"), 300), NOW))
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ok = outcomes.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 3);
    assert!(outcomes
        .iter()
        .filter_map(|r| r.as_ref().err())
        .all(|e| e.code == "REFUND_EXCEEDS"));
    let t = b.trade("TRADE000001", NOW).unwrap();
    assert_eq!(t.refunds.values().sum::<i64>(), 900);
}

#[test]
fn racing_twins_of_one_refund_settle_once() {
    let (_d, b) = books();
    b.create(&create_req("TRADE000001", 1000), NOW).unwrap();
    b.pay("TRADE000001", None, NOW).unwrap().unwrap();
    let got: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8)
            .map(|_| s.spawn(|| b.refund(&refund_req("REFUND001", 400), NOW).unwrap()))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(got.iter().filter(|(_, new)| *new).count(), 1);
    assert!(got.iter().all(|(r, _)| r.refund_no == got[0].0.refund_no));
    assert_eq!(
        b.trade("TRADE000001", NOW)
            .unwrap()
            .refunds
            .values()
            .sum::<i64>(),
        400
    );
}

#[test]
fn the_same_refund_twice_is_one_refund() {
    let (_d, b) = books();
    b.create(&create_req("TRADE000001", 1000), NOW).unwrap();
    b.pay("TRADE000001", None, NOW).unwrap().unwrap();
    let (first, new) = b.refund(&refund_req("REFUND001", 600), NOW).unwrap();
    assert!(new);
    let (again, new) = b.refund(&refund_req("REFUND001", 600), NOW).unwrap();
    assert!(!new);
    assert_eq!(first, again);
    assert_eq!(
        b.refund(&refund_req("REFUND002", 600), NOW)
            .unwrap_err()
            .code,
        "REFUND_EXCEEDS"
    );
}

/// A refund whose settling task died with its process (a paygate node killed right after
/// the simulator accepted it) is settled by a later query instead of staying processing;
/// a young one is left to its own task.
#[test]
fn a_refund_orphaned_by_its_process_is_settled_by_a_later_query() {
    use super::state::RefundStatus;
    use crate::simulator::ORPHAN_REFUND_SETTLE_SECS;
    let (_d, b) = books();
    b.create(&create_req("TRADE000001", 1000), NOW).unwrap();
    b.pay("TRADE000001", None, NOW).unwrap().unwrap();
    b.refund(&refund_req("REFUND001", 400), NOW).unwrap();
    let (young, settled) = b.refund_query("REFUND001", NOW + 1).unwrap();
    assert_eq!((young.status, settled), (RefundStatus::Processing, false));
    let (late, settled) = b
        .refund_query("REFUND001", NOW + ORPHAN_REFUND_SETTLE_SECS)
        .unwrap();
    assert_eq!((late.status, settled), (RefundStatus::Success, true));
    assert_eq!(
        b.refund_rec("REFUND001").unwrap().status,
        RefundStatus::Success
    );
}

#[test]
fn pay_needs_a_pending_unexpired_trade() {
    let (_d, b) = books();
    assert_eq!(
        b.pay("NOSUCHTRADE", None, NOW).unwrap(),
        Err(PayRefusal::Unknown)
    );
    let mut req = create_req("TRADE000001", 100);
    req.expires_at = NOW + 10;
    b.create(&req, NOW).unwrap();
    assert_eq!(
        b.pay("TRADE000001", None, NOW + 11).unwrap(),
        Err(PayRefusal::NotPayable(TradeStatus::Closed))
    );
    b.create(&create_req("TRADE000002", 100), NOW).unwrap();
    let t = b.pay("TRADE000002", Some(90), NOW).unwrap().unwrap();
    assert_eq!(
        (t.status, t.paid_amount, t.amount),
        (TradeStatus::Paid, Some(90), 100)
    );
    assert_eq!(
        b.pay("TRADE000002", None, NOW).unwrap(),
        Err(PayRefusal::NotPayable(TradeStatus::Paid))
    );
}
