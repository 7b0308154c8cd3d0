//! The staff console's test harness: a real poolguard (DNS + store + API + console) and
//! Debian's chromium driven through chromedriver over WebDriver (fantoccini).
//!
//! A missing `chromium` or `chromedriver` fails the test naming its Debian package
//! (`scripts/install-test-deps.sh` installs both); no crate feature downloads a browser.
//! Screenshots of every page go to a temp dir, or to `$CONSOLE_SCREENSHOTS` when set (how
//! docs/console/*.png were made).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};

use crate::common::{TestBed, sha256_hex, tools};

pub const VIEWER: &str = "viewer-token-for-console-tests";
pub const INVESTIGATOR: &str = "investigator-token-for-console-tests";
pub const ADMIN: &str = "admin-token-for-console-tests";
/// The client every test's DNS queries come from, and its ledger row; the department is HTML
/// that would run script if the console did not escape it.
pub const MINER: &str = "127.0.0.7";
pub const XSS: &str = "<img src=x onerror=\"document.title='pwned';window.pwned=1\">";

fn ledger() -> String {
    format!(
        "network,mac,asset,kind,location,department,owner,contact\n\
         127.0.0.7,aa:bb:cc:dd:ee:07,gpu-ws-07,GPU workstation,理科楼 A-301,\"{}\",张伟,zhangwei@example.edu\n\
         127.0.0.8,aa:bb:cc:dd:ee:08,lab-pc-08,Desktop,Physics B-12,Physics,Li Na,lina@example.edu\n",
        XSS.replace('"', "\"\"")
    )
}

/// A running poolguard with the console on its API listener, three tokens (viewer `viewer`,
/// investigator `alice`, admin `root`), a ledger, quarantine enforcement with the notice
/// address 127.0.0.99, and `extra` TOML.
pub async fn bed(extra: &str) -> TestBed {
    let toml = format!(
        "[api]\nlisten = \"127.0.0.1:0\"\n\
         [[api.tokens]]\nname = \"viewer\"\nrole = \"viewer\"\nsha256 = \"{}\"\n\
         [[api.tokens]]\nname = \"alice\"\nrole = \"investigator\"\nsha256 = \"{}\"\n\
         [[api.tokens]]\nname = \"root\"\nrole = \"admin\"\nsha256 = \"{}\"\n\
         [store]\npath = \"data/console.db\"\nflush_interval_ms = 20\n\
         [clients]\nledger = \"clients.csv\"\n\
         [enforcement]\nmode = \"quarantine\"\nincidents_threshold = 0\nnotice_ipv4 = \"127.0.0.99\"\n\
         [console]\ntimezone = \"Asia/Shanghai\"\n{extra}",
        sha256_hex(VIEWER),
        sha256_hex(INVESTIGATOR),
        sha256_hex(ADMIN)
    );
    TestBed::builder()
        .file("clients.csv", &ledger())
        .toml(&toml)
        .start()
        .await
}

/// The console's base URL.
pub fn console_url(bed: &TestBed) -> String {
    format!(
        "http://{}",
        bed.running().console_addr().expect("console enabled")
    )
}

/// chromedriver on a free loopback port; killed when dropped.
pub struct Driver {
    child: Child,
    pub port: u16,
    profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    /// Starts chromedriver and reads the port it chose from its first lines.
    pub fn start() -> Self {
        let bin = tools::require_tool("chromedriver", "chromium-driver");
        let mut child = Command::new(bin)
            .args(["--port=0", "--allowed-ips=127.0.0.1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let out = child.stdout.take().expect("stdout");
        let mut port = None;
        for line in BufReader::new(out).lines().take(20) {
            let line = line.expect("chromedriver output");
            if let Some(p) = line
                .split("started successfully on port ")
                .nth(1)
                .and_then(|rest| rest.trim_end_matches('.').trim().parse().ok())
            {
                port = Some(p);
                break;
            }
        }
        let port = port.expect("chromedriver printed its port");
        Self {
            child,
            port,
            profile: tempfile::tempdir().expect("profile dir"),
        }
    }

    /// A new headless chromium session at `width`×`height` preferring `accept_language`.
    pub async fn browser(&self, width: u32, height: u32, accept_language: &str) -> Client {
        let chromium = tools::require_tool("chromium", "chromium");
        let caps: serde_json::Map<String, serde_json::Value> = serde_json::from_value(serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--no-default-browser-check", "--hide-scrollbars",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", self.profile.path().join(format!("p{width}")).display()),
                ],
                "prefs": { "intl.accept_languages": accept_language }
            }
        }))
        .expect("capabilities");
        let mut caps = caps;
        if width < 500 {
            // Desktop chromium will not make a window narrower than 500 px: a phone is emulated.
            caps["goog:chromeOptions"]["mobileEmulation"] = serde_json::json!({
                "deviceMetrics": { "width": width, "height": height, "pixelRatio": 1.0 }
            });
        }
        let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
        connector.enforce_http(true);
        ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a chromium session through chromedriver")
    }
}

/// Where screenshots go: `$CONSOLE_SCREENSHOTS`, or a temp dir kept for the test's life.
pub struct Shots {
    dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl Shots {
    pub fn new() -> Self {
        match std::env::var_os("CONSOLE_SCREENSHOTS") {
            Some(d) => {
                let dir = PathBuf::from(d);
                std::fs::create_dir_all(&dir).expect("screenshot dir");
                Self { dir, _tmp: None }
            }
            None => {
                let tmp = tempfile::tempdir().expect("screenshot dir");
                Self {
                    dir: tmp.path().to_path_buf(),
                    _tmp: Some(tmp),
                }
            }
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Saves the current page as `<name>.png` and checks it is a PNG.
    pub async fn take(&self, b: &Client, name: &str) {
        let png = b.screenshot().await.expect("screenshot");
        assert!(png.starts_with(b"\x89PNG"), "screenshot of {name} is a PNG");
        std::fs::write(self.dir.join(format!("{name}.png")), png).expect("screenshot written");
    }
}

/// Signs in with an API token through the form.
pub async fn sign_in(b: &Client, base: &str, token: &str) {
    b.goto(&format!("{base}/signin"))
        .await
        .expect("sign-in page");
    b.find(Locator::Id("token"))
        .await
        .expect("token field")
        .send_keys(token)
        .await
        .expect("typed");
    submit(b, "signin").await;
}

/// Signs out through the header's button.
pub async fn sign_out(b: &Client) {
    submit(b, "signout").await;
}

/// The text of the element with id `id`.
pub async fn text_of(b: &Client, id: &str) -> String {
    let url = b.current_url().await.ok();
    b.find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("#{id} on {url:?}: {e}"))
        .text()
        .await
        .expect("text")
}

/// The page's whole visible text.
pub async fn body_text(b: &Client) -> String {
    b.find(Locator::Css("body"))
        .await
        .expect("body")
        .text()
        .await
        .expect("text")
}

/// Reloads `url` until its text contains `needle` (bounded: the store commits every 20 ms;
/// 200 tries × 50 ms is ten seconds).
pub async fn until_shows(b: &Client, url: &str, needle: &str) -> String {
    let mut text = String::new();
    for _ in 0..200 {
        b.goto(url).await.expect("page");
        text = body_text(b).await;
        if text.contains(needle) {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} never showed {needle:?}; last text:\n{text}");
}

/// Whether an element matching `css` exists on the current page.
pub async fn exists(b: &Client, css: &str) -> bool {
    !b.find_all(Locator::Css(css))
        .await
        .expect("query")
        .is_empty()
}

/// Clicks `#id` (a submit button or link); see [`submit_css`].
pub async fn submit(b: &Client, id: &str) {
    submit_css(b, &format!("#{id}")).await
}

/// Clicks the element matching `css` and waits until the browser has left the current page, so
/// the next lookup reads the answer, not the form (bounded, 10 s).
pub async fn submit_css(b: &Client, id: &str) {
    let old = b.find(Locator::Css("html")).await.expect("page");
    b.find(Locator::Css(id))
        .await
        .unwrap_or_else(|e| panic!("{id}: {e}"))
        .click()
        .await
        .expect("clicked");
    for _ in 0..200 {
        if old.text().await.is_err() {
            // The old document is gone; wait for the new one to be complete.
            for _ in 0..200 {
                let state = b.execute("return document.readyState;", vec![]).await.ok();
                if state == Some(serde_json::Value::String("complete".into())) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("clicking {id} did not load a new page");
}

/// Whether every element of the page's main part stays inside the window, and every table
/// inside its card (a long unbroken value must wrap, not push the layout sideways).
pub async fn nothing_overflows(b: &Client) -> bool {
    let ok = b
        .execute(
            "const w = document.documentElement.clientWidth; \
             const inWindow = [...document.querySelectorAll('main *')] \
                 .every(e => e.getBoundingClientRect().right <= w + 1); \
             const inCards = [...document.querySelectorAll('.card table')] \
                 .every(t => t.getBoundingClientRect().right <= t.closest('.card').getBoundingClientRect().right + 1); \
             return inWindow && inCards;",
            vec![],
        )
        .await
        .expect("script");
    ok == serde_json::Value::Bool(true)
}

/// Types `text` into the field with id `id`.
pub async fn type_into(b: &Client, id: &str, text: &str) {
    b.find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("#{id}: {e}"))
        .send_keys(text)
        .await
        .expect("typed");
}
