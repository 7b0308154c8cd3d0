//! Local authoritative zones: the `[[zones]]` the campus serves itself from RFC 1035 files.
//!
//! The files are loaded with hickory's `FileZoneHandler` into a `Catalog`, which already knows
//! the authoritative rules (CNAME chains inside the zone, NXDOMAIN with the zone's SOA, NODATA,
//! referrals). The catalog writes its answer into a response handler; ours ([`Capture`]) keeps
//! the message instead of sending it, so the handler can still log, record and add EDNS the
//! same way as for every other answer. Queries inside these zones never go upstream.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{LowerName, Name, Record};
use hickory_proto::serialize::binary::BinEncoder;
use hickory_server::net::NetError;
use hickory_server::server::{Request, ResponseHandler, ResponseInfo};
use hickory_server::store::file::{FileConfig, FileZoneHandler};
use hickory_server::zone_handler::{AxfrPolicy, Catalog, MessageResponse, ZoneHandler, ZoneType};

use crate::reply::Reply;
use poolguard_config::Config;

/// Why a `[[zones]]` entry could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ZoneError {
    #[error("zones: `{name}` is not a valid zone name: {reason}")]
    Name { name: String, reason: String },
    #[error("zones: {file}: {reason}")]
    Load { file: PathBuf, reason: String },
}

/// The campus's own zones. Shared by all DNS workers (the catalog is read-only after load).
pub struct LocalZones {
    catalog: Catalog,
    /// The zone names in the policy's spelling (lower case, no trailing dot), so the fast path
    /// can ask "is this name ours?" without building a `LowerName`.
    origins: Vec<String>,
}

impl LocalZones {
    /// Reads every `[[zones]]` file. Blocking file I/O: call it off the DNS runtimes.
    pub fn load(config: &Config) -> Result<Self, ZoneError> {
        let mut catalog = Catalog::new();
        let mut origins = Vec::with_capacity(config.zones.len());
        for z in &config.zones {
            let origin =
                Name::from_ascii(format!("{}.", z.name.trim_end_matches('.'))).map_err(|e| {
                    ZoneError::Name {
                        name: z.name.clone(),
                        reason: e.to_string(),
                    }
                })?;
            let file = config.resolve(&z.file);
            let handler = FileZoneHandler::try_from_config(
                origin.clone(),
                ZoneType::Primary,
                AxfrPolicy::Deny,
                None,
                &FileConfig {
                    zone_path: file.clone(),
                },
            )
            .map_err(|reason| ZoneError::Load { file, reason })?;
            let handler: Arc<dyn ZoneHandler> = Arc::new(handler);
            let lower = LowerName::new(&origin);
            let text = lower.to_string();
            origins.push(text.trim_end_matches('.').to_owned());
            catalog.upsert(lower, vec![handler]);
            tracing::info!(zone = %origin, "local zone loaded");
        }
        Ok(Self { catalog, origins })
    }

    /// No zones configured.
    pub fn empty() -> Self {
        Self {
            catalog: Catalog::new(),
            origins: Vec::new(),
        }
    }

    /// Whether `name` (lower case, no trailing dot) is at or below one of our zones (then it
    /// must not be forwarded).
    pub fn covers(&self, name: &str) -> bool {
        self.origins
            .iter()
            .any(|zone| zone.is_empty() || poolguard_model::domain::name_within(name, zone))
    }

    /// Answers `request` from the zones. `now` is the server clock (hickory's `Time`).
    pub async fn answer(&self, request: &Request, now: u64) -> Reply {
        let capture = Capture::default();
        self.catalog
            .lookup(request, None, now, capture.clone())
            .await;
        let message = capture.slot.lock().ok().and_then(|mut m| m.take());
        match message {
            Some(m) => Reply {
                rcode: m.metadata.response_code,
                authoritative: m.metadata.authoritative,
                answers: m.answers,
                authorities: m.authorities,
                additionals: strip_opt(m.additionals),
                ede: None,
            },
            None => Reply::code(ResponseCode::ServFail),
        }
    }
}

fn strip_opt(records: Vec<Record>) -> Vec<Record> {
    records
        .into_iter()
        .filter(|r| r.record_type() != hickory_proto::rr::RecordType::OPT)
        .collect()
}

/// A response handler that keeps the catalog's answer as a `Message` instead of sending it.
#[derive(Clone, Default)]
struct Capture {
    slot: Arc<Mutex<Option<Message>>>,
}

#[async_trait::async_trait]
impl ResponseHandler for Capture {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        let mut bytes = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut bytes);
        let info = response.destructive_emit(&mut encoder)?;
        let message = Message::from_vec(&bytes)?;
        if let Ok(mut slot) = self.slot.lock() {
            *slot = Some(message);
        }
        Ok(info)
    }
}
