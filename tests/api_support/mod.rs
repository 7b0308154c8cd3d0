//! Shared test harness: a real SQLite store in a temp dir, the real writer thread, and the real
//! API on 127.0.0.1:0, driven over HTTP with reqwest. Written once, used by every api_/store_ test.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use poolguard::api::{self, ApiState};
use poolguard::clients::{Ledger, SharedLedger};
use poolguard::config::{ApiConfig, Role, StoreConfig, TokenConfig};
use poolguard::record::{Outcome, QueryEvent, Sink, Transport};
use poolguard::store::{self, Store, WriterHandle};

/// The ledger every test starts from: a subnet, a lab inside it, one machine inside the lab.
pub const LEDGER: &str = "network,mac,asset,kind,location,department,owner,contact\n\
10.20.0.0/16,,,subnet,图书馆,Library,,\n\
10.20.3.0/24,,,lab,Room 3,Physics,,\n\
10.20.3.7,00:1a:2b:3c:4d:5e,rig-7,workstation,Room 3,Physics,张伟,zhang@example.edu\n";

/// 2026-11-01T00:00:00Z: a fixed base so times in assertions are readable.
pub const T0: i64 = 1_793_491_200_000;

pub fn ledger(csv: &str) -> Ledger {
    Ledger::from_reader(csv.as_bytes(), std::path::Path::new("test.csv"))
        .expect("test ledger parses")
        .0
}

/// One event; `i` makes its time unique.
pub fn event(
    time_ms: i64,
    client: &str,
    name: &str,
    qtype: &str,
    outcome: Outcome,
    feed: Option<&str>,
) -> QueryEvent {
    let client: SocketAddr = client.parse().expect("test client addr");
    QueryEvent {
        time_ms,
        client,
        transport: Transport::Udp,
        name: name.into(),
        qtype: qtype.to_string().into(),
        outcome,
        feed: feed.map(Into::into),
        rule: feed.map(|_| Arc::from(name)),
        rcode: if outcome.is_hit() {
            "NXDOMAIN"
        } else {
            "NOERROR"
        },
        answer: "".into(),
        latency_us: 120,
        upstream: None,
    }
}

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub cfg: StoreConfig,
    pub store: Store,
    pub ledger: SharedLedger,
    pub sink: Arc<dyn Sink>,
    pub writer: Option<WriterHandle>,
}

impl Harness {
    /// Shuts the writer down (every queued row committed); the store stays open.
    pub async fn stop_writer(&mut self) {
        self.writer
            .take()
            .expect("writer")
            .shutdown()
            .await
            .expect("shutdown");
    }

    pub fn new(tweak: impl FnOnce(&mut StoreConfig)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = StoreConfig {
            path: dir.path().join("db/poolguard.db"),
            // Test data is dated in 2026-11; the writer's own retention must not eat it.
            query_retention_days: 36_500,
            hit_retention_days: 36_500,
            ..StoreConfig::default()
        };
        tweak(&mut cfg);
        let store = store::open(&cfg).expect("store opens");
        let ledger = ledger(LEDGER).shared();
        let (sink, writer) =
            store::writer::spawn(&store, &cfg, ledger.clone()).expect("writer starts");
        Self {
            dir,
            cfg,
            store,
            ledger,
            sink,
            writer: Some(writer),
        }
    }

    pub async fn flush(&self) {
        self.writer
            .as_ref()
            .expect("writer running")
            .flush()
            .await
            .expect("flush");
    }

    /// Rows in `table`; `queries` and `hits` count the rows inside their blocks.
    pub fn count(&self, table: &str) -> i64 {
        use poolguard::store::read::Table;
        let c = self.store.write_connection().expect("conn");
        for (name, t) in [("queries", Table::Queries), ("hits", Table::Hits)] {
            if table == name {
                return poolguard::store::blocks::total_rows(&c, t).expect("count");
            }
        }
        c.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .expect("count")
    }
}

/// Tokens for every role: (role, secret).
pub fn tokens() -> (Vec<TokenConfig>, Vec<(Role, String)>) {
    let mut cfgs = Vec::new();
    let mut secrets = Vec::new();
    for role in [Role::Viewer, Role::Investigator, Role::Feeds, Role::Admin] {
        let t = api::token::generate(&format!("{role:?}"), role).expect("token");
        cfgs.push(TokenConfig {
            name: format!("{role:?}"),
            role,
            sha256: t.sha256,
        });
        secrets.push((role, t.token));
    }
    (cfgs, secrets)
}

pub struct Api {
    pub base: String,
    pub secrets: Vec<(Role, String)>,
    pub http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Api {
    pub async fn start(h: &Harness, ledger_path: Option<std::path::PathBuf>) -> Self {
        let (cfgs, secrets) = tokens();
        let api_cfg = ApiConfig {
            tokens: cfgs,
            ..ApiConfig::default()
        };
        let state = ApiState::new(
            h.store.clone(),
            h.ledger.clone(),
            ledger_path,
            &api_cfg,
            h.writer.as_ref().map(|w| w.health()),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = api::serve(listener, state, async move {
            let _ = rx.await;
        });
        Self {
            base: format!("http://{addr}"),
            secrets,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub fn token(&self, role: Role) -> &str {
        &self
            .secrets
            .iter()
            .find(|(r, _)| *r == role)
            .expect("role token")
            .1
    }

    /// GET with the viewer token.
    async fn get_response(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(self.token(Role::Viewer))
            .send()
            .await
            .expect("request")
    }

    /// GET with the viewer token; returns status and body text.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let r = self.get_response(path).await;
        let s = r.status().as_u16();
        (s, r.text().await.expect("body"))
    }

    /// GET with the viewer token; returns status, `Content-Type` and the body's bytes as sent
    /// (a byte order mark included, which [`Api::get`]'s text decoding would drop).
    pub async fn get_bytes(&self, path: &str) -> (u16, Option<String>, Vec<u8>) {
        let r = self.get_response(path).await;
        let status = r.status().as_u16();
        let ctype = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        (status, ctype, r.bytes().await.expect("body").to_vec())
    }

    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let (s, body) = self.get(path).await;
        assert_eq!(s, 200, "GET {path}: {body}");
        serde_json::from_str(&body).expect("json body")
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}
