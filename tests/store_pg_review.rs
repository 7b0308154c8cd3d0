//! The review queue on PostgreSQL (docs/REVIEW.md), against a real server: two nodes' scans
//! of one name add up in one queue, each node keeps its own scan position, a decision taken
//! through one node is seen by the other (and a second decision is refused), and a dismissed
//! name gathers nothing more. The same contract as the SQLite queue (`store::review` tests).

mod common;

use common::postgres::Postgres;
use poolguard::store::review::{
    Decided, ReviewDecision, ReviewFilter, ReviewReason, ReviewState, ReviewStore, Sighting,
};
use poolguard::store::{Actor, Cursor, StoreError};
use poolguard::store_pg::PgStore;

async fn open(pg: &Postgres, db: &str, node: &str) -> PgStore {
    pg.store(db, node).await
}

fn seen(name: &str, client: &str, at: i64) -> Sighting {
    Sighting {
        name: name.into(),
        reason: ReviewReason::OtherTld,
        clients: vec![client.into()],
        first_ms: at,
        last_ms: at,
        count: 1,
        resolved: format!("A 198.51.100.{at}"),
        evidence: "the pool family nanopool.org is listed".into(),
    }
}

fn maintainer() -> Actor {
    Actor {
        name: "maint".into(),
        role: "feeds".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_queue_for_the_group_with_each_nodes_scan_position() {
    let pg = Postgres::start();
    pg.create_database("review");
    let a = open(&pg, "review", "node-a").await;
    let b = open(&pg, "review", "node-b").await;

    // Both nodes saw the name at once.
    let (ra, rb) = tokio::join!(
        a.review_record(vec![seen("nanopool.net", "10.0.0.1", 5)], 100),
        b.review_record(vec![seen("nanopool.net", "10.0.0.2", 7)], 200)
    );
    ra.expect("a records");
    rb.expect("b records");
    let got = a
        .review_get("nanopool.net".into())
        .await
        .expect("get")
        .expect("queued");
    assert_eq!((got.first_ms, got.last_ms, got.count), (5, 7, 2));
    let mut clients = got.clients.clone();
    clients.sort();
    assert_eq!(clients, ["10.0.0.1", "10.0.0.2"]);
    assert_eq!(got.resolved, "A 198.51.100.7");
    assert_eq!(a.review_scanned_until().await.expect("a"), Some(100));
    assert_eq!(b.review_scanned_until().await.expect("b"), Some(200));

    // Decided through node b, refused a second time through node a.
    let dismiss = ReviewDecision::Dismiss {
        reason: "a news site".into(),
    };
    match b
        .review_decide("nanopool.net".into(), dismiss.clone(), maintainer(), 300)
        .await
        .expect("decide")
    {
        Decided::Done(c) => assert_eq!(c.state, ReviewState::Dismissed),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        a.review_decide("nanopool.net".into(), dismiss, maintainer(), 301)
            .await
            .expect("again"),
        Decided::AlreadyDecided(_)
    ));
    assert!(matches!(
        a.review_decide(
            "absent.example".into(),
            ReviewDecision::Accept {
                feed: "mining".into()
            },
            maintainer(),
            302
        )
        .await
        .expect("absent"),
        Decided::NotFound
    ));
    a.review_record(vec![seen("nanopool.net", "10.0.0.3", 9)], 400)
        .await
        .expect("record");
    let after = b
        .review_get("nanopool.net".into())
        .await
        .expect("get")
        .expect("row");
    assert_eq!((after.state, after.count), (ReviewState::Dismissed, 2));

    // Pages, newest sighting first, with the state filter.
    let many: Vec<Sighting> = (10..15)
        .map(|i| seen(&format!("n{i}.example"), "10.0.0.1", i))
        .collect();
    a.review_record(many, 500).await.expect("record");
    let mut f = ReviewFilter {
        limit: 2,
        state: Some(ReviewState::Pending),
        ..ReviewFilter::default()
    };
    let mut names = Vec::new();
    loop {
        let page = b.review_list(f.clone()).await.expect("page");
        names.extend(page.items.into_iter().map(|c| c.name));
        match page.next {
            Some(next) => f.cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(
        names,
        [
            "n14.example",
            "n13.example",
            "n12.example",
            "n11.example",
            "n10.example"
        ]
    );
    f.cursor = Some(Cursor("garbage".into()));
    assert!(matches!(b.review_list(f).await, Err(StoreError::BadCursor)));
}
