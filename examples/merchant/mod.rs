//! What both payment examples share: a tiny merchant with an API key, a webhook secret and
//! a webhook endpoint of its own, talking to a paygate started with the built-in sandbox
//! (`cargo run -- serve`). `PAYGATE_URL` overrides the address.

use serde_json::Value;
use tokio::sync::mpsc;

pub const API_KEY: &str = "sk_test_paygate_demo";
pub const WEBHOOK_SECRET: &str = "whsec_demo_0123456789abcdef";

pub fn paygate_url() -> String {
    std::env::var("PAYGATE_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into())
}

/// Starts the merchant's webhook endpoint on a free local port. Each delivery is verified
/// (raw body, `Paygate-Signature`, five minutes' tolerance) before it is handed over.
pub fn webhook_endpoint() -> (String, mpsc::UnboundedReceiver<Value>) {
    use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
    let (tx, rx) = mpsc::unbounded_channel();
    let server = HttpServer::new(move || {
        let tx = tx.clone();
        App::new().route(
            "/webhooks",
            web::post().to(move |req: HttpRequest, body: web::Bytes| {
                let tx = tx.clone();
                async move {
                    let sig = req
                        .headers()
                        .get("Paygate-Signature")
                        .and_then(|v| v.to_str().ok());
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_secs() as i64;
                    match sig.map(|s| paygate::webhook::verify(s, WEBHOOK_SECRET, &body, now, 300))
                    {
                        Some(Ok(())) => {
                            let _ = tx.send(serde_json::from_slice(&body).unwrap_or(Value::Null));
                            HttpResponse::Ok().finish()
                        }
                        // Never act on an unverified delivery.
                        _ => HttpResponse::BadRequest().finish(),
                    }
                }
            }),
        )
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .expect("bind the webhook endpoint");
    let url = format!("http://{}/webhooks", server.addrs()[0]);
    actix_web::rt::spawn(server.run());
    (url, rx)
}

/// Waits for the verified event of `event_type`.
pub async fn wait_for(rx: &mut mpsc::UnboundedReceiver<Value>, event_type: &str) -> Value {
    loop {
        let ev = tokio::time::timeout(std::time::Duration::from_secs(30), rx.recv())
            .await
            .expect("no webhook within 30 s")
            .expect("endpoint stopped");
        if ev["type"] == event_type {
            return ev;
        }
    }
}

/// `POST {paygate}{path}` as the merchant; the JSON answer and its status.
pub async fn post(http: &reqwest::Client, path: &str, key: &str, body: Value) -> (u16, Value) {
    let r = http
        .post(format!("{}{path}", paygate_url()))
        .bearer_auth(API_KEY)
        .header("Idempotency-Key", key)
        .json(&body)
        .send()
        .await
        .expect("paygate reachable (start it with `cargo run -- serve`)");
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}
