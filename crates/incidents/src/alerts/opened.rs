//! What `incident.opened` tells a person: enough to act without opening anything else.
//!
//! The webhook JSON's `detail` and every people channel (DingTalk, WeCom) carry the same
//! fields, so the person on duty learns the incident number and link, the client and whose
//! machine it is, the pool and feed, how many hits, and by when it must be identified and
//! reported.

use serde_json::{Value, json};

use poolguard_clients::Identity;

/// The facts of a newly opened incident, gathered by the tracker when it opens one.
#[derive(Debug, Clone)]
pub struct Opened<'a> {
    pub id: i64,
    /// `[alerts] console_url`, if set.
    pub console_url: Option<&'a str>,
    pub client: &'a str,
    pub identity: Option<&'a Identity>,
    /// The first name that hit (the pool).
    pub pool: &'a str,
    pub feed: Option<&'a str>,
    /// Hits that opened it (the batch's hits of this client).
    pub hits: i64,
    /// Its first hit; deadlines count from here.
    pub opened_ms: i64,
    pub identify_due_ms: i64,
    pub report_due_ms: i64,
}

/// The link people follow: the incident's written report on the console.
pub fn incident_link(console_url: Option<&str>, id: i64) -> Option<String> {
    console_url.map(|base| {
        format!(
            "{}/api/v1/incidents/{id}/report",
            base.trim_end_matches('/')
        )
    })
}

impl Opened<'_> {
    /// The `detail` object of the `incident.opened` event.
    pub fn detail(&self) -> Value {
        let id = self.identity;
        let field = |f: fn(&Identity) -> &Option<String>| id.and_then(|i| f(i).clone());
        json!({
            "number": self.id,
            "link": incident_link(self.console_url, self.id),
            "client": self.client,
            "identity": {
                "asset": field(|i| &i.asset),
                "mac": field(|i| &i.mac),
                "owner": field(|i| &i.owner),
                "department": field(|i| &i.department),
                "location": field(|i| &i.location),
                "contact": field(|i| &i.contact),
            },
            "pool": self.pool,
            "feed": self.feed,
            "hits": self.hits,
            "opened": poolguard_model::rfc3339(self.opened_ms),
            "identify_by": poolguard_model::rfc3339(self.identify_due_ms),
            "report_by": poolguard_model::rfc3339(self.report_due_ms),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detail_carries_what_a_person_needs() {
        let ident = Identity {
            asset: Some("LAB-7".into()),
            department: Some("Physics".into()),
            owner: Some("Li Wei".into()),
            ..Default::default()
        };
        let d = Opened {
            id: 42,
            console_url: Some("https://pg.campus.edu/"),
            client: "10.1.2.3",
            identity: Some(&ident),
            pool: "xmr.pool.minergate.com",
            feed: Some("coinblocker"),
            hits: 3,
            opened_ms: 0,
            identify_due_ms: 48 * 3_600_000,
            report_due_ms: 72 * 3_600_000,
        }
        .detail();
        assert_eq!(d["number"], 42);
        assert_eq!(
            d["link"],
            "https://pg.campus.edu/api/v1/incidents/42/report"
        );
        assert_eq!(d["identity"]["department"], "Physics");
        assert_eq!(d["identity"]["mac"], Value::Null);
        assert_eq!(d["pool"], "xmr.pool.minergate.com");
        assert_eq!(d["hits"], 3);
        assert!(
            d["report_by"]
                .as_str()
                .is_some_and(|s| s.starts_with("1970-01-04"))
        );
    }
}
