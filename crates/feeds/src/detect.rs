//! Sniffing a feed's syntax from its first meaningful lines, for `format = "auto"`.
//!
//! Unambiguous headers decide at once (`[Adblock Plus 2.0]`, `$TTL`/`$ORIGIN`). Otherwise each
//! of the first [`SAMPLE`] rule lines votes for the syntax it looks like and the majority wins;
//! a few odd lines (a bare name in a hosts file) do not flip a file, and every parser tolerates
//! the odd line of a neighbouring syntax. Plain is the fallback: it is what a hand-written list
//! is. The config's `format` overrides all of this when the guess is wrong.

use std::net::IpAddr;

use poolguard_model::FeedFormat;

/// Rule lines looked at. Real files are uniform, so this is plenty and keeps detection O(1).
pub const SAMPLE: usize = 200;

/// Guesses the format of feed text.
pub fn detect(text: &str) -> FeedFormat {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut votes = Votes::default();
    let mut bang_comments = 0usize;
    let mut seen = 0usize;
    for line in text.lines() {
        let l = line.trim();
        if l.is_empty() {
            continue;
        }
        if ["[Adblock", "[uBlock", "[AdGuard"].iter().any(|h| {
            l.as_bytes()
                .get(..h.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(h.as_bytes()))
        }) {
            return FeedFormat::Adblock;
        }
        if l.starts_with("$TTL") || l.starts_with("$ORIGIN") {
            return FeedFormat::Rpz;
        }
        if l.starts_with('!') {
            bang_comments += 1;
            continue;
        }
        if l.starts_with("##") {
            votes.adblock += 1;
        } else if l.starts_with('#') || l.starts_with(';') {
            continue;
        } else {
            vote(l, &mut votes);
        }
        seen += 1;
        if seen >= SAMPLE {
            break;
        }
    }
    votes.pick(bang_comments > 0)
}

#[derive(Default)]
struct Votes {
    plain: usize,
    hosts: usize,
    adblock: usize,
    dnsmasq: usize,
    rpz: usize,
    wildcard: usize,
    ip: usize,
    url: usize,
    suricata: usize,
}

fn vote(l: &str, v: &mut Votes) {
    // Trailing comments must not turn `10.0.0.0/8 # campus` into a two-field line.
    let core = l.split(['#', ';']).next().unwrap_or("");
    let mut fields = core.split_ascii_whitespace();
    let first = fields.next().unwrap_or("");
    let second = fields.next();
    let third = fields.next();
    if ["alert ", "drop ", "reject ", "pass "]
        .iter()
        .any(|a| l.starts_with(a))
        && l.contains("(msg:")
    {
        v.suricata += 1;
    } else if ["address=/", "server=/", "local=/"]
        .iter()
        .any(|p| l.starts_with(p))
    {
        v.dnsmasq += 1;
    } else if l.contains("://") {
        v.url += 1;
    } else if l.starts_with('|') || l.starts_with("@@") || l.contains("##") || l.contains('^') {
        v.adblock += 1;
    } else if third.is_some()
        && [second, third].iter().flatten().any(|t| {
            ["CNAME", "SOA", "NS"]
                .iter()
                .any(|r| t.eq_ignore_ascii_case(r))
        })
    {
        v.rpz += 1;
    } else if first.parse::<IpAddr>().is_ok() && second.is_some() {
        v.hosts += 1;
    } else if second.is_none()
        && (first.parse::<IpAddr>().is_ok() || first.parse::<ipnet::IpNet>().is_ok())
    {
        v.ip += 1;
    } else if first.starts_with("*.") {
        v.wildcard += 1;
    } else {
        v.plain += 1;
    }
}

impl Votes {
    fn pick(&self, bang_comments: bool) -> FeedFormat {
        let ranked = [
            (self.suricata, FeedFormat::Suricata),
            (self.dnsmasq, FeedFormat::Dnsmasq),
            (self.rpz, FeedFormat::Rpz),
            (self.url, FeedFormat::Url),
            (self.adblock, FeedFormat::Adblock),
            (self.hosts, FeedFormat::Hosts),
            (self.wildcard, FeedFormat::Wildcard),
            (self.ip, FeedFormat::Ip),
            (self.plain, FeedFormat::Plain),
        ];
        let mut best = (0, FeedFormat::Plain);
        for (n, f) in ranked {
            if n > best.0 {
                best = (n, f);
            }
        }
        // Names and addresses mixed: plain keeps both.
        if best.1 == FeedFormat::Ip && self.plain > 0 {
            return FeedFormat::Plain;
        }
        // `!` comments are adblock's; a uBO list of bare names (`0aqpqdju.me`) is still one.
        if best.1 == FeedFormat::Plain && bang_comments {
            return FeedFormat::Adblock;
        }
        best.1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_each_syntax() {
        let cases = [
            ("a.example\nb.example\n", FeedFormat::Plain),
            ("# h\n0.0.0.0 a.example\n", FeedFormat::Hosts),
            ("[Adblock Plus 2.0]\n", FeedFormat::Adblock),
            ("! t\n||a.example^\n", FeedFormat::Adblock),
            ("! t\na.example\n", FeedFormat::Adblock),
            ("server=/a.example/\n", FeedFormat::Dnsmasq),
            ("$TTL 1\n", FeedFormat::Rpz),
            ("a.example CNAME .\n", FeedFormat::Rpz),
            ("*.a.example\n", FeedFormat::Wildcard),
            ("1.2.3.4\n10.0.0.0/8\n", FeedFormat::Ip),
            ("1.2.3.4\na.example\n", FeedFormat::Plain),
            ("*://*.a.example/*\n", FeedFormat::Url),
            (
                "alert dns any any -> any any (msg:\"x\"; sid:1;)\n",
                FeedFormat::Suricata,
            ),
            ("", FeedFormat::Plain),
        ];
        for (text, want) in cases {
            assert_eq!(detect(text), want, "{text:?}");
        }
    }
}
