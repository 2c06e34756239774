//! `NotifierActor`: delivers the outbox of merchant webhooks (docs/design.md §5), at least once.
//!
//! Why an actix actor with detached delivery tasks: the scheduling state (what is queued
//! and in flight, permits, the wake-up timer, the dead-letter count) has one owner that
//! never awaits the network, so `Kick`, `Retry` and `QueueStats` are answered at once
//! whatever the merchants' endpoints do. Each delivery runs as its own tokio task holding one
//! global and one per-merchant permit, both taken *before* it is spawned; due events that
//! cannot start yet wait in a per-merchant queue (ids only) and merchants take turns at free
//! permits. So a merchant whose endpoint hangs holds at most `per_merchant_concurrency`
//! permits while its other events wait in its own queue, and other merchants' events go
//! out as before. (Keep `global_concurrency` well above `per_merchant_concurrency`, or a
//! handful of hanging merchants can still fill the global pool.)
//!
//! Durability comes from the store, not from memory: a record's attempts, next due time
//! and last error are written after every attempt (without waiting for the flush: an
//! attempt lost to a crash is only made again, which at-least-once allows), and on start
//! the actor walks the whole due index, so everything pending at a `kill -9` is resumed. A
//! delivery in flight at the crash is sent again — at least once, never lost; the event id
//! lets the merchant de-duplicate. The in-memory queues are only a cache of the index.
//!
//! Several nodes over one PostgreSQL outbox: an attempt starts only after
//! `Store::claim_due_outbox` won the event's lease (see [`lease_ms`]); a node that loses skips
//! the event, and a lease whose holder died expires and is taken over. On sled the claim
//! always succeeds.
//!
//! Wake-ups: at start, on [`Kick`] (sent after a commit that wrote outbox records), and at
//! the next due time on the [`Clock`], at most [`IDLE_RESCAN_MS`] apart (a safety net for
//! a missed `Kick`). A finished delivery hands its permits to the queued events without
//! reading the index. Scans read only the recent end of the due index, where new events,
//! replays and retries coming due land, and the whole index every few seconds.

mod delivery;
mod schedule;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::Semaphore;

use crate::clock::Clock;
use crate::config::{MerchantConfig, NotifierConfig};
use crate::domain::{EventId, MerchantId, Millis};
use crate::store::{OutboxRecord, OutboxStatus, Store, StoreError};
use crate::webhook;
use delivery::MerchantHooks;

/// Longest the scheduler sleeps without looking at the due index.
pub const IDLE_RESCAN_MS: Millis = 1_000;
/// After the store failed to record an attempt, the event waits this long before it is
/// tried again, so a failing disk does not turn into a tight resend loop.
const STORE_FAILURE_COOLDOWN_MS: Millis = 5_000;

#[derive(Debug, thiserror::Error)]
pub enum NotifierError {
    #[error("no such event")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("invalid notifier setup: {0}")]
    Setup(String),
}

/// Look for due events now (reply `()`). Send after committing a transition that wrote
/// outbox records so the event goes out at once instead of at the next periodic wake-up.
/// Cheap: it reads only the recent end of the due index, so one per commit is fine; many
/// Kicks arriving together are served by one scan.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Kick;

/// Replay an event (operator retry, merchant resend): it becomes `Pending` and due now,
/// whatever its status (`Dead` and `Delivered` included); `attempts` keeps counting, so a
/// replayed dead event gets one more attempt and is dead again if that fails.
/// Reply: the record as stored after the replay was recorded, `NotFound`, or `Store` when
/// it could not be persisted. If an attempt is in flight, the replay is queued behind it
/// (it runs as soon as that attempt is recorded, whatever its outcome) and the reply is
/// the record as it is now.
/// Ownership (a merchant resending only its own events) is the caller's check.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<OutboxRecord, NotifierError>")]
pub struct Retry {
    pub id: EventId,
}

/// Queue depth for operators (reply [`QueueCounts`]; never fails).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "QueueCounts")]
pub struct QueueStats;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct QueueCounts {
    /// Events not yet delivered nor dead (scheduled, due or in flight).
    pub pending: usize,
    /// Dead letters waiting for an operator.
    pub dead: usize,
    /// Attempts running right now.
    pub in_flight: usize,
    /// Due events waiting for a delivery permit (global or their merchant's).
    pub queued: usize,
}

/// Test hook: walk the due index now, synchronously, and answer the queue counts right
/// after, so a test can assert that nothing is due at the (manual) clock's time, no
/// delivery started, instead of sleeping and hoping the periodic wake-up would have
/// shown one.
#[cfg(feature = "test-hooks")]
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "QueueCounts")]
pub struct ScanNow;

/// A delivery task finished (and recorded its outcome).
#[derive(Message)]
#[rtype(result = "()")]
struct Done {
    id: EventId,
    became: Option<OutboxStatus>,
    /// When it is due again, if still pending.
    next_due: Option<Millis>,
}

/// Walk the due index and start what can be started.
#[derive(Message)]
#[rtype(result = "()")]
struct Scan;

/// Immutable pieces shared with delivery tasks.
struct Shared {
    store: Store,
    clock: Clock,
    client: reqwest::Client,
    merchants: HashMap<MerchantId, MerchantHooks>,
    schedule_ms: Vec<u64>,
    timeout: Duration,
    /// Webhooks may go to internal addresses (`[notifier] allow_private_targets`).
    allow_private_targets: bool,
    /// Delivered events older than this are purged; None keeps them.
    retain_delivered_ms: Option<i64>,
    /// How long a delivery lease on a shared (postgres) outbox lasts: longer than any
    /// attempt can take, see [`lease_ms`].
    lease_ms: Millis,
}

/// Added to the longest an attempt can take (connect plus request, each bounded by the
/// timeout) to make a delivery lease; the default of `[notifier] lease_margin_secs`.
const LEASE_MARGIN_MS: Millis = 30_000;

/// The delivery lease for attempts bounded by `timeout`: a node that dies mid-attempt
/// holds its events this long before another node takes them over.
pub fn lease_ms(timeout: Duration) -> Millis {
    lease_with_margin_ms(timeout, LEASE_MARGIN_MS)
}

/// [`lease_ms`] with another margin (`[notifier] lease_margin_secs`).
pub fn lease_with_margin_ms(timeout: Duration, margin_ms: Millis) -> Millis {
    (timeout.as_millis() as Millis)
        .saturating_mul(2)
        .saturating_add(margin_ms)
}

/// How often delivered events past their retention are purged.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

pub struct NotifierActor {
    shared: Arc<Shared>,
    global: Arc<Semaphore>,
    per_merchant: HashMap<MerchantId, Arc<Semaphore>>,
    per_merchant_limit: usize,
    /// Events some task or write owns right now; the scheduler leaves them alone.
    busy: HashSet<EventId>,
    /// Due events waiting for a permit, per merchant, oldest first; `turns` is the
    /// round-robin order of merchants with waiting events.
    waiting: HashMap<MerchantId, VecDeque<EventId>>,
    turns: VecDeque<MerchantId>,
    queued: HashSet<EventId>,
    /// The last scan stopped early; look again when permits come free.
    truncated: bool,
    full_scan_needed: bool,
    last_full_scan: Millis,
    /// `now` of the last scan: the due index up to here has been read.
    scanned_upto: Millis,
    gauges_at: Option<Instant>,
    /// Replays asked for while the event was busy; they run when it is released.
    replay_requested: HashSet<EventId>,
    /// Events whose last outcome could not be stored, and when they may be tried again.
    cooldown: HashMap<EventId, Millis>,
    dead: usize,
    scan_queued: bool,
    timer: Option<SpawnHandle>,
    /// When `timer` fires.
    wake_at: Millis,
}

impl NotifierActor {
    /// `merchants` gives each merchant's signing secrets (current, then previous during a
    /// rotation) and default notify URL. Start with `.start()`, or
    /// `NotifierActor::start_in_arbiter(..)` to keep signing and I/O off the HTTP workers.
    pub fn new(
        store: Store,
        clock: Clock,
        cfg: &NotifierConfig,
        merchants: &[MerchantConfig],
    ) -> Result<NotifierActor, NotifierError> {
        if cfg.schedule_secs.is_empty()
            || cfg.timeout_ms == 0
            || cfg.global_concurrency == 0
            || cfg.per_merchant_concurrency == 0
        {
            return Err(NotifierError::Setup(
                "schedule, timeout and concurrency limits must be non-empty / > 0".into(),
            ));
        }
        let timeout = Duration::from_millis(cfg.timeout_ms);
        let mut client = reqwest::Client::builder()
            .user_agent(webhook::USER_AGENT)
            .timeout(timeout)
            .connect_timeout(timeout)
            // A redirect is not an acknowledgement; following one could also carry the
            // signed body somewhere the merchant did not configure.
            .redirect(reqwest::redirect::Policy::none())
            .tcp_nodelay(true);
        if !cfg.allow_private_targets {
            // Every connection goes to an address the resolver approved. A proxy would
            // resolve and connect on our behalf, out of the check's reach, so none is used.
            client = client
                .dns_resolver(Arc::new(crate::egress::GuardedResolver))
                .no_proxy();
        }
        let client = client
            .build()
            .map_err(|e| NotifierError::Setup(format!("HTTP client: {e}")))?;
        let mut hooks = HashMap::new();
        for m in merchants {
            let id = MerchantId::parse(&m.id)
                .map_err(|_| NotifierError::Setup(format!("bad merchant id `{}`", m.id)))?;
            let mut secrets = vec![m.webhook_secret.clone()];
            secrets.extend(m.previous_webhook_secret.clone());
            hooks.insert(
                id,
                MerchantHooks {
                    secrets,
                    default_url: m.notify_url.clone(),
                },
            );
        }
        Ok(NotifierActor {
            shared: Arc::new(Shared {
                store,
                clock,
                client,
                merchants: hooks,
                schedule_ms: cfg.schedule_secs.iter().map(|s| s * 1000).collect(),
                timeout,
                allow_private_targets: cfg.allow_private_targets,
                retain_delivered_ms: (cfg.retain_delivered_days > 0)
                    .then(|| cfg.retain_delivered_days as i64 * 86_400_000),
                lease_ms: lease_with_margin_ms(
                    timeout,
                    (cfg.lease_margin_secs as Millis).saturating_mul(1000),
                ),
            }),
            global: Arc::new(Semaphore::new(cfg.global_concurrency)),
            per_merchant: HashMap::new(),
            per_merchant_limit: cfg.per_merchant_concurrency,
            busy: HashSet::new(),
            replay_requested: HashSet::new(),
            waiting: HashMap::new(),
            turns: VecDeque::new(),
            queued: HashSet::new(),
            truncated: false,
            full_scan_needed: true,
            last_full_scan: 0,
            scanned_upto: 0,
            gauges_at: None,
            cooldown: HashMap::new(),
            dead: 0,
            scan_queued: false,
            timer: None,
            wake_at: Millis::MAX,
        })
    }

    fn counts(&self) -> QueueCounts {
        QueueCounts {
            pending: self.shared.store.outbox_pending(),
            dead: self.dead,
            in_flight: self.busy.len(),
            queued: self.queued.len(),
        }
    }

    fn request_scan(&mut self, ctx: &mut Context<Self>) {
        if !self.scan_queued {
            self.scan_queued = true;
            ctx.notify(Scan);
        }
    }
}

impl Actor for NotifierActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // One full pass at start; afterwards the count is kept up to date in memory.
        match self
            .shared
            .store
            .list_outbox(Some(OutboxStatus::Dead), None, usize::MAX)
        {
            Ok(v) => self.dead = v.len(),
            Err(e) => tracing::error!(error = %e, "notifier: counting dead letters failed"),
        }
        tracing::info!(
            pending = self.shared.store.outbox_pending(),
            dead = self.dead,
            "notifier started; resuming pending webhooks"
        );
        self.request_scan(ctx);
        self.purge_delivered();
        ctx.run_interval(PURGE_EVERY, |act, _| act.purge_delivered());
    }
}

impl NotifierActor {
    /// Removes delivered events past their retention, off this actor's thread (it reads
    /// the outbox records older than the retention edge).
    fn purge_delivered(&self) {
        let Some(retain) = self.shared.retain_delivered_ms else {
            return;
        };
        let (store, before) = (self.shared.store.clone(), self.shared.clock.now() - retain);
        actix_rt::task::spawn_blocking(move || match store.purge_delivered(before) {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                purged = n,
                "notifier: delivered webhooks past retention removed"
            ),
            Err(e) => tracing::warn!(error = %e, "notifier: purging delivered webhooks failed"),
        });
    }
}

impl Handler<Scan> for NotifierActor {
    type Result = ();
    fn handle(&mut self, _: Scan, ctx: &mut Context<Self>) {
        self.scan_queued = false;
        self.scan(ctx);
    }
}

impl Handler<Kick> for NotifierActor {
    type Result = ();
    fn handle(&mut self, _: Kick, ctx: &mut Context<Self>) {
        self.request_scan(ctx);
    }
}

#[cfg(feature = "test-hooks")]
impl Handler<ScanNow> for NotifierActor {
    type Result = MessageResult<ScanNow>;
    fn handle(&mut self, _: ScanNow, ctx: &mut Context<Self>) -> Self::Result {
        self.scan(ctx);
        MessageResult(self.counts())
    }
}

impl Handler<Done> for NotifierActor {
    type Result = ();
    fn handle(&mut self, msg: Done, ctx: &mut Context<Self>) {
        match msg.became {
            Some(OutboxStatus::Dead) => self.dead += 1,
            Some(_) => {}
            None => {
                let until = self.shared.clock.now() + STORE_FAILURE_COOLDOWN_MS;
                self.cooldown.insert(msg.id.clone(), until);
            }
        }
        self.release(msg.id, ctx);
        // The freed permits go to the queued events; the index is only walked again when
        // the queues ran dry after a scan that could not queue everything, or to move the
        // timer earlier.
        self.pump(ctx);
        let starving = self.truncated && self.turns.is_empty();
        if starving || msg.next_due.is_some_and(|d| d < self.wake_at) {
            self.request_scan(ctx);
        }
    }
}

impl Handler<QueueStats> for NotifierActor {
    type Result = MessageResult<QueueStats>;
    fn handle(&mut self, _: QueueStats, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.counts())
    }
}

impl Handler<Retry> for NotifierActor {
    type Result = ResponseActFuture<Self, Result<OutboxRecord, NotifierError>>;

    fn handle(&mut self, msg: Retry, _: &mut Context<Self>) -> Self::Result {
        let rec = match self.shared.store.get_outbox(&msg.id) {
            Ok(Some(r)) => r,
            Ok(None) => return Box::pin(fut::ready(Err(NotifierError::NotFound))),
            Err(e) => return Box::pin(fut::ready(Err(e.into()))),
        };
        tracing::info!(
            event_id = %rec.id,
            merchant = %rec.merchant_id,
            from = rec.status.as_str(),
            "webhook replay requested"
        );
        if self.busy.contains(&rec.id) {
            self.replay_requested.insert(rec.id.clone());
            return Box::pin(fut::ready(Ok(rec)));
        }
        self.replay(rec)
    }
}

impl NotifierActor {
    /// Makes `rec` due now and durable; the event is owned by this write until then, so no
    /// scan starts it from its old state.
    fn replay(
        &mut self,
        rec: OutboxRecord,
    ) -> ResponseActFuture<Self, Result<OutboxRecord, NotifierError>> {
        let mut next = rec.clone();
        next.status = OutboxStatus::Pending;
        next.next_due = self.shared.clock.now();
        self.busy.insert(rec.id.clone());
        self.cooldown.remove(&rec.id);
        let store = self.shared.store.clone();
        let id = rec.id.clone();
        let was_dead = rec.status == OutboxStatus::Dead;
        Box::pin(
            async move { store.update_outbox(&rec, &next).await.map(|_| next) }
                .into_actor(self)
                .map(move |res, act, ctx| {
                    if res.is_ok() && was_dead {
                        act.dead = act.dead.saturating_sub(1);
                    }
                    act.release(id, ctx);
                    act.full_scan_needed = true;
                    act.request_scan(ctx);
                    res.map_err(NotifierError::from)
                }),
        )
    }

    /// The owner of `id` (a delivery or a replay write) is done with it. A replay asked for
    /// meanwhile runs now, from the state that owner left.
    fn release(&mut self, id: EventId, ctx: &mut Context<Self>) {
        self.busy.remove(&id);
        if self.replay_requested.remove(&id) {
            match self.shared.store.get_outbox(&id) {
                Ok(Some(rec)) => {
                    let write = self.replay(rec).map(|res, _, _| {
                        if let Err(e) = res {
                            tracing::error!(error = %e, "notifier: recording a replay failed");
                        }
                    });
                    ctx.spawn(write);
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(error = %e, "notifier: reading an event to replay failed")
                }
            }
        }
    }
}
