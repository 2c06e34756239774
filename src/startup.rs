//! Builds the whole application from a config: storage, channels, actors, timers,
//! simulators and the HTTP server. The listener is bound first so that port 0 works and the
//! public callback URL can default to the bound address.

use actix::prelude::*;
use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};
use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use crate::actors::notifier::{Kick, NotifierActor, NotifierError};
use crate::actors::{ChannelActor, Deps, Engine, Registry, TimerService};
use crate::api::{self, AppState, Merchants};
use crate::clock::Clock;
use crate::config::Config;
use crate::connectors::{self, ConnectorEnv, ConnectorError};
use crate::domain::ChannelName;
use crate::risk::RiskEngine;
use crate::simulator::faults::Mounted;
use crate::simulator::{self, SimEnv, SimError};
use crate::store::{Store, StoreError};
use crate::telemetry::request_id;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open storage: {0}")]
    Store(#[from] StoreError),
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("channel `{channel}`: {source}")]
    Connector {
        channel: String,
        source: ConnectorError,
    },
    #[error("simulator for `{channel}`: {source}")]
    Simulator { channel: String, source: SimError },
    #[error("webhook notifier: {0}")]
    Notifier(#[from] NotifierError),
    #[error(transparent)]
    Risk(#[from] crate::risk::RiskError),
    #[error("HTTP client: {0}")]
    Http(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

pub struct Application {
    port: u16,
    public_url: String,
    server: Server,
    pub engine: Engine,
    pub clock: Clock,
    _arbiters: Vec<Arbiter>,
}

impl Application {
    /// Builds and binds everything; call inside an actix `System` (`#[actix_web::main]`,
    /// `#[actix_web::test]`). The server runs once `run_until_stopped` is awaited (or the
    /// returned server handle is spawned).
    pub fn build(config: Config, clock: Clock) -> Result<Application, StartError> {
        let config = Arc::new(config);
        let store = Store::open_config(&config.storage)?;
        let released = store.idem_release_in_progress(clock.now())?;
        if released > 0 {
            tracing::info!(
                released,
                "released idempotency keys of requests cut off by the last stop"
            );
        }
        let risk = Arc::new(RiskEngine::load(
            config.risk.path().as_deref(),
            clock.clone(),
            crate::risk::KnownNames::of(&config),
        )?);
        let listener =
            TcpListener::bind(&config.server.bind).map_err(|source| StartError::Bind {
                addr: config.server.bind.clone(),
                source,
            })?;
        let addr = listener.local_addr()?;
        let port = addr.port();
        let public_url = config
            .server
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"))
            .trim_end_matches('/')
            .to_string();

        // Provider APIs never redirect; following one would send signed requests elsewhere.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(256)
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("paygate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| StartError::Http(e.to_string()))?;

        // Order actors run on their own arbiters; channel actors on this (the system) one.
        let arbiters: Vec<Arbiter> = (0..config.actors.arbiter_count())
            .map(|_| Arbiter::new())
            .collect();
        let registry = Registry::new();
        let mut channels = HashMap::new();
        let mut children = HashMap::new();
        let mut channel_actors = Vec::new();
        let mut simulators: HashMap<ChannelName, Mounted> = HashMap::new();
        for (name, ch_cfg) in config.enabled_channels() {
            let channel = ChannelName::parse(name).expect("validated at load");
            let base_url = match &ch_cfg.base_url {
                Some(u) if !u.is_empty() => u.trim_end_matches('/').to_string(),
                _ => format!("{public_url}/sandbox/{name}"),
            };
            let env = ConnectorEnv {
                channel: channel.clone(),
                http: http.clone(),
                base_url,
                callback_url: format!("{public_url}/callbacks/{name}"),
                public_url: public_url.clone(),
            };
            let connector =
                connectors::build(ch_cfg, env).map_err(|source| StartError::Connector {
                    channel: name.clone(),
                    source,
                })?;
            let actor = ChannelActor::new(
                channel.clone(),
                ch_cfg,
                connector,
                clock.clone(),
                registry.clone(),
                arbiters.iter().map(|a| a.handle()).collect(),
                config.actors.idle_timeout(),
            );
            channels.insert(channel.clone(), actor.handle());
            children.insert(channel.clone(), actor.children());
            channel_actors.push(actor.start_supervised());
            if config.sandbox.enabled {
                let env = SimEnv {
                    channel: channel.clone(),
                    http: http.clone(),
                    state: store.kv_tree(name)?,
                    public_url: public_url.clone(),
                };
                let sim =
                    simulator::build(ch_cfg, env).map_err(|source| StartError::Simulator {
                        channel: name.clone(),
                        source,
                    })?;
                simulators.insert(channel, Mounted::new(sim));
            }
        }

        if config.sandbox.enabled {
            // By design the sandbox routes have no authentication, so this must never be
            // mistaken for a production set-up; say so where operators look.
            tracing::warn!(
                simulated_channels = ?simulators.keys().map(ChannelName::as_str).collect::<Vec<_>>(),
                "SANDBOX ENABLED: /sandbox/* lets anyone, without authentication, pay any \
                 order and inject provider faults, and the simulators sign with published \
                 test keys. For local use only: set [sandbox] enabled = false \
                 (PAYGATE__SANDBOX__ENABLED=false) in production"
            );
        }
        crate::telemetry::metrics::init(channels.keys().map(|c: &ChannelName| c.as_str()));

        let notifier = NotifierActor::new(
            store.clone(),
            clock.clone(),
            &config.notifier,
            &config.merchants,
        )?
        .start();
        let outbox_written = Arc::new(tokio::sync::Notify::new());
        {
            // Commits that wrote outbox records wake this forwarder; bursts coalesce into
            // one Kick, so the notifier's mailbox never grows with the commit rate.
            let (notify, notifier) = (outbox_written.clone(), notifier.clone());
            actix_rt::spawn(async move {
                loop {
                    notify.notified().await;
                    if notifier.send(Kick).await.is_err() {
                        return;
                    }
                }
            });
        }

        let deps = Arc::new(Deps {
            store,
            clock: clock.clone(),
            channels,
            actors: config.actors.clone(),
            risk: risk.clone(),
            outbox_written,
            // Ids were validated with the config, so none is dropped here.
            auto_refund_late: config
                .merchants
                .iter()
                .filter(|m| m.refund_late_payments)
                .filter_map(|m| crate::domain::MerchantId::parse(&m.id).ok())
                .collect(),
        });
        registry.bind(deps.clone(), children);
        TimerService::spawn(deps.clone(), registry.clone());
        if config.storage.idempotency_retain_hours > 0 {
            spawn_idempotency_retention(
                deps.clone(),
                config.storage.idempotency_retain_hours as i64 * 3_600_000,
            );
        }
        let engine = Engine { deps, registry };

        let merchants = Merchants::new(&config.merchants);
        let admission = Arc::new(api::Admission::new(&config.server, merchants.ids()));
        let state = web::Data::new(AppState {
            engine: engine.clone(),
            merchants,
            config: config.clone(),
            simulators,
            notifier,
            risk,
            channel_actors,
            admission,
        });
        let workers = if config.server.workers == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        } else {
            config.server.workers
        };
        let server = HttpServer::new(move || {
            let sims = state.simulators.clone();
            App::new()
                .app_data(state.clone())
                // Inside `request_id`, so refusals are logged and counted like any answer.
                .wrap(actix_web::middleware::from_fn(api::admission))
                .wrap(actix_web::middleware::from_fn(request_id))
                .configure(|c| api::routes(c, &sims))
        })
        .workers(workers)
        .backlog(4096)
        .listen(listener)?
        .run();
        tracing::info!(%public_url, workers, "paygate listening");
        Ok(Application {
            port,
            public_url,
            server,
            engine,
            clock,
            _arbiters: arbiters,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// A handle to stop the server gracefully.
    pub fn server_handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGINT/SIGTERM (graceful: in-flight requests finish).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// Answered `Idempotency-Key`s older than the retention are removed every hour of the
/// app's clock, off the async threads (a scan of one retention period's keys). The first
/// run is an hour after start, so start-up scans the tree once, to release keys cut off
/// by the last stop, not twice.
fn spawn_idempotency_retention(deps: Arc<Deps>, retain_ms: i64) {
    actix_rt::spawn(async move {
        let mut due = deps.clock.now() + 3_600_000;
        loop {
            deps.clock.sleep_until(due).await;
            // One reading serves this run's edge and the next run's time, so a clock that
            // moves on meanwhile cannot skip a run.
            let now = deps.clock.now();
            due = now + 3_600_000;
            let (store, before) = (deps.store.clone(), now - retain_ms);
            match actix_rt::task::spawn_blocking(move || store.idem_purge(before)).await {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => tracing::info!(purged = n, "idempotency keys past retention removed"),
                Ok(Err(e)) => tracing::warn!(error = %e, "purging idempotency keys failed"),
                Err(_) => return,
            }
        }
    });
}
