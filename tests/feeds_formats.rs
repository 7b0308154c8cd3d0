//! Every real feed sample, parsed as poolguard parses it: the detected format, exact counts, and
//! spot checks; then every trap in `tests/fixtures/feeds/TRICKY.md`, by section, with the exact
//! line number and reason a maintainer would see. Fixtures are copies; see their README.

use std::path::PathBuf;

use poolguard::config::{FeedFormat, FeedKind};
use poolguard::feeds::{ParsedFeed, parse};

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/feeds")
        .join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    String::from_utf8(bytes).expect("fixtures are UTF-8")
}

fn auto(name: &str) -> ParsedFeed {
    parse(&fixture(name), FeedFormat::Auto, FeedKind::Domains)
}

fn has(p: &ParsedFeed, name: &str) -> bool {
    p.domains.iter().any(|d| d.name.as_str() == name)
}

fn has_exact(p: &ParsedFeed, name: &str) -> Option<bool> {
    p.domains
        .iter()
        .find(|d| d.name.as_str() == name)
        .map(|d| d.exact)
}

/// The text of line `n` (1-based) of a fixture.
fn line(name: &str, n: usize) -> String {
    fixture(name)
        .lines()
        .nth(n - 1)
        .unwrap_or_else(|| panic!("{name} has no line {n}"))
        .to_string()
}

/// Asserts the line number, text and reason (substring) of a rejection.
fn rejected(p: &ParsedFeed, line: usize, text: &str, reason: &str) {
    let r = p
        .rejected
        .iter()
        .find(|r| r.line == line)
        .unwrap_or_else(|| panic!("line {line} not rejected; rejected: {:#?}", p.rejected));
    assert_eq!(r.text, text);
    assert!(
        r.reason.contains(reason),
        "line {line}: reason {:?} lacks {reason:?}",
        r.reason
    );
}

/// Parses one line of a fixture on its own in `format` and asserts it is skipped, not widened.
fn skipped_alone(name: &str, n: usize, text: &str, format: FeedFormat) {
    assert_eq!(line(name, n), text, "{name}:{n}");
    let p = parse(text, format, FeedKind::Domains);
    assert_eq!(
        (p.accepted(), p.rejected.len(), p.skipped),
        (0, 0, 1),
        "{name}:{n} `{text}`: {p:?}"
    );
}

struct Expect {
    file: &'static str,
    format: FeedFormat,
    domains: usize,
    exceptions: usize,
    ips: usize,
    rejected: usize,
    skipped: usize,
}

#[test]
fn every_sample_detected_and_counted() {
    use FeedFormat::*;
    let cases = [
        (
            "adblock-ubo-bare-domains_coinblockerlists-list_browser_UBO.txt",
            Adblock,
            50,
            0,
            0,
            0,
            0,
        ),
        (
            "adblock-ubo-scriptlets_nocoin-ublock.txt",
            Adblock,
            0,
            0,
            0,
            0,
            8,
        ),
        (
            "adblock_blocklistproject-crypto-ags.txt",
            Adblock,
            50,
            0,
            0,
            0,
            0,
        ),
        ("adblock_nocoin.txt", Adblock, 52, 0, 7, 0, 1),
        ("adblock_ubo-resource-abuse.txt", Adblock, 17, 0, 0, 0, 6),
        (
            "dnsmasq_blocklistproject-crypto.txt",
            Dnsmasq,
            50,
            0,
            0,
            0,
            0,
        ),
        (
            "hosts-0.0.0.0_anudeepnd-coinminer.txt",
            Hosts,
            50,
            0,
            0,
            0,
            0,
        ),
        ("hosts-0.0.0.0_coinblockerlists.txt", Hosts, 50, 0, 0, 0, 0),
        ("hosts-0.0.0.0_nocoin.txt", Hosts, 50, 0, 0, 0, 0),
        // Lines 22-23 (`127.0.0.1 localhost`, `::1 localhost`): skipped with a reason.
        ("hosts-127.0.0.1_adaway-sample.txt", Hosts, 45, 0, 0, 0, 2),
        ("ip-plain_andoniaf-mining-pools_IP.txt", Ip, 0, 0, 50, 0, 0),
        (
            "ip-plain_coinblockerlists-MiningServerIPList.txt",
            Ip,
            0,
            0,
            50,
            0,
            0,
        ),
        ("ipset_firehol-coinbl_ips-sample.ipset", Ip, 0, 0, 50, 0, 0),
        (
            "plain-with-header_blocklistproject-crypto-nl.txt",
            Plain,
            50,
            0,
            0,
            0,
            0,
        ),
        ("plain_andoniaf-mining-pools.txt", Plain, 50, 0, 0, 0, 0),
        ("plain_coinblockerlists-list.txt", Plain, 50, 0, 0, 0, 0),
        ("rpz_hagezi-native-roku-sample.txt", Rpz, 25, 0, 0, 0, 0),
        ("url-wildcard_keraf-nocoin.txt", Url, 9, 0, 0, 0, 41),
        ("url-wildcard_minerblock.txt", Url, 7, 0, 0, 0, 42),
        (
            "wildcard_hagezi-native-roku-sample.txt",
            Wildcard,
            50,
            0,
            0,
            0,
            0,
        ),
    ]
    .map(
        |(file, format, domains, exceptions, ips, rejected, skipped)| Expect {
            file,
            format,
            domains,
            exceptions,
            ips,
            rejected,
            skipped,
        },
    );
    for e in cases {
        let p = auto(e.file);
        let got = (
            p.format,
            p.domains.len(),
            p.exceptions.len(),
            p.ips.len(),
            p.rejected.len(),
            p.skipped,
        );
        let want = (
            Some(e.format),
            e.domains,
            e.exceptions,
            e.ips,
            e.rejected,
            e.skipped,
        );
        assert_eq!(got, want, "{}: rejected {:#?}", e.file, p.rejected);
    }
}

#[test]
fn sample_spot_checks() {
    let p = auto("adblock_nocoin.txt");
    assert!(has(&p, "2miners.com"));
    assert!(p.ips.contains(&"23.83.114.131/32".parse().unwrap()));
    let p = auto("dnsmasq_blocklistproject-crypto.txt");
    assert_eq!(p.domains[0].name.as_str(), "0slot.trade");
    let p = auto("rpz_hagezi-native-roku-sample.txt");
    assert_eq!(has_exact(&p, "ads.roku.com"), Some(false));
    assert!(
        p.domains.iter().all(|d| !d.exact),
        "every sample name has its *. twin"
    );
    let p = auto("wildcard_hagezi-native-roku-sample.txt");
    assert_eq!(has_exact(&p, "roku.adsmeasurement.com"), Some(false));
    let p = auto("url-wildcard_keraf-nocoin.txt");
    assert_eq!(has_exact(&p, "server.jsecoin.com"), Some(true));
    assert_eq!(has_exact(&p, "load.jsecoin.com"), Some(true));
    assert_eq!(has_exact(&p, "server.jsecoin.com"), Some(true));
    assert!(
        !has(&p, "coinhive.com"),
        "`*://coinhive.com/lib*` is path-specific"
    );
    let p = auto("ipset_firehol-coinbl_ips-sample.ipset");
    assert_eq!(p.ips[0], "1.31.173.33/32".parse().unwrap());
}

/// JSON (the mempool pool-attribution data) is not a feed format: every line is refused, so
/// the loader keeps the previous version and reports the file rather than loading nothing.
#[test]
fn unsupported_formats_yield_nothing() {
    let p = auto("json_mempool-pools-v2-first4.json");
    assert_eq!(p.accepted(), 0);
    assert_eq!(p.rejected.len(), 53);
}

const LIST: &str = "full/zerodot1-coinblockerlists/list.txt";
const HOSTS: &str = "full/zerodot1-coinblockerlists/hosts";
const ANDONIAF: &str = "full/andoniaf-mining-pools-list/mining-pools.lst";
const NOCOIN: &str = "full/hoshsadiq-adblock-nocoin-list/nocoin.txt";
const ABUSE: &str = "full/ublockorigin-uassets/resource-abuse.txt";
const KERAF: &str = "full/keraf-nocoin/blacklist.txt";
const MINERBLOCK: &str = "full/xd4rker-minerblock/filters.txt";

#[test]
fn full_feeds_counted() {
    let counts = |f: &str| {
        let p = auto(f);
        (
            p.format,
            p.domains.len(),
            p.ips.len(),
            p.rejected.len(),
            p.skipped,
        )
    };
    use FeedFormat::*;
    assert_eq!(counts(LIST), (Some(Plain), 5833, 0, 4, 0));
    assert_eq!(counts(HOSTS), (Some(Hosts), 5833, 0, 4, 0));
    assert_eq!(counts(ANDONIAF), (Some(Plain), 771, 0, 2, 0));
    assert_eq!(counts(NOCOIN), (Some(Adblock), 187, 7, 0, 123));
    assert_eq!(counts(KERAF), (Some(Url), 71, 0, 0, 87));
    assert_eq!(counts(MINERBLOCK), (Some(Url), 634, 8, 0, 95));
}

/// TRICKY 1: raw Unicode becomes punycode; existing punycode is kept.
#[test]
fn tricky_1_idn() {
    let p = auto(LIST);
    assert_eq!(line(LIST, 2979), "myètherwället.com");
    assert!(has(&p, "xn--mytherwllet-r8a0c.com"));
    assert_eq!(line(LIST, 5644), "xn--blckchin-5za9o.info");
    assert!(has(&p, "xn--blckchin-5za9o.info"));
    assert_eq!(line(HOSTS, 2985), "0.0.0.0 myètherwället.com");
    assert!(has(&auto(HOSTS), "xn--mytherwllet-r8a0c.com"));
    let p = parse("lọgrhythm.com\n", FeedFormat::Plain, FeedKind::Domains);
    assert!(p.domains[0].name.as_str().starts_with("xn--"));
}

/// TRICKY 2: case is folded, so `MoneroOcean.stream` and `api.moneroocean.stream` agree.
#[test]
fn tricky_2_case() {
    let p = auto(LIST);
    assert!(has(&p, "bestetnpool.com") && has(&p, "stratum.mybtccoin.com"));
    assert_eq!(line(ANDONIAF, 328), "mineXMR.com");
    assert_eq!(line(ANDONIAF, 355), "MoneroOcean.stream");
    let p = auto(ANDONIAF);
    assert!(has(&p, "minexmr.com") && has(&p, "moneroocean.stream"));
}

/// TRICKY 3: a template placeholder and a port are rejected, never repaired.
#[test]
fn tricky_3_placeholders_and_ports() {
    let p = auto(LIST);
    rejected(
        &p,
        1183,
        "decred.LOCATION.nicehash.com",
        "label `LOCATION` looks like a template placeholder",
    );
    rejected(
        &p,
        3727,
        "server.com:1234",
        "has a port (`:1234`); a DNS name cannot",
    );
    assert!(!has(&p, "server.com"), "the port must not be stripped");
    assert!(has(&p, "decred.eu.nicehash.com"));
}

/// TRICKY 4: ports, paths and URL patterns never widen into a whole-host block.
#[test]
fn tricky_4_ports_paths_urls() {
    let p = auto(LIST);
    rejected(&p, 2049, "hashbag.cc:8688", "has a port (`:8688`)");
    assert!(!has(&p, "hashbag.cc") && has(&p, "pool.hashbag.cc"));
    rejected(&auto(ANDONIAF), 254, "graftpool.net/", "has a path (`/`)");

    let abuse = auto(ABUSE);
    assert!(!has(&abuse, "kisshentai.net"));
    assert!(!has(&abuse, "2giga.link"));
    let n = fixture(ABUSE)
        .lines()
        .position(|l| l == "||kisshentai.net/Content/js/c-hive.js")
        .expect("rule present")
        + 1;
    skipped_alone(
        ABUSE,
        n,
        "||kisshentai.net/Content/js/c-hive.js",
        FeedFormat::Adblock,
    );
    let n = fixture(ABUSE)
        .lines()
        .position(|l| l == "||2giga.link^*hive$script")
        .expect("rule present")
        + 1;
    skipped_alone(ABUSE, n, "||2giga.link^*hive$script", FeedFormat::Adblock);

    let keraf = auto(KERAF);
    assert!(!has(&keraf, "amazonaws.com"));
    skipped_alone(
        KERAF,
        128,
        "*://*.amazonaws.com/doubleclick13/*",
        FeedFormat::Url,
    );
    skipped_alone(
        KERAF,
        146,
        "ws://*.monerise.com:9333/proxy/*",
        FeedFormat::Url,
    );
    let mb = auto(MINERBLOCK);
    skipped_alone(MINERBLOCK, 495, "*://*.vidoza.net/app.js*", FeedFormat::Url);
    skipped_alone(MINERBLOCK, 9, "*://*/*?proxy=wss://*", FeedFormat::Url);
    skipped_alone(MINERBLOCK, 6, "*://*/*cryptonight.wasm", FeedFormat::Url);
    assert_eq!(line(MINERBLOCK, 77), "*://185.14.28.10/*");
    assert!(mb.ips.contains(&"185.14.28.10/32".parse().unwrap()));

    let nocoin = auto(NOCOIN);
    assert!(!has(&nocoin, "now.sh"));
    skipped_alone(
        NOCOIN,
        126,
        "||minero-proxy-*.now.sh^$third-party",
        FeedFormat::Adblock,
    );
    skipped_alone(NOCOIN, 206, "-coin-hive.js", FeedFormat::Adblock);
    for rule in ["/minero-proxy-", "/coinblind_beta.", "/cryptonight-worker."] {
        let n = fixture(NOCOIN)
            .lines()
            .position(|l| l == rule)
            .expect("rule present")
            + 1;
        skipped_alone(NOCOIN, n, rule, FeedFormat::Adblock);
    }
}

/// TRICKY 5: invalid or odd names.
#[test]
fn tricky_5_odd_names() {
    let p = auto(LIST);
    rejected(
        &p,
        5568,
        "xmr.-eu1.nanopool.org",
        "label `-eu1` starts with '-'",
    );
    rejected(
        &auto(ANDONIAF),
        685,
        "xmr.-eu1.nanopool.org",
        "label `-eu1` starts with '-'",
    );
    // `.ne` is a real ccTLD: syntax cannot tell the truncation, so it is kept (as upstream did).
    assert_eq!(line(LIST, 2036), "gustaver.ddns.ne");
    assert!(has(&p, "gustaver.ddns.ne") && has(&p, "gustaver.ddns.net"));

    assert_eq!(
        line(ABUSE, 25),
        "||info^$script,third-party,domain=oload.info"
    );
    assert!(!has(&auto(ABUSE), "info"));
    skipped_alone(
        ABUSE,
        25,
        "||info^$script,third-party,domain=oload.info",
        FeedFormat::Adblock,
    );
    let p = parse("||info^\n", FeedFormat::Adblock, FeedKind::Domains);
    rejected(
        &p,
        1,
        "||info^",
        "a single label: it would block a whole top-level domain",
    );
    let p = parse("info\n", FeedFormat::Plain, FeedKind::Domains);
    rejected(&p, 1, "info", "single label");

    skipped_alone(
        "full/hoshsadiq-adblock-nocoin-list/nocoin-ublock.txt",
        9,
        "thepiratebay.*##+js(aopr, _wm)",
        FeedFormat::Adblock,
    );

    let p = parse(
        "||0.0.0.0adminer.com^\n||0.0.0.0aeros01.tk^\n",
        FeedFormat::Adblock,
        FeedKind::Domains,
    );
    rejected(
        &p,
        1,
        "||0.0.0.0adminer.com^",
        "the address `0.0.0.0` is glued to the name `adminer.com`",
    );
    rejected(&p, 2, "||0.0.0.0aeros01.tk^", "glued");
    let p = parse("0.0.0.0adminer.com\n", FeedFormat::Hosts, FeedKind::Domains);
    rejected(&p, 1, "0.0.0.0adminer.com", "glued");

    let p = parse(
        "# Last modified: 2018-08-024 18:32\n0.0.0.0 cookiescript.infos\n",
        FeedFormat::Auto,
        FeedKind::Domains,
    );
    assert_eq!(p.format, Some(FeedFormat::Hosts));
    assert!(has(&p, "cookiescript.infos") && p.rejected.is_empty());
}

/// TRICKY 6: IP rules in an adblock list go to `ips`; address lists parse (their curation is
/// the shipped feed's job, see `feeds_shipped.rs`).
#[test]
fn tricky_6_ips() {
    let p = auto(NOCOIN);
    assert_eq!(p.ips.len(), 7);
    for ip in ["23.83.114.131/32", "45.15.156.210/32"] {
        assert!(p.ips.contains(&ip.parse().unwrap()));
    }
    let p = parse(
        &fixture("full/zerodot1-coinblockerlists/white_list_IPs.txt"),
        FeedFormat::Auto,
        FeedKind::Ips,
    );
    assert_eq!((p.format, p.ips.len()), (Some(FeedFormat::Ip), 15));
    // An address in an allow feed has nowhere to go.
    let p = parse("104.18.40.165\n", FeedFormat::Plain, FeedKind::Allow);
    rejected(&p, 1, "104.18.40.165", "an allow feed holds names only");
}

/// TRICKY 7: `www.` twins and generated runs are kept as listed; suffix matching covers them.
#[test]
fn tricky_7_www_and_runs() {
    let p = auto(LIST);
    assert!(has(&p, "bestetnpool.com") && has(&p, "www.bestetnpool.com"));
    for i in 0..10 {
        assert!(has(&p, &format!("00{i}.0x1f4b0.com")));
    }
    assert!(has(&p, "0x1f4b0.com"));
    assert!(has(&p, "cfcd.duckdns.org") && !has(&p, "duckdns.org"));
    assert!(has(&p, "jqcdn01.herokuapp.com") && !has(&p, "herokuapp.com"));
}

/// TRICKY 8: duplicates are kept (the policy collapses them), blank lines and trailing spaces
/// are harmless, and CRLF, BOM and tabs parse the same as clean text.
#[test]
fn tricky_8_duplicates_and_whitespace() {
    let p = auto("full/anudeepnd-blacklist/CoinMiner.txt");
    assert_eq!(p.domains.len(), 5939);
    let unique: std::collections::HashSet<_> = p.domains.iter().map(|d| &d.name).collect();
    assert_eq!(unique.len(), 5939 - 109);
    assert!(
        has(&p, "kiwifarms.net"),
        "the source lists it; mining.txt drops it"
    );

    let p = auto("full/zerodot1-coinblockerlists/list_optional.txt");
    assert_eq!(
        line("full/zerodot1-coinblockerlists/list_optional.txt", 10),
        ""
    );
    assert_eq!((p.domains.len(), p.rejected.len()), (296, 0));
    let p = auto("full/blocklistproject-lists/crypto-nl.txt");
    assert_eq!((p.domains.len(), p.rejected.len()), (1272, 0));

    let clean = "# h\n0.0.0.0 a.example b.example\n0.0.0.0 c.example\n";
    let messy = "\u{feff}# h  \r\n0.0.0.0\ta.example\t b.example \r\n\t0.0.0.0 c.example\r\n";
    let (a, b) = (
        parse(clean, FeedFormat::Auto, FeedKind::Domains),
        parse(messy, FeedFormat::Auto, FeedKind::Domains),
    );
    assert_eq!((a.format, &a.domains), (b.format, &b.domains));
    assert_eq!(b.domains.len(), 3);
}

/// TRICKY 9: hosts-file boilerplate is not a rule; section comments are comments.
#[test]
fn tricky_9_hosts() {
    let f = "hosts-127.0.0.1_adaway-sample.txt";
    assert_eq!(line(f, 22), "127.0.0.1  localhost");
    assert_eq!(line(f, 23), "::1  localhost");
    let p = auto(f);
    assert!(!has(&p, "localhost") && p.rejected.is_empty());
    assert!(has(&p, "analytics.163.com"));
    // Not rules, but not dropped in silence either (issue 13): skipped, by line, with why.
    let skipped: Vec<_> = p.skipped_lines.iter().map(|s| s.line).collect();
    assert_eq!(skipped, [22, 23]);
    assert!(p.skipped_lines[0].reason.contains("boilerplate"));
}

/// TRICKY 10: bare uBO domains, exceptions with restrictions, negated domain options.
#[test]
fn tricky_10_adblock() {
    let p = auto("adblock-ubo-bare-domains_coinblockerlists-list_browser_UBO.txt");
    assert_eq!(p.domains[0].name.as_str(), "0aqpqdju.me");
    // `$websocket` narrows the exception to one resource type: not a host-wide allow.
    skipped_alone(
        NOCOIN,
        347,
        "@@||api.nyda.pro^$websocket",
        FeedFormat::Adblock,
    );
    skipped_alone(
        NOCOIN,
        351,
        "@@||siteapi.idkfa.online/v2/units/socket/websocket?$websocket",
        FeedFormat::Adblock,
    );
    let p = parse(
        "@@||api.nyda.pro^\n",
        FeedFormat::Adblock,
        FeedKind::Domains,
    );
    assert_eq!(p.exceptions[0].name.as_str(), "api.nyda.pro");
    skipped_alone(
        ABUSE,
        8,
        "||edgeno.de^$script,third-party,domain=~edgemesh.com",
        FeedFormat::Adblock,
    );
    skipped_alone(
        ABUSE,
        9,
        "/edgemesh.*.js$script,domain=~edgemesh.com|~edgeno.de",
        FeedFormat::Adblock,
    );
    let p = auto("full/hoshsadiq-adblock-nocoin-list/nocoin-ublock.txt");
    assert_eq!((p.accepted(), p.skipped), (0, 8));
}

/// TRICKY 11: the other syntaxes.
#[test]
fn tricky_11_other_formats() {
    let p = auto("dnsmasq_blocklistproject-crypto.txt");
    assert_eq!(
        line("dnsmasq_blocklistproject-crypto.txt", 14),
        "server=/0slot.trade/"
    );
    assert_eq!(has_exact(&p, "0slot.trade"), Some(false));
    let p = parse(
        "server=/real.example/1.2.3.4\naddress=/x.example/0.0.0.0\n",
        FeedFormat::Dnsmasq,
        FeedKind::Domains,
    );
    assert_eq!((p.domains.len(), p.skipped), (1, 1));

    let p = auto("rpz_hagezi-native-roku-sample.txt");
    assert_eq!(p.domains.len(), 25);
    let p = parse(
        "$TTL 60\nonly.example CNAME .\n*.tree.example CNAME .\nnodata.example CNAME *.\npass.example CNAME rpz-passthru.\n",
        FeedFormat::Auto,
        FeedKind::Domains,
    );
    assert_eq!(has_exact(&p, "only.example"), Some(true));
    assert_eq!(has_exact(&p, "tree.example"), Some(false));
    assert_eq!(has_exact(&p, "nodata.example"), Some(true));
    assert_eq!(p.exceptions[0].name.as_str(), "pass.example");

    let p = auto("wildcard_hagezi-native-roku-sample.txt");
    assert_eq!(has_exact(&p, "ads.gcp.roku.com"), Some(false));
    let p = auto("ipset_firehol-coinbl_ips-sample.ipset");
    assert_eq!(p.ips.len(), 50);
}

/// TRICKY 11, Suricata/ET: anchored names only; `.x` + `endswith` = subtree, `bsize` = exact,
/// wire format decoded, partial names and `#alert` (disabled) ignored.
#[test]
fn tricky_11_suricata() {
    let f = "suricata-rules_et-coinminer-dns-tls.rules";
    assert!(line(f, 43).contains(r#"dns.query; content:".herominers.com"; nocase; endswith;"#));
    assert!(line(f, 44).contains(r#"content:"pool.hashvault.pro"; nocase; bsize:18;"#));
    assert!(line(f, 39).starts_with("#alert"));
    let p = auto(f);
    assert_eq!(has_exact(&p, "herominers.com"), Some(false));
    assert_eq!(has_exact(&p, "pool.hashvault.pro"), Some(true));
    assert_eq!(has_exact(&p, "xmr.2miners.com"), Some(true));
    assert_eq!(has_exact(&p, "crypto-loot.com"), Some(false));
    assert_eq!(
        has_exact(&p, "coin-hive.com"),
        Some(false),
        "tls.sni counts"
    );

    let full = auto("full/emerging-threats-open-2025-07-29/emerging-coinminer.rules");
    assert_eq!(
        (
            full.format,
            full.domains.len(),
            full.rejected.len(),
            full.skipped
        ),
        (Some(FeedFormat::Suricata), 6, 0, 19)
    );

    let text = concat!(
        "alert udp $HOME_NET any -> any 53 (msg:\"ET TROJAN x\"; content:\"|01 00 00 01 00 00 00 00 00 00|\"; depth:10; offset:2; content:\"|06|static|0a|reasedoper|02|pw|00|\"; fast_pattern; distance:0; sid:2024779;)\n",
        "alert dns $HOME_NET any -> any any (msg:\"m\"; dns.query; content:\"2iuu6o3zbmwynik2.tor2web.\"; sid:1;)\n",
        "alert dns $HOME_NET any -> any any (msg:\"m\"; dns.query; content:\"aptgetgxqs3secda\"; sid:2;)\n",
    );
    let p = parse(text, FeedFormat::Auto, FeedKind::Domains);
    assert_eq!(has_exact(&p, "static.reasedoper.pw"), Some(false));
    assert_eq!((p.domains.len(), p.skipped, p.rejected.len()), (1, 2, 0));
}

/// Kind `ips` refuses names; kind `allow` puts names in `domains`.
#[test]
fn kinds() {
    let p = parse("pool.example\n1.2.3.4\n", FeedFormat::Plain, FeedKind::Ips);
    rejected(&p, 1, "pool.example", "kind = \"ips\"");
    assert_eq!(p.ips.len(), 1);
    let p = parse(
        "pool.ntp.org\n=github.io\n",
        FeedFormat::Auto,
        FeedKind::Allow,
    );
    assert_eq!(has_exact(&p, "pool.ntp.org"), Some(false));
    assert_eq!(has_exact(&p, "github.io"), Some(true));
}
