//! A merchant takes a payment: create an order, let the (sandbox) payer pay it, and learn
//! of it from a verified webhook. Start paygate first (`cargo run -- serve`), then
//! `cargo run --example create_payment`.

#[path = "merchant/mod.rs"]
mod merchant;

use serde_json::json;

#[actix_web::main]
async fn main() {
    let http = reqwest::Client::new();
    let (notify_url, mut events) = merchant::webhook_endpoint();
    let no = format!("example-{}", std::process::id());

    // 1. Create the order. The Idempotency-Key makes a retry after a timeout safe.
    let (status, order) = merchant::post(
        &http,
        "/v1/orders",
        &no,
        json!({
            "merchant_order_no": no, "amount": 1999, "currency": "CNY",
            "channel": "sandbox", "method": "native_qr", "subject": "Example order",
            "notify_url": notify_url,
        }),
    )
    .await;
    assert_eq!(status, 201, "{order}");
    let id = order["id"].as_str().unwrap();
    println!("created {id}: show the payer {}", order["pay_action"]);

    // 2. The payer pays (the sandbox's simulated provider does it here).
    let (status, paid) = merchant::post(&http, &format!("/sandbox/pay/{id}"), &no, json!({})).await;
    assert_eq!(status, 200, "{paid}");

    // 3. The merchant acts only on the verified webhook, never on the payer's browser.
    let ev = merchant::wait_for(&mut events, "order.paid").await;
    println!(
        "verified webhook {}: order {} is {}",
        ev["id"], ev["data"]["object"]["id"], ev["data"]["object"]["status"]
    );
}
