//! The merchant's webhook endpoint, and the check that every event arrived.

use super::*;

#[derive(Clone, Debug)]
pub(crate) struct Delivery {
    pub(crate) event_id: String,
    pub(crate) body: Vec<u8>,
    pub(crate) ok: bool,
}

/// The merchant's webhook endpoint: records every delivery (event id from the
/// `Paygate-Event-Id` header, the body), and answers 500 to the first attempt of every
/// other event, so that at any moment some events wait for a retry in the outbox.
#[derive(Clone, Default)]
pub(crate) struct Hook {
    pub(crate) got: Arc<Mutex<Vec<Delivery>>>,
}

impl Hook {
    pub(crate) async fn start(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let got = self.got.clone();
        tokio::spawn(paygate::bench::webhook_endpoint(
            listener,
            Arc::new(move |r: &paygate::bench::HookRequest<'_>| {
                let event_id = r.header("paygate-event-id").unwrap_or_default().to_string();
                let mut g = got.lock().unwrap();
                let first = !g.iter().any(|d| d.event_id == event_id);
                let odd = event_id.bytes().last().unwrap_or(0) % 2 == 1;
                let ok = !(first && odd);
                g.push(Delivery {
                    event_id,
                    body: r.body.to_vec(),
                    ok,
                });
                ok
            }),
        ));
        url
    }

    pub(crate) fn deliveries(&self) -> Vec<Delivery> {
        self.got.lock().unwrap().clone()
    }
}

/// Waits until the outbox holds no pending event and each of its events reached the hook;
/// then checks the at-least-once, stable-id contract: every delivery of an event id carries
/// that event's exact stored body. Answers the outbox.
pub(crate) async fn all_webhooks_delivered(
    store: &Store,
    hook: &Hook,
    within: Duration,
) -> Vec<Value> {
    let deadline = Instant::now() + within;
    let events = loop {
        let events = store.list_outbox(None, None, usize::MAX).unwrap();
        let ok: HashSet<String> = hook
            .deliveries()
            .into_iter()
            .filter(|d| d.ok)
            .map(|d| d.event_id)
            .collect();
        let missing: Vec<_> = events
            .iter()
            .filter(|e| e.status != OutboxStatus::Delivered || !ok.contains(e.id.as_str()))
            .map(|e| format!("{} {} {:?}", e.id, e.event_type, e.status))
            .collect();
        if missing.is_empty() {
            break events;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} webhooks not delivered: {:?}",
            missing.len(),
            events.len(),
            &missing[..missing.len().min(10)]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let by_id: HashMap<&str, &[u8]> = events
        .iter()
        .map(|e| (e.id.as_str(), e.payload.as_slice()))
        .collect();
    for d in hook.deliveries() {
        let stored = by_id
            .get(d.event_id.as_str())
            .unwrap_or_else(|| panic!("delivery of an event not in the outbox: {d:?}"));
        assert_eq!(
            *stored,
            d.body.as_slice(),
            "event {} re-sent changed",
            d.event_id
        );
        let v: Value = serde_json::from_slice(&d.body).unwrap();
        assert_eq!(v["id"], d.event_id.as_str());
    }
    events
        .iter()
        .map(|e| serde_json::from_slice(&e.payload).unwrap())
        .collect()
}
