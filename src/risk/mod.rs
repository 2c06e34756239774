//! Risk control (docs/design.md §7): rules from a separate TOML file, checked before an order is
//! created or any provider is called. A check yields `allow`, `review` (created, flagged
//! for operators) or `deny` (402 `risk_error` with the rule's stable code; nothing is
//! created). Daily caps are persisted through the store so a restart does not reset them.
//! Post-payment signals that belong to no order's state machine (callbacks failing
//! verification in bulk from one source, refunds larger than expected) become operator
//! alerts.

mod config;
mod net;
mod rules;

pub use config::{KnownNames, RulesFile};

use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::clock::Clock;
use crate::domain::{Millis, Order, OrderSpec, Refund, RiskDecision, RiskOutcome};
use crate::store::{
    Alert, CapExceeded, DailyReservation, Refused, Store, StoreError, VelocityBudget,
};
use crate::telemetry::metrics;
use rules::Compiled;

/// Every rule, with the stable code merchants see in `error.code` and operators in
/// `risk.reasons` and the `rule` label of `paygate_risk_decisions_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    BlockedPayer,
    BlockedIp,
    CurrencyNotAllowed,
    MethodNotAllowed,
    ChannelAmountBelowMin,
    ChannelAmountAboveMax,
    MerchantAmountBelowMin,
    MerchantAmountAboveMax,
    AmountReview,
    VelocityPayer,
    VelocityIp,
    VelocityMerchant,
    DailyCountCap,
    DailyAmountCap,
}

impl Rule {
    pub fn code(self) -> &'static str {
        match self {
            Rule::BlockedPayer => "blocked_payer",
            Rule::BlockedIp => "blocked_ip",
            Rule::CurrencyNotAllowed => "currency_not_allowed",
            Rule::MethodNotAllowed => "method_not_allowed",
            Rule::ChannelAmountBelowMin => "channel_amount_below_min",
            Rule::ChannelAmountAboveMax => "channel_amount_above_max",
            Rule::MerchantAmountBelowMin => "merchant_amount_below_min",
            Rule::MerchantAmountAboveMax => "merchant_amount_above_max",
            Rule::AmountReview => "amount_review",
            Rule::VelocityPayer => "velocity_payer",
            Rule::VelocityIp => "velocity_ip",
            Rule::VelocityMerchant => "velocity_merchant",
            Rule::DailyCountCap => "daily_count_cap",
            Rule::DailyAmountCap => "daily_amount_cap",
        }
    }
}

/// What the rules said about one order.
#[derive(Debug, Default)]
pub struct Verdict {
    denied: Option<Denial>,
    review: Vec<Rule>,
}

impl Verdict {
    fn deny(&mut self, rule: Rule, message: String) {
        self.denied.get_or_insert(Denial { rule, message });
    }
    fn review(&mut self, rule: Rule) {
        self.review.push(rule);
    }
}

/// A refused order: answered 402 `risk_error` with `rule.code()`.
#[derive(Debug, Clone)]
pub struct Denial {
    pub rule: Rule,
    pub message: String,
}

/// Why [`RiskEngine::assess_gated`] refused an order: a rule, or its gate; or the order
/// is a duplicate (another order holds its merchant reference; learnt with the daily
/// reservation, see [`DailyReservation::new_order`]); or the store could not be asked
/// (refused too, fail closed, but as the outage it is: the caller answers 503).
#[derive(Debug)]
pub enum Refusal<E> {
    Risk(Denial),
    Gate(E),
    Duplicate(crate::domain::OrderId),
    Unavailable(StoreError),
}

/// An accepted order's decision and what it reserved against the daily caps.
#[derive(Debug, Clone)]
pub struct Assessment {
    pub decision: RiskDecision,
    day: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum RiskError {
    #[error("cannot read risk rules {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid risk rules {path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

struct SourceWindow {
    started: Millis,
    failures: u32,
    alerted: bool,
}

pub struct RiskEngine {
    path: Option<PathBuf>,
    known: KnownNames,
    clock: Clock,
    rules: RwLock<Arc<Compiled>>,
    sources: Mutex<HashMap<String, SourceWindow>>,
}

const DAY_MS: i64 = 86_400_000;

fn read(path: &Path, known: &KnownNames) -> Result<RulesFile, RiskError> {
    let text = std::fs::read_to_string(path).map_err(|source| RiskError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    RulesFile::parse(&text)
        .and_then(|f| f.check_names(known).map(|()| f))
        .map_err(|reason| RiskError::Invalid {
            path: path.to_path_buf(),
            reason,
        })
}

fn alert_id(now: Millis) -> String {
    format!("alr_{:013}{:08x}", now.max(0), rand::random::<u32>())
}

impl RiskEngine {
    /// Loads the rules file; `None` (an empty `rules_file`) means no rules: every order is
    /// allowed, and only the alert defaults apply. Sections naming a channel or merchant
    /// outside `known` make the file invalid (at load and at every reload).
    pub fn load(
        path: Option<&Path>,
        clock: Clock,
        known: KnownNames,
    ) -> Result<RiskEngine, RiskError> {
        let file = match path {
            Some(p) => read(p, &known)?,
            None => RulesFile::default(),
        };
        Ok(RiskEngine {
            path: path.map(Path::to_path_buf),
            known,
            rules: RwLock::new(Arc::new(Compiled::new(file, &clock))),
            clock,
            sources: Mutex::new(HashMap::new()),
        })
    }

    /// Re-reads the file. An unreadable or invalid file changes nothing. Velocity budgets
    /// start afresh with the new rules; daily caps are on disk and carry on.
    pub fn reload(&self) -> Result<(), RiskError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let file = read(path, &self.known)?;
        *self.rules.write() = Arc::new(Compiled::new(file, &self.clock));
        tracing::info!(path = %path.display(), "risk rules reloaded");
        Ok(())
    }

    pub fn rules(&self) -> RulesFile {
        self.rules.read().file.clone()
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    fn denied(&self, spec: &OrderSpec, d: Denial) -> Denial {
        metrics::RISK_DECISIONS
            .with_label_values(&["deny", d.rule.code()])
            .inc();
        tracing::info!(
            merchant_id = %spec.merchant_id,
            channel = %spec.channel,
            rule = d.rule.code(),
            "order denied by risk rules"
        );
        d
    }

    /// [`RiskEngine::assess_gated`] with nothing between the caps and the velocity limits.
    /// Blocks until done, for tests (a runtime of its own: the postgres store's blocking
    /// calls must not run inside `futures`' executor).
    #[cfg(test)]
    pub fn assess(&self, spec: &OrderSpec, store: &Store) -> Result<Assessment, Denial> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(self.assess_gated(spec, store, || Ok::<(), Denial>(())))
            .map_err(|r| match r {
                Refusal::Risk(d) | Refusal::Gate(d) => d,
                Refusal::Duplicate(id) => panic!("the test's order duplicates {id}"),
                Refusal::Unavailable(e) => Denial {
                    rule: Rule::DailyCountCap,
                    message: format!("the daily limit could not be checked: {e}"),
                },
            })
    }

    /// The velocity limits: in this process's limiters, or where several nodes share the
    /// store (postgres), in budgets every node spends from. A store that cannot be asked
    /// is an error: the order is refused as unavailable (fail closed, as the daily caps).
    async fn spend_velocity(
        &self,
        rules: &Compiled,
        spec: &OrderSpec,
        store: &Store,
        verdict: &mut Verdict,
    ) -> Result<(), StoreError> {
        let checks = rules.velocity_checks(spec);
        if checks.is_empty() {
            return Ok(());
        }
        let budgets: Vec<VelocityBudget> = checks
            .iter()
            .map(|c| VelocityBudget {
                key: c.store_key(),
                interval_ns: c.interval_ns,
                burst: c.burst,
            })
            .collect();
        match store
            .spend_shared_velocity(&budgets, self.clock.now())
            .await
        {
            None => rules.spend_velocity(spec, verdict),
            Some(Ok(had_token)) => {
                for (c, ok) in checks.iter().zip(had_token) {
                    if !ok && c.refuse(verdict) {
                        break;
                    }
                }
            }
            Some(Err(e)) => return Err(e),
        }
        Ok(())
    }

    /// Runs every rule and, if the order may go ahead, counts it against the merchant's
    /// daily caps (atomically; give it back with [`RiskEngine::release_unless_created`] if
    /// the order is not created after all). The stages run in the order that spends least
    /// on an order refused later: the static rules, the daily caps (a reservation), then
    /// `gate` (the channel's rate limiter), then the velocity limiters, so an order the caps
    /// or the limiter refuse spends no payer / IP / merchant budget. A refusal after the
    /// reservation (by `gate` or a velocity limit) gives the reservation back.
    pub async fn assess_gated<E>(
        &self,
        spec: &OrderSpec,
        store: &Store,
        gate: impl FnOnce() -> Result<(), E>,
    ) -> Result<Assessment, Refusal<E>> {
        let rules = self.rules.read().clone();
        let mut verdict = rules.evaluate(spec);
        if let Some(d) = verdict.denied {
            return Err(Refusal::Risk(self.denied(spec, d)));
        }
        let merchant = spec.merchant_id.as_str();
        let currency = spec.amount.currency().code();
        let day = self.clock.now().div_euclid(DAY_MS);
        let max_count = rules.file.daily_max_count(merchant);
        let max_amount = rules.file.daily_max_amount(merchant, currency);
        let reserved = store
            .risk_reserve_daily(&DailyReservation {
                merchant,
                day,
                currency,
                amount: spec.amount.minor(),
                max_count,
                max_amount,
                new_order: Some(&spec.merchant_order_no),
            })
            .await;
        let cap = match reserved {
            Ok(Ok(_)) => None,
            Ok(Err(Refused::Taken(id))) => return Err(Refusal::Duplicate(id)),
            Ok(Err(Refused::Cap(CapExceeded::Count))) => Some(Denial {
                rule: Rule::DailyCountCap,
                message: format!(
                    "the daily limit of {} orders is reached",
                    max_count.unwrap_or(0)
                ),
            }),
            Ok(Err(Refused::Cap(CapExceeded::Amount))) => Some(Denial {
                rule: Rule::DailyAmountCap,
                message: format!(
                    "the daily limit of {} {currency} minor units would be exceeded",
                    max_amount.unwrap_or(0)
                ),
            }),
            // Fail closed: an order whose cap cannot be checked is not taken.
            Err(e) => return Err(Refusal::Unavailable(e)),
        };
        if let Some(d) = cap {
            return Err(Refusal::Risk(self.denied(spec, d)));
        }
        if let Err(e) = gate() {
            self.release_day(spec, day, store);
            return Err(Refusal::Gate(e));
        }
        if let Err(e) = self.spend_velocity(&rules, spec, store, &mut verdict).await {
            self.release_day(spec, day, store);
            return Err(Refusal::Unavailable(e));
        }
        if let Some(d) = verdict.denied {
            self.release_day(spec, day, store);
            return Err(Refusal::Risk(self.denied(spec, d)));
        }
        let outcome = if verdict.review.is_empty() {
            metrics::RISK_DECISIONS
                .with_label_values(&["allow", "none"])
                .inc();
            RiskOutcome::Allow
        } else {
            for r in &verdict.review {
                metrics::RISK_DECISIONS
                    .with_label_values(&["review", r.code()])
                    .inc();
            }
            RiskOutcome::Review
        };
        Ok(Assessment {
            decision: RiskDecision {
                outcome,
                reasons: verdict
                    .review
                    .iter()
                    .map(|r| r.code().to_string())
                    .collect(),
            },
            day,
        })
    }

    /// After an order's creation failed: keeps its daily-cap reservation if the order
    /// exists all the same (left `created` by a prepay with an unknown outcome), else gives
    /// it back. If the store cannot tell, the reservation stays (fail closed: the cap may
    /// count an order too many until the day ends, never one too few).
    pub fn release_unless_created(
        &self,
        spec: &OrderSpec,
        a: &Assessment,
        store: &Store,
        id: &crate::domain::OrderId,
    ) {
        match store.get_order(id) {
            Ok(None) => self.release(spec, a, store),
            Ok(Some(_)) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot tell whether the order exists; its daily-cap reservation stays")
            }
        }
    }

    /// Gives back the daily-cap reservation of an order that was not created.
    pub fn release(&self, spec: &OrderSpec, a: &Assessment, store: &Store) {
        self.release_day(spec, a.day, store)
    }

    fn release_day(&self, spec: &OrderSpec, day: i64, store: &Store) {
        if let Err(e) = store.risk_release_daily(
            spec.merchant_id.as_str(),
            day,
            spec.amount.currency().code(),
            spec.amount.minor(),
        ) {
            tracing::warn!(error = %e, "could not release a daily-cap reservation");
        }
    }

    fn alert(
        &self,
        store: &Store,
        kind: &str,
        detail: String,
        source: Option<String>,
        order: Option<&Order>,
    ) {
        let a = Alert {
            id: alert_id(self.clock.now()),
            kind: kind.to_string(),
            detail,
            source,
            order_id: order.map(|o| o.id.to_string()),
            at: self.clock.now(),
            acked_at: None,
        };
        self.raise(store, a, false);
    }

    /// Stores `a` (only if its id is new when `once`), counting and logging it when stored.
    fn raise(&self, store: &Store, a: Alert, once: bool) {
        let stored = if once {
            store.record_alert_once(&a)
        } else {
            store.record_alert(&a).map(|()| true)
        };
        match stored {
            Ok(true) => {
                metrics::ANOMALIES.with_label_values(&[&a.kind]).inc();
                tracing::warn!(kind = %a.kind, alert_id = %a.id, order_id = a.order_id.as_deref().unwrap_or(""), "operator alert raised");
            }
            Ok(false) => {}
            Err(e) => {
                tracing::error!(error = %e, kind = %a.kind, "could not store an operator alert")
            }
        }
    }

    /// A correctly signed callback that contradicts its order (wrong amount, another
    /// app's or merchant's ids, another trade's refund): it was refused and changed
    /// nothing, so it is no order anomaly, but operators must know. Providers retry such
    /// a callback for about a day; one alert per order, kind and detail is raised, keyed
    /// by those (so retries, and restarts between them, add nothing).
    pub fn callback_mismatch(
        &self,
        store: &Store,
        channel: &str,
        order: &Order,
        m: &crate::connectors::Mismatch,
    ) {
        self.callback_fact(
            store,
            channel,
            order,
            m.kind,
            &m.detail,
            format!("callback on channel {channel} refused: {}", m.detail),
        );
    }

    /// A signed refund notification for a refund paygate did not make (one made in the
    /// provider's merchant portal, say): acknowledged, since the provider's retries could
    /// not change that, and raised once for operators, who reconcile it by hand.
    pub fn callback_unknown_refund(
        &self,
        store: &Store,
        channel: &str,
        order: &Order,
        refund_ref: &str,
    ) {
        self.callback_fact(
            store,
            channel,
            order,
            "unknown_refund",
            refund_ref,
            format!(
                "channel {channel} reported refund {refund_ref} of this order, which paygate did not make; acknowledged"
            ),
        );
    }

    /// A verified notification whose content no order can take (an impossible amount):
    /// acknowledged, so the provider stops repeating it, and raised once for operators.
    pub fn callback_unappliable(&self, store: &Store, channel: &str, order: &Order, detail: &str) {
        self.callback_fact(
            store,
            channel,
            order,
            "unappliable_notification",
            detail,
            format!(
                "channel {channel} sent a verified notification for this order that cannot be applied ({detail}); acknowledged, nothing changed"
            ),
        );
    }

    /// One alert per (channel, kind, fact, order): its id is derived from them, so a
    /// provider repeating the notification adds nothing.
    fn callback_fact(
        &self,
        store: &Store,
        channel: &str,
        order: &Order,
        kind: &'static str,
        fact: &str,
        detail: String,
    ) {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(format!("{channel}\n{kind}\n{fact}"));
        let a = Alert {
            id: format!("alr_{kind}_{}_{}", order.id, hex::encode(&digest[..8])),
            kind: kind.to_string(),
            detail,
            source: None,
            order_id: Some(order.id.to_string()),
            at: self.clock.now(),
            acked_at: None,
        };
        self.raise(store, a, true);
    }

    /// Counts a callback that failed verification from `source` (the peer address). The
    /// `max_failures`-th failure within `window_secs` raises one alert per window.
    pub fn callback_rejected(&self, store: &Store, channel: &str, source: &str) {
        let cfg = self.rules.read().file.callbacks;
        let now = self.clock.now();
        let window = cfg.window_secs as i64 * 1000;
        let fire = {
            let mut sources = self.sources.lock();
            if sources.len() > 10_000 {
                sources.retain(|_, w| now - w.started < window);
            }
            let w = sources.entry(source.to_string()).or_insert(SourceWindow {
                started: now,
                failures: 0,
                alerted: false,
            });
            if now - w.started >= window {
                *w = SourceWindow {
                    started: now,
                    failures: 0,
                    alerted: false,
                };
            }
            w.failures += 1;
            let fire = w.failures >= cfg.max_failures && !w.alerted;
            if fire {
                w.alerted = true;
            }
            fire.then_some(w.failures)
        };
        if let Some(n) = fire {
            self.alert(
                store,
                "callback_verification_failures",
                format!(
                    "{n} callbacks on channel {channel} failed verification within {}s from one source",
                    cfg.window_secs
                ),
                Some(source.to_string()),
                None,
            );
        }
    }

    /// Looks at a refund just requested: one above `refunds.alert_above`, or the whole
    /// amount given back within `full_refund_within_secs` of the payment, raises an alert
    /// (the refund itself goes ahead: it is the merchant's money to return).
    pub fn refund_requested(&self, store: &Store, order: &Order, refund: &Refund) {
        let rules = self.rules.read().file.refunds.clone();
        let currency = refund.amount.currency().code();
        if let Some(limit) = rules
            .alert_above
            .get(currency)
            .filter(|l| refund.amount.minor() > **l)
        {
            self.alert(
                store,
                "refund_larger_than_expected",
                format!(
                    "refund {} of {} {currency} minor units is above the alert threshold {limit}",
                    refund.id,
                    refund.amount.minor()
                ),
                None,
                Some(order),
            );
        }
        if let (Some(secs), Some(paid_at)) = (rules.full_refund_within_secs, order.paid_at()) {
            let full = order.amount_committed_to_refunds() >= order.spec.amount.minor();
            if full && refund.created_at - paid_at <= secs as i64 * 1000 {
                self.alert(
                    store,
                    "refund_larger_than_expected",
                    format!(
                        "the whole amount was refunded within {}s of the payment (refund {})",
                        (refund.created_at - paid_at) / 1000,
                        refund.id
                    ),
                    None,
                    Some(order),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests;
