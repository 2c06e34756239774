//! Rules compiled from the file: the static checks and the velocity limiters. Evaluation
//! order is cheapest and most certain first (block lists, allow-lists, amounts), velocity
//! last (after the daily caps and the channel limiter too, see `RiskEngine::assess_gated`),
//! because a velocity check spends budget.

use governor::clock::Clock as GovClockTrait;
use governor::nanos::Nanos;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use std::collections::HashSet;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::config::{Action, AmountRule, RulesFile, Velocity};
use super::net::IpMatcher;
use super::{Rule, Verdict};
use crate::clock::Clock;
use crate::domain::OrderSpec;

/// governor on paygate's clock, so tests move velocity windows with the manual clock.
#[derive(Clone)]
pub struct GovClock(pub Clock);

impl GovClockTrait for GovClock {
    type Instant = Nanos;
    fn now(&self) -> Nanos {
        Nanos::from(self.0.now().max(0) as u64 * 1_000_000)
    }
}

type Keyed = RateLimiter<
    String,
    DefaultKeyedStateStore<String>,
    GovClock,
    governor::middleware::NoOpMiddleware<Nanos>,
>;

struct Limiter {
    limiter: Keyed,
    action: Action,
    interval_ns: i64,
    burst: u32,
}

impl Limiter {
    fn new(v: &Velocity, clock: &Clock) -> Limiter {
        let limit = NonZeroU32::new(v.limit).unwrap_or(NonZeroU32::MIN);
        let period =
            (Duration::from_secs(v.window_secs) / v.limit.max(1)).max(Duration::from_nanos(1));
        let quota = Quota::with_period(period)
            .expect("non-zero period")
            .allow_burst(limit);
        Limiter {
            limiter: RateLimiter::new(
                quota,
                DefaultKeyedStateStore::default(),
                GovClock(clock.clone()),
            ),
            action: v.action,
            interval_ns: period.as_nanos().min(i64::MAX as u128) as i64,
            burst: limit.get(),
        }
    }
}

pub struct Compiled {
    pub file: RulesFile,
    blocked_ips: IpMatcher,
    blocked_payers: HashSet<String>,
    payer: Option<Limiter>,
    ip: Option<Limiter>,
    merchant: Option<Limiter>,
    checks: AtomicU64,
}

/// Applies one amount rule; true when it denied.
fn amount_rule(
    rule: Option<AmountRule>,
    amount: i64,
    below: Rule,
    above: Rule,
    v: &mut Verdict,
) -> bool {
    let Some(r) = rule else {
        return false;
    };
    if let Some(min) = r.min.filter(|m| amount < *m) {
        v.deny(below, format!("amount {amount} is below the minimum {min}"));
        return true;
    }
    if let Some(max) = r.max.filter(|m| amount > *m) {
        v.deny(above, format!("amount {amount} is above the maximum {max}"));
        return true;
    }
    if r.review_above.is_some_and(|m| amount > m) {
        v.review(Rule::AmountReview);
    }
    false
}

impl Compiled {
    pub fn new(file: RulesFile, clock: &Clock) -> Compiled {
        let blocked_ips = IpMatcher::parse(&file.block.ips).unwrap_or_default();
        let v = &file.velocity;
        Compiled {
            blocked_payers: file.block.payers.iter().cloned().collect(),
            payer: v.payer.as_ref().map(|v| Limiter::new(v, clock)),
            ip: v.ip.as_ref().map(|v| Limiter::new(v, clock)),
            merchant: v.merchant.as_ref().map(|v| Limiter::new(v, clock)),
            blocked_ips,
            file,
            checks: AtomicU64::new(0),
        }
    }

    /// Every rule that spends nothing (block lists, allow-lists, amounts). The daily caps
    /// (in the store) and the velocity limiters ([`Compiled::spend_velocity`]) come after.
    pub fn evaluate(&self, spec: &OrderSpec) -> Verdict {
        let mut v = Verdict::default();
        let p = &spec.payer;
        let ids = [&p.openid, &p.user_id, &p.device_id];
        if ids.iter().any(|id| {
            id.as_ref()
                .is_some_and(|id| self.blocked_payers.contains(id))
        }) {
            v.deny(Rule::BlockedPayer, "the payer is on the block list".into());
            return v;
        }
        let ip = p.ip.as_deref().and_then(|s| s.parse().ok());
        if ip.is_some_and(|ip| self.blocked_ips.contains(ip)) {
            v.deny(
                Rule::BlockedIp,
                "the payer's IP address is on the block list".into(),
            );
            return v;
        }
        let currency = spec.amount.currency().code();
        let amount = spec.amount.minor();
        if let Some(ch) = self.file.channels.get(spec.channel.as_str()) {
            if ch
                .currencies
                .as_ref()
                .is_some_and(|c| !c.iter().any(|c| c == currency))
            {
                v.deny(
                    Rule::CurrencyNotAllowed,
                    format!("channel {} does not take {currency}", spec.channel),
                );
                return v;
            }
            let method = spec.method.as_str();
            if ch
                .methods
                .as_ref()
                .is_some_and(|m| !m.iter().any(|m| m == method))
            {
                v.deny(
                    Rule::MethodNotAllowed,
                    format!("channel {} does not allow method {method}", spec.channel),
                );
                return v;
            }
            if amount_rule(
                ch.amounts.get(currency).copied(),
                amount,
                Rule::ChannelAmountBelowMin,
                Rule::ChannelAmountAboveMax,
                &mut v,
            ) {
                return v;
            }
        }
        let merchant = spec.merchant_id.as_str();
        if amount_rule(
            self.file.merchant_amount(merchant, currency),
            amount,
            Rule::MerchantAmountBelowMin,
            Rule::MerchantAmountAboveMax,
            &mut v,
        ) {
            return v;
        }
        v
    }

    /// The velocity limits this order counts against, in the order they are checked:
    /// payer, IP, merchant (those configured and whose key the order carries).
    pub fn velocity_checks(&self, spec: &OrderSpec) -> Vec<VelocityCheck> {
        let p = &spec.payer;
        let ids = [&p.openid, &p.user_id, &p.device_id];
        let ip: Option<std::net::IpAddr> = p.ip.as_deref().and_then(|s| s.parse().ok());
        let merchant = spec.merchant_id.as_str();
        let payer_key = ids
            .iter()
            .find_map(|id| id.as_ref())
            .map(|id| format!("{merchant}\u{0}{id}"));
        [
            (&self.payer, payer_key, Rule::VelocityPayer),
            (&self.ip, ip.map(|ip| ip.to_string()), Rule::VelocityIp),
            (
                &self.merchant,
                Some(merchant.to_string()),
                Rule::VelocityMerchant,
            ),
        ]
        .into_iter()
        .filter_map(|(l, key, rule)| {
            let (l, key) = (l.as_ref()?, key?);
            Some(VelocityCheck {
                key,
                rule,
                action: l.action,
                interval_ns: l.interval_ns,
                burst: l.burst,
            })
        })
        .collect()
    }

    /// The velocity limiters of this process, last because each check spends a token of
    /// the payer's, the IP's and the merchant's budget. governor cannot give a token back,
    /// so a denial by a later limiter (the IP's) still spent the earlier ones' (the
    /// payer's). (With several nodes the budgets are shared in the store instead:
    /// `RiskEngine::assess_gated`.)
    pub fn spend_velocity(&self, spec: &OrderSpec, v: &mut Verdict) {
        if self.checks.fetch_add(1, Ordering::Relaxed) % 1024 == 1023 {
            for l in [&self.payer, &self.ip, &self.merchant]
                .into_iter()
                .flatten()
            {
                l.limiter.retain_recent();
            }
        }
        for c in self.velocity_checks(spec) {
            let limiter = match c.rule {
                Rule::VelocityPayer => &self.payer,
                Rule::VelocityIp => &self.ip,
                _ => &self.merchant,
            };
            let Some(l) = limiter else { continue };
            if l.limiter.check_key(&c.key).is_err() && c.refuse(v) {
                return;
            }
        }
    }
}

/// One velocity budget an order spends a token of: at most `burst` orders at once, the
/// budget refilling one order every `interval_ns` (governor's quota, in numbers a shared
/// store can keep).
#[derive(Debug, Clone)]
pub struct VelocityCheck {
    /// Unique per limit: the rule's own keys never meet another rule's in one store.
    pub key: String,
    pub rule: Rule,
    pub action: Action,
    pub interval_ns: i64,
    pub burst: u32,
}

impl VelocityCheck {
    /// Applies this limit's refusal to `v`; true when it denies (later checks are moot).
    pub fn refuse(&self, v: &mut Verdict) -> bool {
        match self.action {
            Action::Deny => {
                v.deny(self.rule, "too many orders in the velocity window".into());
                true
            }
            Action::Review => {
                v.review(self.rule);
                false
            }
        }
    }

    /// The key in a store shared by every rule.
    pub fn store_key(&self) -> String {
        format!("{}\u{0}{}", self.rule.code(), self.key)
    }
}
