//! The asset ledger: CSV rows → a longest-prefix-match table of [`Identity`].
//!
//! A campus ledger has both whole subnets ("10.20.0.0/16, Library, …") and single machines
//! inside them ("10.20.3.7, rig-7, …"); the single machine must win, so lookups take the most
//! specific network (longest prefix). Bad rows are reported with their line number and the
//! reason and the good rows still load: one typo must not blind the evidence store.
//!
//! Encoding: the bytes are UTF-8 (a UTF-8 BOM is accepted) or, when they are not valid UTF-8,
//! GB18030 (the superset of GBK that Excel on Chinese Windows writes for "CSV (逗号分隔)"),
//! decoded with `encoding_rs` ([`decode`]). UTF-16 ("Unicode Text") and bytes that are neither
//! are refused with the hint to save as "CSV UTF-8": a wrong guess would load garbage names.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use prefix_trie::PrefixMap;
use serde::Deserialize;

use super::Identity;

/// The columns the ledger must have, in the order ops write them.
const HEADER: [&str; 8] = [
    "network",
    "mac",
    "asset",
    "kind",
    "location",
    "department",
    "owner",
    "contact",
];

/// The optional ninth column: the account (portal or 802.1X login) of the row's owner.
const ACCOUNT: &str = "account";

/// Why a ledger could not be used at all (individual bad rows are [`RejectedRow`]s instead).
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("cannot read asset ledger {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "asset ledger {path}: the header must be `network,mac,asset,kind,location,department,owner,contact` (optionally `,account`), found `{found}`"
    )]
    Header { path: PathBuf, found: String },
    #[error("asset ledger {path}: {source}")]
    Csv { path: PathBuf, source: csv::Error },
    /// The bytes are neither UTF-8 nor GB18030/GBK (or are UTF-16).
    #[error("asset ledger {path}: {detail}; save it as \"CSV UTF-8\" and try again")]
    Encoding { path: PathBuf, detail: String },
    /// The blocking load task did not finish (it panicked): a bug, not a bad file.
    #[error("asset ledger reload stopped: {0}")]
    Stopped(String),
}

/// One ledger row that was skipped, so ops can fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedRow {
    /// 1-based line number in the file (the header is line 1).
    pub line: u64,
    pub reason: String,
}

/// What a load did: how many rows are in effect and which were rejected.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// Data rows read (header, comments and blank lines aside): `loaded` + rejected rows.
    pub rows: usize,
    /// Networks loaded.
    pub loaded: usize,
    /// Every rejected row with its line number and reason.
    pub rejected: Vec<RejectedRow>,
    /// The encoding the bytes were converted from (`GB18030`); absent for UTF-8.
    pub decoded_from: Option<String>,
}

impl LoadReport {
    /// One line for logs and the audit trail.
    pub fn summary(&self) -> String {
        format!(
            "{} networks, {} rows rejected",
            self.loaded,
            self.rejected.len()
        )
    }
}

/// Ledger bytes as text, and the encoding they were converted from (None: they were UTF-8).
#[derive(Debug)]
pub struct Decoded<'a> {
    /// The content without a BOM.
    pub text: Cow<'a, str>,
    /// `Some("GB18030")` when the bytes were not UTF-8 and were converted.
    pub from: Option<&'static str>,
}

/// Reads ledger bytes as UTF-8 (BOM or not) or, only when they are not valid UTF-8, as
/// GB18030. Why GB18030 and nothing else: it is what Excel on Chinese Windows saves a CSV as
/// (GBK is its subset), and a campus ledger's names are Chinese; any other guess could turn
/// a file into plausible-looking garbage. UTF-16 (Excel's "Unicode Text") and bytes that are
/// not GB18030 either are refused with the hint to save as "CSV UTF-8".
pub fn decode<'a>(bytes: &'a [u8], path: &Path) -> Result<Decoded<'a>, LedgerError> {
    let refuse = |detail: &str| LedgerError::Encoding {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    };
    let body = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    if let Ok(text) = std::str::from_utf8(body) {
        return Ok(Decoded {
            text: Cow::Borrowed(text),
            from: None,
        });
    }
    if bytes.starts_with(b"\xff\xfe") || bytes.starts_with(b"\xfe\xff") {
        return Err(refuse("the file is UTF-16 (Excel's \"Unicode Text\")"));
    }
    if body.len() != bytes.len() {
        // A UTF-8 BOM promises UTF-8: a broken UTF-8 file is not reinterpreted as GB18030.
        return Err(refuse(
            "the file starts with a UTF-8 BOM but is not valid UTF-8",
        ));
    }
    encoding_rs::GB18030
        .decode_without_bom_handling_and_without_replacement(body)
        .map(|text| Decoded {
            text,
            from: Some("GB18030"),
        })
        .ok_or_else(|| refuse("the file is neither UTF-8 nor GB18030/GBK"))
}

/// Re-reads the ledger at `path` on a blocking thread and swaps it into `shared` whole; the
/// ledger in force stays when the file does not load. The one reload path, shared by
/// `POST /api/v1/ledger/reload` and SIGHUP.
pub async fn reload(shared: &SharedLedger, path: PathBuf) -> Result<LoadReport, LedgerError> {
    let (ledger, report) = tokio::task::spawn_blocking(move || Ledger::load(&path))
        .await
        .map_err(|e| LedgerError::Stopped(e.to_string()))??;
    shared.store(Arc::new(ledger));
    Ok(report)
}

#[derive(Debug, Deserialize)]
struct Row {
    network: String,
    #[serde(default)]
    mac: Option<String>,
    #[serde(default)]
    asset: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    location: Option<String>,
    #[serde(default)]
    department: Option<String>,
    #[serde(default)]
    owner: Option<String>,
    #[serde(default)]
    contact: Option<String>,
    #[serde(default)]
    account: Option<String>,
}

/// An immutable longest-prefix table from client networks to identities.
#[derive(Default)]
pub struct Ledger {
    v4: PrefixMap<Ipv4Net, Arc<Identity>>,
    v6: PrefixMap<Ipv6Net, Arc<Identity>>,
    /// Rows by MAC (`00:1a:2b:3c:4d:5e`): whose a device is, wherever DHCP puts it.
    by_mac: HashMap<String, Arc<Identity>>,
    /// Rows by account, lower case: whose a login is.
    by_account: HashMap<String, Arc<Identity>>,
    len: usize,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").field("len", &self.len).finish()
    }
}

/// The current ledger, swapped whole on reload; readers never lock.
pub type SharedLedger = Arc<ArcSwap<Ledger>>;

/// Whether row `i` has the asset tag and the owner asked for (each case-insensitive; `None`
/// asks nothing): the ledger searches by the names staff know.
fn asset_and_owner_are(i: &Identity, asset: Option<&str>, owner: Option<&str>) -> bool {
    let same = |want: Option<&str>, have: Option<&String>| {
        want.is_none_or(|w| have.is_some_and(|h| poolguard_model::text::same_text(h, w)))
    };
    same(asset, i.asset.as_ref()) && same(owner, i.owner.as_ref())
}

impl Ledger {
    /// An empty ledger: every client is unknown. Used when no ledger is configured.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Wraps a ledger for sharing between the writer (lookups) and the API (reloads).
    pub fn shared(self) -> SharedLedger {
        Arc::new(ArcSwap::from_pointee(self))
    }

    /// The configured ledger, or an empty one when `[clients] ledger` is unset. `path` must be
    /// resolved against the config directory already (`Config::resolve`).
    pub fn load_configured(path: Option<&Path>) -> Result<(Self, LoadReport), LedgerError> {
        match path {
            Some(p) => Self::load(p),
            None => Ok((Self::empty(), LoadReport::default())),
        }
    }

    /// Loads a ledger file; bad rows are reported, not fatal.
    pub fn load(path: &Path) -> Result<(Self, LoadReport), LedgerError> {
        let file = std::fs::File::open(path).map_err(|source| LedgerError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_reader(file, path)
    }

    /// Parses ledger CSV from any reader; `path` is only used in messages.
    pub fn from_reader<R: Read>(
        mut reader: R,
        path: &Path,
    ) -> Result<(Self, LoadReport), LedgerError> {
        let mut bytes = Vec::new();
        reader
            .read_to_end(&mut bytes)
            .map_err(|source| LedgerError::Read {
                path: path.to_path_buf(),
                source,
            })?;
        Self::from_bytes(&bytes, path)
    }

    /// Parses ledger CSV bytes in UTF-8 or GB18030 ([`decode`]); `path` is only used in messages.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<(Self, LoadReport), LedgerError> {
        let decoded = decode(bytes, path)?;
        let (ledger, mut report) = Self::from_text(&decoded.text, path)?;
        report.decoded_from = decoded.from.map(str::to_string);
        Ok((ledger, report))
    }

    /// Parses ledger CSV text; `path` is only used in messages.
    pub fn from_text(text: &str, path: &Path) -> Result<(Self, LoadReport), LedgerError> {
        let mut rdr = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .flexible(true)
            .comment(Some(b'#'))
            .from_reader(text.as_bytes());
        let headers = rdr
            .headers()
            .map_err(|source| LedgerError::Csv {
                path: path.to_path_buf(),
                source,
            })?
            .clone();
        let found: Vec<String> = headers
            .iter()
            .map(|h| h.trim_start_matches('\u{feff}').to_ascii_lowercase())
            .collect();
        let with_account = found.len() == HEADER.len() + 1 && found[HEADER.len()] == ACCOUNT;
        if found[..found.len().min(HEADER.len())] != HEADER
            || !(found.len() == HEADER.len() || with_account)
        {
            return Err(LedgerError::Header {
                path: path.to_path_buf(),
                found: headers.iter().collect::<Vec<_>>().join(","),
            });
        }
        let headers = csv::StringRecord::from(found);
        let mut ledger = Ledger::default();
        let mut report = LoadReport::default();
        let mut seen = std::collections::HashSet::new();
        for record in rdr.records() {
            let record = match record {
                Ok(r) => r,
                Err(e) => {
                    let line = e.position().map(|p| p.line()).unwrap_or(0);
                    report.rejected.push(RejectedRow {
                        line,
                        reason: e.to_string(),
                    });
                    continue;
                }
            };
            let line = record.position().map(|p| p.line()).unwrap_or(0);
            if record.len() != headers.len() {
                report.rejected.push(RejectedRow {
                    line,
                    reason: format!("has {} fields, expected {}", record.len(), headers.len()),
                });
                continue;
            }
            let row: Row = match record.deserialize(Some(&headers)) {
                Ok(r) => r,
                Err(e) => {
                    report.rejected.push(RejectedRow {
                        line,
                        reason: e.to_string(),
                    });
                    continue;
                }
            };
            match parse_row(row) {
                Ok((net, identity)) => {
                    let twice = match net {
                        Some(net) => {
                            (!seen.insert(format!("network {net}"))).then_some(net.to_string())
                        }
                        None => [
                            identity.mac.as_ref().map(|m| format!("mac {m}")),
                            identity
                                .account
                                .as_ref()
                                .map(|a| format!("account {}", a.to_lowercase())),
                        ]
                        .into_iter()
                        .flatten()
                        .find(|k| !seen.insert(k.clone())),
                    };
                    if let Some(what) = twice {
                        report.rejected.push(RejectedRow {
                            line,
                            reason: format!("{what} is listed twice; the first row wins"),
                        });
                        continue;
                    }
                    ledger.insert(net, identity);
                    report.loaded += 1;
                }
                Err(reason) => report.rejected.push(RejectedRow { line, reason }),
            }
        }
        report.rows = report.loaded + report.rejected.len();
        for r in &report.rejected {
            tracing::warn!(ledger = %path.display(), line = r.line, reason = %r.reason, "asset ledger row rejected");
        }
        tracing::info!(ledger = %path.display(), loaded = report.loaded, rejected = report.rejected.len(), "asset ledger loaded");
        Ok((ledger, report))
    }

    fn insert(&mut self, net: Option<IpNet>, identity: Identity) {
        let identity = Arc::new(identity);
        if let Some(mac) = &identity.mac {
            self.by_mac
                .entry(mac.clone())
                .or_insert_with(|| Arc::clone(&identity));
        }
        if let Some(account) = &identity.account {
            self.by_account
                .entry(account.to_lowercase())
                .or_insert_with(|| Arc::clone(&identity));
        }
        match net {
            Some(IpNet::V4(n)) => {
                self.v4.insert(n, identity);
            }
            Some(IpNet::V6(n)) => {
                self.v6.insert(n, identity);
            }
            None => {}
        }
        self.len += 1;
    }

    /// The row of a device or login: by MAC (lower-case `aa:bb:…`) first, else by account
    /// (case-insensitive). What an identity source's holder is looked up with.
    pub fn lookup_device(&self, mac: Option<&str>, account: Option<&str>) -> Option<Arc<Identity>> {
        mac.and_then(|m| self.by_mac.get(m))
            .or_else(|| account.and_then(|a| self.by_account.get(&a.to_lowercase())))
            .cloned()
    }

    /// The device and login rows whose asset tag or owner is `asset` / `owner`
    /// (case-insensitive): how staff find a machine's MACs and accounts by the names they
    /// know. A scan of those rows (thousands), for searches only.
    pub fn devices_of(&self, asset: Option<&str>, owner: Option<&str>) -> Vec<Arc<Identity>> {
        let mut out: Vec<Arc<Identity>> = self
            .by_mac
            .values()
            .chain(self.by_account.values())
            .filter(|i| asset_and_owner_are(i, asset, owner))
            .cloned()
            .collect();
        out.sort_by(|a, b| (&a.mac, &a.account).cmp(&(&b.mac, &b.account)));
        out.dedup_by(|a, b| Arc::ptr_eq(a, b));
        out
    }

    /// The network rows whose asset tag or owner is `asset` / `owner` (case-insensitive;
    /// at least one given): the fixed-address machines and their networks, which hold their
    /// addresses all the time. How staff's "every query of gpu-7" reaches a lab server.
    pub fn networks_of(
        &self,
        asset: Option<&str>,
        owner: Option<&str>,
    ) -> Vec<(ipnet::IpNet, Arc<Identity>)> {
        if asset.is_none() && owner.is_none() {
            return Vec::new();
        }
        let v4 = self
            .v4
            .iter()
            .filter(|(_, i)| asset_and_owner_are(i, asset, owner))
            .map(|(n, i)| (ipnet::IpNet::V4(n), i.clone()));
        let v6 = self
            .v6
            .iter()
            .filter(|(_, i)| asset_and_owner_are(i, asset, owner))
            .map(|(n, i)| (ipnet::IpNet::V6(n), i.clone()));
        v4.chain(v6).collect()
    }

    /// Number of rows in force (networks, devices and accounts).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the ledger has no entries (every client unknown).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The most specific ledger entry covering `ip`; IPv4-mapped IPv6 addresses match IPv4 rows.
    pub fn lookup(&self, ip: IpAddr) -> Option<Arc<Identity>> {
        match ip.to_canonical() {
            IpAddr::V4(a) => self
                .v4
                .get_lpm(&Ipv4Net::from(a))
                .map(|(_, v)| Arc::clone(v)),
            IpAddr::V6(a) => self
                .v6
                .get_lpm(&Ipv6Net::from(a))
                .map(|(_, v)| Arc::clone(v)),
        }
    }
}

/// A row's network (None for a device or account row) and identity.
fn parse_row(row: Row) -> Result<(Option<IpNet>, Identity), String> {
    let clean = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let mac = match row.mac.as_deref().map(str::trim).filter(|m| !m.is_empty()) {
        None => None,
        Some(m) => Some(
            parse_mac(m)
                .ok_or_else(|| format!("mac `{m}` is not six hex pairs like 00:1a:2b:3c:4d:5e"))?,
        ),
    };
    let account = clean(row.account);
    let net_text = row.network.trim();
    let net = if net_text.is_empty() {
        if mac.is_none() && account.is_none() {
            return Err(
                "`network` is empty; it must be an IP address or CIDR (or give a mac or account)"
                    .into(),
            );
        }
        None
    } else {
        Some(parse_network(net_text)?)
    };
    Ok((
        net,
        Identity {
            network: net.map(|n| n.to_string()),
            asset: clean(row.asset),
            mac,
            kind: clean(row.kind),
            location: clean(row.location),
            department: clean(row.department),
            owner: clean(row.owner),
            contact: clean(row.contact),
            source: None,
            account,
            hostname: None,
            exempt: None,
        },
    ))
}

fn parse_network(net_text: &str) -> Result<IpNet, String> {
    let net: IpNet = if net_text.contains('/') {
        let n: IpNet = net_text
            .parse()
            .map_err(|_| format!("`{net_text}` is not an IP address or CIDR"))?;
        if n.trunc() != n {
            return Err(format!(
                "`{net_text}` has host bits set; did you mean {}?",
                n.trunc()
            ));
        }
        n
    } else {
        let ip: IpAddr = net_text
            .parse()
            .map_err(|_| format!("`{net_text}` is not an IP address or CIDR"))?;
        IpNet::from(ip.to_canonical())
    };
    Ok(net)
}

/// Normalises `00-1A-2b:3c.4d.5e` style MACs to lower-case colon form, or None if invalid.
fn parse_mac(m: &str) -> Option<String> {
    let hex: String = m
        .chars()
        .filter(|c| !matches!(c, ':' | '-' | '.'))
        .collect();
    if hex.len() != 12 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let lower = hex.to_ascii_lowercase();
    let pairs: Vec<&str> = (0..6).filter_map(|i| lower.get(i * 2..i * 2 + 2)).collect();
    Some(pairs.join(":"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str = "network,mac,asset,kind,location,department,owner,contact\n\
10.20.0.0/16,,,subnet,图书馆,Library,,\n\
10.20.3.0/24,,,lab,Room 3,Physics,,\n\
10.20.3.7,00-1A-2B-3C-4D-5E,rig-7,workstation,Room 3,Physics,张伟,zhang@example.edu\n\
not-an-ip,,,,,,,\n\
10.0.0.1/8,,,,,,,\n\
10.30.0.1,zz,,,,,,\n\
10.31.0.1,,,\n\
fd00::/64,,v6-net,,,,,\n";

    #[test]
    fn most_specific_wins_and_bad_rows_are_reported() {
        let (l, report) = Ledger::from_reader(CSV.as_bytes(), Path::new("t.csv")).unwrap();
        assert_eq!(report.loaded, 4);
        let lines: Vec<u64> = report.rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![5, 6, 7, 8]);
        let id = l.lookup("10.20.3.7".parse().unwrap()).unwrap();
        assert_eq!(id.asset.as_deref(), Some("rig-7"));
        assert_eq!(id.owner.as_deref(), Some("张伟"));
        assert_eq!(id.mac.as_deref(), Some("00:1a:2b:3c:4d:5e"));
        assert_eq!(id.network.as_deref(), Some("10.20.3.7/32"));
        let id = l.lookup("10.20.3.8".parse().unwrap()).unwrap();
        assert_eq!(id.department.as_deref(), Some("Physics"));
        let id = l.lookup("::ffff:10.20.9.9".parse().unwrap()).unwrap();
        assert_eq!(id.location.as_deref(), Some("图书馆"));
        assert!(l.lookup("192.168.1.1".parse().unwrap()).is_none());
        assert!(l.lookup("fd00::5".parse().unwrap()).is_some());
    }

    #[test]
    fn bom_quotes_and_comments_are_handled() {
        let csv = "\u{feff}network,mac,asset,kind,location,department,owner,contact\n\
# the server room\n\
10.1.2.3,,\"rig, the big one\",server,\"机房 B1\",IT,\"王芳\",\"wang@example.edu\"\n";
        let (l, report) = Ledger::from_reader(csv.as_bytes(), Path::new("t.csv")).unwrap();
        assert!(report.rejected.is_empty(), "{:?}", report.rejected);
        let id = l.lookup("10.1.2.3".parse().unwrap()).unwrap();
        assert_eq!(id.asset.as_deref(), Some("rig, the big one"));
        assert_eq!(id.location.as_deref(), Some("机房 B1"));
        assert_eq!(id.owner.as_deref(), Some("王芳"));
    }

    #[test]
    fn gb18030_is_decoded_only_when_not_utf8() {
        let text = "network,mac,asset,kind,location,department,owner,contact\n\
10.1.2.3,,rig,pc,理科楼 301,物理学院,张伟,\n";
        let (gbk, _, lossy) = encoding_rs::GB18030.encode(text);
        assert!(!lossy);
        assert!(
            std::str::from_utf8(&gbk).is_err(),
            "the test bytes are not UTF-8"
        );
        let (l, report) = Ledger::from_bytes(&gbk, Path::new("t.csv")).unwrap();
        assert_eq!(report.decoded_from.as_deref(), Some("GB18030"));
        let id = l.lookup("10.1.2.3".parse().unwrap()).unwrap();
        assert_eq!(id.department.as_deref(), Some("物理学院"));
        // UTF-8, with or without a BOM, is taken as it is.
        for bytes in [
            text.as_bytes().to_vec(),
            [b"\xef\xbb\xbf", text.as_bytes()].concat(),
        ] {
            let (l, report) = Ledger::from_bytes(&bytes, Path::new("t.csv")).unwrap();
            assert_eq!(report.decoded_from, None);
            let id = l.lookup("10.1.2.3".parse().unwrap()).unwrap();
            assert_eq!(id.department.as_deref(), Some("物理学院"));
        }
    }

    #[test]
    fn other_encodings_are_refused_with_the_hint() {
        let utf16: Vec<u8> = [0xff, 0xfe]
            .into_iter()
            .chain("network".encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        let broken_bom = [b"\xef\xbb\xbf".as_slice(), b"network\xff\n"].concat();
        for bytes in [utf16, broken_bom, b"network\xff\n".to_vec()] {
            let e = Ledger::from_bytes(&bytes, Path::new("t.csv")).unwrap_err();
            assert!(matches!(e, LedgerError::Encoding { .. }), "{e}");
            assert!(e.to_string().contains("save it as \"CSV UTF-8\""), "{e}");
        }
    }

    #[test]
    fn device_and_account_rows_answer_lookups_by_mac_and_account() {
        let csv = "network,mac,asset,kind,location,department,owner,contact,account\n\
10.20.0.0/16,,,subnet,,Library,,,\n\
,00-1A-2B-3C-4D-5E,laptop-7,laptop,,Physics,Zhang Wei,zhang@example.edu,\n\
,,,,,Chemistry,Li Na,li@example.edu,LiNa01\n\
,00:1a:2b:3c:4d:5e,dup,,,,,,\n\
,,,,,,,,\n";
        let (l, report) = Ledger::from_reader(csv.as_bytes(), Path::new("t.csv")).unwrap();
        assert_eq!(report.loaded, 3);
        let lines: Vec<u64> = report.rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![5, 6], "{:?}", report.rejected);
        let id = l.lookup_device(Some("00:1a:2b:3c:4d:5e"), None).unwrap();
        assert_eq!(id.owner.as_deref(), Some("Zhang Wei"));
        assert_eq!(id.network, None);
        let id = l
            .lookup_device(Some("00:00:00:00:00:01"), Some("lina01"))
            .unwrap();
        assert_eq!(id.owner.as_deref(), Some("Li Na"));
        assert!(l.lookup_device(None, None).is_none());
        // A device row is no network: addresses still go by the network rows.
        assert_eq!(
            l.lookup("10.20.1.1".parse().unwrap())
                .unwrap()
                .department
                .as_deref(),
            Some("Library")
        );
    }

    #[test]
    fn wrong_header_is_an_error() {
        let r = Ledger::from_reader("ip,name\n1.2.3.4,x\n".as_bytes(), Path::new("t.csv"));
        assert!(matches!(r, Err(LedgerError::Header { .. })));
    }
}
