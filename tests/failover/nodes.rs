//! The nodes: `paygate serve` processes over one schema, and what the tests share.

use super::*;

pub(crate) const KEY: &str = "sk_test_paygate_demo";

/// Both tests start several debug binaries on a 2-core machine: one at a time.
pub(crate) static SERIAL: Mutex<()> = Mutex::new(());

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

pub(crate) fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap()
}

/// One `paygate serve` process with its own port and (unused) data dir.
pub(crate) struct Node {
    pub(crate) base: String,
    pub(crate) child: Mutex<Option<Child>>,
    pub(crate) _dir: tempfile::TempDir,
}

impl Node {
    /// Starts the binary (does not wait for it: [`Node::ready`]).
    pub(crate) fn spawn(env: &[(String, String)]) -> Node {
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_paygate"))
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .args([
                "serve",
                "--config",
                concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml"),
            ])
            .env("PAYGATE__SERVER__BIND", format!("127.0.0.1:{port}"))
            .env("PAYGATE__STORAGE__PATH", dir.path())
            .env("PAYGATE__LOG__LEVEL", "warn")
            .env("PAYGATE__LOG__FORMAT", "json")
            .stdout(Stdio::null())
            .stderr(log_to(port))
            .spawn()
            .expect("start paygate");
        Node {
            base: format!("http://127.0.0.1:{port}"),
            child: Mutex::new(Some(child)),
            _dir: dir,
        }
    }

    pub(crate) async fn readyz(&self, http: &reqwest::Client) -> Option<u16> {
        let r = http
            .get(format!("{}/readyz", self.base))
            .timeout(Duration::from_secs(3))
            .send()
            .await;
        r.ok().map(|r| r.status().as_u16())
    }

    /// Waits until `/readyz` answers `want`.
    pub(crate) async fn wait_readyz(&self, http: &reqwest::Client, want: u16, within: Duration) {
        let deadline = Instant::now() + within;
        while self.readyz(http).await != Some(want) {
            assert!(
                Instant::now() < deadline,
                "{}/readyz never answered {want}",
                self.base
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub(crate) fn kill9(&self) {
        if let Some(mut c) = self.child.lock().unwrap().take() {
            c.kill().expect("SIGKILL");
            c.wait().unwrap();
        }
    }
}

/// The node's log: to `$FAILOVER_LOG_DIR/node-<port>.log` when set (to see what a failed
/// run did), else nowhere.
pub(crate) fn log_to(port: u16) -> Stdio {
    match std::env::var_os("FAILOVER_LOG_DIR") {
        Some(d) => std::fs::File::create(std::path::Path::new(&d).join(format!("node-{port}.log")))
            .map(Stdio::from)
            .unwrap_or_else(|_| Stdio::null()),
        None => Stdio::null(),
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The settings every node of a test shares: the database, the merchant's webhook URL,
/// and short intervals so retries, polls, expiries and lease take-overs happen within the
/// test (a dead node's timer and delivery leases last 2 s and 2 × 2 + 1 s).
pub(crate) fn node_env(db_url: &str, hook_url: &str) -> Vec<(String, String)> {
    [
        ("PAYGATE__STORAGE__BACKEND", "postgres"),
        ("PAYGATE__STORAGE__URL", db_url),
        ("PAYGATE__STORAGE__POOL_SIZE", "8"),
        ("PAYGATE__STORAGE__RELEASE_IN_PROGRESS_AFTER_SECS", "2"),
        ("PAYGATE__MERCHANTS__0__NOTIFY_URL", hook_url),
        (
            "PAYGATE__NOTIFIER__SCHEDULE_SECS",
            "[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]",
        ),
        ("PAYGATE__NOTIFIER__TIMEOUT_MS", "2000"),
        ("PAYGATE__NOTIFIER__LEASE_MARGIN_SECS", "1"),
        ("PAYGATE__ACTORS__TIMER_LEASE_SECS", "2"),
        ("PAYGATE__ACTORS__POLL_FIRST_SECS", "2"),
        ("PAYGATE__ACTORS__POLL_MAX_INTERVAL_SECS", "2"),
        ("PAYGATE__ACTORS__POLL_JITTER_PCT", "0"),
        ("PAYGATE__SERVER__WORKERS", "2"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}
