//! The overload phase: creates offered open-loop at 4× the rate the server sustains, to see
//! what admission control (`[server] max_in_flight`) buys: the latency of what is
//! accepted, the share refused, and how long after the overload a create is fast again.
//!
//! Open loop because a closed loop (each client waits for its answer) slows down with the
//! server and so never offers more than the server takes; here each connection sends on a
//! schedule whatever happened to the previous request.

use hdrhistogram::Histogram;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::conn::Conn;
use super::{drive, order_body, KEY};

/// How many times the sustainable rate is offered.
const FACTOR: f64 = 4.0;
/// Serial creates that define "unloaded" latency, before and after.
const PROBES: usize = 200;
/// Consecutive normal probes after which the server counts as recovered.
const RECOVERED_AFTER: usize = 10;

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// One create on `c`: its status (0 when the connection failed) and latency in µs.
async fn create(c: &mut Conn, no: String) -> (u16, u64) {
    let body = order_body(no).to_string();
    let t = Instant::now();
    let status = match c
        .send("POST", "/v1/orders", Some(KEY), Some(body.as_bytes()))
        .await
    {
        Ok(a) => a.status,
        Err(_) => 0,
    };
    (status, t.elapsed().as_micros() as u64)
}

/// Serial creates on one connection: the unloaded latency.
async fn baseline(addr: SocketAddr, tag: &str) -> Histogram<u64> {
    let mut h = Histogram::<u64>::new(3).expect("histogram");
    let mut c = Conn::new(addr);
    for i in 0..PROBES {
        let (status, us) = create(&mut c, format!("{tag}-{i}")).await;
        if status == 201 {
            let _ = h.record(us);
        }
    }
    h
}

/// Runs the phase. `sustainable` is the create phase's rate when it ran in this process;
/// otherwise it is measured first with `clients` closed-loop clients, no more than
/// `max_in_flight` (when bounded), so that none of them is refused.
pub(super) async fn run(
    addr: SocketAddr,
    clients: usize,
    max_in_flight: usize,
    secs: u64,
    sustainable: Option<f64>,
) {
    let base = baseline(addr, "ob").await;
    let normal_us = base.value_at_quantile(0.99) * 2;
    let rate = match sustainable {
        Some(r) => r,
        None => {
            let p = drive(
                "POST /v1/orders (sustainable)",
                addr,
                if max_in_flight > 0 {
                    clients.min(max_in_flight)
                } else {
                    clients
                },
                secs.min(5),
                |mut c, n| async move {
                    let (status, _) = create(&mut c, format!("os-{n}")).await;
                    (c, status == 201)
                },
            )
            .await;
            p.print();
            p.rate()
        }
    };
    let offered = rate * FACTOR;
    // Enough connections that the schedule holds while accepted requests take up to
    // 100 ms each.
    let conns = ((offered * 0.1) as usize).clamp(clients.max(64), 2048);
    let interval = Duration::from_secs_f64(conns as f64 / offered);
    let accepted = Arc::new(parking_lot::Mutex::new(
        Histogram::<u64>::new(3).expect("histogram"),
    ));
    let (refused, failed, late) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let seq = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let end = started + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for k in 0..conns {
        let (accepted, refused, failed, late, seq) = (
            accepted.clone(),
            refused.clone(),
            failed.clone(),
            late.clone(),
            seq.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new(3).expect("histogram");
            let mut c = Conn::new(addr);
            // Connections start spread over one interval, so sends do not come in waves.
            let mut next = started + interval.mul_f64(k as f64 / conns as f64);
            while next < end {
                tokio::time::sleep_until(next.into()).await;
                let n = seq.fetch_add(1, Ordering::Relaxed);
                let (status, us) = create(&mut c, format!("o-{n}")).await;
                match status {
                    201 => {
                        let _ = h.record(us);
                    }
                    503 | 429 => {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                    s => {
                        if failed.fetch_add(1, Ordering::Relaxed) < 3 {
                            eprintln!(
                                "bench: overload: create answered {s} (0: connection failed)"
                            );
                        }
                    }
                }
                next += interval;
                // A slot missed while this connection waited is not sent late: counted,
                // so the rate actually offered can be told.
                while next < Instant::now() && next < end {
                    late.fetch_add(1, Ordering::Relaxed);
                    next += interval;
                }
            }
            let _ = accepted.lock().add(&h);
        }));
    }
    // Recovery is timed from the end of the schedule: senders still waiting on an answer
    // then are part of what the server has to work off.
    tokio::time::sleep_until(end.into()).await;
    let overload_end = Instant::now();
    let mut probe = Conn::new(addr);
    let mut streak = 0;
    let mut first_normal = None;
    let mut i = 0;
    while overload_end.elapsed() < Duration::from_secs(30) {
        let t = Instant::now();
        let (status, us) = create(&mut probe, format!("or-{i}")).await;
        i += 1;
        if status == 201 && us <= normal_us {
            first_normal.get_or_insert(t);
            streak += 1;
            if streak >= RECOVERED_AFTER {
                break;
            }
        } else {
            streak = 0;
            first_normal = None;
        }
    }
    let recovery = first_normal
        .filter(|_| streak >= RECOVERED_AFTER)
        .map(|t| t.saturating_duration_since(overload_end));
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = end - started;
    let acc = accepted.lock().clone();
    let (refused, failed, late) = (
        refused.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        late.load(Ordering::Relaxed),
    );
    let sent = acc.len() + refused + failed;
    let after = baseline(addr, "oa").await;
    println!(
        "overload: unloaded create p50 {:.2} ms p99 {:.2} ms (serial); sustainable {:.0}/s, offered {:.0}/s ({FACTOR}×) on {conns} connections for {:.0} s",
        ms(base.value_at_quantile(0.5)),
        ms(base.value_at_quantile(0.99)),
        rate,
        offered,
        elapsed.as_secs_f64()
    );
    println!(
        "{:<28} {:>9.0} ops/s  p50 {:>7.2} ms  p99 {:>7.2} ms  p999 {:>7.2} ms  max {:.2} ms  ({} accepted)",
        "  accepted creates",
        acc.len() as f64 / elapsed.as_secs_f64(),
        ms(acc.value_at_quantile(0.5)),
        ms(acc.value_at_quantile(0.99)),
        ms(acc.value_at_quantile(0.999)),
        ms(acc.max()),
        acc.len()
    );
    println!(
        "  sent {sent} ({:.0}/s): refused {:.1}% (503/429), failed {failed}; {late} slots not sent in time (client behind)",
        sent as f64 / elapsed.as_secs_f64(),
        100.0 * refused as f64 / sent.max(1) as f64
    );
    match recovery {
        Some(d) => println!(
            "  recovered (10 serial creates in a row ≤ {:.2} ms, 2× unloaded p99) {:.0} ms after the overload stopped; serial p50 then {:.2} ms p99 {:.2} ms",
            ms(normal_us),
            d.as_secs_f64() * 1000.0,
            ms(after.value_at_quantile(0.5)),
            ms(after.value_at_quantile(0.99))
        ),
        None => println!("  not recovered within 30 s after the overload stopped"),
    }
}
