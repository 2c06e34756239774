//! The simulated account's objects, kept as the JSON Stripe returns (so a retrieve is the
//! stored object), in the simulator's persistent tree: `obj:<id>`, per-type creation-order
//! lists for the list endpoints, the refunds of each PaymentIntent, the object each
//! paygate order reference names (for `POST /sandbox/pay/{order_id}`), and saved answers
//! per idempotency key.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::wire::Reply;
use super::StripeSimulator;

pub fn order_key(reference: &str) -> String {
    format!("order:{reference}")
}

/// A saved answer and what it answered.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Saved {
    pub method_path: String,
    pub params: Value,
    pub reply: Reply,
}

impl StripeSimulator {
    pub(super) fn get(&self, id: &str) -> Option<Value> {
        self.env
            .state
            .get::<Value>(&format!("obj:{id}"))
            .ok()
            .flatten()
    }

    pub(super) fn put(&self, obj: &Value) {
        if let Some(id) = obj.get("id").and_then(Value::as_str) {
            if let Err(e) = self.env.state.put(&format!("obj:{id}"), obj) {
                tracing::warn!(error = %e, "stripe simulator could not store an object");
            }
        }
    }

    pub(super) fn ids(&self, list: &str) -> Vec<String> {
        self.env
            .state
            .get::<Vec<String>>(&format!("list:{list}"))
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    pub(super) fn append(&self, list: &str, id: &str) {
        let _ = self
            .env
            .state
            .update::<Vec<String>, _>(&format!("list:{list}"), |l| {
                let mut l = l.unwrap_or_default();
                l.push(id.to_string());
                Some(l)
            });
    }

    /// Creates `obj` (of list `list`) and remembers which paygate order it is for.
    pub(super) fn create(&self, list: &str, obj: &Value, order_ref: Option<&str>) {
        self.put(obj);
        let id = obj.get("id").and_then(Value::as_str).unwrap_or_default();
        self.append(list, id);
        if let Some(r) = order_ref {
            let _ = self.env.state.put(&order_key(r), &id.to_string());
        }
    }

    pub(super) fn saved(&self, key: &str) -> Option<Saved> {
        self.env.state.get(&format!("idem:{key}")).ok().flatten()
    }

    pub(super) fn save(&self, key: &str, saved: &Saved) {
        let _ = self.env.state.put(&format!("idem:{key}"), saved);
    }
}
