//! Finding an order's objects at Stripe. paygate keeps no Stripe ids: the order's
//! PaymentIntent or Checkout Session is found by listing the objects created during the
//! order's life and matching the reference paygate set on them. Lists (unlike Stripe's
//! search) are read-after-write consistent, so a create followed at once by a query
//! finds what it made.

use std::collections::HashMap;

use serde_json::Value;

/// How many ids of each kind are remembered before starting afresh.
const KNOWN_IDS: usize = 100_000;

use super::amounts::Flow;
use super::objects::{metadata, str_of, ORDER_KEY};
use super::{StripeConnector, PAGE};
use crate::connectors::ConnectorError;
use crate::domain::Order;

impl StripeConnector {
    /// The objects created between the order's creation and its expiry (with a margin
    /// for clock skew), newest first, until `matches` finds one.
    pub(super) async fn find(
        &self,
        path: &str,
        order: &Order,
        matches: impl Fn(&Value) -> bool,
    ) -> Result<Option<Value>, ConnectorError> {
        let mut after: Option<String> = None;
        loop {
            let mut q = vec![
                ("created[gte]", (order.created_at / 1000 - 300).to_string()),
                (
                    "created[lte]",
                    (order.spec.expires_at / 1000 + 3600).to_string(),
                ),
                ("limit", PAGE.to_string()),
            ];
            if let Some(a) = &after {
                q.push(("starting_after", a.clone()));
            }
            let page = self.api.get(path, &q).await?.body;
            let data = page.get("data").and_then(Value::as_array).ok_or_else(|| {
                ConnectorError::Protocol(format!("{path} answered without `data`"))
            })?;
            if let Some(hit) = data.iter().find(|o| matches(o)) {
                return Ok(Some(hit.clone()));
            }
            let more = page
                .get("has_more")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            match data.last().and_then(|o| str_of(o, "id")) {
                Some(last) if more => after = Some(last.to_string()),
                _ => return Ok(None),
            }
        }
    }

    /// The order's PaymentIntent: retrieved by id when this process knows it, else found
    /// in the lists.
    pub(super) async fn find_intent(&self, order: &Order) -> Result<Option<Value>, ConnectorError> {
        let r = order.id.provider_ref();
        let known = self.known.lock().intents.get(r).cloned();
        if let Some(id) = known {
            return self
                .api
                .get(&format!("/v1/payment_intents/{id}"), &[])
                .await
                .map(|a| Some(a.body));
        }
        let found = self
            .find("/v1/payment_intents", order, |o| {
                metadata(o, ORDER_KEY) == Some(r)
            })
            .await?;
        if let Some(id) = found.as_ref().and_then(|pi| str_of(pi, "id")) {
            self.remember(Kind::Intent, r, id);
        }
        Ok(found)
    }

    /// The order's Checkout Session, the same way.
    pub(super) async fn find_session(
        &self,
        order: &Order,
    ) -> Result<Option<Value>, ConnectorError> {
        let r = order.id.provider_ref();
        let known = self.known.lock().sessions.get(r).cloned();
        if let Some(id) = known {
            return self
                .api
                .get(&format!("/v1/checkout/sessions/{id}"), &[])
                .await
                .map(|a| Some(a.body));
        }
        let found = self
            .find("/v1/checkout/sessions", order, |o| {
                str_of(o, "client_reference_id") == Some(r)
            })
            .await?;
        if let Some(id) = found.as_ref().and_then(|cs| str_of(cs, "id")) {
            self.remember(Kind::Session, r, id);
        }
        Ok(found)
    }

    /// The PaymentIntent that carries the order's money, if it has one yet.
    pub(super) async fn paid_intent_id(
        &self,
        order: &Order,
    ) -> Result<Option<String>, ConnectorError> {
        let r = order.id.provider_ref();
        let known = self.known.lock().intents.get(r).cloned();
        if known.is_some() {
            return Ok(known);
        }
        let found = match Self::rule(order)?.flow {
            Flow::Intent => self
                .find_intent(order)
                .await?
                .and_then(|pi| str_of(&pi, "id").map(str::to_string)),
            Flow::Checkout => self
                .find_session(order)
                .await?
                .and_then(|cs| str_of(&cs, "payment_intent").map(str::to_string)),
        };
        if let Some(id) = &found {
            self.remember(Kind::Intent, r, id);
        }
        Ok(found)
    }

    pub(super) fn remember(&self, kind: Kind, order_ref: &str, id: &str) {
        let mut known = self.known.lock();
        let map = match kind {
            Kind::Intent => &mut known.intents,
            Kind::Session => &mut known.sessions,
        };
        if map.len() >= KNOWN_IDS {
            map.clear();
        }
        map.insert(order_ref.to_string(), id.to_string());
    }
}

/// Which of an order's objects an id names.
#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    Intent,
    Session,
}

/// The ids of each order's PaymentIntent and Checkout Session as far as this process has
/// seen them (its creates, payment events, lookups), so that polls, closes and refunds
/// retrieve by id instead of listing. Only a shortcut: a restart empties it and the lists
/// find the same ids.
#[derive(Default)]
pub(super) struct Known {
    intents: HashMap<String, String>,
    sessions: HashMap<String, String>,
}
