//! DNS over TLS and DNS over HTTPS served by poolguard, queried by real clients from the
//! distribution: `kdig` (Debian `knot-dnsutils`: `+tls`, `+https` over HTTP/2 POST,
//! `+https-get`) and `curl --doh-url` (Debian `curl`), against a test CA made by `openssl`.
//! A blocked name is blocked over each, an ordinary one is forwarded to the in-test upstream,
//! the query API shows the client address and the transport, a SIGHUP picks up a new
//! certificate (and a broken one changes nothing), and bad HTTP requests get their status.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::tls::test_ca;
use common::tools::require_tool;
use common::{TestBed, Upstream, eventually, fixture, free_tcp_port, sha256_hex};

const VIEWER_TOKEN: &str = "viewer-token-for-dns-encrypted";
/// The name in the test certificate (`common::tls::test_ca`), which clients verify.
const TLS_NAME: &str = "dns.poolguard.test";

/// `[dns.tls]` and `[dns.https]` on 127.0.0.1 with `cert_dir`'s `server.pem`/`server.key`.
fn encrypted_toml(dot: u16, doh: u16, cert_dir: &str) -> String {
    let files =
        format!("cert_file = \"{cert_dir}/server.pem\"\nkey_file = \"{cert_dir}/server.key\"\n");
    format!(
        "[dns.tls]\nlisten = [\"127.0.0.1:{dot}\"]\nname = \"{TLS_NAME}\"\n{files}\
         [dns.https]\nlisten = [\"127.0.0.1:{doh}\"]\nname = \"{TLS_NAME}\"\n{files}\
         max_body_bytes = 512\n"
    )
}

/// The example upstream plus `app.doh.test` A 127.0.0.1, which curl can resolve and connect
/// to (a closed port on loopback: only the resolution matters).
fn upstream(dir: &Path) -> Upstream {
    let zone = dir.join("doh.test.zone");
    std::fs::write(
        &zone,
        "$ORIGIN doh.test.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 7200 3600 1209600 300\n\
         @ IN NS ns1\nns1 IN A 127.0.0.1\napp IN A 127.0.0.1\n",
    )
    .expect("zone");
    Upstream::serving(&[
        ("example.test", fixture("example.test.zone")),
        ("doh.test", zone),
    ])
}

/// Runs `kdig` with `args` (a 5 s timeout, one try) and returns its output.
fn kdig(args: &[&str]) -> Output {
    Command::new(require_tool("kdig", "knot-dnsutils"))
        .args(["+timeout=5", "+retry=0"])
        .args(args)
        .output()
        .expect("kdig runs")
}

/// kdig's text output, with the command for failure messages.
fn kdig_text(args: &[&str]) -> String {
    let out = kdig(args);
    format!(
        "{}{}\n(kdig {args:?}, {})",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        out.status
    )
}

async fn viewer_get(bed: &TestBed, path: &str) -> serde_json::Value {
    let (status, body) = bed.api_get(path, VIEWER_TOKEN).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kdig_and_curl_get_the_same_policy_over_dot_and_doh_recorded_as_such() {
    let certs = tempfile::tempdir().expect("tempdir");
    test_ca(certs.path(), "campus", true);
    let ca = certs.path().join("campus-ca.pem");
    let cert_dir = certs.path().display().to_string();
    let bed = TestBed::builder()
        .upstream(upstream(certs.path()))
        .toml(&format!(
            "[api]\nlisten = \"127.0.0.1:0\"\n[[api.tokens]]\nname = \"tester\"\nrole = \"viewer\"\nsha256 = \"{}\"\n\
             [store]\npath = \"data/pg.db\"\nflush_interval_ms = 50\n{}",
            sha256_hex(VIEWER_TOKEN),
            encrypted_toml(0, 0, &cert_dir),
        ))
        .start()
        .await;
    let dot = bed.running().dot_addrs()[0];
    let doh = bed.running().doh_addrs()[0];
    let tls_ca = format!("+tls-ca={}", ca.display());
    let tls_name = format!("+tls-hostname={TLS_NAME}");
    let dot_port = dot.port().to_string();
    let doh_port = doh.port().to_string();
    let over = |transport: &'static str| -> Vec<String> {
        let (port, extra) = match transport {
            "dot" => (&dot_port, "+tls"),
            "doh-post" => (&doh_port, "+https=/dns-query"),
            _ => (&doh_port, "+https-get"),
        };
        vec![
            "@127.0.0.1".into(),
            "-p".into(),
            port.clone(),
            extra.into(),
            tls_ca.clone(),
            tls_name.clone(),
        ]
    };

    for transport in ["dot", "doh-post", "doh-get"] {
        let ask = |name: &str| {
            let mut args = over(transport);
            args.extend([name.to_string(), "A".to_string()]);
            kdig_text(&args.iter().map(String::as_str).collect::<Vec<_>>())
        };
        let text = ask("sink.test");
        assert!(text.contains("status: NOERROR"), "{transport}: {text}");
        assert!(
            text.contains("192.0.2.1"),
            "{transport}: blocked answer is the sinkhole: {text}"
        );
        let text = ask("nx.test");
        assert!(text.contains("status: NXDOMAIN"), "{transport}: {text}");
        let text = ask("www.example.test");
        assert!(
            text.contains("192.0.2.10"),
            "{transport}: forwarded answer: {text}"
        );
        match transport {
            "dot" => assert!(text.contains("TLS session"), "{text}"),
            "doh-post" => assert!(text.contains("HTTP/2-POST"), "{text}"),
            _ => assert!(text.contains("HTTP/2-GET"), "{text}"),
        }
    }
    assert!(bed.upstream.queries_for("www.example.test") >= 1);
    assert_eq!(
        bed.upstream.queries_for("sink.test"),
        0,
        "a blocked name is never forwarded"
    );

    // curl resolves through DoH: a listed NXDOMAIN name fails to resolve (exit 6); an
    // ordinary one resolves to 127.0.0.1 and the connection to a closed port fails (exit 7).
    let curl = require_tool("curl", "curl");
    let closed = free_tcp_port();
    let doh_url = format!("https://{TLS_NAME}:{}/dns-query", doh.port());
    let curl_to = |host: &str| {
        Command::new(&curl)
            .args(["--silent", "--max-time", "5", "--cacert"])
            .arg(&ca)
            .args(["--resolve", &format!("{TLS_NAME}:{}:127.0.0.1", doh.port())])
            .args(["--doh-url", &doh_url])
            .arg(format!("http://{host}:{closed}/"))
            .status()
            .expect("curl runs")
            .code()
    };
    assert_eq!(curl_to("nx.test"), Some(6), "blocked over curl's DoH");
    assert_eq!(
        curl_to("app.doh.test"),
        Some(7),
        "resolved over DoH, then refused"
    );
    assert!(bed.upstream.queries_for("app.doh.test") >= 1);

    // The query log: the client address is the TCP peer, the transport is dot / doh.
    eventually("the encrypted hits are stored", || async {
        bed.running().flush().await.map_err(|e| e.to_string())?;
        let hits = viewer_get(&bed, "/api/v1/hits?client=127.0.0.1").await;
        let items = hits["items"].as_array().cloned().unwrap_or_default();
        let mut transports: Vec<String> = items
            .iter()
            .filter(|i| i["name"] == "sink.test")
            .map(|i| i["transport"].as_str().unwrap_or("").to_string())
            .collect();
        transports.sort();
        (transports == ["doh", "doh", "dot"])
            .then_some(())
            .ok_or_else(|| format!("{transports:?}"))
    })
    .await;
    let queries = viewer_get(&bed, "/api/v1/queries?client=127.0.0.1").await;
    let forwarded: Vec<&serde_json::Value> = queries["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|i| i["name"] == "app.doh.test")
        .collect();
    assert!(!forwarded.is_empty(), "{queries}");
    assert!(
        forwarded.iter().all(|i| i["transport"] == "doh"),
        "{queries}"
    );
    assert_eq!(forwarded[0]["client"], "127.0.0.1");
    bed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_doh_requests_get_their_http_status() {
    let certs = tempfile::tempdir().expect("tempdir");
    test_ca(certs.path(), "campus", true);
    let ca = std::fs::read(certs.path().join("campus-ca.pem")).expect("ca");
    let bed = TestBed::builder()
        .toml(&encrypted_toml(0, 0, &certs.path().display().to_string()))
        .start()
        .await;
    let doh = bed.running().doh_addrs()[0];
    // reqwest (rustls, HTTP/1.1 only here): the HTTP/1.1 side of the listener.
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("pem"))
        .resolve(TLS_NAME, doh)
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let url = format!("https://{TLS_NAME}:{}/dns-query", doh.port());
    let query = common::request("www.example.test.", hickory_proto::rr::RecordType::A, false)
        .to_vec()
        .expect("encode");
    let status = |r: reqwest::Response| r.status().as_u16();
    let post = |body: Vec<u8>, ct: &'static str| {
        client
            .post(&url)
            .header("content-type", ct)
            .body(body)
            .send()
    };

    let ok = post(query.clone(), "application/dns-message")
        .await
        .expect("post");
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["content-type"], "application/dns-message");
    let cache = ok.headers()["cache-control"]
        .to_str()
        .expect("ascii")
        .to_string();
    let max_age: u32 = cache
        .strip_prefix("max-age=")
        .and_then(|v| v.parse().ok())
        .expect("max-age");
    let answer =
        hickory_proto::op::Message::from_vec(&ok.bytes().await.expect("body")).expect("dns");
    assert_eq!(common::addresses(&answer), ["192.0.2.10"]);
    // The answer's own TTL (the zone's 3600, or less from the cache), never more.
    assert!(max_age > 0 && max_age == answer.answers[0].ttl, "{cache}");

    let wrong_type = post(query.clone(), "application/json").await.expect("post");
    assert_eq!(status(wrong_type), 415);
    let too_big = post(vec![0; 4096], "application/dns-message")
        .await
        .expect("post");
    assert_eq!(status(too_big), 413);
    let not_dns = post(vec![1, 2, 3], "application/dns-message")
        .await
        .expect("post");
    assert_eq!(status(not_dns), 400);
    let get = |q: &str| client.get(format!("{url}?{q}")).send();
    assert_eq!(status(get("dns=!!notbase64!!").await.expect("get")), 400);
    assert_eq!(status(get("other=1").await.expect("get")), 400);
    let mut response = query.clone();
    response[2] |= 0x80;
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&response);
    assert_eq!(status(get(&format!("dns={b64}")).await.expect("get")), 400);
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&query);
    assert_eq!(status(get(&format!("dns={b64}")).await.expect("get")), 200);
    let put = client
        .put(&url)
        .body(query.clone())
        .send()
        .await
        .expect("put");
    assert_eq!(status(put), 405);
    let elsewhere = client
        .get(format!("https://{TLS_NAME}:{}/other?dns={b64}", doh.port()))
        .send()
        .await
        .expect("get");
    assert_eq!(status(elsewhere), 404);
    bed.shutdown().await;
}

#[test]
fn sighup_swaps_the_certificate_and_a_broken_one_keeps_the_old() {
    let certs = tempfile::tempdir().expect("tempdir");
    let (old, new) = (certs.path().join("old"), certs.path().join("new"));
    for (dir, name) in [(&old, "old"), (&new, "new")] {
        std::fs::create_dir(dir).expect("mkdir");
        test_ca(dir, name, true);
    }
    let live = certs.path().join("live");
    std::fs::create_dir(&live).expect("mkdir");
    let install = |from: &Path| {
        for f in ["server.pem", "server.key"] {
            std::fs::copy(from.join(f), live.join(f)).expect("copy");
        }
    };
    install(&old);
    let dot = free_tcp_port();
    let doh = free_tcp_port();
    let mut node = TestBed::builder()
        .toml(&encrypted_toml(dot, doh, &live.display().to_string()))
        .spawn_process();
    let ask = |ca: &Path| {
        kdig_text(&[
            "@127.0.0.1",
            "-p",
            &dot.to_string(),
            "+tls",
            &format!("+tls-ca={}", ca.display()),
            &format!("+tls-hostname={TLS_NAME}"),
            "sink.test",
            "A",
        ])
    };
    let trusts = |ca: &Path| ask(ca).contains("192.0.2.1");
    assert!(
        trusts(&old.join("old-ca.pem")),
        "{}",
        ask(&old.join("old-ca.pem"))
    );
    assert!(!trusts(&new.join("new-ca.pem")), "not yet the new CA");
    // A session opened on the old certificate, used again after both reloads.
    let mut open_session = OpenSession::connect(dot, &old.join("old-ca.pem"));
    assert_eq!(open_session.ask("sink.test."), ["192.0.2.1"]);

    let hup = |node: &common::child::Process| {
        let pid = libc::pid_t::try_from(node.pid()).expect("pid");
        // SAFETY: kill(2) with the PID of our own running child.
        unsafe { libc::kill(pid, libc::SIGHUP) };
    };
    // A broken certificate file: logged, the old pair keeps serving.
    std::fs::write(live.join("server.pem"), "not a certificate\n").expect("write");
    hup(&node);
    common::wait_for("the failed reload is logged", || {
        node.log().contains("certificate not reloaded")
    });
    let log = node.log();
    assert!(
        log.contains("server.pem") && log.contains("holds no certificate"),
        "{log}"
    );
    assert!(
        trusts(&old.join("old-ca.pem")),
        "the old certificate still serves"
    );

    install(&new);
    hup(&node);
    common::wait_for("the new certificate serves", || {
        trusts(&new.join("new-ca.pem"))
    });
    assert!(
        !trusts(&old.join("old-ca.pem")),
        "the old CA no longer verifies"
    );
    assert_eq!(
        open_session.ask("www.example.test."),
        ["192.0.2.10"],
        "the session opened before the reloads still answers"
    );
    node.kill();
}

/// A DoT session held open across reloads: `openssl s_client` (verifying against one CA)
/// carrying RFC 7766 frames written to its stdin; its stdout is read on a thread so a reply
/// that never comes fails the test after 5 s instead of hanging it.
struct OpenSession {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    replies: std::sync::mpsc::Receiver<Vec<u8>>,
}

impl OpenSession {
    fn connect(port: u16, ca: &Path) -> Self {
        use std::io::Read;
        use std::process::Stdio;
        let mut child = Command::new(require_tool("openssl", "openssl"))
            .args(["s_client", "-quiet", "-verify_return_error", "-alpn", "dot"])
            .args(["-connect", &format!("127.0.0.1:{port}"), "-CAfile"])
            .arg(ca)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_client runs");
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = child.stdout.take().expect("stdout");
        let (tx, replies) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            loop {
                let mut len = [0u8; 2];
                if stdout.read_exact(&mut len).is_err() {
                    return;
                }
                let mut frame = vec![0u8; usize::from(u16::from_be_bytes(len))];
                if stdout.read_exact(&mut frame).is_err() || tx.send(frame).is_err() {
                    return;
                }
            }
        });
        Self {
            child,
            stdin,
            replies,
        }
    }

    /// The A addresses answered for `name` on this session.
    fn ask(&mut self, name: &str) -> Vec<String> {
        use std::io::Write;
        let query = common::request(name, hickory_proto::rr::RecordType::A, false)
            .to_vec()
            .expect("encode");
        let len = u16::try_from(query.len()).expect("small");
        self.stdin.write_all(&len.to_be_bytes()).expect("write");
        self.stdin.write_all(&query).expect("write");
        self.stdin.flush().expect("flush");
        let reply = self
            .replies
            .recv_timeout(Duration::from_secs(5))
            .expect("an answer on the open session");
        common::addresses(&hickory_proto::op::Message::from_vec(&reply).expect("dns"))
    }
}

impl Drop for OpenSession {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_names_our_endpoints_and_canaries_keep_clients_here() {
    let certs = tempfile::tempdir().expect("tempdir");
    test_ca(certs.path(), "campus", true);
    let bed = TestBed::builder()
        .toml(&format!(
            "[api]\nlisten = \"127.0.0.1:0\"\n[[api.tokens]]\nname = \"tester\"\nrole = \"viewer\"\nsha256 = \"{}\"\n\
             [store]\npath = \"data/pg.db\"\nflush_interval_ms = 50\n{}\
             [dns.canary]\nicloud_private_relay = false\n",
            sha256_hex(VIEWER_TOKEN),
            encrypted_toml(0, 0, &certs.path().display().to_string()),
        ))
        .start()
        .await;
    let dot = bed.running().dot_addrs()[0].port();
    let doh = bed.running().doh_addrs()[0].port();
    let plain = bed.dns.port().to_string();
    // RFC 9462: asked in the clear, answered with the encrypted endpoints (kdig decodes the
    // SVCB record, dohpath included).
    let text = kdig_text(&["@127.0.0.1", "-p", &plain, "_dns.resolver.arpa", "SVCB"]);
    assert!(text.contains("status: NOERROR"), "{text}");
    assert!(
        text.contains(&format!("1 {TLS_NAME}. alpn=dot port={dot}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("2 {TLS_NAME}. alpn=h2 port={doh}")),
        "{text}"
    );
    assert!(text.contains("/dns-query{?dns}"), "{text}");
    assert!(text.contains("ipv4hint=127.0.0.1"), "{text}");

    // Firefox's canary is NXDOMAIN (and never forwarded); the switched-off relay name is
    // forwarded like any name.
    let text = kdig_text(&["@127.0.0.1", "-p", &plain, "use-application-dns.net", "A"]);
    assert!(text.contains("status: NXDOMAIN"), "{text}");
    assert_eq!(bed.upstream.queries_for("use-application-dns.net"), 0);
    kdig_text(&["@127.0.0.1", "-p", &plain, "mask.icloud.com", "A"]);
    assert!(bed.upstream.queries_for("mask.icloud.com") >= 1);

    eventually(
        "the canary is in the query log, not in the hits",
        || async {
            bed.running().flush().await.map_err(|e| e.to_string())?;
            let q = viewer_get(&bed, "/api/v1/queries?client=127.0.0.1").await;
            let canary = q["items"]
                .as_array()
                .and_then(|items| {
                    items
                        .iter()
                        .find(|i| i["name"] == "use-application-dns.net")
                })
                .cloned()
                .ok_or_else(|| format!("not yet: {q}"))?;
            (canary["action"] == "local" && canary["rule"] == "canary:use-application-dns.net")
                .then_some(())
                .ok_or_else(|| format!("{canary}"))
        },
    )
    .await;
    let hits = viewer_get(&bed, "/api/v1/hits?client=127.0.0.1").await;
    assert_eq!(hits["items"].as_array().map(Vec::len), Some(0), "{hits}");
    bed.shutdown().await;
}
