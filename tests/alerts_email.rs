//! Alert mail end to end: a real DNS query opens an incident in a running poolguard, whose
//! `incident.opened` is mailed to a real SMTP server on loopback (Python `aiosmtpd`, PyPI
//! package `aiosmtpd`) that requires STARTTLS with a certificate from a test CA, then
//! AUTH. The server parses what it received with Python's email package; the test checks the
//! headers (the Chinese subject as an RFC 2047 encoded word that decodes back), the
//! recipients (duty desk, the department's routing entry, the ledger contact) and the body's
//! fields. A second channel with a wrong password is refused, and the delivery log says so
//! without the password; that refusal, an unreadable password file and an alert without a
//! recipient are each logged as failed once, not retried. The other `tls` modes, implicit TLS
//! with AUTH and `tls = "none"` to a plain loopback relay, each deliver too.

mod common;

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use common::tls::test_ca;
use common::tools::{require_python_module, require_tool};
use common::{TestBed, sha256_hex};
use poolguard::incidents::ManualClock;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

const VIEWER: &str = "viewer-token-for-mail-tests";
const USER: &str = "poolguard";
const PASSWORD: &str = "smtp-pass-Ω-42";

/// The SMTP server and its event lines.
struct Smtp {
    _child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Smtp {
    async fn start(dir: &std::path::Path) -> (Self, u16) {
        Self::start_in(dir, "starttls").await
    }

    /// A server in `mode`: `starttls`, `implicit` or `none` (tests/support/smtp_server.py).
    async fn start_in(dir: &std::path::Path, mode: &str) -> (Self, u16) {
        require_python_module("aiosmtpd", "aiosmtpd");
        let python = require_tool("python3", "python3");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/smtp_server.py");
        let mut child = tokio::process::Command::new(python)
            .arg(script)
            .arg(dir.join("server.pem"))
            .arg(dir.join("server.key"))
            .args([USER, PASSWORD, mode])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the SMTP server");
        let stdout = child.stdout.take().expect("stdout");
        let mut smtp = Self {
            _child: child,
            lines: BufReader::new(stdout).lines(),
        };
        let ready = smtp.next("ready").await;
        let port = ready["port"].as_u64().expect("port") as u16;
        (smtp, port)
    }

    /// The next event of `kind`.
    async fn next(&mut self, kind: &str) -> Value {
        loop {
            let line = tokio::time::timeout(Duration::from_secs(20), self.lines.next_line())
                .await
                .unwrap_or_else(|_| panic!("a `{kind}` event within 20 s"))
                .expect("read the server's output")
                .expect("the SMTP server is running");
            let v: Value = serde_json::from_str(&line).expect("JSON line");
            if v["kind"] == kind {
                return v;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incident_mail_goes_over_starttls_with_auth_in_chinese() {
    let ca_dir = tempfile::tempdir().expect("tempdir");
    test_ca(ca_dir.path(), "smtp", true);
    let (mut smtp, port) = Smtp::start(ca_dir.path()).await;
    let ca = ca_dir.path().join("smtp-ca.pem");
    let ledger = "network,mac,asset,kind,location,department,owner,contact\n\
         127.0.0.7,aa:bb:cc:dd:ee:07,gpu-ws-07,GPU workstation,理科楼 A-301,计算机学院,张伟,zhangwei@example.edu\n";
    let toml = format!(
        "[api]\nlisten = \"127.0.0.1:0\"\n\
         [[api.tokens]]\nname = \"viewer\"\nrole = \"viewer\"\nsha256 = \"{}\"\n\
         [store]\npath = \"data/pg.db\"\nflush_interval_ms = 20\n[clients]\nledger = \"clients.csv\"\n\
         [reports]\nlanguage = \"zh-CN\"\ntimezone = \"Asia/Shanghai\"\n\
         [alerts]\nconsole_url = \"https://pg.campus.edu\"\nretry_backoff = \"10ms\"\nmax_attempts = 2\ncheck_every = \"1h\"\n\
         [[alerts.email]]\nname = \"duty\"\nserver = \"127.0.0.1:{port}\"\ntls = \"starttls\"\nca_file = \"{ca}\"\n\
         username = \"{USER}\"\npassword_file = \"smtp.password\"\nfrom = \"Poolguard 告警 <poolguard@campus.edu>\"\n\
         to = [\"duty@campus.edu\"]\nledger_contact = true\ndepartments = {{ \"计算机学院\" = [\"cs-sec@campus.edu\"] }}\n\
         [[alerts.email]]\nname = \"wrong-password\"\nserver = \"127.0.0.1:{port}\"\nca_file = \"{ca}\"\n\
         username = \"{USER}\"\npassword_file = \"wrong.password\"\nfrom = \"poolguard@campus.edu\"\nto = [\"duty@campus.edu\"]\n\
         [[alerts.email]]\nname = \"missing-secret\"\nserver = \"127.0.0.1:{port}\"\nca_file = \"{ca}\"\n\
         username = \"{USER}\"\npassword_file = \"absent.password\"\nfrom = \"poolguard@campus.edu\"\nto = [\"duty@campus.edu\"]\n\
         [[alerts.email]]\nname = \"nobody\"\nserver = \"127.0.0.1:{port}\"\nca_file = \"{ca}\"\n\
         username = \"{USER}\"\npassword_file = \"smtp.password\"\nfrom = \"poolguard@campus.edu\"\n\
         departments = {{ \"物理系\" = [\"phys@campus.edu\"] }}\n",
        sha256_hex(VIEWER),
        ca = ca.display(),
    );
    let clock = Arc::new(ManualClock::at(chrono::Utc::now().timestamp_millis()));
    let bed = TestBed::builder()
        .file("clients.csv", ledger)
        .file("smtp.password", &format!("{PASSWORD}\n"))
        .file("wrong.password", "not-the-password\n")
        .toml(&toml)
        .clock(clock)
        .start()
        .await;
    bed.hits_from(&["127.0.0.7"]).await;

    let mail = smtp.next("mail").await;
    assert_eq!(mail["tls"], true, "STARTTLS before the mail");
    assert_eq!(mail["authenticated"], true);
    assert_eq!(mail["mail_from"], "poolguard@campus.edu");
    let mut rcpt: Vec<String> = serde_json::from_value(mail["rcpt_tos"].clone()).expect("rcpt");
    rcpt.sort();
    assert_eq!(
        rcpt,
        [
            "cs-sec@campus.edu",
            "duty@campus.edu",
            "zhangwei@example.edu"
        ]
    );
    let raw_subject = mail["raw_subject"].as_str().expect("subject");
    assert!(
        raw_subject.to_ascii_lowercase().starts_with("=?utf-8?"),
        "RFC 2047 encoded: {raw_subject}"
    );
    let subject = mail["subject"].as_str().expect("subject");
    assert!(
        subject.starts_with("挖矿事件 #") && subject.ends_with("已立案：127.0.0.7"),
        "{subject}"
    );
    assert!(
        mail["from"]
            .as_str()
            .is_some_and(|f| f.contains("Poolguard 告警") && f.contains("<poolguard@campus.edu>")),
        "{mail}"
    );
    assert_eq!(mail["content_type"], "text/plain");
    assert_eq!(mail["charset"], "utf-8");
    assert!(
        mail["date"]
            .as_str()
            .is_some_and(|d| !d.is_empty() && d != "None")
    );
    let body = mail["body"].as_str().expect("body");
    for needed in [
        "计算机学院",
        "张伟",
        "gpu-ws-07",
        "理科楼 A-301",
        "sink.test",
        "定位期限",
        "报告期限",
        "CST (Asia/Shanghai)",
        "https://pg.campus.edu/api/v1/incidents/",
    ] {
        assert!(body.contains(needed), "`{needed}` missing from {body}");
    }

    // Failures no retry can fix are logged once, not max_attempts (2) times: the wrong
    // password (refused at AUTH with a permanent 535), a password file that cannot be read,
    // and an alert none of whose recipients the channel routes to.
    let http = reqwest::Client::new();
    let mut items: Vec<Value> = Vec::new();
    for _ in 0..500 {
        let v: Value = http
            .get(format!("{}/api/v1/alerts/deliveries", bed.api_url()))
            .bearer_auth(VIEWER)
            .send()
            .await
            .expect("API")
            .json()
            .await
            .expect("JSON");
        items = v["items"].as_array().cloned().unwrap_or_default();
        if items.len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = json!(items);
    let duty: Vec<&Value> = items
        .iter()
        .filter(|d| d["target"] == "email:duty")
        .collect();
    assert_eq!(duty.len(), 1, "{log}");
    assert_eq!(
        (duty[0]["ok"].clone(), duty[0]["status"].clone()),
        (json!(true), json!(250))
    );
    let wrong: Vec<&Value> = items
        .iter()
        .filter(|d| d["target"] == "email:wrong-password")
        .collect();
    assert_eq!(wrong.len(), 1, "{log}");
    assert!(
        wrong.iter().all(|d| d["ok"] == false && d["status"] == 535),
        "{log}"
    );
    let failed_once = |target: &str, why: &str| {
        let rows: Vec<&Value> = items.iter().filter(|d| d["target"] == target).collect();
        assert_eq!(rows.len(), 1, "{target}: {log}");
        assert_eq!(rows[0]["ok"], false, "{log}");
        assert!(
            rows[0]["error"].as_str().is_some_and(|e| e.contains(why)),
            "{target}: {log}"
        );
    };
    failed_once("email:missing-secret", "password_file");
    failed_once("email:nobody", "no recipient");
    assert!(!log.to_string().contains(PASSWORD) && !log.to_string().contains("not-the-password"));
    bed.shutdown().await;
}

/// The two other `tls` modes: implicit TLS (port 465 style) with AUTH against the test CA, and
/// `tls = "none"` to a plain relay on loopback; each server receives the incident's mail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_goes_over_implicit_tls_and_to_a_plain_loopback_relay() {
    let ca_dir = tempfile::tempdir().expect("tempdir");
    test_ca(ca_dir.path(), "smtp", true);
    let (mut implicit, implicit_port) = Smtp::start_in(ca_dir.path(), "implicit").await;
    let (mut relay, relay_port) = Smtp::start_in(ca_dir.path(), "none").await;
    let ca = ca_dir.path().join("smtp-ca.pem");
    let toml = format!(
        "[store]\npath = \"data/pg.db\"\nflush_interval_ms = 20\n\
         [alerts]\nretry_backoff = \"10ms\"\nmax_attempts = 2\ncheck_every = \"1h\"\n\
         [[alerts.email]]\nname = \"implicit\"\nserver = \"127.0.0.1:{implicit_port}\"\ntls = \"implicit\"\n\
         ca_file = \"{ca}\"\nusername = \"{USER}\"\npassword_file = \"smtp.password\"\n\
         from = \"poolguard@campus.edu\"\nto = [\"duty@campus.edu\"]\n\
         [[alerts.email]]\nname = \"relay\"\nserver = \"127.0.0.1:{relay_port}\"\ntls = \"none\"\n\
         from = \"poolguard@campus.edu\"\nto = [\"soc@campus.edu\"]\n",
        ca = ca.display(),
    );
    let bed = TestBed::builder()
        .file("smtp.password", &format!("{PASSWORD}\n"))
        .toml(&toml)
        .start()
        .await;
    bed.hits_from(&["127.0.0.7"]).await;

    // (server, TLS on the transport, authenticated, the channel's recipient)
    for (server, tls, auth, rcpt) in [
        (&mut implicit, true, true, "duty@campus.edu"),
        (&mut relay, false, false, "soc@campus.edu"),
    ] {
        let mail = server.next("mail").await;
        assert_eq!(mail["tls"], tls, "{mail}");
        assert_eq!(mail["authenticated"], auth, "{mail}");
        assert_eq!(mail["rcpt_tos"], json!([rcpt]));
        assert!(
            mail["subject"]
                .as_str()
                .is_some_and(|s| s.contains("127.0.0.7")),
            "{mail}"
        );
    }
    bed.shutdown().await;
}

/// The weekly bulletin to other units, mailed by the schedule: due at start (the week before
/// has ended and was never sent), in Chinese to `[alerts.bulletin] to`; after a restart the
/// same week is not sent again (the store remembers it), so the next mail is an incident's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_weekly_bulletin_is_mailed_once_per_period_across_restarts() {
    let ca_dir = tempfile::tempdir().expect("tempdir");
    test_ca(ca_dir.path(), "smtp", true);
    let (mut smtp, port) = Smtp::start(ca_dir.path()).await;
    let ca = ca_dir.path().join("smtp-ca.pem");
    let toml = format!(
        "[api]\nlisten = \"127.0.0.1:0\"\n\
         [[api.tokens]]\nname = \"viewer\"\nrole = \"viewer\"\nsha256 = \"{}\"\n\
         [store]\npath = \"data/pg.db\"\nflush_interval_ms = 20\n\
         [reports]\nlanguage = \"zh-CN\"\ntimezone = \"Asia/Shanghai\"\n\
         [alerts]\nretry_backoff = \"10ms\"\nmax_attempts = 2\ncheck_every = \"1h\"\n\
         [[alerts.email]]\nname = \"units\"\nserver = \"127.0.0.1:{port}\"\nca_file = \"{ca}\"\n\
         username = \"{USER}\"\npassword_file = \"smtp.password\"\nfrom = \"poolguard@campus.edu\"\n\
         to = [\"duty@campus.edu\"]\n\
         [alerts.bulletin]\nenabled = true\nevery = \"7d\"\nchannels = [\"email:units\"]\n\
         to = [\"units@other.edu\", \"cert@campus.edu\"]\n",
        sha256_hex(VIEWER),
        ca = ca.display(),
    );
    let bed = TestBed::builder()
        .file("smtp.password", &format!("{PASSWORD}\n"))
        .toml(&toml)
        .start()
        .await;

    let mail = smtp.next("mail").await;
    let subject = mail["subject"].as_str().expect("subject");
    assert!(subject.starts_with("挖矿治理通报："), "{subject}");
    assert!(
        subject.contains("00:00:00 CST"),
        "local midnight: {subject}"
    );
    let mut rcpt: Vec<String> = serde_json::from_value(mail["rcpt_tos"].clone()).expect("rcpt");
    rcpt.sort();
    assert_eq!(rcpt, ["cert@campus.edu", "units@other.edu"]);
    let body = mail["body"].as_str().expect("body");
    for needed in ["命中次数", "新立事件", "逾期事件"] {
        assert!(body.contains(needed), "`{needed}` missing from {body}");
    }

    // The delivery is logged (after the server's reply) before the restart.
    let http = reqwest::Client::new();
    let bulletins = |bed: &TestBed| {
        let (http, url) = (http.clone(), bed.api_url());
        async move {
            let v: Value = http
                .get(format!("{url}/api/v1/alerts/deliveries"))
                .bearer_auth(VIEWER)
                .send()
                .await
                .expect("API")
                .json()
                .await
                .expect("JSON");
            let n = v["items"]
                .as_array()
                .expect("items")
                .iter()
                .filter(|d| d["event"] == "bulletin" && d["ok"] == true)
                .count();
            (n, v)
        }
    };
    common::eventually("the bulletin's delivery is logged", || async {
        match bulletins(&bed).await {
            (1, _) => Ok(()),
            (_, v) => Err(v.to_string()),
        }
    })
    .await;

    // Restarted, the scheduler finds the week sent already.
    let bed = bed.restart().await;
    common::eventually("the restarted scheduler looked", || async {
        let text = bed.metrics_text().await;
        if text.contains("poolguard_bulletins_total{result=\"already_sent\"}") {
            Ok(())
        } else {
            Err("not yet".into())
        }
    })
    .await;
    bed.hits_from(&["127.0.0.7"]).await;
    let next = smtp.next("mail").await;
    assert!(
        next["subject"]
            .as_str()
            .is_some_and(|s| s.starts_with("挖矿事件 #")),
        "the next mail is the incident's, not the bulletin again: {next}"
    );
    let (n, v) = bulletins(&bed).await;
    assert_eq!(n, 1, "{v}");
    bed.shutdown().await;
}
