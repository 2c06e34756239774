//! The supervision tree: each channel's actor restarts its failed order actors, is itself
//! restarted when it stops (while its orders keep working), and shows its children in
//! `/admin/actors`.

mod common;

use common::ops::*;
use common::*;
use paygate::actors::command::InjectPanic;
use paygate::actors::{Children, EngineError, StopChannelActor};
use paygate::domain::{ChannelName, OrderId};
use reqwest::Method;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn sandbox(app: &TestApp) -> Arc<Children> {
    let name = ChannelName::parse("sandbox").unwrap();
    app.engine.registry.channel(&name).unwrap().clone()
}

/// Polls `cond` until it holds, failing after 10 s.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn tree_channel(view: &Value, channel: &str) -> Value {
    view["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["channel"] == channel)
        .unwrap_or_else(|| panic!("no {channel} in {view}"))
        .clone()
}

fn tree_orders(ch: &Value) -> Vec<String> {
    ch["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["order_id"].as_str().unwrap().to_string())
        .collect()
}

#[actix_web::test]
async fn a_panicking_order_actor_is_restarted_by_its_channel_from_its_snapshot() {
    let app = spawn_app().await;
    let children = sandbox(&app);
    let id = app.paid_order("panic-1", 100).await;
    let oid = OrderId::parse(&id).unwrap();
    assert_eq!(children.counts().1, 0);

    let r = app.engine.send(&oid, InjectPanic).await;
    assert!(matches!(r, Err(EngineError::Unavailable(_))), "{r:?}");
    // The channel counts the restart and starts a replacement from the store.
    until("the channel to count the restart", || {
        children.counts().1 == 1
    })
    .await;
    until("the replacement to be live", || {
        app.engine.registry.is_live(&oid)
    })
    .await;
    assert_eq!(children.live(), 1);
    assert_eq!(app.order(&id).await["status"], "paid");

    // The next command is served by the replacement, from the durable state.
    let refund = app
        .post(
            &format!("/v1/orders/{id}/refunds"),
            json!({"merchant_refund_no": "after-panic", "amount": 100}),
        )
        .await;
    assert_eq!(refund.status, 201, "{}", refund.text);
    app.wait_order(&id, "refund after restart", |o| o["status"] == "refunded")
        .await;
    let (live, restarts, _, channel_restarts) = children.counts();
    assert_eq!((live, restarts, channel_restarts), (1, 1, 0));
    let tree = admin(&app, Method::GET, "/admin/actors").await;
    assert_eq!(
        tree_channel(&tree.body, "sandbox")["restarts"],
        1,
        "{}",
        tree.text
    );
}

#[actix_web::test]
async fn a_stopped_channel_actor_is_restarted_and_its_orders_keep_working() {
    let app = spawn_app().await;
    let children = sandbox(&app);
    let before = app.pending_order("before-stop", 100).await;

    let _ = children.actor().unwrap().send(StopChannelActor).await;
    until("the channel actor to be restarted", || {
        children.counts().3 == 1
    })
    .await;

    // An order live across the restart is still a child, and still works.
    let tree = admin(&app, Method::GET, "/admin/actors").await;
    assert_eq!(tree.status, 200, "{}", tree.text);
    let ch = tree_channel(&tree.body, "sandbox");
    assert_eq!(ch["channel_actor_restarts"], 1, "{ch}");
    assert!(tree_orders(&ch).contains(&before), "{ch}");
    assert_eq!(app.pay(&before, json!({})).await.status, 200);
    assert_eq!(app.order(&before).await["status"], "paid");

    // Create, pay and refund after the stop.
    let after = app.pending_order("after-stop", 300).await;
    assert_eq!(app.pay(&after, json!({})).await.status, 200);
    let refund = app
        .post(
            &format!("/v1/orders/{after}/refunds"),
            json!({"merchant_refund_no": "after-stop-r", "amount": 300}),
        )
        .await;
    assert_eq!(refund.status, 201, "{}", refund.text);
    app.wait_order(&after, "refund after the stop", |o| {
        o["status"] == "refunded"
    })
    .await;
    assert_eq!(
        admin(&app, Method::GET, "/admin/channels").await.status,
        200
    );
}

#[actix_web::test]
async fn admin_actors_shows_each_channel_with_its_live_orders() {
    let app = spawn_app_with(&[("PAYGATE__ACTORS__IDLE_TIMEOUT_SECS", "1")]).await;
    let a = app.pending_order("tree-1", 100).await;
    let b = app.pending_order("tree-2", 200).await;
    // Touch `b` again so it is the most recently active.
    app.clock.advance(Duration::from_secs(1));
    assert_eq!(
        app.post(&format!("/v1/orders/{b}/verify"), json!({}))
            .await
            .status,
        200
    );

    let tree = admin(&app, Method::GET, "/admin/actors").await;
    assert_eq!(tree.status, 200, "{}", tree.text);
    let ch = tree_channel(&tree.body, "sandbox");
    assert_eq!(tree_orders(&ch), [b.clone(), a.clone()], "{ch}");
    assert_eq!(ch["live_actors"], 2, "{ch}");
    assert_eq!(ch["restarts"], 0, "{ch}");
    assert_eq!(ch["channel_actor_restarts"], 0, "{ch}");
    let (oa, ob) = (&ch["orders"][1], &ch["orders"][0]);
    assert!(
        ob["last_active"].as_i64().unwrap() > oa["last_active"].as_i64().unwrap(),
        "{ch}"
    );
    assert!(
        oa["since"].as_i64().unwrap() <= oa["last_active"].as_i64().unwrap(),
        "{ch}"
    );
    assert_eq!(tree_channel(&tree.body, "alipay")["orders"], json!([]));

    let one = admin(&app, Method::GET, "/admin/actors?limit=1").await;
    assert_eq!(tree_orders(&tree_channel(&one.body, "sandbox")), [b]);

    // The channel's idle sweep passivates both and reports it.
    until("the idle orders to be passivated", || {
        sandbox(&app).live() == 0
    })
    .await;
    let tree = admin(&app, Method::GET, "/admin/actors").await;
    let ch = tree_channel(&tree.body, "sandbox");
    assert_eq!(ch["orders"], json!([]), "{ch}");
    assert_eq!(ch["passivations"], 2, "{ch}");
}
