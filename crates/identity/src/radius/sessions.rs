//! Accounting sessions → [`Event`]s: a Start (or an Interim-Update for a session begun before
//! poolguard started) opens a holding of the framed address by the user and the calling
//! station; a Stop ends it; Accounting-On/Off (the NAS rebooted) end every session of that NAS.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use super::packet::{Accounting, Status};
use crate::interval::{Event, Interval, OPEN, Source, normalise_mac};

/// One open session: what its Stop must end.
#[derive(Debug, Clone)]
struct Open {
    addrs: Vec<IpAddr>,
    mac: Option<Arc<str>>,
}

/// Open sessions by (NAS address, Acct-Session-Id).
#[derive(Debug, Default)]
pub struct Sessions {
    open: HashMap<(IpAddr, String), Open>,
}

impl Sessions {
    /// Sessions open now.
    pub fn len(&self) -> usize {
        self.open.len()
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// The evidence in one accepted request from `nas`, received at `now_ms`.
    pub fn handle(&mut self, nas: IpAddr, acct: &Accounting, now_ms: i64) -> Vec<Event> {
        // When the NAS says when it happened, that time; else arrival minus its delay.
        let at_ms = acct.event_time.map_or_else(
            || now_ms.saturating_sub(i64::from(acct.delay_secs) * 1000),
            |t| i64::from(t) * 1000,
        );
        let addrs: Vec<IpAddr> = [acct.framed_ip, acct.framed_ipv6]
            .into_iter()
            .flatten()
            .collect();
        let mac = acct.calling_station_id.as_deref().and_then(normalise_mac);
        let key = acct
            .session_id
            .clone()
            .or_else(|| addrs.first().map(IpAddr::to_string))
            .map(|s| (nas, s));
        let ended = |addrs: &[IpAddr], mac: &Option<Arc<str>>| -> Vec<Event> {
            addrs
                .iter()
                .map(|&addr| Event::Ended {
                    addr,
                    at_ms,
                    mac: mac.clone(),
                    source: Source::Radius,
                })
                .collect()
        };
        match acct.status {
            Some(Status::Start | Status::Interim) => {
                if let Some(key) = key {
                    self.open.insert(
                        key,
                        Open {
                            addrs: addrs.clone(),
                            mac: mac.clone(),
                        },
                    );
                }
                let account: Option<Arc<str>> = acct.user_name.as_deref().map(Arc::from);
                addrs
                    .into_iter()
                    .map(|addr| {
                        Event::Held(Interval {
                            addr,
                            start_ms: at_ms,
                            end_ms: OPEN,
                            mac: mac.clone(),
                            account: account.clone(),
                            hostname: None,
                            source: Source::Radius,
                        })
                    })
                    .collect()
            }
            Some(Status::Stop) => {
                let open = key.and_then(|k| self.open.remove(&k));
                let addrs = if addrs.is_empty() {
                    open.as_ref().map(|o| o.addrs.clone()).unwrap_or_default()
                } else {
                    addrs
                };
                let mac = mac.or_else(|| open.and_then(|o| o.mac));
                ended(&addrs, &mac)
            }
            Some(Status::AccountingOn | Status::AccountingOff) => {
                let mut out = Vec::new();
                self.open.retain(|(from, _), open| {
                    if *from == nas {
                        out.extend(ended(&open.addrs, &open.mac));
                        false
                    } else {
                        true
                    }
                });
                out
            }
            Some(Status::Other(_)) | None => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::IdentityIndex;

    fn acct(status: Status, session: &str, ip: Option<&str>) -> Accounting {
        Accounting {
            identifier: 1,
            authenticator: [0; 16],
            status: Some(status),
            user_name: Some("alice".into()),
            calling_station_id: Some("00-1A-2B-3C-4D-5E".into()),
            session_id: Some(session.into()),
            framed_ip: ip.map(|i| i.parse().unwrap()),
            framed_ipv6: None,
            delay_secs: 2,
            event_time: None,
        }
    }

    #[test]
    fn start_interim_stop_and_a_nas_reboot() {
        let nas: IpAddr = "127.0.0.1".parse().unwrap();
        let ip: IpAddr = "10.213.3.45".parse().unwrap();
        let index = IdentityIndex::default();
        let mut s = Sessions::default();
        index.apply_all(s.handle(nas, &acct(Status::Start, "a", Some("10.213.3.45")), 10_000));
        index.apply_all(s.handle(
            nas,
            &acct(Status::Interim, "a", Some("10.213.3.45")),
            20_000,
        ));
        let h = index
            .lookup(ip, 9_000)
            .expect("held from Start minus the delay");
        assert_eq!(h.account.as_deref(), Some("alice"));
        assert_eq!(h.mac.as_deref(), Some("00:1a:2b:3c:4d:5e"));
        assert_eq!(index.stats().intervals, 1);
        // The Stop names no address: the session's is used.
        index.apply_all(s.handle(nas, &acct(Status::Stop, "a", None), 30_000));
        assert!(index.lookup(ip, 28_000).is_none());
        assert!(index.lookup(ip, 27_000).is_some());
        assert!(s.is_empty());

        index.apply_all(s.handle(nas, &acct(Status::Start, "b", Some("10.213.3.46")), 40_000));
        index.apply_all(s.handle(nas, &acct(Status::AccountingOn, "", None), 50_000));
        assert!(
            index
                .lookup("10.213.3.46".parse().unwrap(), 49_000)
                .is_none()
        );
        assert_eq!(s.len(), 0);
    }
}
