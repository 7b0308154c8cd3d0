//! Starting up: one poolguard per DNS address, listener bind errors an operator can act on,
//! and `poolguard check` on a walled garden that cannot show its page.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use common::{Proto, SINK_V4, TestBed, addresses};
use hickory_proto::rr::RecordType;

/// The error as `poolguard` prints it (the message, then its causes).
fn printed(error: poolguard::app::AppError) -> String {
    format!("{:#}", anyhow::Error::from(error))
}

/// The kernel's words for "address in use", as an io::Error prints them.
fn in_use_text() -> String {
    std::io::Error::from_raw_os_error(libc::EADDRINUSE).to_string()
}

/// Asserts that `bed` still answers a blocked name over UDP and TCP.
async fn answers(bed: &TestBed) {
    for proto in [Proto::Udp, Proto::Tcp] {
        let m = bed.ask(proto, "pool.minergate.com.", RecordType::A).await;
        assert_eq!(addresses(&m), vec![SINK_V4], "{proto:?}");
    }
}

/// Starts `bed`, which must be refused, and returns the error as printed (a bed that starts
/// anyway is shut down before the test fails, `why` saying what should have stopped it).
async fn refused(bed: common::Builder, why: &str) -> String {
    match bed.try_start().await {
        Ok(bed) => {
            bed.shutdown().await;
            panic!("started although {why}");
        }
        Err(error) => printed(error),
    }
}

#[tokio::test]
async fn a_second_instance_on_the_same_dns_address_refuses_naming_the_address_and_the_holder() {
    let first = TestBed::start().await;
    // Its own temp dir, so another store: the address is what is refused.
    let text = refused(
        TestBed::builder().listen(first.dns),
        "another poolguard serves this DNS address",
    )
    .await;
    assert!(text.contains(&first.dns.to_string()), "{text}");
    assert!(
        text.contains(&format!("process {}", std::process::id())),
        "the holder (this test process) is named: {text}"
    );
    assert!(text.contains("already in use"), "{text}");
    // Every query still reaches the first (nothing of the second joined its sockets).
    for _ in 0..20 {
        answers(&first).await;
    }
    first.shutdown().await;
}

/// A bed whose store is `evidence.db` in its temp dir, and that store's path.
async fn bed_with_store() -> (TestBed, PathBuf) {
    let bed = TestBed::builder()
        .toml("[store]\npath = \"evidence.db\"\n")
        .start()
        .await;
    let store = bed.dir.path().join("evidence.db");
    (bed, store)
}

/// `[store]` naming `store` by its absolute path, for another bed to share it.
fn shared_store(store: &Path) -> String {
    format!("[store]\npath = {:?}\n", store.display().to_string())
}

#[tokio::test]
async fn a_second_instance_sharing_the_store_is_refused_too() {
    let (first, store) = bed_with_store().await;
    let text = refused(
        TestBed::builder()
            .listen(first.dns)
            .toml(&shared_store(&store)),
        "another poolguard serves this address and store",
    )
    .await;
    assert!(text.contains(&first.dns.to_string()), "{text}");
    answers(&first).await;
    first.shutdown().await;
}

#[tokio::test]
async fn a_second_instance_on_another_address_sharing_the_store_is_refused() {
    let (first, store) = bed_with_store().await;
    // Port 0: a different DNS address, so only the store can be the conflict.
    let text = refused(
        TestBed::builder().toml(&shared_store(&store)),
        "another poolguard serves this store",
    )
    .await;
    assert!(text.contains(&store.display().to_string()), "{text}");
    assert!(
        text.contains(&format!("in use by process {}", std::process::id())),
        "{text}"
    );
    answers(&first).await;
    // Released at shutdown: the same store (its directory kept) serves again.
    let _kept = first.shutdown().await;
    let again = TestBed::builder().toml(&shared_store(&store)).start().await;
    answers(&again).await;
    again.shutdown().await;
}

#[tokio::test]
async fn an_address_held_by_another_program_is_refused_naming_it() {
    // A plain UDP socket, as a resolver without SO_REUSEPORT would hold the port.
    let other = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = other.local_addr().expect("addr");
    let text = refused(
        TestBed::builder().listen(addr),
        "another program holds this address",
    )
    .await;
    assert!(text.contains(&format!("dns.listen {addr}: UDP")), "{text}");
    assert!(
        text.contains(&format!("process {}", std::process::id())),
        "{text}"
    );
}

#[tokio::test]
async fn a_restart_on_the_same_address_after_a_clean_stop_serves_with_every_worker() {
    let first = TestBed::start().await;
    let addr: SocketAddr = first.dns;
    answers(&first).await; // leaves a TCP connection in TIME_WAIT
    first.shutdown().await;
    let second = TestBed::builder().listen(addr).workers(4).start().await;
    assert_eq!(second.dns, addr);
    for _ in 0..20 {
        answers(&second).await;
    }
    second.shutdown().await;
}

#[tokio::test]
async fn listener_bind_errors_name_the_listener_the_address_and_the_cause_once() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let cause = in_use_text();
    let cases = [
        (
            format!("[notice]\nlisten = \"{addr}\"\n"),
            "for the notice page (`[notice] listen`)",
        ),
        (
            format!("[api]\nlisten = \"{addr}\"\n"),
            "for the API (`[api] listen`)",
        ),
        (
            format!("[api]\nlisten = \"127.0.0.1:0\"\nmetrics_listen = \"{addr}\"\n"),
            "for the metrics (`[api] metrics_listen`)",
        ),
    ];
    for (toml, listener) in cases {
        let text = refused(
            TestBed::builder().toml(&toml),
            &format!("a listener address is taken: {toml}"),
        )
        .await;
        assert!(
            text.contains(&format!("cannot listen on {addr} {listener}: ")),
            "{text}"
        );
        assert_eq!(text.matches(&cause).count(), 1, "the cause once: {text}");
    }
}

#[tokio::test]
async fn a_dns_bind_error_prints_its_cause_once() {
    // An address of no interface here: the bind fails with something else than "in use".
    // TEST-NET-2: outside this host's own networks (check `ip addr` before changing it).
    let addr: SocketAddr = "198.51.100.1:5353".parse().expect("addr");
    let text = refused(
        TestBed::builder().listen(addr),
        "198.51.100.1 is not an address of this machine",
    )
    .await;
    let cause = std::io::Error::from_raw_os_error(libc::EADDRNOTAVAIL).to_string();
    assert!(
        text.starts_with(&format!("dns.listen {addr}: cannot bind: ")),
        "{text}"
    );
    assert_eq!(text.matches(&cause).count(), 1, "{text}");
}

/// Runs `poolguard check` on `config`; returns its exit code and stdout.
fn check(config: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.toml");
    std::fs::write(&path, config).expect("config");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_poolguard"))
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .expect("poolguard runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn check_reports_a_walled_garden_that_sends_clients_to_loopback_with_the_fix() {
    let (code, out) = check("[enforcement]\nmode = \"quarantine\"\nnotice_ipv4 = \"127.0.0.1\"\n");
    assert_eq!(code, Some(1), "{out}");
    for needle in [
        "[enforcement] notice_ipv4 = \"127.0.0.1\" with mode = \"quarantine\"",
        "loopback",
        "`[notice] listen` is not set",
        "`[notice] listen = \"0.0.0.0:80\"`",
        "notice_ipv6 = \"::1\"",
    ] {
        assert!(out.contains(needle), "`{needle}` missing: {out}");
    }

    // The page served on loopback only cannot be reached either.
    let (code, out) = check(
        "[enforcement]\nmode = \"quarantine\"\nnotice_ipv4 = \"192.0.2.80\"\n\
         [notice]\nlisten = \"127.0.0.1:80\"\n",
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("[notice] listen = \"127.0.0.1:80\" is a loopback address"),
        "{out}"
    );
    assert!(out.contains("\"0.0.0.0:80\""), "{out}");

    // Fixed as told: clean.
    let (code, out) = check(
        "[enforcement]\nmode = \"quarantine\"\nnotice_ipv4 = \"192.0.2.80\"\n\
         [notice]\nlisten = \"0.0.0.0:80\"\n",
    );
    assert_eq!(code, Some(0), "{out}");
    // Loopback is fine when nobody is quarantined.
    let (code, out) = check("[enforcement]\nmode = \"notify\"\n");
    assert_eq!(code, Some(0), "{out}");
}

#[test]
fn the_binary_prints_a_listener_error_with_its_cause_once() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        format!("[dns]\nlisten = [\"127.0.0.1:0\"]\n[notice]\nlisten = \"{addr}\"\n"),
    )
    .expect("config");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_poolguard"))
        .arg("--config")
        .arg(&path)
        .env("RUST_LOG", "off")
        .output()
        .expect("poolguard runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let line = format!(
        "poolguard: cannot listen on {addr} for the notice page (`[notice] listen`): {}\n",
        in_use_text()
    );
    assert_eq!(stderr, line);
}
