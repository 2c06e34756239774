//! A merchant refunds a paid order in two parts, learning each outcome from a verified
//! webhook. Start paygate first (`cargo run -- serve`), then
//! `cargo run --example refund_payment`.

#[path = "merchant/mod.rs"]
mod merchant;

use serde_json::json;

#[actix_web::main]
async fn main() {
    let http = reqwest::Client::new();
    let (notify_url, mut events) = merchant::webhook_endpoint();
    let no = format!("refund-example-{}", std::process::id());

    let (status, order) = merchant::post(
        &http,
        "/v1/orders",
        &no,
        json!({
            "merchant_order_no": no, "amount": 5000, "currency": "CNY",
            "channel": "sandbox", "method": "native_qr", "subject": "Example order",
            "notify_url": notify_url,
        }),
    )
    .await;
    assert_eq!(status, 201, "{order}");
    let id = order["id"].as_str().unwrap();
    merchant::post(&http, &format!("/sandbox/pay/{id}"), &no, json!({})).await;
    merchant::wait_for(&mut events, "order.paid").await;

    // Two partial refunds; each has the merchant's own unique number, and the key makes a
    // retried request return the same refund instead of refunding twice.
    for (n, amount) in [(1, 2000), (2, 3000)] {
        let refund_no = format!("{no}-r{n}");
        let (status, refund) = merchant::post(
            &http,
            &format!("/v1/orders/{id}/refunds"),
            &refund_no,
            json!({"merchant_refund_no": refund_no, "amount": amount}),
        )
        .await;
        assert_eq!(status, 201, "{refund}");
        println!("refund {} of {amount}: {}", refund["id"], refund["status"]);
        let ev = merchant::wait_for(&mut events, "refund.succeeded").await;
        println!(
            "verified webhook {}: refund {} succeeded",
            ev["id"], ev["data"]["object"]["id"]
        );
    }
    let order: serde_json::Value = http
        .get(format!("{}/v1/orders/{id}", merchant::paygate_url()))
        .bearer_auth(merchant::API_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    println!(
        "order {id} is {} ({} refunded)",
        order["status"], order["amount_refunded"]
    );
}
