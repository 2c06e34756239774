//! sled 0.34 alone, without paygate's store: how its resident memory follows the number
//! of stored keys, whatever `cache_capacity` says. It writes `KEYS` keys (8-byte, in order
//! like paygate's time-sorted ids, or random with `RANDOM=1`) of `VALUE` bytes in batches
//! of 20 (as the store writer does), flushing each batch, and prints the process's resident
//! memory as it goes and after full scans. Same allocator as the paygate binary.
//!
//! ```text
//! CACHE_MB=1 KEYS=800000 cargo run --release --example sled_memory
//! ```
use paygate::bench::rss_mib;
use rand::Rng;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> Result<(), sled::Error> {
    let (keys, value, cache_mb) = (env("KEYS", 800_000), env("VALUE", 400), env("CACHE_MB", 1));
    let random = std::env::var("RANDOM").is_ok_and(|v| v == "1");
    let dir = tempfile::tempdir()?;
    let db = sled::Config::new()
        .path(dir.path())
        .cache_capacity(cache_mb << 20)
        .flush_every_ms(Some(500))
        .open()?;
    let tree = db.open_tree("t")?;
    println!(
        "sled alone: {keys} {} keys of {value} B, cache {cache_mb} MiB; RSS at start {:.1} MiB",
        if random { "random" } else { "ordered" },
        rss_mib()
    );
    let v = vec![7u8; value as usize];
    let mut rng = rand::thread_rng();
    let step = (keys / 8).max(1);
    let mut written = 0u64;
    while written < keys {
        let mut batch = sled::Batch::default();
        for _ in 0..20 {
            let k: u64 = if random { rng.gen() } else { written };
            batch.insert(&k.to_be_bytes(), v.as_slice());
            written += 1;
        }
        tree.apply_batch(batch)?;
        db.flush()?;
        if written % step < 20 {
            println!(
                "{written:>9} keys: RSS {:6.1} MiB, {:4.0} MiB on disk",
                rss_mib(),
                db.size_on_disk()? as f64 / 1048576.0
            );
        }
    }
    for pass in 1..=2 {
        let bytes = tree
            .iter()
            .values()
            .map(|v| v.map_or(0, |v| v.len()))
            .sum::<usize>();
        println!(
            "after full scan {pass} ({} MiB read): RSS {:.1} MiB",
            bytes >> 20,
            rss_mib()
        );
    }
    Ok(())
}
