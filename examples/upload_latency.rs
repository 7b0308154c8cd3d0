//! Times a feed upload against a running poolguard: how long the `PUT` takes, and when a probe
//! name from the new list is first answered with the sinkhole address, relative to the
//! response. A prober queries the probe name over UDP back to back from before the upload
//! starts, so the time it first sees the block is measured, not assumed.
//!
//! `cargo run --release --example upload_latency -- API_URL TOKEN DNS_ADDR FEED FILE PROBE SINK`
//! e.g. `… http://127.0.0.1:18080 $TOKEN 127.0.0.1:15353 bench /tmp/1m.txt pool999999.bench.test 0.0.0.0`.
//! Used for the numbers in docs/FEEDS-API.md.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};

/// One A query; `Some(true)` when answered with `sink`, `None` on timeout or garbage.
async fn probe(
    sock: &tokio::net::UdpSocket,
    dns: SocketAddr,
    name: &Name,
    id: u16,
    sink: &str,
) -> Option<bool> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(name.clone(), RecordType::A));
    sock.send_to(&m.to_vec().ok()?, dns).await.ok()?;
    let mut buf = [0u8; 4096];
    let (n, _) = tokio::time::timeout(Duration::from_millis(500), sock.recv_from(&mut buf))
        .await
        .ok()?
        .ok()?;
    let r = Message::from_vec(&buf[..n]).ok()?;
    Some(
        r.answers
            .iter()
            .filter_map(|a| a.data.ip_addr())
            .any(|ip| ip.to_string() == sink),
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [api, token, dns, feed, file, probe_name, sink] = args.as_slice() else {
        eprintln!("usage: upload_latency API_URL TOKEN DNS_ADDR FEED FILE PROBE_NAME SINK_IP");
        std::process::exit(2);
    };
    let (Ok(dns), Ok(name)) = (
        dns.parse::<SocketAddr>(),
        Name::from_ascii(format!("{probe_name}.")),
    ) else {
        eprintln!("bad DNS address or probe name");
        std::process::exit(2);
    };
    let body = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{file}: {e}");
            std::process::exit(1);
        }
    };
    let Ok(sock) = tokio::net::UdpSocket::bind("127.0.0.1:0").await else {
        eprintln!("cannot bind a UDP socket");
        std::process::exit(1);
    };
    if probe(&sock, dns, &name, 1, sink).await == Some(true) {
        eprintln!("{probe_name} is already blocked; upload a list that blocks it anew");
        std::process::exit(1);
    }
    let start = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let prober = {
        let done = done.clone();
        let sink = sink.clone();
        tokio::spawn(async move {
            let mut id = 2u16;
            let mut failed = 0u32;
            // Bounded: stops at the first blocked answer, or 60 s after the start.
            while start.elapsed() < Duration::from_secs(60) {
                id = id.wrapping_add(1);
                match probe(&sock, dns, &name, id, &sink).await {
                    Some(true) => return (Some(start.elapsed()), failed),
                    Some(false) => {}
                    None => failed += 1,
                }
                if done.load(Ordering::Relaxed) && start.elapsed() > Duration::from_secs(30) {
                    break;
                }
            }
            (None, failed)
        })
    };
    let resp = reqwest::Client::new()
        .put(format!("{api}/api/v1/feeds/{feed}"))
        .bearer_auth(token)
        .body(body)
        .send()
        .await;
    let responded = start.elapsed();
    done.store(true, Ordering::Relaxed);
    let status = match resp {
        Ok(r) => {
            let s = r.status();
            let text = r.text().await.unwrap_or_default();
            let short: String = text.chars().take(200).collect();
            format!("{s} {short}")
        }
        Err(e) => format!("error: {e}"),
    };
    let (blocked_at, probe_timeouts) = prober.await.unwrap_or((None, 0));
    println!("upload response: {status}");
    println!("PUT request took {:.0} ms", responded.as_secs_f64() * 1e3);
    match blocked_at {
        Some(t) => println!(
            "probe first blocked {:.0} ms after the PUT started, {:+.0} ms relative to the response",
            t.as_secs_f64() * 1e3,
            (t.as_secs_f64() - responded.as_secs_f64()) * 1e3
        ),
        None => println!("probe never blocked"),
    }
    println!("probe queries without an answer within 500 ms: {probe_timeouts}");
}
