//! Checks of a parsed config that serde cannot express; each error names the key to fix.

use std::path::Path;

use crate::{Config, ConfigError, MIN_SPOOL_BYTES, valid_feed_name};

impl Config {
    /// Checks what serde cannot: non-empty lists, existing files, unique feed names, sane
    /// bounds; the first problem is returned with its key.
    pub(crate) fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: String, reason: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            reason,
        };
        let logo = self.reports.logo_file.as_deref().map(|p| self.resolve(p));
        if let Err((key, reason)) = self.reports.validate(logo.as_deref()) {
            return Err(invalid(key, reason));
        }
        if let Err((key, reason)) = self.console.validate() {
            return Err(invalid(key, reason));
        }
        if self.dns.listen.is_empty() {
            return Err(invalid(
                "dns.listen".into(),
                "needs at least one address, e.g. [\"127.0.0.1:5353\"]".into(),
            ));
        }
        if self.dns.edns_udp_payload < 512 {
            return Err(invalid(
                "dns.edns_udp_payload".into(),
                "must be at least 512 (RFC 6891); 1232 is the usual choice".into(),
            ));
        }
        if self.dns.tcp_idle_timeout_ms == 0 {
            return Err(invalid(
                "dns.tcp_idle_timeout_ms".into(),
                "must be above 0, or idle TCP clients are never disconnected".into(),
            ));
        }
        if self.dns.max_tcp_connections == 0
            || self.dns.max_tcp_pipeline == 0
            || self.dns.max_udp_inflight == 0
        {
            return Err(invalid(
                "dns.max_tcp_connections / dns.max_tcp_pipeline / dns.max_udp_inflight".into(),
                "must be above 0".into(),
            ));
        }
        if self.upstream.timeout_ms == 0 {
            return Err(invalid(
                "upstream.timeout_ms".into(),
                "must be above 0".into(),
            ));
        }
        for (i, c) in self.upstream.conditional.iter().enumerate() {
            if poolguard_model::domain::DomainName::parse(&c.domain).is_err() {
                return Err(invalid(
                    format!("upstream.conditional[{i}].domain"),
                    format!("`{}` is not a domain name", c.domain),
                ));
            }
            if c.servers.is_empty() {
                return Err(invalid(
                    format!("upstream.conditional[{i}].servers"),
                    "needs at least one ip:port".into(),
                ));
            }
        }
        if self.blocking.default_action == crate::Action::Log {
            return Err(invalid(
                "blocking.default_action".into(),
                "`log` blocks nothing; give it to the feeds to watch (`action = \"log\"`)".into(),
            ));
        }
        if self.pools.enabled {
            if self.pools.resolve_per_minute == 0 {
                return Err(invalid(
                    "pools.resolve_per_minute".into(),
                    "must be at least 1 (set `enabled = false` to resolve nothing)".into(),
                ));
            }
            if self.pools.min_interval.is_zero()
                || self.pools.min_interval > self.pools.max_interval
            {
                return Err(invalid(
                    "pools.min_interval".into(),
                    "must be above zero and at most `max_interval`".into(),
                ));
            }
            if self.pools.max_age < self.pools.max_interval {
                return Err(invalid(
                    "pools.max_age".into(),
                    "must be at least `max_interval`, or addresses of names still resolved would age out between two resolutions".into(),
                ));
            }
        }
        let mut names = std::collections::HashSet::new();
        for (i, f) in self.feeds.iter().enumerate() {
            let key = |k: &str| format!("feeds[{i}] ({}).{k}", f.name);
            if !valid_feed_name(&f.name) {
                return Err(invalid(
                    format!("feeds[{i}].name"),
                    format!(
                        "`{}` must be 1-64 characters of letters, digits, '_', '-' or '.', not starting with '.'",
                        f.name
                    ),
                ));
            }
            if !names.insert(f.name.as_str()) {
                return Err(invalid(key("name"), "is used by another feed".into()));
            }
            if f.action == Some(crate::Action::Log) && f.kind != crate::FeedKind::Domains {
                return Err(invalid(
                    key("action"),
                    "`log` watches names: only a feed of kind `domains` can have it".into(),
                ));
            }
            match (&f.path, &f.url) {
                (None, None) => {
                    return Err(invalid(key("path"), "a feed needs `path` or `url`".into()));
                }
                (Some(p), None) if f.enabled && !self.resolve(p).is_file() => {
                    return Err(invalid(
                        key("path"),
                        format!("{} does not exist", self.resolve(p).display()),
                    ));
                }
                _ => {}
            }
            if let Some(u) = &f.url
                && !(u.starts_with("http://") || u.starts_with("https://"))
            {
                return Err(invalid(
                    key("url"),
                    format!("`{u}` must be an http:// or https:// URL"),
                ));
            }
            if f.url.is_some() && f.refresh.is_none() {
                return Err(invalid(
                    key("refresh"),
                    "a subscription needs a refresh interval, e.g. \"6h\"".into(),
                ));
            }
        }
        for (i, z) in self.zones.iter().enumerate() {
            if poolguard_model::domain::DomainName::parse(&z.name).is_err() {
                return Err(invalid(
                    format!("zones[{i}].name"),
                    format!("`{}` is not a domain name", z.name),
                ));
            }
            if !self.resolve(&z.file).is_file() {
                return Err(invalid(
                    format!("zones[{i}].file"),
                    format!("{} does not exist", self.resolve(&z.file).display()),
                ));
            }
        }
        if let Some(l) = &self.clients.ledger
            && !self.resolve(l).is_file()
        {
            return Err(invalid(
                "clients.ledger".into(),
                format!("{} does not exist", self.resolve(l).display()),
            ));
        }
        for (i, t) in self.api.tokens.iter().enumerate() {
            if t.sha256.len() != 64 || !t.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(invalid(
                    format!("api.tokens[{i}].sha256"),
                    "must be 64 hex digits (run `poolguard token` to make one)".into(),
                ));
            }
        }
        crate::encrypted::validate(self.dns.tls.as_ref(), self.dns.https.as_ref(), &|p| {
            self.resolve(p)
        })
        .map_err(|(key, reason)| invalid(key, reason))?;
        crate::incidents::validate(self).map_err(|(key, reason)| invalid(key, reason))?;
        crate::export::validate(&self.export, &|p| self.resolve(p))
            .map_err(|(key, reason)| invalid(key, reason))?;
        crate::store::validate(&self.store, &|p| self.resolve(p))
            .map_err(|(key, reason)| invalid(key, reason))?;
        crate::identity::validate(&self.identity, &|p| self.resolve(p))
            .map_err(|(key, reason)| invalid(key, reason))?;
        if self.store.batch_size == 0 || self.store.queue_capacity == 0 {
            return Err(invalid(
                "store.batch_size / store.queue_capacity".into(),
                "must be above 0".into(),
            ));
        }
        if self.store.spool_max_bytes != 0 && self.store.spool_max_bytes < MIN_SPOOL_BYTES {
            return Err(invalid(
                "store.spool_max_bytes".into(),
                format!("must be 0 (no spool file) or at least {MIN_SPOOL_BYTES} bytes"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::{Config, ConfigError};

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, Path::new("t.toml"), Path::new("."))
    }

    #[test]
    fn spool_bound_is_validated() {
        let default = parse("").expect("defaults");
        assert_eq!(default.store.spool_max_bytes, 1024 * 1024 * 1024);
        let off = parse("[store]\nspool_max_bytes = 0\n").expect("0 turns the file off");
        assert_eq!(off.store.spool_max_bytes, 0);
        let err = parse("[store]\nspool_max_bytes = 100\n").expect_err("too small");
        assert!(err.to_string().contains("store.spool_max_bytes"), "{err}");
    }

    #[test]
    fn log_and_pools_are_validated_naming_the_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("f.txt"), "10.0.0.0/8\n").expect("write");
        let parse_in = |text: &str| Config::from_toml(text, Path::new("t.toml"), dir.path());
        let off = parse_in("").expect("defaults");
        assert!(!off.pools.enabled, "absent [pools] resolves nothing");
        parse_in("[pools]\nenabled = true\nexclude = [\"104.16.0.0/13\"]\nmax_age = \"2d\"\n")
            .expect("valid");
        for (text, key) in [
            (
                "[blocking]\ndefault_action = \"log\"\n",
                "blocking.default_action",
            ),
            (
                "[[feeds]]\nname = \"x\"\npath = \"f.txt\"\nkind = \"ips\"\naction = \"log\"\n",
                "feeds[0] (x).action",
            ),
            (
                "[pools]\nenabled = true\nresolve_per_minute = 0\n",
                "pools.resolve_per_minute",
            ),
            (
                "[pools]\nenabled = true\nmin_interval = \"2d\"\n",
                "pools.min_interval",
            ),
            (
                "[pools]\nenabled = true\nmax_age = \"1h\"\n",
                "pools.max_age",
            ),
        ] {
            let err = parse_in(text).expect_err(text);
            assert!(err.to_string().contains(key), "{text}: {err}");
        }
    }

    #[test]
    fn encrypted_listeners_are_validated_naming_the_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        for f in ["c.pem", "k.pem"] {
            std::fs::write(dir.path().join(f), "x").expect("write");
        }
        let parse_in = |text: &str| Config::from_toml(text, Path::new("t.toml"), dir.path());
        let ok = parse_in(
            "[dns.tls]\nname = \"dns.example\"\ncert_file = \"c.pem\"\nkey_file = \"k.pem\"\n\
             [dns.https]\nname = \"dns.example\"\ncert_file = \"c.pem\"\nkey_file = \"k.pem\"\n",
        )
        .expect("valid");
        let https = ok.dns.https.expect("on");
        assert_eq!(https.path, "/dns-query");
        assert_eq!(ok.dns.tls.expect("on").listen[0].port(), 853);
        assert!(ok.dns.canary.use_application_dns && ok.dns.canary.icloud_private_relay);
        let files = "cert_file = \"c.pem\"\nkey_file = \"k.pem\"\n";
        for (text, key) in [
            (format!("[dns.tls]\n{files}"), "dns.tls.name"),
            (
                "[dns.tls]\nname = \"d.example\"\n".to_string(),
                "dns.tls.cert_file",
            ),
            (
                "[dns.tls]\nname = \"d.example\"\ncert_file = \"c.pem\"\nkey_file = \"gone.pem\"\n"
                    .to_string(),
                "dns.tls.key_file",
            ),
            (
                format!("[dns.tls]\nname = \"d.example\"\nlisten = []\n{files}"),
                "dns.tls.listen",
            ),
            (
                format!("[dns.https]\nname = \"d.example\"\npath = \"dns-query\"\n{files}"),
                "dns.https.path",
            ),
            (
                format!("[dns.https]\nname = \"d.example\"\nmax_body_bytes = 1\n{files}"),
                "dns.https.max_body_bytes",
            ),
            (
                format!("[dns.https]\nname = \"d.example\"\nidle_timeout_ms = 0\n{files}"),
                "dns.https.idle_timeout_ms",
            ),
            (
                format!(
                    "[dns.tls]\nname = \"d.example\"\nlisten = [\"127.0.0.1:8853\"]\n{files}\
                     [dns.https]\nname = \"d.example\"\nlisten = [\"127.0.0.1:8853\"]\n{files}"
                ),
                "dns.https.listen",
            ),
        ] {
            let err = parse_in(&text).expect_err(&text);
            assert!(err.to_string().contains(key), "{key}: {err}");
        }
    }

    #[test]
    fn dnstap_exports_are_validated_naming_the_key() {
        let ok = parse("[[export.dnstap]]\nunix = \"/run/dnstap.sock\"\nselect = \"hits\"\n")
            .expect("valid");
        assert_eq!(ok.export.dnstap.len(), 1);
        assert_eq!(ok.export.dnstap[0].queue_size, 8192);
        for (text, key) in [
            ("[[export.dnstap]]\n", "export.dnstap[0].unix"),
            (
                "[[export.dnstap]]\nunix = \"/a\"\ntcp = \"127.0.0.1:6000\"\n",
                "export.dnstap[0].tcp",
            ),
            (
                "[[export.dnstap]]\ntcp = \"127.0.0.1:6000\"\nqueue_size = 0\n",
                "export.dnstap[0].queue_size",
            ),
            (
                "[[export.dnstap]]\ntcp = \"127.0.0.1:6000\"\nreconnect_min_ms = 900\nreconnect_max_ms = 10\n",
                "export.dnstap[0].reconnect_max_ms",
            ),
            (
                "[[export.dnstap]]\ntcp = \"127.0.0.1:6000\"\nmessages = \"all\"\n",
                "export.dnstap[0].messages",
            ),
            (
                "[[export.dnstap]]\ntcp = \"127.0.0.1:6000\"\nidentity = \"\"\n",
                "export.dnstap[0].identity",
            ),
            ("[[export.syslog]]\n", "export.syslog[0].tcp"),
            (
                "[[export.syslog]]\nudp = \"127.0.0.1:514\"\nfacility = \"local9\"\n",
                "export.syslog[0].facility",
            ),
            (
                "[[export.syslog]]\nudp = \"127.0.0.1:514\"\ntcp = \"127.0.0.1:514\"\n",
                "export.syslog[0].udp",
            ),
            (
                "[[export.syslog]]\ntcp = \"127.0.0.1:6514\"\ntls = true\n",
                "export.syslog[0].ca_file",
            ),
            (
                "[[export.syslog]]\ntcp = \"127.0.0.1:6514\"\ntls = true\nca_file = \"missing-ca.pem\"\n",
                "export.syslog[0].ca_file",
            ),
            (
                "[[export.syslog]]\nudp = \"127.0.0.1:514\"\ntls = true\nca_file = \"x.pem\"\n",
                "export.syslog[0].tls",
            ),
            (
                "[[export.syslog]]\nudp = \"127.0.0.1:514\"\nmax_per_second = 0\n",
                "export.syslog[0].max_per_second",
            ),
            (
                "[[export.syslog]]\nudp = \"127.0.0.1:514\"\nevents = [\"dns\"]\n",
                "export.syslog[0].events",
            ),
            (
                "[[export.dnstap]]\ntcp = \"127.0.0.1:6000\"\ninclude = [\"owner\"]\n",
                "export.dnstap[0].include",
            ),
            (
                "[[export.dnstap]]\ntcp = \"127.0.0.1:6000\"\ncategories = [\"mining\", \" \"]\n",
                "export.dnstap[0].categories[1]",
            ),
            (
                "[[export.syslog]]\nudp = \"127.0.0.1:514\"\nfeeds = [\"\"]\n",
                "export.syslog[0].feeds[0]",
            ),
            (
                "[[export.syslog]]\nudp = \"127.0.0.1:514\"\ncategories = [\"\"]\n",
                "export.syslog[0].categories[0]",
            ),
        ] {
            let err = parse(text).expect_err(text);
            assert!(err.to_string().contains(key), "{key}: {err}");
        }
    }
}
