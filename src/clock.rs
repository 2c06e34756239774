//! Time as a dependency. Production uses the system clock; tests use [`Clock::manual`] and
//! move time forward explicitly, so expiry, polling and webhook retry schedules are tested
//! without sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use tokio::sync::watch;

use crate::domain::Millis;

#[derive(Clone)]
pub struct Clock {
    manual: Option<Arc<Manual>>,
}

struct Manual {
    now: AtomicI64,
    /// Bumped on every `advance`, so time-driven services wake up at once.
    ticks: watch::Sender<u64>,
}

impl Clock {
    pub fn system() -> Clock {
        Clock { manual: None }
    }

    /// A clock that only moves when told to, starting at `start` (unix ms).
    pub fn manual(start: Millis) -> Clock {
        let (tx, _) = watch::channel(0);
        Clock {
            manual: Some(Arc::new(Manual {
                now: AtomicI64::new(start),
                ticks: tx,
            })),
        }
    }

    /// Unix time in milliseconds.
    pub fn now(&self) -> Millis {
        match &self.manual {
            Some(m) => m.now.load(Ordering::Acquire),
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
        }
    }

    pub fn is_manual(&self) -> bool {
        self.manual.is_some()
    }

    /// Moves a manual clock forward; panics on the system clock (a test bug).
    pub fn advance(&self, by: std::time::Duration) {
        let m = self.manual.as_ref().expect("advance() needs a manual clock");
        m.now.fetch_add(by.as_millis() as i64, Ordering::AcqRel);
        m.ticks.send_modify(|t| *t += 1);
    }

    /// Resolves when a manual clock is advanced; never for the system clock. Services
    /// `select!` on this beside their real-time sleep.
    pub async fn advanced(&self) {
        match &self.manual {
            Some(m) => {
                let mut rx = m.ticks.subscribe();
                let _ = rx.changed().await;
            }
            None => std::future::pending().await,
        }
    }

    /// Sleeps until `deadline` on this clock: real time for the system clock; for a
    /// manual clock, until it is advanced past the deadline.
    pub async fn sleep_until(&self, deadline: Millis) {
        match &self.manual {
            None => {
                let now = self.now();
                if now < deadline {
                    tokio::time::sleep(std::time::Duration::from_millis((deadline - now) as u64))
                        .await
                }
            }
            Some(m) => {
                // Subscribe before reading the time, so an advance in between is not missed.
                let mut rx = m.ticks.subscribe();
                while self.now() < deadline {
                    if rx.changed().await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn manual_clock_moves_only_when_advanced() {
        let c = Clock::manual(1_000);
        assert_eq!(c.now(), 1_000);
        let c2 = c.clone();
        let sleeper = tokio::spawn(async move { c2.sleep_until(6_000).await });
        tokio::task::yield_now().await;
        c.advance(Duration::from_secs(2));
        assert!(!sleeper.is_finished());
        c.advance(Duration::from_secs(3));
        sleeper.await.unwrap();
        assert_eq!(c.now(), 6_000);
    }
}
