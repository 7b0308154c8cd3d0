//! The one write path for a feed's content, and the writes built on it.
//!
//! [`Registry::write`] is what every content change goes through (upload, entry patch,
//! restore, subscription fetch): parse, refuse unusable content whole, keep the content in
//! force as a version if it is not one yet, write atomically, keep the new version, persist
//! the definitions, reload with the parse already made. `delete` is here too: it is the other
//! way a feed's file changes.

use super::definitions::{Defs, apply_settings};
use super::{FeedSettings, Registry, RegistryError, WriteReport, empty_report, lock};
use crate::loader::{Seed, feed_file};
use crate::versions::{self, NewVersion, write_atomic};
use poolguard_config::{FeedConfig, FeedFormat, FeedKind, Severity, valid_feed_name};

impl Registry {
    /// `PUT /feeds/{name}`: creates the feed or replaces its content (and the given settings).
    pub fn upload(
        &self,
        name: &str,
        content: &[u8],
        settings: FeedSettings,
        who: &str,
    ) -> Result<WriteReport, RegistryError> {
        if !valid_feed_name(name) {
            return Err(RegistryError::BadName(name.to_string()));
        }
        if content.is_empty() {
            return Err(RegistryError::Unusable {
                message: "the body is empty; to empty a feed, upload a comment line (`# emptied`)"
                    .into(),
                report: Box::new(empty_report(name)),
            });
        }
        let mut guard = lock(&self.defs);
        // Changed on a copy: a refused write (unusable content, the group's database not
        // taking it) leaves the definitions in force untouched.
        let mut defs = guard.clone();
        let existing = self
            .loader
            .feed_configs()
            .iter()
            .find(|f| f.name == name)
            .cloned();
        let mut feed = match existing {
            Some(f) if f.url.is_some() => {
                return Err(RegistryError::Conflict(format!(
                    "`{name}` is a subscription to {}; it is replaced by its next fetch (POST /api/v1/feeds/{name}/refresh)",
                    f.url.as_deref().unwrap_or_default()
                )));
            }
            Some(f) => f,
            None => FeedConfig {
                name: name.to_string(),
                path: Some(self.config.written_feed_path(name)),
                url: None,
                refresh: None,
                kind: FeedKind::default(),
                format: FeedFormat::Auto,
                action: None,
                category: "mining".into(),
                severity: Severity::default(),
                enabled: true,
                timeout: None,
                max_size_mb: None,
            },
        };
        apply_settings(&mut feed, &settings);
        self.remember(&mut defs, &feed, &settings);
        let report = self.write(&mut defs, &feed, content, who, "upload", true)?;
        *guard = defs;
        Ok(report)
    }

    /// The one write path: parse, refuse unusable content, share with the group (if `share`:
    /// a maintainer's write; not a subscription's fetch, which every node makes itself, nor
    /// another node's write being applied here), version, write, persist, reload.
    pub(super) fn write(
        &self,
        defs: &mut Defs,
        feed: &FeedConfig,
        content: &[u8],
        who: &str,
        action: &str,
        share: bool,
    ) -> Result<WriteReport, RegistryError> {
        let started = std::time::Instant::now();
        let text = String::from_utf8_lossy(content);
        let parsed = crate::parse(&text, feed.format, feed.kind);
        let parse_ms = started.elapsed().as_millis() as u64;
        let mut report = WriteReport {
            feed: feed.name.clone(),
            accepted: parsed.accepted(),
            rejected: parsed.rejected.clone(),
            skipped: parsed.skipped,
            lines: parsed.lines,
            skipped_lines: None,
            skipped_detail: parsed.skipped_lines.clone(),
            format: parsed.format,
            version: None,
            before_sha256: None,
        };
        if parsed.accepted() == 0 && (parsed.rejected.len() + parsed.skipped) > 0 {
            return Err(RegistryError::Unusable {
                message: format!(
                    "no usable entry ({} lines rejected, {} skipped); wrong `format` or `kind`? The previous version stays in force",
                    parsed.rejected.len(),
                    parsed.skipped
                ),
                report: Box::new(report),
            });
        }
        let path = feed_file(&self.config, feed)
            .ok_or_else(|| RegistryError::Conflict(format!("feed `{}` has no file", feed.name)))?;
        if share {
            self.share_content(defs, &feed.name, content, who, action)?;
        }
        let versions = self.versions(&feed.name);
        let before = match std::fs::read(&path) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => return Err(RegistryError::Io { path, source }),
        };
        if let Some(before) = &before {
            let sha = versions::sha256_hex(before);
            // Content written by hand or shipped with config.toml becomes a version before it
            // is replaced, so a rollback can reach it.
            if versions.latest()?.map(|v| v.sha256) != Some(sha.clone()) {
                let (entries, rejected) = self
                    .loader
                    .feeds()
                    .into_iter()
                    .find(|s| s.name == feed.name && s.sha256.as_deref() == Some(&sha))
                    .map_or((0, 0), |s| (s.entries, s.rejected));
                versions.record(
                    before,
                    NewVersion {
                        who: "file",
                        action: "existing",
                        entries,
                        rejected,
                    },
                )?;
            }
            report.before_sha256 = Some(sha);
        }
        let written = std::time::Instant::now();
        write_atomic(&path, content).map_err(|source| RegistryError::Io {
            path: path.clone(),
            source,
        })?;
        let write_ms = written.elapsed().as_millis() as u64;
        let version = versions.record(
            content,
            NewVersion {
                who,
                action,
                entries: parsed.accepted(),
                rejected: parsed.rejected.len(),
            },
        )?;
        self.save_defs(defs)?;
        self.set_feeds(defs);
        let sha256 = version.sha256.clone();
        report.version = Some(version);
        let reloaded = std::time::Instant::now();
        self.loader.reload_with(Some(Seed {
            name: feed.name.clone(),
            parsed,
            sha256,
        }));
        tracing::info!(
            feed = %feed.name,
            who,
            action,
            accepted = report.accepted,
            rejected = report.rejected.len(),
            parse_ms,
            write_ms,
            reload_ms = reloaded.elapsed().as_millis() as u64,
            total_ms = started.elapsed().as_millis() as u64,
            "feed written over the API"
        );
        Ok(report)
    }

    /// `DELETE /feeds/{name}`: removes an API-created feed (its history stays).
    pub fn delete(&self, name: &str, who: &str) -> Result<Option<String>, RegistryError> {
        let mut defs = lock(&self.defs);
        let feed = self.find(name)?;
        if self.in_config(name) {
            return Err(RegistryError::Conflict(format!(
                "`{name}` is defined in config.toml; disable it (POST /api/v1/feeds/{name}/disable) or remove it there"
            )));
        }
        let path = feed_file(&self.config, &feed);
        let before = path.as_ref().and_then(|p| std::fs::read(p).ok()).map(|b| {
            // Keep the last content reachable for a later re-creation and restore.
            let _ = self.versions(name).record(
                &b,
                NewVersion {
                    who,
                    action: "delete",
                    entries: 0,
                    rejected: 0,
                },
            );
            versions::sha256_hex(&b)
        });
        let mut after = defs.clone();
        after.remove_feed(name);
        self.share_defs(&after, who, "delete")?;
        *defs = after;
        self.save_defs(&defs)?;
        if let Some(p) = &path
            && let Err(e) = std::fs::remove_file(p)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            return Err(RegistryError::Io {
                path: p.clone(),
                source: e,
            });
        }
        self.set_feeds(&defs);
        self.loader.reload();
        tracing::info!(feed = %name, who, "feed deleted over the API");
        Ok(before)
    }

    /// Installs content fetched for subscription `name` (the cache file, a version, a reload).
    pub fn install_fetched(
        &self,
        name: &str,
        content: &[u8],
    ) -> Result<WriteReport, RegistryError> {
        let mut defs = lock(&self.defs);
        let feed = self.find(name)?;
        self.write(&mut defs, &feed, content, "subscription", "fetch", false)
    }
}
