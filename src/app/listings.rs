//! What the bulletin says was added to the lists: the pool names added to the feeds (their
//! first-listed times, `feeds::listed`) and the addresses that joined the pool address set.
//! Both live above the store, so the summary asks them through `store::summary::Listings`.

use std::sync::Arc;
use std::time::Duration;

use poolguard_dns::pools::PoolSet;
use poolguard_feeds::listed::ListedSince;
use poolguard_feeds::loader::Loader;
use poolguard_store::summary::{Added, Listed, Listings, SUMMARY_LISTED};

/// How often the compiled feeds are looked at for new names (also at every summary).
const LOOK_EVERY: Duration = Duration::from_secs(60);

/// The feeds' first-listed names and the pool address set.
pub(super) struct AddedToLists {
    loader: Arc<Loader>,
    names: Arc<ListedSince>,
    pools: Option<PoolSet>,
}

impl AddedToLists {
    /// Keeps the history next to the feeds' own state (`<feeds dir>/.poolguard`), and looks
    /// at the feeds now (before any upload can change them: the feeds at start are the
    /// baseline of a new history) and every minute until `stop`.
    pub(super) async fn start(
        loader: Arc<Loader>,
        state_dir: &std::path::Path,
        pools: Option<PoolSet>,
        stop: tokio_util::sync::CancellationToken,
    ) -> (Arc<Self>, tokio::task::JoinHandle<()>) {
        let names = Arc::new(ListedSince::open(&state_dir.join("listed-since.tsv")));
        let me = Arc::new(Self {
            loader,
            names,
            pools,
        });
        let first = me.clone();
        // Reads every feed's names: off the async threads.
        let _ = tokio::task::spawn_blocking(move || first.look()).await;
        let looking = me.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(LOOK_EVERY);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let me = looking.clone();
                // Reads a whole feed: off the async threads.
                let _ = tokio::task::spawn_blocking(move || me.look()).await;
            }
        });
        (me, task)
    }

    fn look(&self) {
        self.names
            .observe(&self.loader.compiled(), poolguard_identity::now_ms());
    }
}

impl Listings for AddedToLists {
    fn added(&self, since_ms: i64, until_ms: i64) -> Added {
        self.look();
        let (names, names_total) = self.names.added(since_ms, until_ms, SUMMARY_LISTED);
        let mut addresses: Vec<_> = self
            .pools
            .as_ref()
            .map(|p| p.category("mining"))
            .unwrap_or_default()
            .into_iter()
            .filter(|a| a.first_seen_ms >= since_ms && a.first_seen_ms < until_ms)
            .collect();
        let addresses_total = addresses.len();
        addresses.sort_by_key(|a| std::cmp::Reverse(a.first_seen_ms));
        addresses.truncate(SUMMARY_LISTED);
        Added {
            names: names
                .into_iter()
                .map(|(entry, source, ms)| Listed {
                    entry,
                    source,
                    since: poolguard_model::rfc3339(ms),
                })
                .collect(),
            names_total,
            addresses: addresses
                .into_iter()
                .map(|a| Listed {
                    entry: a.address.to_string(),
                    source: a.name,
                    since: poolguard_model::rfc3339(a.first_seen_ms),
                })
                .collect(),
            addresses_total,
        }
    }
}
