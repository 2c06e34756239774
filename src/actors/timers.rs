//! Wakes orders whose persisted due time has come (expiry, status polling, refund polling).
//! Due times live in sled, so they survive restarts: on start the service simply finds
//! everything already due. Each due timer is leased (pushed back) before its order is woken,
//! so a slow order is not woken twice and a crash mid-handling wakes it again later.
//!
//! Pacing: a scan wakes at most `[actors] max_due_per_tick` orders, and a scan that hit
//! that bound waits a full tick before the next. After a restart with many pending orders
//! every one of them is overdue at once; woken together they took the cores from new
//! orders and each stayed live (in memory) for the idle timeout. An order activated only
//! for its timer passivates as soon as the wake is handled (see `OrderActor`), so the
//! orders live because of timers are at most those being woken, [`MAX_IN_FLIGHT`].

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

use super::command::Wake;
use super::{Deps, Registry};

/// Orders woken concurrently at most.
pub(crate) const MAX_IN_FLIGHT: usize = 256;

pub struct TimerService;

impl TimerService {
    /// Runs forever on the current runtime.
    pub fn spawn(deps: Arc<Deps>, registry: Registry) {
        actix_rt::spawn(async move { run(deps, registry).await });
    }
}

async fn run(deps: Arc<Deps>, registry: Registry) {
    let tick = Duration::from_millis(deps.actors.timer_tick_ms);
    let per_tick = deps.actors.max_due_per_tick;
    // How far a dispatched timer is pushed back until its order sets the real next one.
    let lease_ms = (deps.actors.timer_lease_secs as i64).saturating_mul(1000);
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    loop {
        let now = deps.clock.now();
        let mut full = false;
        match deps.store.due_timers(now, per_tick) {
            Ok(due) => {
                full = due.len() >= per_tick;
                let leased = match deps.store.lease_timers(&due, now + lease_ms).await {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!(error = %e, "timer lease failed");
                        Vec::new()
                    }
                };
                let mut woken = 0u32;
                for ((_, id), leased) in due.into_iter().zip(leased) {
                    if !leased {
                        continue;
                    }
                    woken += 1;
                    let Ok(permit) = permits.clone().acquire_owned().await else {
                        return;
                    };
                    let reg = registry.clone();
                    actix_rt::spawn(async move {
                        if let Err(e) = reg.send(&id, Wake).await {
                            tracing::warn!(order_id = %id, error = %e, "timer wake failed; retried after the lease");
                        }
                        drop(permit);
                    });
                }
                if woken > 0 {
                    crate::telemetry::metrics::TIMER_SCAN_WAKES
                        .with_label_values(&[])
                        .observe(f64::from(woken));
                }
            }
            Err(e) => tracing::error!(error = %e, "reading timers failed"),
        }
        // Sleep until the next due time, at most one tick; a manual clock's advance wakes
        // us at once so tests need not wait. After a full scan more are due: the rest wait
        // for the next tick whatever the clock does, which is the pacing.
        if full {
            tokio::time::sleep(tick).await;
            continue;
        }
        let next = deps.store.next_timer().ok().flatten();
        let sleep = match next {
            Some(t) if !deps.clock.is_manual() => Duration::from_millis(
                (t - deps.clock.now()).clamp(0, tick.as_millis() as i64) as u64,
            ),
            _ => tick,
        };
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = deps.clock.advanced() => {}
        }
    }
}
