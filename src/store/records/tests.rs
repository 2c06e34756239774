use super::*;
use crate::domain::{Currency, OrderStatus, RefundStatus};

/// An `orders` record written by the last release before layouts (commit ec35aee): the
/// domain `Order` encoded directly. Generated once by that release's `Store::commit`, read
/// back raw from sled; it must stay readable by every later release.
const LAYOUT1: &str = include_str!("layout1_order.hex");

#[test]
fn a_record_of_layout_1_still_decodes() {
    let bytes = hex::decode(LAYOUT1.trim()).unwrap();
    assert_eq!(bytes[0], FORMAT_V1);
    let r = StoredOrder::decode(&bytes).unwrap();
    let o = &r.order;
    assert_eq!(o.id.as_str(), "ord_01M97B2QVF00012XY0QZ1Z8F");
    assert_eq!(o.spec.merchant_order_no.as_str(), "v1-layout-1");
    assert_eq!(o.spec.amount, Money::new(1999, Currency::Cny).unwrap());
    assert_eq!(o.spec.method, Method::H5);
    assert_eq!(o.spec.payer.ip.as_deref(), Some("203.0.113.7"));
    assert_eq!(o.spec.payer.user_id.as_deref(), Some("u1"));
    assert_eq!(
        o.spec.payer.auth_code, None,
        "layout 1 had no payment codes"
    );
    assert_eq!(o.spec.wallet, None, "layout 1 had no wallets");
    assert_eq!(o.spec.metadata.get("cart").map(String::as_str), Some("42"));
    assert_eq!(o.status(), OrderStatus::PartiallyRefunded);
    assert_eq!(o.provider_transaction_id(), Some("TXN1"));
    assert_eq!(o.refunds().len(), 1);
    assert_eq!(o.refunds()[0].status(), RefundStatus::Succeeded);
    assert_eq!(o.refunds()[0].amount.minor(), 500);
    assert_eq!(r.wake, Some(1_765_000_010_000));
    // Written back, it is the newest layout, and reads the same.
    let again = StoredOrder::decode(&r.encode().unwrap()).unwrap();
    assert_eq!(again.order, r.order);
    assert_eq!(again.wake, r.wake);
}

#[test]
fn the_newest_layout_round_trips_every_new_field() {
    let bytes = hex::decode(LAYOUT1.trim()).unwrap();
    let mut parts = StoredOrder::decode(&bytes).unwrap().order.into_parts();
    parts.spec.wallet = Some(Wallet::parse("tng").unwrap());
    parts.spec.payer.auth_code = Some("134567890123456789".into());
    parts.spec.method = Method::Barcode;
    let rec = StoredOrder {
        order: Order::from_parts(parts),
        wake: None,
    };
    let b = rec.encode().unwrap();
    assert_eq!(b[0], FORMAT_V2);
    let back = StoredOrder::decode(&b).unwrap();
    assert_eq!(back.order, rec.order);
    assert_eq!(back.wake, None);
}

#[test]
fn unknown_layouts_are_refused_not_misread() {
    let mut b = hex::decode(LAYOUT1.trim()).unwrap();
    b[0] = 9;
    assert!(matches!(StoredOrder::decode(&b), Err(StoreError::Codec(m)) if m.contains("layout 9")));
    assert!(StoredOrder::decode(&[]).is_err());
}
