//! A bounded load generator for docs/RELIABILITY.md: one attack at a time against a poolguard on
//! loopback, while a well-behaved client (from another loopback address, so per-IP limits on the
//! attacker do not apply to it) measures what it still gets.
//!
//! ```text
//! cargo run --release --example dns_flood -- <server> <attack> [seconds] [pid] [rate]
//!   server   127.0.0.1:5353 (loopback only: anything else is refused)
//!   attack   none | udp-queries | udp-junk | udp-responses | udp-forward | tcp-idle | tcp-slowloris
//!   seconds  length of the run, at most 30 (default 10)
//!   pid      poolguard's PID, to print its RSS before and after (0 = none)
//!   rate     the measured client's queries per second (default 100; 0 = one after another,
//!            as fast as answers come)
//! ```
//!
//! Attacks: `udp-queries` = names in a local zone (answered, never cached);
//! `udp-junk` = a compression loop in the question (FORMERR); `udp-responses` = QR=1 packets
//! (dropped); `udp-forward` = names sent to the upstream (with a dead upstream: the in-flight
//! bound); `tcp-idle` = 2000 connections that send nothing; `tcp-slowloris` = 2000 connections
//! that drip a length prefix.
//!
//! Every loop is bounded by count and time: the attack sends at most 5 million packets or opens
//! at most 2000 connections, and stops at the deadline.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};

const MAX_PACKETS: u64 = 5_000_000;
const MAX_CONNECTIONS: usize = 2000;
const ATTACK_SOCKETS: usize = 64;

fn query(id: u16, name: &str) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    if let Ok(n) = Name::from_ascii(name) {
        m.add_query(Query::query(n, RecordType::A));
    }
    m.to_vec().unwrap_or_default()
}

fn rss_kib(pid: Option<u32>) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let server: SocketAddr = args
        .get(1)
        .ok_or("usage: dns_flood <server> <attack> [seconds] [pid]")?
        .parse()?;
    if !server.ip().is_loopback() {
        return Err("dns_flood only targets loopback addresses".into());
    }
    let attack = args.get(2).cloned().unwrap_or_else(|| "none".into());
    let seconds: u64 = args
        .get(3)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10)
        .min(30);
    let pid: Option<u32> = args.get(4).and_then(|s| s.parse().ok()).filter(|p| *p != 0);
    let rate: u64 = args.get(5).and_then(|s| s.parse().ok()).unwrap_or(100);
    let duration = Duration::from_secs(seconds);
    let deadline = Instant::now() + duration;
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));

    let rss_before = rss_kib(pid);
    let attacker = tokio::spawn(run_attack(
        attack.clone(),
        server,
        deadline,
        stop.clone(),
        sent.clone(),
    ));
    let mut measured = measure(server, deadline, rate).await?;
    let (p50, p99) = (measured.percentile(50), measured.percentile(99));
    stop.store(true, Ordering::Relaxed);
    let _ = attacker.await;
    let rss_after = rss_kib(pid);

    let secs = duration.as_secs_f64();
    println!(
        "attack={attack} seconds={seconds} client_rate={rate} attack_sent={} answered={} answers_per_s={:.0} lost={} p50_us={} p99_us={} rss_before_kib={} rss_after_kib={}",
        sent.load(Ordering::Relaxed),
        measured.answered,
        measured.answered as f64 / secs,
        measured.lost,
        p50,
        p99,
        rss_before.map_or("-".into(), |v| v.to_string()),
        rss_after.map_or("-".into(), |v| v.to_string()),
    );
    Ok(())
}

struct Measured {
    answered: u64,
    lost: u64,
    latencies_us: Vec<u64>,
}

impl Measured {
    fn percentile(&mut self, p: usize) -> u64 {
        if self.latencies_us.is_empty() {
            return 0;
        }
        self.latencies_us.sort_unstable();
        let i = (self.latencies_us.len() - 1) * p / 100;
        self.latencies_us[i]
    }
}

/// The well-behaved client: one query at a time from 127.0.0.2 (a blocked name and a local-zone
/// name, alternately), 1 s timeout each, `rate` per second (0 = back to back), until the
/// deadline.
async fn measure(server: SocketAddr, deadline: Instant, rate: u64) -> std::io::Result<Measured> {
    let mut pace = (rate > 0).then(|| {
        let mut t = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    let sock = UdpSocket::bind("127.0.0.2:0").await?;
    let mut out = Measured {
        answered: 0,
        lost: 0,
        latencies_us: Vec::new(),
    };
    let mut buf = vec![0u8; 4096];
    let mut id: u16 = 0;
    while Instant::now() < deadline {
        if let Some(p) = pace.as_mut() {
            p.tick().await;
        }
        id = id.wrapping_add(1);
        let name = if id.is_multiple_of(2) {
            "xmr.pool.minergate.com."
        } else {
            "printer.campus.test."
        };
        let q = query(id, name);
        let start = Instant::now();
        sock.send_to(&q, server).await?;
        let got = tokio::time::timeout(Duration::from_secs(1), async {
            loop {
                let (n, _) = sock.recv_from(&mut buf).await?;
                if n >= 2 && buf[..2] == q[..2] {
                    return Ok::<_, std::io::Error>(());
                }
            }
        })
        .await;
        match got {
            Ok(Ok(())) => {
                out.answered += 1;
                out.latencies_us
                    .push(u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX));
            }
            _ => out.lost += 1,
        }
    }
    Ok(out)
}

async fn run_attack(
    attack: String,
    server: SocketAddr,
    deadline: Instant,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
) {
    let running = || !stop.load(Ordering::Relaxed) && Instant::now() < deadline;
    match attack.as_str() {
        "udp-queries" | "udp-junk" | "udp-responses" | "udp-forward" => {
            let mut tasks = Vec::new();
            for s in 0..ATTACK_SOCKETS {
                let attack = attack.clone();
                let stop = stop.clone();
                let sent = sent.clone();
                tasks.push(tokio::spawn(async move {
                    let Ok(sock) = UdpSocket::bind("127.0.0.1:0").await else {
                        return;
                    };
                    let mut i: u64 = 0;
                    while !stop.load(Ordering::Relaxed)
                        && Instant::now() < deadline
                        && sent.load(Ordering::Relaxed) < MAX_PACKETS
                    {
                        i += 1;
                        let id = (i as u16) ^ (s as u16);
                        let bytes = match attack.as_str() {
                            // Random names under a local zone: never cached, never forwarded.
                            "udp-queries" => query(id, &format!("r{i}-{s}.campus.test.")),
                            "udp-forward" => query(id, &format!("f{i}-{s}.example.net.")),
                            "udp-junk" => {
                                // The question's name points at itself: FORMERR.
                                let mut b = query(id, "a.");
                                b.truncate(12);
                                b.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1]);
                                b
                            }
                            _ => {
                                let mut b = query(id, "reflected.test.");
                                b[2] |= 0x80; // QR=1: dropped unanswered
                                b
                            }
                        };
                        if sock.send_to(&bytes, server).await.is_ok() {
                            sent.fetch_add(1, Ordering::Relaxed);
                        }
                        // Drain our own answers so our socket never blocks the flood.
                        let mut sink = [0u8; 512];
                        while sock.try_recv_from(&mut sink).is_ok() {}
                        if i.is_multiple_of(64) {
                            tokio::task::yield_now().await;
                        }
                    }
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
        }
        "tcp-idle" | "tcp-slowloris" => {
            let mut conns = Vec::new();
            while running() && conns.len() < MAX_CONNECTIONS {
                match TcpStream::connect(server).await {
                    Ok(c) => {
                        sent.fetch_add(1, Ordering::Relaxed);
                        conns.push(c);
                    }
                    Err(_) => break,
                }
            }
            // Slow-loris: a byte of a length prefix every 200 ms on each connection.
            while running() {
                if attack == "tcp-slowloris" {
                    for c in conns.iter_mut() {
                        let _ = c.write_all(&[0]).await;
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        _ => {}
    }
}
