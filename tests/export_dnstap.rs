//! dnstap export against real receivers: `fstrm_capture` (Debian `fstrm-bin`) on a Unix socket
//! and on TCP, real DNS queries over UDP and TCP to a real poolguard, the capture read back
//! with the real reader `dnstap-ldns`, and the frames decoded here to check the `policy` field
//! (the packaged readers do not print it). The receiver is stopped and restarted mid-test:
//! poolguard reconnects, every query is still answered, and the drops show in /metrics.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    POLL, Proto, TestBed, WAIT, free_tcp_port, query, query_from, request, summed_metric,
    tools::require_tool, wait_for,
};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use poolguard::export::dnstap::{
    Dnstap, MessageType, PolicyAction, PolicyMatch, SocketFamily, SocketProtocol,
};
use prost::Message as _;

/// Longest a test waits for a condition it polls (a connection, a counter, a process exit).
/// A running `fstrm_capture`, stopped (by its PID) when dropped.
struct Capture {
    child: Child,
    file: PathBuf,
}

impl Capture {
    fn unix(socket: &Path, file: &Path) -> Self {
        let child = fstrm_capture(&["-u", &socket.display().to_string()], file);
        // Ready once its socket exists.
        wait_for("fstrm_capture's socket", || socket.exists());
        Self {
            child,
            file: file.to_path_buf(),
        }
    }

    fn tcp(port: u16, file: &Path) -> Self {
        let child = fstrm_capture(&["-a", "127.0.0.1", "-p", &port.to_string()], file);
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        // Ready once it accepts; the probe connection sends nothing and is closed at once.
        wait_for("fstrm_capture's TCP port", || {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        });
        Self {
            child,
            file: file.to_path_buf(),
        }
    }

    /// SIGTERM, then wait (bounded) for exit: fstrm_capture closes its file on the way out.
    fn stop(mut self) -> PathBuf {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid");
        // SAFETY: kill(2) on the PID of a child this test started and has not reaped.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        wait_for("fstrm_capture to exit on SIGTERM", || {
            self.child.try_wait().expect("wait").is_some()
        });
        std::mem::take(&mut self.file)
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn fstrm_capture(listen: &[&str], file: &Path) -> Child {
    let bin = require_tool("fstrm_capture", "fstrm-bin");
    Command::new(bin)
        .args(["-t", "protobuf:dnstap.Dnstap"])
        .args(listen)
        .args(["-w", &file.display().to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start fstrm_capture")
}

/// The value of `name{sink="<sink>"}` in poolguard's /metrics, summed over its other labels
/// (the drop reasons), 0 when absent.
async fn metric(bed: &TestBed, name: &str, sink: &str) -> f64 {
    let text = bed.metrics_text().await;
    summed_metric(&text, name, &format!("sink=\"{sink}\""))
}

/// Polls a metric until `ok(value)`, bounded by [`WAIT`]; returns the value.
async fn wait_metric(bed: &TestBed, name: &str, sink: &str, ok: impl Fn(f64) -> bool) -> f64 {
    let deadline = Instant::now() + WAIT;
    loop {
        let v = metric(bed, name, sink).await;
        if ok(v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{name}{{sink=\"{sink}\"}} stuck at {v}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// The data frames of a Frame Streams file (control frames skipped).
fn frames(file: &Path) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(file).expect("capture file");
    let word = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    let mut out = Vec::new();
    let mut at = 0;
    while at + 4 <= bytes.len() {
        let len = word(at) as usize;
        at += 4;
        if len == 0 {
            let control = word(at) as usize;
            at += 4 + control;
        } else {
            out.push(bytes[at..at + len].to_vec());
            at += len;
        }
    }
    out
}

/// The decoded dnstap messages of a capture file.
fn decoded(file: &Path) -> Vec<Dnstap> {
    frames(file)
        .iter()
        .map(|f| Dnstap::decode(&f[..]).expect("a dnstap frame"))
        .collect()
}

/// The question name (lower-case, no dot) of a dnstap message's query.
fn qname(d: &Dnstap) -> String {
    let m = d.message.as_ref().expect("message");
    let query = Message::from_vec(m.query_message.as_deref().expect("query bytes")).expect("dns");
    let name = query.queries[0].name().to_ascii().to_lowercase();
    name.trim_end_matches('.').to_string()
}

/// `dnstap-ldns -r <file>`: the packaged reader's text for the whole capture.
fn ldns_text(file: &Path) -> String {
    let bin = require_tool("dnstap-ldns", "dnstap-ldns");
    let out = Command::new(bin)
        .args(["-y", "-r"])
        .arg(file)
        .output()
        .expect("run dnstap-ldns");
    assert!(out.status.success(), "dnstap-ldns failed: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A ledger knowing the loopback clients the tests query from.
const LEDGER: &str = "network,mac,asset,kind,location,department,owner,contact\n\
127.0.0.0/8,,loopback-lab,lab,,Networks,,\n\
127.0.0.7,aa:bb:cc:dd:ee:ff,gpu-ws-07,GPU workstation,A-301,Physics,Lab Manager,lab@example.edu\n";

fn api_and_store() -> &'static str {
    "[api]\nlisten = \"127.0.0.1:0\"\n[store]\npath = \"data/pg.db\"\n"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_query_reaches_a_unix_socket_receiver_with_its_policy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("dnstap.sock");
    let capture = Capture::unix(&socket, &dir.path().join("unix.fstrm"));
    let sink = format!("dnstap:{}", socket.display());
    let bed = TestBed::builder()
        .file("clients.csv", LEDGER)
        .toml(&format!(
            "{}[clients]\nledger = \"clients.csv\"\n\
             [[export.dnstap]]\nunix = \"{}\"\nmessages = \"both\"\nidentity = \"node-7\"\ninclude = [\"identity\"]\n",
            api_and_store(),
            socket.display()
        ))
        .start()
        .await;
    wait_metric(&bed, "poolguard_export_connected", &sink, |v| v == 1.0).await;

    let other = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 7));
    // Fast path (listed name), general path (forwarded), block actions, inspection.
    let blocked = query_from(
        other,
        bed.dns,
        Proto::Udp,
        &request("pool.minergate.com", RecordType::A, true),
    )
    .await;
    assert_eq!(common::addresses(&blocked), [common::SINK_V4]);
    let www = bed.ask(Proto::Tcp, "www.example.test", RecordType::A).await;
    assert_eq!(www.metadata.response_code, ResponseCode::NoError);
    let refused = bed.ask(Proto::Udp, "refuse.test", RecordType::A).await;
    assert_eq!(refused.metadata.response_code, ResponseCode::Refused);
    bed.ask(Proto::Tcp, "nx.test", RecordType::A).await;
    bed.ask(Proto::Udp, "badip.example.test", RecordType::A)
        .await;
    bed.ask(Proto::Udp, "cdn.example.test", RecordType::A).await;
    wait_metric(&bed, "poolguard_export_sent_total", &sink, |v| v >= 6.0).await;
    assert_eq!(
        metric(&bed, "poolguard_export_dropped_total", &sink).await,
        0.0
    );

    // Shutdown writes what is queued, then STOP/FINISH; then the receiver closes its file.
    bed.shutdown().await;
    let file = capture.stop();

    // The real reader decodes every frame, with the client's address and the names.
    let text = ldns_text(&file);
    for name in [
        "pool.minergate.com.",
        "www.example.test.",
        "refuse.test.",
        "nx.test.",
        "badip.example.test.",
    ] {
        assert!(text.contains(name), "{name} missing in:\n{text}");
    }
    assert!(
        text.contains("127.0.0.7"),
        "client address missing:\n{text}"
    );
    assert!(
        text.contains("CLIENT_QUERY") && text.contains("CLIENT_RESPONSE"),
        "{text}"
    );
    assert!(text.contains("node-7"), "identity missing:\n{text}");

    // Our own decoding: message fields and the policy the packaged reader does not print.
    let all = decoded(&file);
    assert_eq!(
        all.len(),
        12,
        "a CLIENT_QUERY and a CLIENT_RESPONSE per query"
    );
    let response = |name: &str| {
        all.iter()
            .find(|d| {
                qname(d) == name
                    && d.message.as_ref().unwrap().r#type == MessageType::ClientResponse as i32
            })
            .unwrap_or_else(|| panic!("no CLIENT_RESPONSE for {name}"))
            .clone()
    };
    let pool = response("pool.minergate.com");
    assert_eq!(pool.identity.as_deref(), Some(&b"node-7"[..]));
    assert_eq!(
        pool.version.as_deref(),
        Some(format!("poolguard {}", env!("CARGO_PKG_VERSION")).as_bytes())
    );
    let m = pool.message.as_ref().unwrap();
    assert_eq!(m.query_address.as_deref(), Some(&[127, 0, 0, 7][..]));
    assert_eq!(m.socket_family, Some(SocketFamily::Inet as i32));
    assert_eq!(m.socket_protocol, Some(SocketProtocol::Udp as i32));
    assert!(m.query_port.is_some_and(|p| p > 0));
    let answer = Message::from_vec(m.response_message.as_deref().unwrap()).unwrap();
    assert_eq!(common::addresses(&answer), [common::SINK_V4]);
    let p = m.policy.as_ref().expect("a block carries its policy");
    assert_eq!(p.r#type.as_deref(), Some("poolguard"));
    assert_eq!(p.rule.as_deref(), Some(&b"mining"[..]));
    assert_eq!(p.action, Some(PolicyAction::LocalData as i32));
    assert_eq!(p.r#match, Some(PolicyMatch::Qname as i32));
    // `include = ["identity"]`: the ledger's most specific row for 127.0.0.7, as JSON in `extra`.
    let extra: serde_json::Value =
        serde_json::from_slice(pool.extra.as_deref().expect("identity in extra")).expect("json");
    assert_eq!(
        extra,
        serde_json::json!({
            "network": "127.0.0.7/32", "asset": "gpu-ws-07", "kind": "GPU workstation",
            "location": "A-301", "department": "Physics", "owner": "Lab Manager",
        })
    );

    let www = response("www.example.test");
    let m = www.message.as_ref().unwrap();
    assert_eq!(m.socket_protocol, Some(SocketProtocol::Tcp as i32));
    assert!(m.policy.is_none(), "an allowed answer has no policy");

    let policy = |name: &str| response(name).message.unwrap().policy.expect("policy");
    assert_eq!(
        policy("refuse.test").action,
        Some(PolicyAction::Drop as i32)
    );
    assert_eq!(
        policy("refuse.test").rule.as_deref(),
        Some(&b"refusing"[..])
    );
    assert_eq!(
        policy("nx.test").action,
        Some(PolicyAction::Nxdomain as i32)
    );
    let ip = policy("badip.example.test");
    assert_eq!(ip.r#match, Some(PolicyMatch::ResponseIp as i32));
    assert_eq!(ip.rule.as_deref(), Some(&b"pool-ips"[..]));
    assert_eq!(
        policy("cdn.example.test").r#match,
        Some(PolicyMatch::Qname as i32)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_receiver_restarted_mid_test_gets_the_stream_back_and_drops_are_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_tcp_port();
    let sink = format!("dnstap:127.0.0.1:{port}");
    let queue = 8;
    let first = Capture::tcp(port, &dir.path().join("first.fstrm"));
    let bed = TestBed::builder()
        .toml(&format!(
            "{}[[export.dnstap]]\ntcp = \"127.0.0.1:{port}\"\nselect = \"all\"\nqueue_size = {queue}\nreconnect_min_ms = 20\nreconnect_max_ms = 200\n",
            api_and_store()
        ))
        .start()
        .await;
    wait_metric(&bed, "poolguard_export_connections_total", &sink, |v| {
        v >= 1.0
    })
    .await;

    for i in 0..5 {
        bed.ask(
            Proto::Udp,
            &format!("before{i}.example.test"),
            RecordType::A,
        )
        .await;
    }
    wait_metric(&bed, "poolguard_export_sent_total", &sink, |v| v >= 5.0).await;
    let first_file = first.stop();
    wait_metric(&bed, "poolguard_export_connected", &sink, |v| v == 0.0).await;

    // Receiver gone: every query is still answered (each within the client timeout), the
    // queue holds `queue` exchanges and the rest are dropped and counted.
    let during = 30;
    for i in 0..during {
        let proto = if i % 2 == 0 { Proto::Udp } else { Proto::Tcp };
        let m = query(
            bed.dns,
            proto,
            &request(
                &format!("during{i}.pool.minergate.com"),
                RecordType::A,
                false,
            ),
        )
        .await;
        assert_eq!(common::addresses(&m), [common::SINK_V4]);
    }
    let dropped = metric(&bed, "poolguard_export_dropped_total", &sink).await;
    assert!(
        dropped >= f64::from(during - queue) && dropped <= f64::from(during),
        "dropped {dropped}"
    );

    // Back: poolguard reconnects by itself and the stream goes on.
    let second = Capture::tcp(port, &dir.path().join("second.fstrm"));
    wait_metric(&bed, "poolguard_export_connections_total", &sink, |v| {
        v >= 2.0
    })
    .await;
    for i in 0..5 {
        bed.ask(Proto::Tcp, &format!("after{i}.example.test"), RecordType::A)
            .await;
    }
    let sent_before = 5.0;
    wait_metric(&bed, "poolguard_export_sent_total", &sink, |v| {
        v >= sent_before + f64::from(queue) + 5.0
    })
    .await;
    bed.shutdown().await;
    let second_file = second.stop();

    let names = |file: &Path| decoded(file).iter().map(qname).collect::<Vec<_>>();
    let first_names = names(&first_file);
    assert_eq!(
        first_names,
        (0..5)
            .map(|i| format!("before{i}.example.test"))
            .collect::<Vec<_>>()
    );
    let second_names = names(&second_file);
    for i in 0..5 {
        assert!(
            second_names.contains(&format!("after{i}.example.test")),
            "{second_names:?}"
        );
    }
    // What waited in the queue during the outage came through after the reconnect.
    let queued = second_names
        .iter()
        .filter(|n| n.starts_with("during"))
        .count();
    assert_eq!(queued, queue as usize, "{second_names:?}");
    let text = ldns_text(&second_file);
    assert!(text.contains("after4.example.test."), "{text}");
    assert!(text.contains("127.0.0.1"), "{text}");
}
