//! `GET /api/v1/queries?mac=|account=|asset=|owner=`: every query a device, a login or a
//! person's machines sent. The query log stores no identity (it is the short, cheap log of
//! every query; hits carry the snapshot), so the question is answered through who held which
//! address when: the identity index's holdings of the MAC or account, and for `asset` and
//! `owner` the ledger's device and login rows (their holdings) and network rows (fixed
//! addresses, held all the time). Each is an address and a time span; the page is the merge,
//! newest first, of the query log's page for each span, so a DHCP client's queries are found
//! at every address it had and never at an address after it left.

use ipnet::IpNet;

use poolguard_clients::Ledger;
use poolguard_identity::{IdentityIndex, Interval};
use poolguard_model::text::same_text;
use poolguard_store::{Cursor, EvidenceFilter, StoreError, StoredRow, Table, cursor};

use super::ApiState;

/// Address spans searched at most, the most recent first: a page is one store list per span.
pub(crate) const SPANS: usize = 200;

/// One address or ledger network over the time a device or login held it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Span {
    pub net: IpNet,
    /// Inclusive, ms; None = from the beginning.
    pub since_ms: Option<i64>,
    /// Exclusive, ms; None = still held.
    pub until_ms: Option<i64>,
}

/// Whether `f` asks who sent the queries, which only spans can answer on the query log.
pub(crate) fn asks_who(f: &EvidenceFilter) -> bool {
    f.mac.is_some() || f.account.is_some() || f.asset.is_some() || f.owner.is_some()
}

/// The spans of the devices and logins `f` names, within its `client` and time bounds, the
/// most recent first; true when more than [`SPANS`] were found (the rest are not searched).
pub(crate) fn spans(
    ledger: &Ledger,
    index: Option<&IdentityIndex>,
    f: &EvidenceFilter,
) -> (Vec<Span>, bool) {
    let (mac, account) = (f.mac.as_deref(), f.account.as_deref());
    // Explicit `mac` and `account` both narrow: a holding must match each one given.
    let fits = |m: Option<&str>, a: Option<&str>| {
        mac.is_none_or(|want| m == Some(want))
            && account.is_none_or(|want| a.is_some_and(|have| same_text(have, want)))
    };
    let mut held: Vec<Interval> = Vec::new();
    let mut nets: Vec<IpNet> = Vec::new();
    let holdings = |m: Option<&str>, a: Option<&str>| {
        index
            .map(|i| i.holdings_of(m, a, SPANS + 1))
            .unwrap_or_default()
    };
    if f.asset.is_some() || f.owner.is_some() {
        let (asset, owner) = (f.asset.as_deref(), f.owner.as_deref());
        for row in ledger.devices_of(asset, owner) {
            if fits(row.mac.as_deref(), row.account.as_deref()) {
                held.extend(holdings(row.mac.as_deref(), row.account.as_deref()));
            }
        }
        if mac.is_none() && account.is_none() {
            nets.extend(ledger.networks_of(asset, owner).into_iter().map(|(n, _)| n));
        }
    } else {
        held = holdings(mac, account);
    }
    held.retain(|h| fits(h.mac.as_deref(), h.account.as_deref()));
    let mut out: Vec<Span> = held
        .iter()
        .map(|h| Span {
            net: IpNet::from(h.addr),
            since_ms: Some(h.start_ms),
            until_ms: (h.end_ms != poolguard_identity::OPEN).then_some(h.end_ms),
        })
        .chain(nets.into_iter().map(|net| Span {
            net,
            since_ms: None,
            until_ms: None,
        }))
        .filter_map(|s| within(s, f))
        .collect();
    out = merged(out);
    // The most recent first: still held, then by end.
    out.sort_by_key(|s| std::cmp::Reverse(s.until_ms.unwrap_or(i64::MAX)));
    let more = out.len() > SPANS;
    out.truncate(SPANS);
    (out, more)
}

/// `s` cut to `f`'s client network and time bounds; None when nothing is left.
fn within(mut s: Span, f: &EvidenceFilter) -> Option<Span> {
    match f.client {
        Some(c) if c.contains(&s.net) => {}
        Some(c) if s.net.contains(&c) => s.net = c,
        Some(_) => return None,
        None => {}
    }
    s.since_ms = s.since_ms.max(f.since_ms);
    s.until_ms = match (s.until_ms, f.until_ms) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    match (s.since_ms, s.until_ms) {
        (Some(a), Some(b)) if a >= b => None,
        _ => Some(s),
    }
}

/// Overlapping or touching spans of one network joined, so no row is listed twice.
fn merged(mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort_by_key(|s| (s.net, s.since_ms.unwrap_or(i64::MIN)));
    let mut out: Vec<Span> = Vec::with_capacity(spans.len());
    for s in spans {
        if let Some(last) = out.last_mut()
            && last.net == s.net
            && last
                .until_ms
                .is_none_or(|u| s.since_ms.unwrap_or(i64::MIN) <= u)
        {
            last.until_ms = match (last.until_ms, s.until_ms) {
                (Some(a), Some(b)) => Some(a.max(b)),
                _ => None,
            };
            continue;
        }
        out.push(s);
    }
    out
}

/// One page of the query log over `spans`, newest first, continuing below `f.cursor`, and
/// the cursor of the next page.
pub(crate) async fn list(
    state: &ApiState,
    spans: &[Span],
    f: &EvidenceFilter,
) -> Result<(Vec<StoredRow>, Option<Cursor>), StoreError> {
    let mut rows: Vec<StoredRow> = Vec::new();
    let mut more = false;
    for s in spans {
        let sub = EvidenceFilter {
            client: Some(s.net),
            since_ms: s.since_ms,
            until_ms: s.until_ms,
            mac: None,
            account: None,
            asset: None,
            owner: None,
            ..f.clone()
        };
        let page = state.store.list_evidence(Table::Queries, sub).await?;
        more |= page.next.is_some();
        rows.extend(page.items);
    }
    rows.sort_by_key(|r| std::cmp::Reverse((r.time_ms, r.id)));
    rows.dedup_by_key(|r| r.id);
    more |= rows.len() > f.limit;
    rows.truncate(f.limit);
    // The query log is each node's SQLite store, whose cursor is the `(time, id)` key.
    let next = more
        .then(|| rows.last().map(|r| cursor::of_key((r.time_ms, r.id))))
        .flatten();
    Ok((rows, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(net: &str, since: Option<i64>, until: Option<i64>) -> Span {
        Span {
            net: net.parse().expect("net"),
            since_ms: since,
            until_ms: until,
        }
    }

    #[test]
    fn spans_are_cut_to_the_client_and_the_time_asked() {
        let f = EvidenceFilter {
            client: Some("10.0.0.0/8".parse().expect("net")),
            since_ms: Some(100),
            until_ms: Some(200),
            ..EvidenceFilter::default()
        };
        let s = within(span("10.1.2.3/32", Some(50), None), &f);
        assert_eq!(s, Some(span("10.1.2.3/32", Some(100), Some(200))));
        assert_eq!(within(span("192.168.1.1/32", None, None), &f), None);
        assert_eq!(within(span("10.1.2.3/32", Some(250), None), &f), None);
        // A ledger network wider than the client asked for narrows to the client.
        let one = EvidenceFilter {
            client: Some("10.9.0.7/32".parse().expect("net")),
            ..EvidenceFilter::default()
        };
        let s = within(span("10.9.0.0/16", None, None), &one);
        assert_eq!(s, Some(span("10.9.0.7/32", None, None)));
    }

    #[test]
    fn holdings_of_one_address_that_touch_are_one_span() {
        let out = merged(vec![
            span("10.1.2.3/32", Some(300), None),
            span("10.1.2.3/32", Some(100), Some(200)),
            span("10.1.2.3/32", Some(200), Some(250)),
            span("10.1.2.4/32", Some(100), Some(200)),
        ]);
        assert_eq!(
            out,
            vec![
                span("10.1.2.3/32", Some(100), Some(250)),
                span("10.1.2.3/32", Some(300), None),
                span("10.1.2.4/32", Some(100), Some(200)),
            ]
        );
    }
}
