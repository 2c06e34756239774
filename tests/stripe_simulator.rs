//! The Stripe simulator as a Stripe client and a payer meet it, over HTTP: the REST shape
//! (bearer or Basic key, bracketed forms, idempotency keys replayed or refused, JSON
//! errors), the refusals with Stripe's codes and `param`s, and the hosted pages.

mod common;

use common::*;
use serde_json::{json, Value};

/// The sandbox channel's TEST_ONLY secret key in `config.toml`.
const SECRET_KEY: &str = "sk_test_TEST_ONLY_paygate_sandbox";

fn body(no: &str, wallet: &str, method: &str, currency: &str, amount: i64) -> Value {
    json!({
        "merchant_order_no": no,
        "amount": amount,
        "currency": currency,
        "channel": "stripe",
        "wallet": wallet,
        "method": method,
        "subject": "Green tea",
        "return_url": "https://shop.example/done",
    })
}

#[actix_web::test]
async fn the_simulator_speaks_stripes_rest_shape() {
    let app = spawn_app().await;
    let url = format!("{}/sandbox/stripe/v1/payment_intents", app.base);
    let form = "amount=1000&currency=sgd&confirm=true&payment_method_types[0]=paynow&payment_method_data[type]=paynow&metadata[k]=v";
    let post = |key: &'static str, auth: &'static str, body: &'static str| {
        app.http
            .post(&url)
            .header("Authorization", auth)
            .header("Idempotency-Key", key)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let bearer = "Bearer sk_test_TEST_ONLY_paygate_sandbox";
    let r = post("k1", "Bearer sk_test_wrong", form).await.unwrap();
    assert_eq!(r.status(), 401);
    let first = post("k1", bearer, form).await.unwrap();
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["next_action"]["type"], "paynow_display_qr_code");
    assert_eq!(first["metadata"]["k"], "v");
    let replay = post("k1", bearer, form).await.unwrap();
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    let replay: Value = replay.json().await.unwrap();
    assert_eq!(replay["id"], first["id"]);
    let other = post("k1", bearer, "amount=2000&currency=sgd")
        .await
        .unwrap();
    assert_eq!(other.status(), 400);
    let e: Value = other.json().await.unwrap();
    assert_eq!(e["error"]["type"], "idempotency_error");
    // HTTP Basic with the key as user name works as well.
    let basic = format!("Basic {}", base64_key());
    let r = app
        .http
        .get(format!("{url}/{}", first["id"].as_str().unwrap()))
        .header("Authorization", basic)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let missing = app
        .http
        .get(format!("{url}/pi_nope"))
        .bearer_auth(SECRET_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let e: Value = missing.json().await.unwrap();
    assert_eq!(e["error"]["code"], "resource_missing");
}

fn base64_key() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{SECRET_KEY}:"))
}

/// The simulator refuses what Stripe refuses, with Stripe's codes and `param`s.
#[actix_web::test]
async fn the_simulator_refuses_like_stripe() {
    let app = spawn_app().await;
    let post = |path: &str, form: &str| {
        app.http
            .post(format!("{}/sandbox/stripe{path}", app.base))
            .bearer_auth(SECRET_KEY)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form.to_string())
            .send()
    };
    let pi = "/v1/payment_intents";
    for (form, code, param) in [
        ("amount=49&currency=usd&payment_method_types[0]=alipay", "amount_too_small", "amount"),
        ("amount=1000&currency=myr&payment_method_types[0]=paynow", "payment_intent_invalid_parameter", "currency"),
        ("currency=sgd&payment_method_types[0]=paynow", "parameter_missing", "amount"),
        ("amount=abc&currency=sgd", "parameter_invalid_integer", "amount"),
        (
            "amount=1000&currency=sgd&confirm=true&payment_method_types[0]=grabpay&payment_method_data[type]=grabpay",
            "parameter_missing",
            "return_url",
        ),
    ] {
        let r = post(pi, form).await.unwrap();
        assert_eq!(r.status(), 400, "{form}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["type"], "invalid_request_error", "{form}: {e}");
        assert_eq!(e["error"]["code"], code, "{form}: {e}");
        assert_eq!(e["error"]["param"], param, "{form}: {e}");
    }
    let session = "mode=payment&success_url=https://s/ok&line_items[0][price_data][currency]=usd&line_items[0][price_data][unit_amount]=1000&line_items[0][price_data][product_data][name]=Tea&line_items[0][quantity]=1&expires_at=1";
    let r = post("/v1/checkout/sessions", session).await.unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["param"], "expires_at", "{e}");
    // An unpaid PaymentIntent has nothing to refund; an unknown one does not exist.
    let created: Value = post(pi, "amount=1000&currency=sgd&confirm=true&payment_method_types[0]=paynow&payment_method_data[type]=paynow")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let form = format!("payment_intent={}", created["id"].as_str().unwrap());
    let e: Value = post("/v1/refunds", &form)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(e["error"]["code"], "payment_intent_unexpected_state", "{e}");
    let r = post("/v1/refunds", "payment_intent=pi_unknown")
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Cancelling twice: the second finds it canceled already.
    let cancel = format!("{pi}/{}/cancel", created["id"].as_str().unwrap());
    assert_eq!(
        post(&cancel, "cancellation_reason=abandoned")
            .await
            .unwrap()
            .status(),
        200
    );
    let e: Value = post(&cancel, "").await.unwrap().json().await.unwrap();
    assert_eq!(e["error"]["code"], "payment_intent_unexpected_state", "{e}");
    // No key at all.
    let r = app
        .http
        .get(format!("{}/sandbox/stripe{pi}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

/// The hosted pages a payer meets: a card that asks for 3-D Secure, then pays; a card
/// declined on the Checkout page leaves the order payable; a declined PayNow QR fails it.
#[actix_web::test]
async fn hosted_pages_pay_authenticate_and_decline() {
    let app = spawn_app().await;
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = app
        .post(
            "/v1/orders",
            body("page-card", "card", "pc_web", "GBP", 4200),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_string();
    let url = r.body["pay_action"]["url"].as_str().unwrap().to_string();
    let page = browser
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("3-D Secure") && page.contains("4200"),
        "{page}"
    );
    // A first card is declined: Checkout lets the payer try again, the order waits.
    let d = browser.post(format!("{url}/decline")).send().await.unwrap();
    assert_eq!(d.status(), 303);
    assert_eq!(d.headers()["location"], "https://shop.example/done");
    // The page answers once paygate has had the event: the order is still payable.
    assert_eq!(app.order(&id).await["status"], "pending");
    let auth = browser
        .get(format!("{url}/3ds"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(auth.contains("Complete authentication"), "{auth}");
    let done = browser.post(format!("{url}/pay")).send().await.unwrap();
    assert_eq!(done.status(), 303);
    let o = app.order(&id).await;
    assert_eq!(o["status"], "paid", "{o}");
    assert_eq!(o["amount"], 4200);
    // The page of a paid session offers nothing more to pay.
    assert_eq!(
        browser
            .post(format!("{url}/pay"))
            .send()
            .await
            .unwrap()
            .status(),
        409
    );

    let r = app
        .post(
            "/v1/orders",
            body("page-paynow", "paynow", "h5", "SGD", 900),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_string();
    let url = r.body["pay_action"]["url"].as_str().unwrap().to_string();
    let page = browser
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("SG.PAYNOW"),
        "the page shows the QR payload: {page}"
    );
    let png = browser
        .get(url.replace("/hosted/", "/qr/") + ".png")
        .send()
        .await
        .unwrap();
    assert_eq!(png.headers()["content-type"], "image/png");
    browser.post(format!("{url}/decline")).send().await.unwrap();
    let o = app.order(&id).await;
    assert_eq!(o["status"], "failed", "{o}");
    assert!(o["failure"]["code"].as_str().is_some(), "{o}");
}
