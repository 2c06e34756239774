//! The `paygate` binary: a thin shell over the library.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

use paygate::clock::Clock;
use paygate::config::{sha256_hex, Config};
use paygate::startup::Application;

/// mimalloc instead of glibc malloc: allocation and free were ~15 % of the instructions of
/// the benchmark (callgrind), spread over many threads.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "paygate",
    version,
    about = "Payment orchestrator: one REST API for WeChat Pay, Alipay and a sandbox channel"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the service (the default).
    Serve {
        #[arg(long, default_value = "config.toml")]
        config: PathBuf,
    },
    /// Benchmark: start the server on a temp dir and load it (see docs/benchmarks.md).
    Bench {
        #[arg(long, default_value = "config.toml")]
        config: PathBuf,
        /// Concurrent clients.
        #[arg(long, default_value_t = 64)]
        clients: usize,
        /// Seconds per phase.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Idle timeout for order actors during the run.
        #[arg(long, default_value_t = 3)]
        idle_timeout_secs: u64,
        /// Arbiter threads for order actors (0 = the config's rule: half the cores, at least one).
        #[arg(long, default_value_t = 0)]
        arbiters: usize,
        /// Phases to run, comma-separated: healthz, create, lifecycle, overload.
        #[arg(
            long,
            default_value = "healthz,create,lifecycle,overload",
            value_delimiter = ','
        )]
        phases: Vec<paygate::bench::PhaseName>,
        /// Store backend: sled (a temp dir) or postgres (a database of its own on the
        /// server at --database-url, dropped afterwards).
        #[arg(long, value_enum, default_value = "sled")]
        store: paygate::config::StorageBackend,
        /// The PostgreSQL server for --store postgres (any database on it).
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
        database_url: String,
    },
    /// Print the SHA-256 digest to put in config for an API key or admin token.
    HashKey { key: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Cmd::Serve {
        config: PathBuf::from("config.toml"),
    }) {
        Cmd::HashKey { key } => {
            println!("{}", sha256_hex(&key));
            ExitCode::SUCCESS
        }
        Cmd::Serve { config } => serve(config),
        Cmd::Bench {
            config,
            clients,
            seconds,
            idle_timeout_secs,
            arbiters,
            phases,
            store,
            database_url,
        } => {
            let opts = paygate::bench::BenchOptions {
                config,
                clients,
                seconds,
                idle_timeout_secs,
                arbiters,
                phases,
                store,
                database_url,
            };
            match paygate::bench::run(opts) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("paygate bench: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn serve(path: PathBuf) -> ExitCode {
    let cfg = match Config::load(&path, std::env::vars()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("paygate: {e}");
            return ExitCode::from(2);
        }
    };
    paygate::telemetry::init(&cfg.log);
    let res = actix_web::rt::System::new().block_on(async move {
        let app = Application::build(cfg, Clock::system()).map_err(|e| e.to_string())?;
        app.run_until_stopped().await.map_err(|e| e.to_string())
    });
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "paygate stopped with an error");
            eprintln!("paygate: {e}");
            ExitCode::FAILURE
        }
    }
}
