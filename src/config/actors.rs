//! `[actors]`: order actors, their timers and how overdue timers are paced.

use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActorsConfig {
    /// Arbiter threads order actors are spread over; 0 = half the cores, at least one (the
    /// HTTP workers already take a thread per core; docs/benchmarks.md).
    pub arbiters: usize,
    /// An order actor idle this long passivates (its state stays in sled).
    pub idle_timeout_secs: u64,
    /// Default and maximum `expires_in` for orders.
    pub default_expires_in_secs: u64,
    pub max_expires_in_secs: u64,
    /// First status poll after a prepay when no callback has arrived, then the interval
    /// doubles up to `poll_max_interval_secs`.
    pub poll_first_secs: u64,
    pub poll_max_interval_secs: u64,
    /// How often the timer service looks for due timers at most.
    pub timer_tick_ms: u64,
    /// Due timers woken per tick at most (so at most `1000 / timer_tick_ms` times this per
    /// second). After a restart every overdue timer is due at once; woken together they
    /// filled memory with actors and took the cores from new orders (65k pending orders:
    /// +240 MiB, create p50 42 ms for ~10 s). The overdue ones then drain oldest first at
    /// this pace, and as each order sets its next poll from the time it was woken, their
    /// next polls are spread the same way.
    pub max_due_per_tick: usize,
    /// A due timer is pushed this far back when a node takes it, until its order sets the
    /// real next one. It is how long the timers a node was handling when it died wait
    /// before another node (postgres) or the restart (sled) fires them again; an order
    /// handled slower than this may be woken twice, which its version check makes
    /// harmless.
    pub timer_lease_secs: u64,
    /// A refund the provider has no record of (its request was lost, or paygate stopped
    /// before sending it) is re-sent at each poll, under the same refund number, until it
    /// is this old; then it fails, its amount becomes refundable again, and operators get
    /// a `refund_not_received` anomaly. Polls of pending refunds double from
    /// `poll_first_secs` and always fall on this age, so the default re-sends at about
    /// 10, 20, 40 and 80 s and settles by 120 s.
    pub refund_resend_window_secs: u64,
    /// Each status poll of an unpaid order comes up to this percentage of its interval
    /// late, at random: orders created (or woken after a restart) together would otherwise
    /// poll the provider together at every step of their back-off. 0 = exact (tests).
    pub poll_jitter_pct: u8,
    /// A `barcode` payment whose outcome is not known at once (the payer must still
    /// confirm) is polled this often...
    pub barcode_poll_secs: u64,
    /// ...until this long after it was created (its default and largest `expires_in`);
    /// then it is reversed at the provider (closed, so it can no longer be paid) unless
    /// the provider says it was paid. It ends paid or reversed, never both.
    pub barcode_settle_secs: u64,
}

impl Default for ActorsConfig {
    fn default() -> Self {
        ActorsConfig {
            arbiters: 0,
            idle_timeout_secs: 60,
            default_expires_in_secs: 900,
            max_expires_in_secs: 7 * 24 * 3600,
            poll_first_secs: 10,
            poll_max_interval_secs: 120,
            timer_tick_ms: 200,
            max_due_per_tick: 100,
            timer_lease_secs: 30,
            refund_resend_window_secs: 120,
            poll_jitter_pct: 10,
            barcode_poll_secs: 2,
            barcode_settle_secs: 60,
        }
    }
}

impl ActorsConfig {
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }
    pub fn arbiter_count(&self) -> usize {
        if self.arbiters == 0 {
            let cores = std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2);
            (cores / 2).max(1)
        } else {
            self.arbiters
        }
    }
}
