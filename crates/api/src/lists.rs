//! `GET /api/v1/queries` and `GET /api/v1/hits`: filtered, paginated, exportable lists.
//!
//! Parameters are parsed by hand from the raw pairs so that every mistake (unknown key,
//! repeated key, bad value) becomes a 400 naming the parameter, instead of axum's plain-text
//! rejection. The cursor is opaque to clients and to this module: the store encodes it
//! (SQLite: hex of the last row's `(time_ms, id)` key) and decodes it.

use std::net::IpAddr;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::DateTime;
use ipnet::IpNet;
use poolguard_model::{neutralise, rfc3339};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::{ApiError, ApiState};
use crate::views::Identity;
use poolguard_model::domain::DomainName;
use poolguard_store::{Cursor, EvidenceFilter, NameFilter, StoreError, StoredRow, Table};

/// Rows per page unless `limit` says otherwise.
pub const DEFAULT_LIMIT: usize = 100;
/// Largest page: bounds the work and memory of one request.
pub const MAX_LIMIT: usize = 1000;

/// A page size given as `limit`: 1 to [`MAX_LIMIT`], else a 400 naming it.
pub(crate) fn parse_limit(v: &str) -> Result<usize, ApiError> {
    v.trim()
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=MAX_LIMIT).contains(n))
        .ok_or_else(|| {
            ApiError::bad_param(
                "limit",
                format!("`{v}` is not a number from 1 to {MAX_LIMIT}"),
            )
        })
}

/// Query parameters of the list endpoints (documentation; parsing is in `parse_list`).
#[derive(Debug, Default, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ListParams {
    /// Client IP address or CIDR network (`10.20.3.7`, `10.20.0.0/16`).
    client: Option<String>,
    /// Exact name, or `*.example.com` for the name and everything below it.
    name: Option<String>,
    /// Query type (`A`, `AAAA`, `TXT`…).
    #[param(rename = "type")]
    qtype: Option<String>,
    /// `allowed`, `allowlisted`, `blocked`, `cname-blocked`, `ip-blocked`, `local`, `servfail`, `refused`, `formerr`, `quarantined`, `logged`.
    action: Option<String>,
    /// Feed name that decided the query.
    feed: Option<String>,
    /// Department from the asset ledger.
    department: Option<String>,
    /// Part of the department, anywhere in it, case-insensitive (`phys` finds `Physics`).
    department_contains: Option<String>,
    /// The ledger asset tag (case-insensitive). Hits: the tag stored with the hit; queries:
    /// the addresses that asset's MACs, accounts and networks held, when they held them.
    asset: Option<String>,
    /// The MAC that held the address (any common spelling). Hits: stored with the hit;
    /// queries: sent from an address while that MAC held it (DHCP leases, logins).
    mac: Option<String>,
    /// The account logged in at the address (case-insensitive); on queries as for `mac`.
    account: Option<String>,
    /// The owner from the ledger (case-insensitive); on queries, through the owner's
    /// devices, logins and networks as for `asset`.
    owner: Option<String>,
    /// RFC 3339 time, inclusive.
    since: Option<String>,
    /// RFC 3339 time, exclusive.
    until: Option<String>,
    /// Rows per page, 1–1000 (default 100).
    limit: Option<u32>,
    /// `next_cursor` from the previous page.
    cursor: Option<String>,
    /// `json` (default), `csv` or `ndjson`. For csv/ndjson the next cursor is in `X-Next-Cursor`.
    format: Option<String>,
    /// CSV only: `true` (default) starts the file with a UTF-8 byte order mark, which Excel
    /// needs to read it as UTF-8; `false` omits it.
    bom: Option<bool>,
    /// Queries only, in a group of nodes: `group` (default) gathers every node's log, `node`
    /// lists this node's only.
    scope: Option<String>,
}

/// Output format of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    /// `bom`: start with a UTF-8 byte order mark ([`super::csv_export`]).
    Csv {
        bom: bool,
    },
    Ndjson,
}

/// One query or hit as the API shows it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
pub struct Item {
    pub id: i64,
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    pub client: String,
    pub port: u16,
    pub transport: String,
    pub name: String,
    #[serde(rename = "type")]
    pub qtype: String,
    pub action: String,
    pub feed: Option<String>,
    pub rule: Option<String>,
    pub rcode: String,
    pub answer: String,
    pub latency_us: u32,
    pub upstream: Option<String>,
    pub department: Option<String>,
    /// Hits only: who the client was when the hit happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    /// The node that answered the query, in a group's query log (`[store] backend =
    /// "postgres"`); absent on a lone node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// A page of a list.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct ListResponse {
    pub items: Vec<Item>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    pub next_cursor: Option<String>,
    /// A group's query log only: the nodes whose queries this page lacks, and why (the page
    /// holds the others' queries).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub incomplete: Vec<String>,
}

impl From<StoredRow> for Item {
    fn from(r: StoredRow) -> Self {
        Self {
            id: r.id,
            time: rfc3339(r.time_ms),
            client: r.client,
            port: r.port,
            transport: r.transport,
            name: r.name,
            qtype: r.qtype,
            action: r.action,
            feed: r.feed,
            rule: r.rule,
            rcode: r.rcode,
            answer: r.answer,
            latency_us: r.latency_us,
            upstream: r.upstream,
            department: r.department,
            identity: r.identity.map(Identity::from),
            node: None,
        }
    }
}

/// Parses an RFC 3339 time parameter to ms since the epoch.
pub fn parse_time(param: &'static str, v: &str) -> Result<i64, ApiError> {
    DateTime::parse_from_rfc3339(v)
        .map(|t| t.timestamp_millis())
        .map_err(|e| {
            ApiError::bad_param(
                param,
                format!("`{v}` is not an RFC 3339 time like 2026-11-30T08:00:00Z: {e}"),
            )
        })
}

/// Checks that no key is repeated or unknown; returns the pairs.
pub fn check_keys(
    pairs: Result<Query<Vec<(String, String)>>, QueryRejection>,
    known: &[&'static str],
) -> Result<Vec<(&'static str, String)>, ApiError> {
    let Query(pairs) = pairs.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let mut out: Vec<(&'static str, String)> = Vec::new();
    for (k, v) in pairs {
        let Some(key) = known.iter().find(|n| **n == k) else {
            return Err(ApiError {
                status: StatusCode::BAD_REQUEST,
                message: format!("unknown parameter `{k}`; known: {}", known.join(", ")),
                parameter: None,
            });
        };
        if out.iter().any(|(o, _)| o == key) {
            return Err(ApiError::bad_param(
                key,
                format!("`{key}` is given more than once"),
            ));
        }
        out.push((key, v));
    }
    Ok(out)
}

const LIST_KEYS: [&str; 17] = [
    "client",
    "name",
    "type",
    "action",
    "feed",
    "department",
    "department_contains",
    "asset",
    "mac",
    "account",
    "owner",
    "since",
    "until",
    "limit",
    "cursor",
    "format",
    super::csv_export::PARAM,
];

/// Validates list parameters into a store filter and an output format.
pub fn parse_list(
    pairs: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<(EvidenceFilter, Format), ApiError> {
    let mut f = EvidenceFilter {
        limit: DEFAULT_LIMIT,
        ..EvidenceFilter::default()
    };
    let mut format = Format::Json;
    let mut bom = true;
    for (key, v) in check_keys(pairs, &LIST_KEYS)? {
        let v = v.trim().to_string();
        match key {
            "client" => f.client = Some(parse_client(&v)?),
            "name" => f.name = Some(parse_name(&v)?),
            "type" => {
                if v.is_empty() || v.len() > 16 || !v.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return Err(ApiError::bad_param(
                        "type",
                        format!("`{v}` is not a query type like A, AAAA or TYPE65"),
                    ));
                }
                f.qtype = Some(v.to_ascii_uppercase());
            }
            "action" => {
                // The outcomes the store knows, in its on-disk order: one list, not two.
                let actions = poolguard_store::blocks::codec::OUTCOMES.map(|o| o.as_str());
                if !actions.contains(&v.as_str()) {
                    return Err(ApiError::bad_param(
                        "action",
                        format!("`{v}` is not one of {}", actions.join(", ")),
                    ));
                }
                f.action = Some(v);
            }
            "feed" => {
                if !poolguard_config::valid_feed_name(&v) {
                    return Err(ApiError::bad_param(
                        "feed",
                        format!("`{v}` is not a feed name"),
                    ));
                }
                f.feed = Some(v);
            }
            "department" => {
                if v.is_empty() || v.chars().count() > 200 {
                    return Err(ApiError::bad_param(
                        "department",
                        "must be 1-200 characters",
                    ));
                }
                f.department = Some(v);
            }
            "mac" => {
                let mac = poolguard_identity::normalise_mac(&v).ok_or_else(|| {
                    ApiError::bad_param("mac", format!("`{v}` is not a MAC like 00:1a:2b:3c:4d:5e"))
                })?;
                f.mac = Some(mac.to_string());
            }
            "account" | "owner" | "asset" | "department_contains" => {
                if v.is_empty() || v.chars().count() > 200 {
                    return Err(ApiError::bad_param(key, "must be 1-200 characters"));
                }
                let slot = match key {
                    "account" => &mut f.account,
                    "owner" => &mut f.owner,
                    "asset" => &mut f.asset,
                    _ => &mut f.department_contains,
                };
                *slot = Some(v);
            }
            "since" => f.since_ms = Some(parse_time("since", &v)?),
            "until" => f.until_ms = Some(parse_time("until", &v)?),
            "limit" => f.limit = parse_limit(&v)?,
            "cursor" => f.cursor = Some(Cursor(v)),
            "format" => {
                format = match v.as_str() {
                    "json" => Format::Json,
                    "csv" => Format::Csv { bom: true },
                    "ndjson" => Format::Ndjson,
                    _ => {
                        return Err(ApiError::bad_param(
                            "format",
                            format!("`{v}` is not json, csv or ndjson"),
                        ));
                    }
                }
            }
            super::csv_export::PARAM => bom = super::csv_export::parse_bom(&v)?,
            _ => {}
        }
    }
    if let Format::Csv { bom: b } = &mut format {
        *b = bom;
    }
    if let (Some(s), Some(u)) = (f.since_ms, f.until_ms)
        && s >= u
    {
        return Err(ApiError::bad_param(
            "until",
            "`until` must be after `since`",
        ));
    }
    Ok((f, format))
}

/// `10.20.3.7` (a host network) or `10.20.0.0/16` (host bits cleared).
pub fn parse_client(v: &str) -> Result<IpNet, ApiError> {
    if v.contains('/') {
        let net: IpNet = v.parse().map_err(|_| {
            ApiError::bad_param("client", format!("`{v}` is not an IP address or CIDR"))
        })?;
        Ok(net.trunc())
    } else {
        let ip: IpAddr = v.parse().map_err(|_| {
            ApiError::bad_param("client", format!("`{v}` is not an IP address or CIDR"))
        })?;
        Ok(IpNet::from(ip))
    }
}

fn parse_name(v: &str) -> Result<NameFilter, ApiError> {
    let (suffix, rest) = match v.strip_prefix("*.") {
        Some(r) => (true, r),
        None => (false, v),
    };
    let name = DomainName::parse(rest).map_err(|e| {
        ApiError::bad_param(
            "name",
            format!("`{v}` is not a domain name (or *.domain): {e}"),
        )
    })?;
    let n = name.as_str().to_string();
    Ok(if suffix {
        NameFilter::Suffix(n)
    } else {
        NameFilter::Exact(n)
    })
}

/// Runs a list and renders it in the requested format.
pub(crate) async fn list(
    state: ApiState,
    table: Table,
    pairs: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (filter, format) = parse_list(pairs)?;
    let mut incomplete = Vec::new();
    let page = if table == Table::Queries && super::queries_who::asks_who(&filter) {
        // The query log has no identity: who held which address when answers it.
        let (spans, more) =
            super::queries_who::spans(&state.ledger.load(), state.identities.as_deref(), &filter);
        if more {
            incomplete.push(format!(
                "only the {} most recent addresses this device or person held were searched",
                super::queries_who::SPANS
            ));
        }
        let (items, next) = super::queries_who::list(&state, &spans, &filter)
            .await
            .map_err(list_error)?;
        poolguard_store::Paged { items, next }
    } else {
        state
            .store
            .list_evidence(table, filter)
            .await
            .map_err(list_error)?
    };
    let next = page.next.map(|c| c.0);
    let items: Vec<Item> = page.items.into_iter().map(Item::from).collect();
    render(
        ListResponse {
            items,
            next_cursor: next,
            incomplete,
        },
        format,
        table,
    )
}

/// A list's store failure as the API answers it: a cursor that does not decode is the
/// caller's 400 on `cursor`.
pub(crate) fn list_error(e: StoreError) -> ApiError {
    match e {
        StoreError::BadCursor => ApiError::bad_param("cursor", "not a cursor from `next_cursor`"),
        other => other.into(),
    }
}

/// Renders a page in `format`: JSON, or NDJSON/CSV with the next cursor in `X-Next-Cursor`.
pub(crate) fn render(
    page: ListResponse,
    format: Format,
    table: Table,
) -> Result<Response, ApiError> {
    let next = page.next_cursor.clone();
    let items = &page.items;
    let mut resp = match format {
        Format::Json => Json(&page).into_response(),
        Format::Ndjson => {
            let mut body = String::new();
            for i in items {
                if let Ok(line) = serde_json::to_string(i) {
                    body.push_str(&line);
                    body.push('\n');
                }
            }
            ([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response()
        }
        Format::Csv { bom } => {
            let body = to_csv(items, table == Table::Hits)
                .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
            super::csv_export::response(body, bom)
        }
    };
    if format != Format::Json
        && let Some(c) = next.and_then(|c| HeaderValue::from_str(&c).ok())
    {
        resp.headers_mut().insert("x-next-cursor", c);
    }
    Ok(resp)
}

fn to_csv(items: &[Item], hits: bool) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header = vec![
        "id",
        "time",
        "client",
        "port",
        "transport",
        "name",
        "type",
        "action",
        "feed",
        "rule",
        "rcode",
        "answer",
        "latency_us",
        "upstream",
        "department",
    ];
    if hits {
        header.extend([
            "network", "asset", "mac", "kind", "location", "owner", "contact", "account",
            "hostname", "source",
        ]);
    }
    // A group's query log says which node answered each query.
    let nodes = items.iter().any(|i| i.node.is_some());
    if nodes {
        header.push("node");
    }
    w.write_record(&header)?;
    for i in items {
        let opt = |o: &Option<String>| o.clone().unwrap_or_default();
        let mut rec: Vec<String> = vec![
            i.id.to_string(),
            i.time.clone(),
            i.client.clone(),
            i.port.to_string(),
            i.transport.clone(),
            i.name.clone(),
            i.qtype.clone(),
            i.action.clone(),
            opt(&i.feed),
            opt(&i.rule),
            i.rcode.clone(),
            i.answer.clone(),
            i.latency_us.to_string(),
            opt(&i.upstream),
            opt(&i.department),
        ];
        if hits {
            let id = i.identity.clone().unwrap_or_default();
            rec.extend(
                [
                    id.network,
                    id.asset,
                    id.mac,
                    id.kind,
                    id.location,
                    id.owner,
                    id.contact,
                    id.account,
                    id.hostname,
                    id.source,
                ]
                .iter()
                .map(opt),
            );
        }
        if nodes {
            rec.push(opt(&i.node));
        }
        w.write_record(rec.iter().map(|c| neutralise(c).into_owned()))?;
    }
    w.into_inner().map_err(|e| csv::Error::from(e.into_error()))
}

/// Lists the full query log, newest first.
#[utoipa::path(get, path = "/api/v1/queries", params(ListParams),
    operation_id = "listQueries", tag = "queries",
    responses((status = 200, description = "One page of queries (JSON), or the export (CSV, NDJSON)", body = ListResponse), (status = 400, description = "Bad parameter or body; `error` names it", body = super::error::ErrorBody),
              (status = 401, description = "No bearer token, or an unknown one", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn queries(
    State(state): State<ApiState>,
    pairs: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (pairs, group_wide) = super::group_log::take_scope(pairs)?;
    match (&state.group, group_wide) {
        (Some(group), true) => super::group_log::list(&state, group.clone(), pairs).await,
        _ => list(state, Table::Queries, Ok(Query(pairs))).await,
    }
}

/// Lists hits (blocked queries) with the identity snapshot, newest first.
#[utoipa::path(get, path = "/api/v1/hits", params(ListParams),
    operation_id = "listHits", tag = "hits",
    responses((status = 200, description = "One page of hits (JSON), or the export (CSV, NDJSON)", body = ListResponse), (status = 400, description = "Bad parameter or body; `error` names it", body = super::error::ErrorBody),
              (status = 401, description = "No bearer token, or an unknown one", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn hits(
    State(state): State<ApiState>,
    pairs: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    list(state, Table::Hits, pairs).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_neutralised() {
        assert_eq!(neutralise("=1+1"), "'=1+1");
        assert_eq!(neutralise("+x"), "'+x");
        assert_eq!(neutralise("-x"), "'-x");
        assert_eq!(neutralise("@x"), "'@x");
        assert_eq!(neutralise("pool.example"), "pool.example");
        assert_eq!(neutralise(""), "");
    }
}
