//! Forwarding: allowed queries go to the configured upstream resolvers via hickory-resolver.
//!
//! An [`UpstreamPlan`] is built once at start (it reads `/etc/resolv.conf` when no servers are
//! configured, which is blocking file I/O); each DNS worker then builds its own [`Upstreams`]
//! from it inside its current_thread runtime. One resolver per worker keeps the resolver's
//! sockets and background tasks on the runtime that uses them (no cross-thread wake-ups); the
//! price is one answer cache per worker, so `cache_size` is split between workers.
//!
//! `[[upstream.conditional]]` entries get their own resolver each; the most specific matching
//! domain wins. Every lookup is bounded by `timeout_ms`: past it the client gets SERVFAIL, never
//! a hang. The upstream's response code is kept (NXDOMAIN stays NXDOMAIN, with its SOA), and
//! so is a CNAME chain that ends negatively; a CNAME loop is SERVFAIL.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError, NoRecords};

use crate::reply::{
    EDE_NETWORK_ERROR, EDE_NO_REACHABLE_AUTHORITY, EDE_OTHER, ExtendedError, Reply,
};
use poolguard_config::UpstreamConfig;
use poolguard_model::domain::{DomainName, name_within};

/// Why the upstream resolvers could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream.servers is empty and the system resolver config could not be read: {0}")]
    SystemConf(String),
    #[error("upstream.conditional: `{0}` is not a domain name")]
    Domain(String),
    #[error("cannot build the upstream resolver: {0}")]
    Build(String),
}

/// How to build one resolver: servers, options and a label for logs and the query log.
#[derive(Clone)]
struct ResolverPlan {
    config: ResolverConfig,
    options: ResolverOpts,
    label: Arc<str>,
}

/// Everything needed to build the resolvers of one worker. Cheap to clone.
#[derive(Clone)]
pub struct UpstreamPlan {
    default: ResolverPlan,
    /// Sorted most specific (most labels) first, so the first match is the winner.
    conditional: Vec<(DomainName, ResolverPlan)>,
    timeout: Duration,
}

impl UpstreamPlan {
    /// Reads `[upstream]` (and resolv.conf when `servers` is empty). Blocking when it reads
    /// resolv.conf: call off the DNS runtimes.
    pub fn new(config: &UpstreamConfig, workers: usize) -> Result<Self, UpstreamError> {
        let workers = workers.max(1) as u64;
        let mut options = ResolverOpts::default();
        options.timeout = Duration::from_millis(config.timeout_ms);
        // One try per server: the overall budget is `timeout_ms`, enforced around the lookup.
        options.attempts = 1;
        options.cache_size = (config.cache_size / workers).max(1);
        options.use_hosts_file = ResolveHosts::Never;
        // A forwarder must return the CNAME chain, and we inspect it.
        options.preserve_intermediates = true;
        options.recursion_desired = true;

        let default = if config.servers.is_empty() {
            let (system, mut sys_opts) = hickory_resolver::system_conf::read_system_conf()
                .map_err(|e| UpstreamError::SystemConf(e.to_string()))?;
            let label = system
                .name_servers()
                .iter()
                .map(|ns| ns.ip.to_string())
                .collect::<Vec<_>>()
                .join(",");
            sys_opts.timeout = options.timeout;
            sys_opts.attempts = 1;
            sys_opts.cache_size = options.cache_size;
            sys_opts.use_hosts_file = ResolveHosts::Never;
            sys_opts.preserve_intermediates = true;
            sys_opts.recursion_desired = true;
            ResolverPlan {
                // Names are always sent fully qualified, so search domains would never apply.
                config: ResolverConfig::from_name_servers(system.name_servers().to_vec()),
                options: sys_opts,
                label: format!("system({label})").into(),
            }
        } else {
            plan_for(&config.servers, options.clone())
        };

        let mut conditional = Vec::new();
        for c in &config.conditional {
            let domain = DomainName::parse(&c.domain)
                .map_err(|_| UpstreamError::Domain(c.domain.clone()))?;
            conditional.push((domain, plan_for(&c.servers, options.clone())));
        }
        conditional.sort_by_key(|(d, _)| std::cmp::Reverse(d.label_count()));
        Ok(Self {
            default,
            conditional,
            timeout: Duration::from_millis(config.timeout_ms),
        })
    }

    /// Builds this worker's resolvers. Call inside the worker's runtime.
    pub fn build(&self) -> Result<Upstreams, UpstreamError> {
        let make = |p: &ResolverPlan| -> Result<Forwarder, UpstreamError> {
            let mut builder = TokioResolver::builder_with_config(
                p.config.clone(),
                TokioRuntimeProvider::default(),
            );
            *builder.options_mut() = p.options.clone();
            let resolver = builder
                .build()
                .map_err(|e| UpstreamError::Build(e.to_string()))?;
            Ok(Forwarder {
                resolver,
                label: p.label.clone(),
                timeout: self.timeout,
            })
        };
        let mut conditional = Vec::with_capacity(self.conditional.len());
        for (d, p) in &self.conditional {
            conditional.push((d.clone(), make(p)?));
        }
        Ok(Upstreams {
            default: make(&self.default)?,
            conditional,
        })
    }
}

fn plan_for(servers: &[SocketAddr], options: ResolverOpts) -> ResolverPlan {
    let name_servers = servers
        .iter()
        .map(|s| {
            let mut udp = ConnectionConfig::udp();
            udp.port = s.port();
            let mut tcp = ConnectionConfig::tcp();
            tcp.port = s.port();
            NameServerConfig::new(s.ip(), true, vec![udp, tcp])
        })
        .collect();
    let label = servers
        .iter()
        .map(SocketAddr::to_string)
        .collect::<Vec<_>>()
        .join(",");
    ResolverPlan {
        config: ResolverConfig::from_name_servers(name_servers),
        options,
        label: label.into(),
    }
}

/// One worker's resolvers: the default one and one per conditional domain.
pub struct Upstreams {
    default: Forwarder,
    conditional: Vec<(DomainName, Forwarder)>,
}

impl Upstreams {
    /// The resolver for `name` (lower-case, no trailing dot): most specific conditional domain,
    /// else the default.
    pub fn for_name(&self, name: &str) -> &Forwarder {
        self.conditional
            .iter()
            .find(|(d, _)| name_within(name, d.as_str()))
            .map(|(_, f)| f)
            .unwrap_or(&self.default)
    }
}

/// What forwarding produced: the reply to send, and whether it was an upstream failure.
pub struct Forwarded {
    /// What to send (already SERVFAIL on failure).
    pub reply: Reply,
    /// True when the upstream failed or timed out (the reply is SERVFAIL).
    pub failed: bool,
}

/// One resolver and its time budget.
pub struct Forwarder {
    resolver: TokioResolver,
    label: Arc<str>,
    timeout: Duration,
}

impl Forwarder {
    /// Which servers this forwards to, for the query log.
    pub fn label(&self) -> &Arc<str> {
        &self.label
    }

    fn servfail(&self, info_code: u16, what: &str) -> Reply {
        let mut reply = Reply::code(ResponseCode::ServFail);
        reply.ede = Some(ExtendedError::upstream(info_code, &self.label, what));
        reply
    }

    /// Resolves `name`/`qtype` within the time budget.
    pub async fn forward(&self, name: Name, qtype: RecordType) -> Forwarded {
        let start = Instant::now();
        let deadline = tokio::time::Instant::now() + self.timeout;
        let forwarded = self.resolve(name, qtype, deadline).await;
        metrics::histogram!("poolguard_upstream_seconds").record(start.elapsed().as_secs_f64());
        forwarded
    }

    async fn resolve(&self, name: Name, qtype: RecordType, deadline: Deadline) -> Forwarded {
        let lookup = self.resolver.lookup(name.clone(), qtype);
        match tokio::time::timeout_at(deadline, lookup).await {
            Ok(Ok(lookup)) => {
                let chain = self.answer_chain(&name, qtype, lookup.answers());
                let answers = match tokio::time::timeout_at(deadline, chain).await {
                    Ok(Ok(answers)) => answers,
                    Ok(Err(error)) => return self.chain_failure(&name, error),
                    Err(_) => return self.failure(EDE_NO_REACHABLE_AUTHORITY, "timed out"),
                };
                Forwarded {
                    reply: Reply {
                        rcode: ResponseCode::NoError,
                        authoritative: false,
                        answers,
                        authorities: lookup.authorities().to_vec(),
                        additionals: lookup.additionals().to_vec(),
                        ede: None,
                    },
                    failed: false,
                }
            }
            Ok(Err(NetError::Dns(DnsError::NoRecordsFound(nr)))) => {
                let mut reply = Reply::code(nr.response_code);
                match (&nr.authorities, &nr.soa) {
                    (Some(auth), _) if !auth.is_empty() => reply.authorities = auth.to_vec(),
                    (_, Some(soa)) => reply.authorities.push(soa.clone().into_record_of_rdata()),
                    _ => {}
                }
                // NoRecordsFound covers NXDOMAIN and NODATA; anything else is a failure.
                if !matches!(reply.rcode, ResponseCode::NXDomain | ResponseCode::NoError) {
                    return self.failure(EDE_NETWORK_ERROR, "failed");
                }
                if followed_cnames(&nr, &name, &reply) {
                    let chain = self.cname_chain(&name, nr.query.name());
                    match tokio::time::timeout_at(deadline, chain).await {
                        Ok(Ok(chain)) => reply.answers = chain,
                        Ok(Err(error)) => return self.chain_failure(&name, error),
                        Err(_) => return self.failure(EDE_NO_REACHABLE_AUTHORITY, "timed out"),
                    }
                }
                Forwarded {
                    reply,
                    failed: false,
                }
            }
            Ok(Err(error)) => {
                tracing::debug!(%error, upstream = %self.label, "upstream lookup failed");
                self.failure(EDE_NETWORK_ERROR, "failed")
            }
            Err(_) => {
                tracing::debug!(upstream = %self.label, "upstream lookup timed out");
                self.failure(EDE_NO_REACHABLE_AUTHORITY, "timed out")
            }
        }
    }

    fn chain_failure(&self, name: &Name, error: Chain) -> Forwarded {
        match error {
            Chain::Loop(at) => {
                tracing::debug!(%name, %at, "CNAME loop");
                self.failure(EDE_OTHER, &format!("answered a CNAME loop at {at}"))
            }
            Chain::Failed => self.failure(EDE_NETWORK_ERROR, "failed"),
        }
    }

    /// The answer section for `name`/`qtype`: the CNAME chain from `name` to the records of
    /// `qtype`, then those records (after any DNAME, which explains a synthesised CNAME).
    ///
    /// Why: hickory-resolver caches the answer of each hop of a chain it follows under that
    /// hop's own question, with the CNAMEs that led there; a later question for the hop (or
    /// a chain that meets it) then gets another name's CNAMEs, and the CNAMEs of its own
    /// chain go missing (seen in `tests/dns_differential.rs`: `www.other.test A` answered
    /// with `out.diff.test CNAME www.other.test`). So the answer is walked from `name`;
    /// records off the chain are left out, and when the chain does not reach the data, it is
    /// rebuilt with CNAME lookups ([`Forwarder::cname_chain`]). Inspection then checks the
    /// real chain too.
    async fn answer_chain(
        &self,
        name: &Name,
        qtype: RecordType,
        answers: &[Record],
    ) -> Result<Vec<Record>, Chain> {
        if matches!(qtype, RecordType::CNAME | RecordType::DNAME) {
            return Ok(answers.to_vec());
        }
        let dnames = || {
            answers
                .iter()
                .filter(|r| r.record_type() == RecordType::DNAME)
                .cloned()
        };
        let data = |owner: &Name| {
            answers
                .iter()
                .filter(|r| r.name == *owner && r.record_type() == qtype)
                .cloned()
                .collect::<Vec<_>>()
        };
        let mut chain: Vec<Record> = Vec::new();
        let mut at = name.clone();
        for _ in 0..MAX_CHAIN {
            let found = data(&at);
            if !found.is_empty() {
                let mut out: Vec<Record> = dnames().collect();
                out.extend(chain);
                out.extend(found);
                return Ok(out);
            }
            let Some(cname) = answers
                .iter()
                .find(|r| r.name == at && r.record_type() == RecordType::CNAME)
            else {
                break;
            };
            let RData::CNAME(target) = &cname.data else {
                return Err(Chain::Failed);
            };
            if target.0 == *name || chain.iter().any(|r| r.name == target.0) {
                return Err(Chain::Loop(at));
            }
            chain.push(cname.clone());
            at = target.0.clone();
        }
        // The answer does not lead from the question to its data: rebuild the chain.
        let Some(end) = answers
            .iter()
            .find(|r| r.record_type() == qtype)
            .map(|r| r.name.clone())
        else {
            return Ok(answers.to_vec());
        };
        let rebuilt = self.cname_chain(name, &end).await?;
        let reached = match rebuilt.last().map(|r| &r.data) {
            Some(RData::CNAME(target)) => target.0 == end,
            _ => *name == end,
        };
        if !reached {
            return Err(Chain::Failed);
        }
        let mut out: Vec<Record> = dnames().collect();
        out.extend(rebuilt);
        out.extend(data(&end));
        Ok(out)
    }

    fn failure(&self, info_code: u16, what: &str) -> Forwarded {
        Forwarded {
            reply: self.servfail(info_code, what),
            failed: true,
        }
    }

    /// The CNAME records from `from` on, one lookup of type CNAME per hop (answered from the
    /// resolver's cache after the first time), until `to` (the name the resolver's negative
    /// answer is about) or, when `to` is `from` itself, until a name without a CNAME.
    ///
    /// Why: hickory-resolver follows a chain itself and, when its end does not exist,
    /// returns only the negative answer for the end, without the CNAMEs that led there; and
    /// it follows a loop until its depth limit, then reports "no records" for the first
    /// name. The client must get the chain with the final rcode (RFC 1034 §4.3.2, RFC 6604),
    /// and SERVFAIL for a loop (RFC 1034 §3.6.2).
    async fn cname_chain(&self, from: &Name, to: &Name) -> Result<Vec<Record>, Chain> {
        let stop = (to != from).then_some(to);
        let mut chain: Vec<Record> = Vec::new();
        let mut at = from.clone();
        for _ in 0..MAX_CHAIN {
            if stop == Some(&at) {
                return Ok(chain);
            }
            let record = match self.resolver.lookup(at.clone(), RecordType::CNAME).await {
                Ok(lookup) => lookup
                    .answers()
                    .iter()
                    .find(|r| r.name == at && r.record_type() == RecordType::CNAME)
                    .cloned(),
                Err(NetError::Dns(DnsError::NoRecordsFound(_))) => None,
                Err(_) => return Err(Chain::Failed),
            };
            let Some(record) = record else {
                // The end of the chain: the negative answer is about this name.
                return Ok(chain);
            };
            let RData::CNAME(target) = &record.data else {
                return Err(Chain::Failed);
            };
            let target = target.0.clone();
            if target == *from || chain.iter().any(|r| r.name == target) {
                return Err(Chain::Loop(at));
            }
            chain.push(record);
            at = target;
        }
        // Longer than any resolver follows (hickory's limit is lower): as good as a loop.
        Err(Chain::Loop(at))
    }
}

/// The most CNAME hops [`Forwarder::cname_chain`] follows.
const MAX_CHAIN: usize = 16;

type Deadline = tokio::time::Instant;

/// Why a CNAME chain could not be rebuilt.
enum Chain {
    /// The chain comes back to a name it passed (or never ends): RFC 1034 §3.6.2.
    Loop(Name),
    /// A lookup on the way failed.
    Failed,
}

/// Whether hickory-resolver followed CNAMEs to reach this negative answer: it is about
/// another name than the one asked, or it is a NODATA without SOA for the name asked (what a
/// loop followed to the resolver's depth limit leaves; a real NODATA carries the SOA of its
/// zone, RFC 2308 §2.2).
fn followed_cnames(nr: &NoRecords, asked: &Name, reply: &Reply) -> bool {
    nr.query.name() != asked
        || (nr.response_code == ResponseCode::NoError
            && !reply
                .authorities
                .iter()
                .any(|r| r.record_type() == RecordType::SOA))
}

#[cfg(test)]
mod tests {
    use poolguard_model::domain::name_within as within;

    #[test]
    fn within_is_label_aligned() {
        assert!(within("a.corp.test", "corp.test"));
        assert!(within("corp.test", "corp.test"));
        assert!(!within("xcorp.test", "corp.test"));
    }
}
