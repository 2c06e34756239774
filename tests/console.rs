//! The operator console in a real headless browser (Debian's `chromium`; `.ci/run` installs
//! it): the page loads, its script calls the admin JSON API with the token, and the
//! rendered DOM shows the channels, live actors and orders. Skips (saying why) only when
//! no chromium binary can be found.

mod common;

use common::*;
use std::time::Duration;

fn chromium() -> Option<String> {
    if let Ok(p) = std::env::var("CHROMIUM") {
        return Some(p);
    }
    [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ]
    .into_iter()
    .find(|b| {
        std::process::Command::new("which")
            .arg(b)
            .output()
            .is_ok_and(|o| o.status.success())
    })
    .map(str::to_string)
}

async fn dump_dom(browser: &str, url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                // Lets the page's fetches finish before the DOM is dumped.
                "--virtual-time-budget=10000",
                &format!("--user-data-dir={}", profile.path().display()),
                "--dump-dom",
                url,
            ])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("chromium finished within 60 s")
    .expect("chromium ran");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[actix_web::test]
async fn console_renders_channels_actors_and_orders_in_a_headless_browser() {
    let Some(browser) = chromium() else {
        eprintln!("SKIPPED: no chromium binary found (install Debian's `chromium`; .ci/run does)");
        return;
    };
    let app = spawn_app().await;
    // Its webhook goes to an endpoint that refuses connections, so it waits in the queue.
    let mut body = order_body("console-1", 4321);
    body["notify_url"] = serde_json::json!("http://127.0.0.1:9/hook");
    let paid = app.post("/v1/orders", body).await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(app.pay(&paid, serde_json::json!({})).await.status, 200);
    let pending = app.pending_order("console-2", 100).await;
    let mismatch = app.pending_order("console-3", 500).await;
    // Above the shipped rules' `review_above` (¥50,000.00): created, flagged for review.
    let review = app.pending_order("console-4", 5_000_001).await;
    app.pay(&mismatch, serde_json::json!({"amount": 7})).await;

    let page = app
        .http
        .get(format!("{}/admin/console", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = page.text().await.unwrap();
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http"),
        "no external assets"
    );

    let dom = dump_dom(
        &browser,
        &format!("{}/admin/console#token={ADMIN_TOKEN}", app.base),
    )
    .await;
    assert!(
        dom.contains(r#"data-loaded="true""#),
        "the script did not finish loading:\n{dom}"
    );
    for needle in [
        "<td>sandbox</td>",
        "<td>alipay</td>",
        ">closed</span>",
        paid.as_str(),
        pending.as_str(),
        "4321 CNY",
        "amount_mismatch",
        "live: ",
        "mailbox backlog: ",
        "Webhook queue",
        "id=\"webhook-counts\"",
        "<td>order.paid</td>",
    ] {
        assert!(dom.contains(needle), "console DOM lacks `{needle}`:\n{dom}");
    }
    // The review order stands out in the orders table and has a table of its own.
    let flagged = format!("<tr class=\"review\"><td>{review}</td>");
    assert_eq!(dom.matches(&flagged).count(), 2, "{dom}");
    let review_table = &dom[dom.find("id=\"review-orders\"").expect(&dom)..];
    let review_table = &review_table[..review_table.find("</table>").unwrap()];
    assert!(review_table.contains(&review), "{review_table}");
    assert!(!review_table.contains(&paid), "{review_table}");
    assert!(!dom.contains(ADMIN_TOKEN), "the token is not rendered");

    // Without a token the page renders but loads nothing.
    let dom = dump_dom(&browser, &format!("{}/admin/console", app.base)).await;
    assert!(dom.contains(r#"data-loaded="false""#), "{dom}");
    assert!(!dom.contains(paid.as_str()));
}
