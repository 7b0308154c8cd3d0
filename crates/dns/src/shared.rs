//! The state every DNS worker shares: the live policy, the recorder, the block rules, zones,
//! access list, quarantine and the settings the request path reads per query. Built once at
//! start from config; read-only after that except the policy, which the loader swaps whole.
//! Both paths (`handler.rs`, `fast/`) and `GET /api/v1/check` read it; it knows none of them.

use std::sync::Arc;
use std::time::Duration;

use crate::access::ClientAccess;
use crate::block::BlockRules;
use crate::zones::LocalZones;
use poolguard_config::Config;
use poolguard_model::domain::DomainName;
use poolguard_policy::SharedPolicy;
use poolguard_record::Recorder;

/// What every worker's handler shares: read-only after start, except the policy (swapped whole).
pub struct Shared {
    /// The live policy; each query loads the current snapshot once.
    pub policy: SharedPolicy,
    /// Where query events go; never blocks.
    pub recorder: Recorder,
    /// What a block answer is, from `[blocking]`; encoded by `answer::reply` (general path)
    /// and `fast::block::BlockWriter` (fast path).
    pub blocks: BlockRules,
    /// `[[zones]]`, answered authoritatively.
    pub zones: Arc<LocalZones>,
    /// `[dns] allow`.
    pub access: ClientAccess,
    /// `[[upstream.conditional]]` domains, most specific first (for [`poolguard_policy::decide`]).
    pub conditional: Vec<DomainName>,
    /// `[blocking] inspect_answers`.
    pub inspect: bool,
    /// Quarantined clients get the walled garden; `None` when enforcement is off.
    pub quarantine: Option<Arc<poolguard_policy::Quarantine>>,
    /// `[dns] edns_udp_payload`: the UDP size our OPT record advertises.
    pub udp_payload: u16,
    /// `[upstream] cache_size`: answers each worker's packet cache keeps.
    pub packet_cache: usize,
    /// `[upstream] serve_stale_secs`: how long past its TTL a cached answer may stand in for
    /// a failed upstream.
    pub serve_stale: Duration,
    /// RFC 9462 `_dns.resolver.arpa` SVCB: our own DoT/DoH endpoints.
    pub discovery: crate::discovery::Discovery,
    /// `[dns.canary]`: names answered NXDOMAIN to keep clients on this resolver.
    pub canaries: crate::canary::Canaries,
}

impl Shared {
    /// The shared state from config, for `workers` DNS workers (each gets its share of
    /// `[upstream] cache_size` for its packet cache, like the resolver caches).
    pub fn new(
        config: &Config,
        policy: SharedPolicy,
        recorder: Recorder,
        zones: LocalZones,
        quarantine: Option<Arc<poolguard_policy::Quarantine>>,
        workers: usize,
    ) -> Self {
        Self {
            policy,
            recorder,
            blocks: BlockRules::new(&config.blocking),
            zones: Arc::new(zones),
            access: ClientAccess::new(&config.dns.allow),
            conditional: conditional_domains(config),
            inspect: config.blocking.inspect_answers,
            quarantine,
            udp_payload: config.dns.edns_udp_payload,
            packet_cache: usize::try_from(config.upstream.cache_size).unwrap_or(usize::MAX)
                / workers.max(1),
            serve_stale: Duration::from_secs(config.upstream.serve_stale_secs),
            discovery: crate::discovery::Discovery::new(&config.dns),
            canaries: crate::canary::Canaries::new(&config.dns.canary),
        }
    }
}

/// The `[[upstream.conditional]]` domains, most specific (most labels) first, as
/// `Upstreams::for_name` picks them. Unparsable ones are left out here: `UpstreamPlan::new`
/// refuses them before the server starts.
fn conditional_domains(config: &Config) -> Vec<DomainName> {
    let mut domains: Vec<DomainName> = config
        .upstream
        .conditional
        .iter()
        .filter_map(|c| DomainName::parse(&c.domain).ok())
        .collect();
    domains.sort_by_key(|d| std::cmp::Reverse(d.label_count()));
    domains
}
