//! The group's full query log: `GET /api/v1/queries` on any node of a group gathers every
//! node's own log (docs/SEVERAL-NODES.md, "The full query log, group-wide").
//!
//! Each node keeps its full log in its own SQLite store (shipping it to PostgreSQL was
//! measured and refused: the shared server takes fewer rows a second than one node answers).
//! So the node asked lists its own page and asks every other node registered in `nodes` for
//! the same page of its own log (`scope=node`, so the call does not fan out again) with the
//! node-to-node token, in parallel, then merges the pages newest first. Every row says which
//! node answered it. The cursor carries each node's position, so paging on walks every log
//! exactly once; a node that does not answer is named in `incomplete` and asked again on
//! the next page, instead of failing the list.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use axum::http::StatusCode;
use axum::response::Response;
use poolguard_store::{Cursor, StoreError, Table};
use serde::Deserialize;

use crate::lists::{Item, ListResponse, list_error, parse_list, render};
use crate::{ApiError, ApiState};

/// How long the node asked waits for another node's page.
const PEER_TIMEOUT: Duration = Duration::from_secs(5);

/// Another node of the group: its name and where its API answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub name: String,
    pub api_url: String,
}

/// Where the other nodes are (the shared store's `nodes`).
#[async_trait::async_trait]
pub trait Peers: Send + Sync {
    /// Every other node whose API address is known.
    async fn peers(&self) -> Result<Vec<Peer>, StoreError>;
}

/// This node's place in a group, for the group-wide query log.
pub struct Group {
    /// This node's name (`[store] node`).
    pub node: String,
    /// The node-to-node token presented to the others; None = the others are not asked.
    pub token: Option<String>,
    pub peers: Arc<dyn Peers>,
    http: reqwest::Client,
}

impl Group {
    /// This node as `node`, asking the others with `token`.
    pub fn new(node: String, token: Option<String>, peers: Arc<dyn Peers>) -> Self {
        Self {
            node,
            token,
            peers,
            http: reqwest::Client::builder()
                .timeout(PEER_TIMEOUT)
                .build()
                .unwrap_or_default(),
        }
    }
}

impl Group {
    /// A request to `path` of another node's API, with the node-to-node token.
    fn ask(&self, peer: &Peer, path: &str) -> reqwest::RequestBuilder {
        self.http
            .get(format!("{}{path}", peer.api_url.trim_end_matches('/')))
            .bearer_auth(self.token.as_deref().unwrap_or_default())
    }
}

/// Removes `scope` from the parameters: true (the default) = the group's log, false
/// (`scope=node`) = this node's only. Any other value is a 400 naming it.
pub(crate) fn take_scope(
    pairs: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<(Vec<(String, String)>, bool), ApiError> {
    let Query(pairs) = pairs.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let mut group = true;
    let mut rest = Vec::with_capacity(pairs.len());
    for (k, v) in pairs {
        if k != "scope" {
            rest.push((k, v));
            continue;
        }
        group = match v.trim() {
            "group" => true,
            "node" => false,
            _ => return Err(ApiError::bad_param("scope", "must be group or node")),
        };
    }
    Ok((rest, group))
}

/// Where each node's log continues: absent = not part of this walk, `""` = from the newest,
/// `"-"` = done, else that node's own cursor.
type Positions = BTreeMap<String, String>;

const DONE: &str = "-";

fn encode(positions: &Positions) -> Option<String> {
    if positions.values().all(|p| p == DONE) {
        return None;
    }
    serde_json::to_vec(positions)
        .ok()
        .map(|j| format!("g{}", hex::encode(j)))
}

fn decode(cursor: &str) -> Result<Positions, ApiError> {
    let bad = || ApiError::bad_param("cursor", "not a cursor from `next_cursor`");
    let hex_text = cursor.strip_prefix('g').ok_or_else(bad)?;
    let bytes = hex::decode(hex_text).map_err(|_| bad())?;
    serde_json::from_slice(&bytes).map_err(|_| bad())
}

/// One node's page of its own log.
#[derive(Deserialize)]
struct NodePage {
    items: Vec<Item>,
    next_cursor: Option<String>,
}

/// Lists the group's query log (see the module docs).
pub(crate) async fn list(
    state: &ApiState,
    group: Arc<Group>,
    pairs: Vec<(String, String)>,
) -> Result<Response, ApiError> {
    let (filter, format) = parse_list(Ok(Query(pairs.clone())))?;
    let limit = filter.limit;
    let mut incomplete = Vec::new();
    let peers = if group.token.is_some() {
        match group.peers.peers().await {
            Ok(p) => p,
            Err(error) => {
                incomplete.push(format!("the other nodes: {error}"));
                Vec::new()
            }
        }
    } else {
        Vec::new()
    };
    let given = filter
        .cursor
        .as_ref()
        .map(|c| decode(c.as_str()))
        .transpose()?;
    let mut positions: Positions = match &given {
        Some(p) => p.clone(),
        None => std::iter::once(group.node.clone())
            .chain(peers.iter().map(|p| p.name.clone()))
            .map(|n| (n, String::new()))
            .collect(),
    };
    // Every node still to walk, asked in parallel (this one through its store).
    let forwarded: Vec<(String, String)> = pairs
        .into_iter()
        .filter(|(k, _)| !matches!(k.as_str(), "cursor" | "format" | "bom"))
        .collect();
    let mut asks = tokio::task::JoinSet::new();
    for peer in &peers {
        let Some(at) = positions.get(&peer.name).filter(|p| p.as_str() != DONE) else {
            continue;
        };
        let mut query = forwarded.clone();
        query.push(("scope".into(), "node".into()));
        if !at.is_empty() {
            query.push(("cursor".into(), at.clone()));
        }
        let req = group.ask(peer, "/api/v1/queries").query(&query);
        let name = peer.name.clone();
        asks.spawn(async move { (name, ask(req).await) });
    }
    let mut pages: Vec<(String, NodePage)> = Vec::new();
    if let Some(at) = positions.get(&group.node).filter(|p| p.as_str() != DONE) {
        let mut own = filter.clone();
        own.cursor = (!at.is_empty()).then(|| Cursor(at.clone()));
        let page = state
            .store
            .list_evidence(Table::Queries, own)
            .await
            .map_err(list_error)?;
        pages.push((
            group.node.clone(),
            NodePage {
                items: page.items.into_iter().map(Item::from).collect(),
                next_cursor: page.next.map(|c| c.0),
            },
        ));
    }
    while let Some(done) = asks.join_next().await {
        let Ok((name, answer)) = done else { continue };
        match answer {
            Ok(page) => pages.push((name, page)),
            Err(why) => incomplete.push(format!("{name}: {why}")),
        }
    }
    let items = merge(&mut positions, pages, limit);
    incomplete.sort();
    render(
        ListResponse {
            items,
            next_cursor: encode(&positions),
            incomplete,
        },
        format,
        Table::Queries,
    )
}

/// One node's page of its own log, or why not.
async fn ask(req: reqwest::RequestBuilder) -> Result<NodePage, String> {
    ask_json(req).await
}

/// Another node's JSON answer, or why not.
async fn ask_json<T: serde::de::DeserializeOwned>(
    req: reqwest::RequestBuilder,
) -> Result<T, String> {
    let resp = req.send().await.map_err(|e| e.without_url().to_string())?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("answered {status}"));
    }
    resp.json::<T>()
        .await
        .map_err(|e| e.without_url().to_string())
}

/// Merges the nodes' pages newest first, keeps `limit` rows (each labelled with its node) and
/// moves every node's position past the rows kept.
fn merge(positions: &mut Positions, pages: Vec<(String, NodePage)>, limit: usize) -> Vec<Item> {
    let mut all: Vec<(i64, Item)> = Vec::new();
    let mut next_of: BTreeMap<String, Option<String>> = BTreeMap::new();
    for (node, page) in pages {
        next_of.insert(node.clone(), page.next_cursor);
        for mut item in page.items {
            item.node = Some(node.clone());
            all.push((time_ms(&item.time), item));
        }
    }
    all.sort_by(|(ta, a), (tb, b)| (tb, &b.node, b.id).cmp(&(ta, &a.node, a.id)));
    let rest = all.split_off(all.len().min(limit));
    for (node, next) in next_of {
        // The newest row of this node not kept: continue just above it, else after its page.
        let kept_last = all
            .iter()
            .rev()
            .find(|(_, i)| i.node.as_deref() == Some(node.as_str()));
        let left = rest
            .iter()
            .any(|(_, i)| i.node.as_deref() == Some(node.as_str()));
        let at = match (left, kept_last) {
            (true, Some((t, i))) => poolguard_store::cursor::of_key((*t, i.id)).0,
            (true, None) => continue,
            (false, _) => next.unwrap_or_else(|| DONE.to_string()),
        };
        positions.insert(node, at);
    }
    all.into_iter().map(|(_, i)| i).collect()
}

/// What another node answers to `/stats?scope=node`: only its own query log's counts are
/// read (the hits are the group's already).
#[derive(Deserialize)]
struct NodeStats {
    queries_by_action: Vec<crate::views::Count>,
}

/// Every other node's JSON answer to `path?query` (asked with `scope=node`, in parallel), by
/// node; and the nodes that did not answer, named with why. Nothing when this node has no
/// node-to-node token.
async fn ask_peers<T: serde::de::DeserializeOwned + Send + 'static>(
    group: &Group,
    path: &str,
    query: &[(&str, &str)],
) -> (Vec<(String, T)>, Vec<String>) {
    let mut answers = Vec::new();
    let mut incomplete = Vec::new();
    if group.token.is_none() {
        return (answers, incomplete);
    }
    let peers = match group.peers.peers().await {
        Ok(p) => p,
        Err(error) => return (answers, vec![format!("the other nodes: {error}")]),
    };
    let mut asks = tokio::task::JoinSet::new();
    for peer in peers {
        let req = group
            .ask(&peer, path)
            .query(query)
            .query(&[("scope", "node")]);
        asks.spawn(async move { (peer.name, ask_json::<T>(req).await) });
    }
    while let Some(done) = asks.join_next().await {
        let Ok((name, answer)) = done else { continue };
        match answer {
            Ok(t) => answers.push((name, t)),
            Err(why) => incomplete.push(format!("{name}: {why}")),
        }
    }
    incomplete.sort();
    (answers, incomplete)
}

/// The other nodes' query counts by action in `[since, until)` (their own logs, which only
/// they hold), summed; and the nodes that did not answer, named. `/stats` adds this node's.
pub(crate) async fn peer_query_counts(
    group: &Group,
    since: &str,
    until: &str,
) -> (BTreeMap<String, i64>, Vec<String>) {
    let query = [("since", since), ("until", until), ("top", "1")];
    let (answers, incomplete) = ask_peers::<NodeStats>(group, "/api/v1/stats", &query).await;
    let mut sums = BTreeMap::new();
    for (_, stats) in answers {
        for c in stats.queries_by_action {
            *sums.entry(c.value).or_insert(0) += c.count;
        }
    }
    (sums, incomplete)
}

/// What another node answers to `/clients/{ip}?scope=node`: when its own log first and last
/// saw the address.
#[derive(Deserialize)]
struct NodeSeen {
    first_seen: Option<String>,
    last_seen: Option<String>,
}

/// When the other nodes first and last saw `ip` (milliseconds), for a client summary whose
/// first/last seen covers every node's query log; and the nodes that did not answer.
pub(crate) async fn peer_seen(
    group: &Group,
    ip: std::net::IpAddr,
) -> ((Option<i64>, Option<i64>), Vec<String>) {
    let path = format!("/api/v1/clients/{ip}");
    let (answers, incomplete) = ask_peers::<NodeSeen>(group, &path, &[]).await;
    let ms = |t: &Option<String>| t.as_deref().map(time_ms);
    let first = answers.iter().filter_map(|(_, s)| ms(&s.first_seen)).min();
    let last = answers.iter().filter_map(|(_, s)| ms(&s.last_seen)).max();
    ((first, last), incomplete)
}

/// An item's time back in milliseconds (the API spells it RFC 3339 with milliseconds).
fn time_ms(time: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(time)
        .map(|t| t.timestamp_millis())
        .unwrap_or(0)
}
