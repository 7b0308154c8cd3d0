//! Syslog export against a real rsyslog (Debian `rsyslog`), started by the test as its own
//! foreground process with its own config and work directory: a TCP input (RFC 6587 octet
//! counting) and a UDP input on loopback, rsyslog's own RFC 5424 structured-data parser
//! (`mmpstrucdata`) and JSON parser (`mmjsonparse`), and one JSON line per message written to
//! a file the test reads back. No regex anywhere: the SIEM-side parsers do the work.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{
    Proto, TestBed, free_tcp_port, free_udp_port, query_from, request, tls::test_ca,
    tools::require_tool, wait_for,
};
use hickory_proto::rr::RecordType;
use poolguard::store::writer::StoreFault;

/// A running rsyslogd, killed (by its PID) when dropped.
struct Rsyslog {
    child: Child,
    out: PathBuf,
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Rsyslog {
    /// Plain TCP and UDP inputs.
    fn start(dir: &Path, tcp: u16, udp: u16) -> Self {
        let inputs = format!(
            r#"module(load="imtcp")
module(load="imudp")
input(type="imtcp" address="127.0.0.1" port="{tcp}" ruleset="hits")
input(type="imudp" address="127.0.0.1" port="{udp}" ruleset="hits")
"#
        );
        Self::start_with(dir, "", &inputs, tcp, Some(udp))
    }

    /// `global` parameters, the input modules and inputs, then the shared parsing and output.
    fn start_with(dir: &Path, global: &str, inputs: &str, tcp: u16, udp: Option<u16>) -> Self {
        let bin = require_tool("rsyslogd", "rsyslog");
        let work = dir.join("work");
        std::fs::create_dir_all(&work).expect("work dir");
        let out = dir.join("out.json");
        let conf = dir.join("rsyslog.conf");
        std::fs::write(
            &conf,
            format!(
                r#"global(workDirectory="{work}" {global})
{inputs}
module(load="mmpstrucdata")
module(load="mmjsonparse")
template(name="line" type="string" string="%$!all-json%\n")
ruleset(name="hits") {{
  action(type="mmpstrucdata")
  action(type="mmjsonparse" cookie="" container="!body")
  set $!hostname = $hostname;
  set $!appname = $app-name;
  set $!msgid = $msgid;
  set $!pri = $pri;
  set $!input = $inputname;
  set $!message = $msg;
  action(type="omfile" file="{out}" template="line")
}}
"#,
                work = work.display(),
                out = out.display(),
            ),
        )
        .expect("rsyslog.conf");
        let child = Command::new(bin)
            .arg("-n")
            .arg("-f")
            .arg(&conf)
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start rsyslogd");
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, tcp));
        wait_for("rsyslog's TCP input", || {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        });
        let rsyslog = Self { child, out };
        let Some(udp) = udp else {
            return rsyslog;
        };
        // The UDP input has no handshake to probe: it is ready once a probe datagram (resent
        // while none arrived) shows up in the output file.
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").expect("probe socket");
        wait_for("rsyslog's UDP input", || {
            let _ = probe.send_to(b"<13>1 - - probe - - - ready", ("127.0.0.1", udp));
            std::thread::sleep(Duration::from_millis(50));
            rsyslog.all_lines().iter().any(|l| l["appname"] == "probe")
        });
        rsyslog
    }

    /// Every JSON line written so far.
    fn all_lines(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    /// The lines poolguard sent (the readiness probes left out).
    fn lines(&self) -> Vec<serde_json::Value> {
        let mut lines = self.all_lines();
        lines.retain(|l| l["appname"] == "poolguard");
        lines
    }
}

/// A hit from `client`: `pool.minergate.com` (listed by the `mining` feed) over UDP.
async fn pool_hit(bed: &TestBed, client: IpAddr) {
    ask_from(bed, client, Proto::Udp, "pool.minergate.com", RecordType::A).await;
}

/// Asks `name` from `client` (a loopback address) over `proto`, with EDNS.
async fn ask_from(bed: &TestBed, client: IpAddr, proto: Proto, name: &str, rtype: RecordType) {
    query_from(client, bed.dns, proto, &request(name, rtype, true)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hits_reach_rsyslog_over_tcp_and_udp_as_structured_data_and_ecs_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tcp, udp) = (free_tcp_port(), free_udp_port());
    let rsyslog = Rsyslog::start(dir.path(), tcp, udp);
    let bed = TestBed::builder()
        .toml(&format!(
            "[[export.syslog]]\ntcp = \"127.0.0.1:{tcp}\"\nformat = \"json\"\nhostname = \"dns-a\"\n\
             [[export.syslog]]\nudp = \"127.0.0.1:{udp}\"\nfacility = \"local3\"\nhostname = \"dns-b\"\n"
        ))
        .start()
        .await;

    let client = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9));
    pool_hit(&bed, client).await;
    ask_from(&bed, client, Proto::Tcp, "nx.test", RecordType::AAAA).await;
    // Not hits: never sent.
    bed.ask(Proto::Udp, "www.example.test", RecordType::A).await;
    bed.ask(Proto::Udp, "cdn.example.test", RecordType::A).await;

    // Two receivers × three hits (pool, nx, the CNAME into a listed name).
    wait_for("six messages in rsyslog's file", || {
        rsyslog.lines().len() >= 6
    });
    let lines = rsyslog.lines();
    assert_eq!(lines.len(), 6, "{lines:#?}");
    assert!(
        !lines
            .iter()
            .any(|l| l.to_string().contains("www.example.test")),
        "allowed queries are not hits"
    );
    let sd = |l: &serde_json::Value| l["rfc5424-sd"]["poolguard@32473"].clone();
    let find = |host: &str, name: &str| {
        lines
            .iter()
            .find(|l| l["hostname"] == host && sd(l)["name"] == name)
            .unwrap_or_else(|| panic!("no {name} from {host}: {lines:#?}"))
            .clone()
    };

    // TCP, octet-counted, JSON body.
    let pool = find("dns-a", "pool.minergate.com");
    assert_eq!(pool["appname"], "poolguard");
    assert_eq!(pool["msgid"], "hit");
    assert_eq!(pool["pri"], "132", "local0.warning");
    let p = sd(&pool);
    assert_eq!(p["client"], "127.0.0.9");
    assert_eq!(p["transport"], "udp");
    assert_eq!(p["type"], "A");
    assert_eq!(p["feed"], "mining");
    assert_eq!(p["rule"], "pool.minergate.com");
    assert_eq!(p["action"], "blocked");
    assert_eq!(p["answer"], "sinkhole");
    assert_eq!(p["rcode"], "NOERROR");
    let body = &pool["body"];
    assert_eq!(body["source"]["ip"], "127.0.0.9");
    assert_eq!(body["dns"]["question"]["name"], "pool.minergate.com");
    assert_eq!(body["rule"]["ruleset"], "mining");
    assert_eq!(body["event"]["kind"], "alert");

    let nx = sd(&find("dns-a", "nx.test"));
    assert_eq!(nx["transport"], "tcp");
    assert_eq!(nx["type"], "AAAA");
    assert_eq!(nx["rcode"], "NXDOMAIN");
    assert_eq!(nx["feed"], "nx");
    let cdn = sd(&find("dns-a", "cdn.example.test"));
    assert_eq!(cdn["action"], "cname-blocked");

    // UDP, text body, facility local3.
    let udp_pool = find("dns-b", "pool.minergate.com");
    assert_eq!(udp_pool["pri"], "156", "local3.warning");
    assert_eq!(sd(&udp_pool)["client"], "127.0.0.9");
    bed.shutdown().await;
}

/// A ledger knowing the loopback client the tests query from.
const LEDGER: &str = "network,mac,asset,kind,location,department,owner,contact\n\
127.0.0.9,,gpu-ws-09,GPU workstation,A-301,Physics,Zhang Wei,zw@example.edu\n";

/// The `key=value` pairs of a CEF extension (values unescaped), as a SIEM's CEF parser reads
/// them: a key is the word before an unescaped `=`.
fn cef_extension(ext: &str) -> std::collections::HashMap<String, String> {
    let mut out = std::collections::HashMap::new();
    let mut key = String::new();
    let mut value = String::new();
    let mut chars = ext.chars().peekable();
    let mut in_key = true;
    while let Some(c) = chars.next() {
        match (in_key, c) {
            (true, '=') => in_key = false,
            (true, c) => key.push(c),
            (false, '\\') => match chars.next() {
                Some('n') => value.push('\n'),
                Some('r') => value.push('\r'),
                Some(e) => value.push(e),
                None => {}
            },
            (false, ' ') => {
                // A space ends the value only when the next word is a key (`word=`).
                let rest: String = chars.clone().collect();
                let next_is_key = rest
                    .split(' ')
                    .next()
                    .is_some_and(|w| w.contains('=') && !w.starts_with('='));
                if next_is_key {
                    out.insert(std::mem::take(&mut key), std::mem::take(&mut value));
                    in_key = true;
                } else {
                    value.push(' ');
                }
            }
            (false, c) => value.push(c),
        }
    }
    if !key.is_empty() {
        out.insert(key, value);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_cef_and_every_query_rate_bounded_reach_rsyslog() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tcp, udp) = (free_tcp_port(), free_udp_port());
    let rsyslog = Rsyslog::start(dir.path(), tcp, udp);
    let cef_sink = format!("syslog:tcp:127.0.0.1:{tcp}");
    let bed = TestBed::builder()
        .file("clients.csv", LEDGER)
        .toml(&format!(
            "[clients]\nledger = \"clients.csv\"\n\
             [[export.syslog]]\ntcp = \"127.0.0.1:{tcp}\"\nformat = \"cef\"\nhostname = \"dns-c\"\n\
             select = \"all\"\nmax_per_second = 1\n\
             [[export.syslog]]\nudp = \"127.0.0.1:{udp}\"\nformat = \"json\"\nhostname = \"dns-j\"\n"
        ))
        .start()
        .await;

    let client = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9));
    // Ordinary queries first, many more than one second's budget of 1...
    let ordinary = 40;
    for _ in 0..ordinary {
        bed.ask(Proto::Udp, "www.example.test", RecordType::A).await;
    }
    // ...then the hits: they have no rate budget and are never crowded out.
    for _ in 0..3 {
        pool_hit(&bed, client).await;
    }
    let cef_hits = |lines: &[serde_json::Value]| {
        lines
            .iter()
            .filter(|l| l["hostname"] == "dns-c" && l["msgid"] == "hit")
            .count()
    };
    wait_for("three CEF hits and three JSON hits", || {
        let lines = rsyslog.lines();
        cef_hits(&lines) == 3 && lines.iter().filter(|l| l["hostname"] == "dns-j").count() == 3
    });
    // Every ordinary query was either sent or dropped by its rate budget (counted).
    let limited = || {
        metric(
            "poolguard_export_dropped_total",
            &cef_sink,
            "reason=\"rate_limit\"",
        )
    };
    wait_for("every ordinary query accounted for", || {
        let sent = rsyslog
            .lines()
            .iter()
            .filter(|l| l["hostname"] == "dns-c" && l["msgid"] == "query")
            .count();
        sent as f64 + limited() == f64::from(ordinary)
    });
    assert!(
        limited() >= 1.0,
        "40 queries exceed a budget of 1 per second"
    );
    assert_eq!(
        metric(
            "poolguard_export_dropped_total",
            &cef_sink,
            "reason=\"queue_full\""
        ),
        0.0
    );

    let lines = rsyslog.lines();
    let hit = lines
        .iter()
        .find(|l| l["hostname"] == "dns-c" && l["msgid"] == "hit")
        .expect("a CEF hit");
    // Structured data still parses, with the identity's fields.
    let sd = &hit["rfc5424-sd"]["poolguard@32473"];
    assert_eq!(sd["client"], "127.0.0.9");
    assert_eq!(sd["asset"], "gpu-ws-09");
    assert_eq!(sd["department"], "Physics");
    assert_eq!(sd["owner"], "Zhang Wei");
    assert_eq!(sd["location"], "A-301");
    // The body is one CEF line: seven `|`-separated header fields, then the extension.
    let message = hit["message"].as_str().expect("msg").trim_start();
    let header: Vec<&str> = message.splitn(8, '|').collect();
    assert_eq!(header.len(), 8, "{message}");
    assert_eq!(
        &header[..7],
        [
            "CEF:0",
            "poolguard",
            "poolguard",
            env!("CARGO_PKG_VERSION"),
            "blocked",
            "DNS query blocked",
            "7"
        ]
    );
    let ext = cef_extension(header[7]);
    assert_eq!(ext["src"], "127.0.0.9");
    assert_eq!(ext["dhost"], "pool.minergate.com");
    assert_eq!(ext["cs1"], "mining");
    assert_eq!(ext["cs1Label"], "feed");
    assert_eq!(ext["cs2"], "pool.minergate.com");
    assert_eq!(ext["act"], "sinkhole");
    assert_eq!(ext["cs4"], "NOERROR");
    assert_eq!(ext["shost"], "gpu-ws-09");
    assert_eq!(ext["suser"], "Zhang Wei");
    assert_eq!(ext["cs5"], "Physics");
    assert!(ext["spt"].parse::<u16>().is_ok(), "{ext:?}");
    // An ordinary query: severity 1, no feed.
    let query = lines
        .iter()
        .find(|l| l["hostname"] == "dns-c" && l["msgid"] == "query")
        .expect("a CEF query");
    let q = query["message"].as_str().expect("msg");
    assert!(q.contains("|allowed|DNS query|1|"), "{q}");
    assert!(!q.contains("cs1="), "{q}");

    // ECS JSON body with the identity (hits only: the UDP export keeps the default select).
    let json = lines
        .iter()
        .find(|l| l["hostname"] == "dns-j")
        .expect("a JSON hit");
    let body = &json["body"];
    assert_eq!(body["host"]["name"], "gpu-ws-09");
    assert_eq!(body["host"]["geo"]["name"], "A-301");
    assert_eq!(body["organization"]["name"], "Physics");
    assert_eq!(body["user"]["name"], "Zhang Wei");
    assert_eq!(lines.iter().filter(|l| l["hostname"] == "dns-j").count(), 3);
    bed.shutdown().await;
}

/// An authenticated API call with a JSON body: the status and the JSON answer.
async fn api(
    bed: &TestBed,
    method: reqwest::Method,
    path: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    bed.api_json(method, path, "root-token-for-export-tests", &body)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incident_lifecycle_and_quarantine_changes_reach_rsyslog() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tcp, udp) = (free_tcp_port(), free_udp_port());
    let rsyslog = Rsyslog::start(dir.path(), tcp, udp);
    let bed = TestBed::builder()
        .file("clients.csv", LEDGER)
        .toml(&format!(
            "[api]\nlisten = \"127.0.0.1:0\"\n{}\
             [store]\npath = \"data/pg.db\"\nflush_interval_ms = 20\n\
             [clients]\nledger = \"clients.csv\"\n\
             [[export.syslog]]\ntcp = \"127.0.0.1:{tcp}\"\nhostname = \"dns-e\"\n\
             events = [\"incidents\", \"quarantine\"]\n\
             [[export.syslog]]\nudp = \"127.0.0.1:{udp}\"\nhostname = \"dns-q\"\nformat = \"cef\"\n\
             events = [\"quarantine\"]\n",
            common::api_token_toml("root", "admin", "root-token-for-export-tests"),
        ))
        .start()
        .await;
    let client = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9));
    pool_hit(&bed, client).await;
    bed.running().flush().await.expect("flush");
    let event = |host: &str, name: &str| {
        let name = name.to_string();
        let host = host.to_string();
        move |l: &serde_json::Value| {
            l["hostname"] == *host && l["rfc5424-sd"]["poolguard@32473"]["event"] == *name
        }
    };
    wait_for("incident.opened", || {
        rsyslog
            .lines()
            .iter()
            .any(event("dns-e", "incident.opened"))
    });
    let lines = rsyslog.lines();
    let opened = lines
        .iter()
        .find(|l| event("dns-e", "incident.opened")(l))
        .expect("opened");
    assert_eq!(opened["msgid"], "incident");
    assert_eq!(opened["pri"], "133", "local0.notice");
    let sd = &opened["rfc5424-sd"]["poolguard@32473"];
    assert_eq!(sd["client"], "127.0.0.9");
    assert_eq!(sd["actor"], "system");
    assert_eq!(sd["asset"], "gpu-ws-09");
    assert_eq!(sd["owner"], "Zhang Wei");
    let id: i64 = sd["incident_id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("incident id");

    let path = format!("/api/v1/incidents/{id}");
    let patch = |body: serde_json::Value| api(&bed, reqwest::Method::PATCH, &path, body);
    let (status, body) = patch(serde_json::json!({"status": "investigating"})).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = api(
        &bed,
        reqwest::Method::POST,
        "/api/v1/quarantine",
        serde_json::json!({"ip": "127.0.0.9", "reason": "mining|pool=yes", "incident_id": id}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = api(
        &bed,
        reqwest::Method::DELETE,
        "/api/v1/quarantine",
        serde_json::json!({"ip": "127.0.0.9", "reason": "cleaned"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) =
        patch(serde_json::json!({"status": "closed", "resolution": "false-positive"})).await;
    assert_eq!(status, 200, "{body}");

    wait_for("the lifecycle in rsyslog's file", || {
        let lines = rsyslog.lines();
        lines.iter().any(event("dns-e", "incident.closed"))
            && lines.iter().any(event("dns-q", "quarantine.off"))
    });
    let lines = rsyslog.lines();
    let sd_of = |host: &str, name: &str| {
        lines
            .iter()
            .find(|l| event(host, name)(l))
            .unwrap_or_else(|| panic!("no {name} from {host}: {lines:#?}"))["rfc5424-sd"]
            ["poolguard@32473"]
            .clone()
    };
    let changed = sd_of("dns-e", "incident.status");
    assert_eq!(changed["status"], "investigating");
    assert_eq!(changed["actor"], "root");
    assert_eq!(changed["incident_id"], id.to_string());
    let on = sd_of("dns-e", "quarantine.on");
    assert_eq!(on["actor"], "root");
    assert_eq!(on["reason"], "mining|pool=yes");
    assert_eq!(on["department"], "Physics");
    let off = sd_of("dns-e", "quarantine.off");
    assert_eq!(off["reason"], "cleaned");
    let closed = sd_of("dns-e", "incident.closed");
    assert_eq!(closed["status"], "closed");
    assert_eq!(closed["reason"], "false-positive");
    // The order they happened in, over one TCP connection.
    let order: Vec<String> = lines
        .iter()
        .filter(|l| l["hostname"] == "dns-e" && l["msgid"] != "hit")
        .map(|l| {
            l["rfc5424-sd"]["poolguard@32473"]["event"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(
        order,
        [
            "incident.opened",
            "incident.status",
            "quarantine.on",
            "quarantine.off",
            "incident.closed"
        ]
    );

    // The CEF receiver asked for quarantine events only, and reads them as CEF.
    let cef: Vec<&serde_json::Value> = lines.iter().filter(|l| l["hostname"] == "dns-q").collect();
    let events: Vec<&str> = cef
        .iter()
        .filter_map(|l| l["rfc5424-sd"]["poolguard@32473"]["event"].as_str())
        .collect();
    assert_eq!(events, ["quarantine.on", "quarantine.off"], "{cef:#?}");
    let on = cef[cef.len() - 2]["message"]
        .as_str()
        .expect("msg")
        .trim_start();
    let header: Vec<&str> = on.splitn(8, '|').collect();
    assert_eq!(header[4..7], ["quarantine.on", "Client quarantined", "8"]);
    let ext = cef_extension(header[7]);
    assert_eq!(ext["src"], "127.0.0.9");
    assert_eq!(ext["cn1"], id.to_string());
    assert_eq!(ext["cs1"], "root");
    assert_eq!(
        ext["reason"], "mining|pool=yes",
        "`=` escaped and read back"
    );
    assert_eq!(ext["shost"], "gpu-ws-09");
    bed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hit_messages_name_the_incident_the_api_shows_and_spooled_hits_follow_their_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tcp, udp) = (free_tcp_port(), free_udp_port());
    let rsyslog = Rsyslog::start(dir.path(), tcp, udp);
    let bed = TestBed::builder()
        .toml(&format!(
            "[api]\nlisten = \"127.0.0.1:0\"\n{}\
             [store]\npath = \"data/pg.db\"\nflush_interval_ms = 20\n\
             [[export.syslog]]\ntcp = \"127.0.0.1:{tcp}\"\nhostname = \"dns-i\"\nformat = \"json\"\n\
             [[export.syslog]]\nudp = \"127.0.0.1:{udp}\"\nhostname = \"dns-c\"\nformat = \"cef\"\n",
            common::api_token_toml("root", "admin", "root-token-for-export-tests"),
        ))
        .start()
        .await;
    let (a, b) = (
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9)),
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 12)),
    );
    pool_hit(&bed, a).await;
    pool_hit(&bed, b).await;
    bed.running().flush().await.expect("flush");
    let hits = |host: &str| {
        rsyslog
            .lines()
            .into_iter()
            .filter(|l| l["hostname"] == host && l["msgid"] == "hit")
            .collect::<Vec<_>>()
    };
    wait_for("two hits on each receiver", || {
        hits("dns-i").len() == 2 && hits("dns-c").len() == 2
    });

    // SQLite refuses writes (a read-only database): the next hits wait in the spool, and so do their messages.
    let spooled = || {
        let text = poolguard::api::metrics::install().render();
        text.lines()
            .filter(|l| l.starts_with("poolguard_store_spooled_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    let before = spooled();
    bed.running()
        .store_fault(StoreFault::ReadOnly)
        .await
        .expect("fault applied");
    pool_hit(&bed, a).await;
    pool_hit(&bed, b).await;
    wait_for("the new hits spooled", || spooled() >= before + 2.0);
    assert_eq!(
        hits("dns-i").len(),
        2,
        "no message before its hit is stored"
    );
    bed.running()
        .store_fault(StoreFault::Heal)
        .await
        .expect("healed");
    bed.running().flush().await.expect("flush after healing");
    wait_for("four hits on each receiver", || {
        hits("dns-i").len() >= 4 && hits("dns-c").len() >= 4
    });

    let (status, list) = bed
        .api_get("/api/v1/incidents", "root-token-for-export-tests")
        .await;
    assert_eq!(status, 200, "{list}");
    let incident_of = |client: IpAddr| {
        list["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|i| i["client"] == client.to_string())
            .and_then(|i| i["id"].as_i64())
            .unwrap_or_else(|| panic!("no incident for {client}: {list}"))
    };
    let (ida, idb) = (incident_of(a), incident_of(b));
    assert_ne!(ida, idb);
    bed.shutdown().await;

    // Every hit once (none lost to the spool, none doubled), each naming its client's
    // incident in the structured data, the ECS body and the CEF extension.
    let sd = |l: &serde_json::Value| l["rfc5424-sd"]["poolguard@32473"].clone();
    let want = |client: &serde_json::Value| {
        if *client == a.to_string() {
            ida.to_string()
        } else {
            idb.to_string()
        }
    };
    let json = hits("dns-i");
    assert_eq!(json.len(), 4, "{json:#?}");
    for l in &json {
        let id = want(&sd(l)["client"]);
        assert_eq!(sd(l)["incident_id"], id, "{l}");
        assert_eq!(l["body"]["labels"]["incident_id"], id, "{l}");
    }
    let cef = hits("dns-c");
    assert_eq!(cef.len(), 4, "{cef:#?}");
    for l in &cef {
        let message = l["message"].as_str().expect("msg").trim_start();
        let header: Vec<&str> = message.splitn(8, '|').collect();
        let ext = cef_extension(header[7]);
        assert_eq!(ext["cn1"], want(&sd(l)["client"]), "{message}");
        assert_eq!(ext["cn1Label"], "incident");
    }
    let per_client = |id: i64| {
        let id = id.to_string();
        json.iter()
            .filter(|l| sd(l)["incident_id"].as_str() == Some(id.as_str()))
            .count()
    };
    assert_eq!((per_client(ida), per_client(idb)), (2, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_postgresql_two_nodes_hit_messages_name_the_groups_one_incident() {
    let pg = common::postgres::Postgres::start();
    let url = pg.create_database("exports");
    let dir = tempfile::tempdir().expect("tempdir");
    let tcp = free_tcp_port();
    let rsyslog = Rsyslog::start_with(
        dir.path(),
        "",
        &format!(
            "module(load=\"imtcp\")\n\
             input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{tcp}\" ruleset=\"hits\")\n"
        ),
        tcp,
        None,
    );
    let node = |name: &'static str| {
        TestBed::builder()
            .toml(&format!(
                "[api]\nlisten = \"127.0.0.1:0\"\n\
                 [store]\nbackend = \"postgres\"\nurl = \"{url}\"\npassword_file = \"{}\"\n\
                 node = \"{name}\"\npath = \"data/local.db\"\nflush_interval_ms = 20\n\
                 [[export.syslog]]\ntcp = \"127.0.0.1:{tcp}\"\nhostname = \"dns-{name}\"\n",
                pg.password_file().display()
            ))
            .start()
    };
    let (a, b) = (node("a").await, node("b").await);
    let miner = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 21));
    for bed in [&a, &b, &a] {
        pool_hit(bed, miner).await;
        bed.running().flush().await.expect("flush");
    }
    let hits = || {
        rsyslog
            .lines()
            .into_iter()
            .filter(|l| l["msgid"] == "hit")
            .collect::<Vec<_>>()
    };
    // A hit leaves once its shipment commits in PostgreSQL, which numbers the incident.
    wait_for("three hit messages", || hits().len() == 3);
    a.shutdown().await;
    b.shutdown().await;
    let incident = pg.psql(
        "exports",
        "SELECT string_agg(id::text, ',') FROM incidents WHERE client_key = 'ip:127.0.0.21'",
    );
    let sd = |l: &serde_json::Value| l["rfc5424-sd"]["poolguard@32473"].clone();
    let mut hosts: Vec<String> = hits()
        .iter()
        .map(|l| {
            assert_eq!(sd(l)["incident_id"], incident.as_str(), "{l}");
            l["hostname"].as_str().expect("hostname").to_string()
        })
        .collect();
    hosts.sort();
    assert_eq!(
        hosts,
        ["dns-a", "dns-a", "dns-b"],
        "each node sent its own hits"
    );
}

/// rsyslog's GnuTLS stream driver is its own package; a missing one fails naming it.
fn require_gtls() {
    let found = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .any(|arch| arch.path().join("rsyslog/lmnsd_gtls.so").is_file());
    assert!(
        found,
        "rsyslog's TLS driver is not installed: install the Debian package `rsyslog-gnutls` \
         (scripts/install-test-deps.sh installs every test dependency)"
    );
}

/// The value of `name{sink="<sink>"}` in this process's Prometheus rendering (what /metrics
/// serves), summed over its other labels, 0 when absent; `extra` narrows it (`reason="..."`).
fn metric(name: &str, sink: &str, extra: &str) -> f64 {
    let text = poolguard::api::metrics::install().render();
    let series = |l: &str| l.contains(&format!("sink=\"{sink}\"")) && l.contains(extra);
    let open = format!("{name}{{");
    text.lines()
        .filter(|l| l.starts_with(&open) && series(l))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hits_reach_rsyslog_over_tls_verified_against_the_test_ca() {
    require_gtls();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    test_ca(d, "good", true);
    test_ca(d, "other", false);
    let tls = free_tcp_port();
    let rsyslog = Rsyslog::start_with(
        d,
        &format!(
            r#"defaultNetstreamDriver="gtls" defaultNetstreamDriverCAFile="{ca}" defaultNetstreamDriverCertFile="{cert}" defaultNetstreamDriverKeyFile="{key}""#,
            ca = d.join("good-ca.pem").display(),
            cert = d.join("server.pem").display(),
            key = d.join("server.key").display(),
        ),
        &format!(
            r#"module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
input(type="imtcp" address="127.0.0.1" port="{tls}" ruleset="hits")
"#
        ),
        tls,
        None,
    );
    let good = format!("{}", d.join("good-ca.pem").display());
    let other = format!("{}", d.join("other-ca.pem").display());
    let bed = TestBed::builder()
        .toml(&format!(
            "[[export.syslog]]\ntcp = \"127.0.0.1:{tls}\"\ntls = true\nca_file = \"{good}\"\nhostname = \"dns-tls\"\n\
             [[export.syslog]]\ntcp = \"127.0.0.1:{tls}\"\ntls = true\nca_file = \"{other}\"\nhostname = \"dns-untrusted\"\nserver_name = \"localhost\"\n"
        ))
        .start()
        .await;
    let client = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 11));
    ask_from(
        &bed,
        client,
        Proto::Tcp,
        "moneroocean.stream",
        RecordType::A,
    )
    .await;
    wait_for("the hit over TLS", || !rsyslog.lines().is_empty());
    let lines = rsyslog.lines();
    let hit = &lines[0];
    assert_eq!(hit["hostname"], "dns-tls");
    assert_eq!(
        hit["rfc5424-sd"]["poolguard@32473"]["name"],
        "moneroocean.stream"
    );
    assert_eq!(hit["rfc5424-sd"]["poolguard@32473"]["client"], "127.0.0.11");
    // The receiver's certificate is not signed by the other CA: that export never connects.
    let sink = format!("syslog:tls:127.0.0.1:{tls}");
    assert!(metric("poolguard_export_connections_total", &sink, "") >= 1.0);
    let untrusted = format!("{sink}#2");
    assert_eq!(
        metric("poolguard_export_connections_total", &untrusted, ""),
        0.0
    );
    assert_eq!(metric("poolguard_export_connected", &untrusted, ""), 0.0);
    bed.shutdown().await;
    assert!(
        !rsyslog
            .all_lines()
            .iter()
            .any(|l| l["hostname"] == "dns-untrusted"),
        "an unverified receiver got a hit"
    );
}
