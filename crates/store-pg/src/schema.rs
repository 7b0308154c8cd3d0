//! The PostgreSQL schema and its migrations, applied at start under a lock.
//!
//! Several nodes may start at once against one database: [`migrate`] takes a transaction-level
//! advisory lock before it reads the version, so exactly one node applies each step and the
//! others wait and then find the schema current. Every step runs in that one transaction, so a
//! half-applied migration never survives a crash. A database written by a newer build is
//! refused (every node of a group must be upgraded before the newest one starts).
//!
//! Times are milliseconds since the epoch (`BIGINT`), as in the SQLite store and the API;
//! client addresses are `inet`, so CIDR filters are index ranges (`client <<= $1`).

use crate::error::PgError;

/// The advisory lock key migrations hold ("poolguard" in ASCII, truncated to fit).
const MIGRATION_LOCK: i64 = 0x706f_6f6c_6775_6172;

/// The version this build writes: one per step in [`STEPS`].
pub const SCHEMA_VERSION: i64 = STEPS.len() as i64;

/// Every step, in order; step `i` brings the schema to version `i + 1`. Add a step for every
/// change; never edit a released one.
const STEPS: &[&str] = &[V1, V2, V3, V4, V5, V6, V7, V8, V9, V10, V11];

/// The shared evidence and state of a group of nodes.
///
/// * `hits`: every blocked query of every node with its identity snapshot, keyed by the node
///   and the hit's position in that node's local store (`local_block`, `local_index`), so a
///   hit shipped twice (a crash between commit and acknowledgement) is stored once.
///   `ship_cursor` holds each node's last shipped local block, written in the same
///   transaction as the hits, so shipping resumes exactly where it stopped.
/// * `incidents`: one open incident per client key, enforced by the partial unique index
///   `incidents_open_key` (two nodes folding hits of one client race on the insert, and the
///   loser joins the winner's incident). `poolguard_merge_list(have, more)` appends the items
///   of a comma-separated list not yet in another, in order: folds merge feed and category
///   lists with it, so one node never drops a feed another node added.
/// * `changes`: notifications for the other nodes (quarantine, feeds, ledger, tokens) are
///   sent by triggers on the tables they concern, so a change made by any node, or by hand in
///   psql, reaches every node (`LISTEN poolguard_changes`).
const V1: &str = r#"
CREATE TABLE nodes (
    name          TEXT   PRIMARY KEY,
    started_ms    BIGINT NOT NULL,
    seen_ms       BIGINT NOT NULL,
    version       TEXT   NOT NULL
);
CREATE TABLE hits (
    node          TEXT     NOT NULL,
    local_block   BIGINT   NOT NULL,
    local_index   INTEGER  NOT NULL,
    time_ms       BIGINT   NOT NULL,
    client        INET     NOT NULL,
    client_key    TEXT     NOT NULL,
    port          INTEGER  NOT NULL,
    transport     TEXT     NOT NULL,
    name          TEXT     NOT NULL,
    qtype         TEXT     NOT NULL,
    action        TEXT     NOT NULL,
    feed          TEXT,
    rule          TEXT,
    rcode         TEXT     NOT NULL,
    answer        TEXT     NOT NULL,
    latency_us    INTEGER  NOT NULL,
    upstream      TEXT,
    network TEXT, asset TEXT, mac TEXT, kind TEXT, location TEXT, department TEXT,
    owner TEXT, contact TEXT,
    PRIMARY KEY (node, local_block, local_index)
);
CREATE INDEX hits_time ON hits (time_ms);
CREATE INDEX hits_client ON hits (client, time_ms);
CREATE INDEX hits_key ON hits (client_key, time_ms);
CREATE INDEX hits_name ON hits (name text_pattern_ops, time_ms);
CREATE INDEX hits_rname ON hits (reverse(name) text_pattern_ops);
CREATE TABLE ship_cursor (
    node          TEXT   PRIMARY KEY,
    local_block   BIGINT NOT NULL,
    shipped_ms    BIGINT NOT NULL
);
CREATE TABLE hit_names (
    name          TEXT   PRIMARY KEY,
    first_ms      BIGINT NOT NULL,
    last_ms       BIGINT NOT NULL
);
CREATE INDEX hit_names_first ON hit_names (first_ms);
CREATE TABLE incidents (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_key      TEXT    NOT NULL,
    client          INET    NOT NULL,
    network TEXT, asset TEXT, mac TEXT, kind TEXT, location TEXT, department TEXT,
    ledger_owner TEXT, contact TEXT,
    device          TEXT,
    owner           TEXT,
    status          TEXT    NOT NULL DEFAULT 'open',
    resolution      TEXT,
    assignee        TEXT,
    severity        INTEGER NOT NULL DEFAULT 2,
    feeds           TEXT    NOT NULL DEFAULT '',
    categories      TEXT    NOT NULL DEFAULT '',
    opened_ms       BIGINT  NOT NULL,
    last_hit_ms     BIGINT  NOT NULL,
    hit_count       BIGINT  NOT NULL DEFAULT 0,
    name_count      BIGINT  NOT NULL DEFAULT 0,
    identify_due_ms BIGINT  NOT NULL,
    report_due_ms   BIGINT  NOT NULL,
    identified_ms   BIGINT,
    reported_ms     BIGINT,
    closed_ms       BIGINT,
    enforced_ms     BIGINT,
    alerted         INTEGER NOT NULL DEFAULT 0,
    opened_by       TEXT    NOT NULL
);
CREATE UNIQUE INDEX incidents_open_key ON incidents (client_key) WHERE status <> 'closed';
CREATE FUNCTION poolguard_merge_list(have TEXT, more TEXT) RETURNS TEXT
    LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN have = '' THEN more ELSE have || COALESCE((
        SELECT string_agg(',' || x, '' ORDER BY o)
        FROM unnest(string_to_array(more, ',')) WITH ORDINALITY AS m(x, o)
        WHERE x <> '' AND x <> ALL (string_to_array(have, ','))), '') END
$$;
CREATE INDEX incidents_key_opened ON incidents (client_key, opened_ms);
CREATE INDEX incidents_opened ON incidents (opened_ms);
CREATE INDEX incidents_status ON incidents (status, opened_ms);
CREATE TABLE incident_names (
    incident_id   BIGINT NOT NULL REFERENCES incidents (id),
    name          TEXT   NOT NULL,
    PRIMARY KEY (incident_id, name)
);
CREATE TABLE incident_notes (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id   BIGINT NOT NULL REFERENCES incidents (id),
    time_ms       BIGINT NOT NULL,
    author        TEXT   NOT NULL,
    text          TEXT   NOT NULL
);
CREATE INDEX incident_notes_incident ON incident_notes (incident_id, time_ms);
CREATE TABLE quarantine (
    ip            INET   PRIMARY KEY,
    since_ms      BIGINT NOT NULL,
    actor         TEXT   NOT NULL,
    reason        TEXT   NOT NULL,
    incident_id   BIGINT
);
CREATE TABLE audit (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time_ms       BIGINT NOT NULL,
    node          TEXT   NOT NULL,
    actor         TEXT   NOT NULL,
    role          TEXT   NOT NULL,
    action        TEXT   NOT NULL,
    target        TEXT   NOT NULL,
    before_hash   TEXT,
    after_hash    TEXT,
    detail        TEXT   NOT NULL DEFAULT ''
);
CREATE INDEX audit_time ON audit (time_ms);
CREATE INDEX audit_target ON audit (target, time_ms);
CREATE TABLE alert_deliveries (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time_ms       BIGINT  NOT NULL,
    node          TEXT    NOT NULL,
    event         TEXT    NOT NULL,
    target        TEXT    NOT NULL,
    attempt       INTEGER NOT NULL,
    status        INTEGER,
    ok            BOOLEAN NOT NULL,
    error         TEXT,
    incident_id   BIGINT
);
CREATE INDEX alert_deliveries_time ON alert_deliveries (time_ms);
CREATE FUNCTION poolguard_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('poolguard_changes', TG_ARGV[0]);
    RETURN NULL;
END $$;
CREATE TRIGGER quarantine_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON quarantine
    FOR EACH STATEMENT EXECUTE FUNCTION poolguard_notify_change('quarantine');
-- BEGIN api-store block (the store traits' PgStore): keep at the end of V1.
-- Hit lists page newest first on (time_ms, node, local_block, local_index): one index walk.
CREATE INDEX hits_page ON hits (time_ms DESC, node DESC, local_block DESC, local_index DESC);
CREATE INDEX audit_node ON audit (node, time_ms);
-- END api-store block
"#;

/// What maintainers write through any node and every node applies (docs/SEVERAL-NODES.md,
/// "Feeds, the ledger and tokens"): `shared_docs` holds the newest content of each document
/// (`topic` `feeds`: the definitions and each feed written over the API; `ledger`; `tokens`:
/// one row per revoked token hash), `shared_versions` every write of it (who, which node,
/// the content), so the group keeps the history whichever node took the upload. The trigger
/// notifies `poolguard_changes` with the topic, row by row (PostgreSQL folds identical
/// payloads of one transaction into one notification). `nodes.api_url`: where each node's
/// API answers, for the group-wide query log gathered from every node.
const V2: &str = r#"
CREATE TABLE shared_docs (
    topic         TEXT   NOT NULL,
    name          TEXT   NOT NULL,
    sha256        TEXT   NOT NULL,
    content       BYTEA  NOT NULL,
    who           TEXT   NOT NULL,
    action        TEXT   NOT NULL,
    node          TEXT   NOT NULL,
    updated_ms    BIGINT NOT NULL,
    PRIMARY KEY (topic, name)
);
CREATE TABLE shared_versions (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic         TEXT   NOT NULL,
    name          TEXT   NOT NULL,
    sha256        TEXT   NOT NULL,
    content       BYTEA  NOT NULL,
    who           TEXT   NOT NULL,
    action        TEXT   NOT NULL,
    node          TEXT   NOT NULL,
    time_ms       BIGINT NOT NULL
);
CREATE INDEX shared_versions_doc ON shared_versions (topic, name, id);
CREATE FUNCTION poolguard_notify_topic() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('poolguard_changes', OLD.topic);
    ELSE
        PERFORM pg_notify('poolguard_changes', NEW.topic);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER shared_docs_changed AFTER INSERT OR UPDATE OR DELETE ON shared_docs
    FOR EACH ROW EXECUTE FUNCTION poolguard_notify_topic();
-- Where each node's API answers, so the node asked for the group's query log gathers it.
ALTER TABLE nodes ADD COLUMN api_url TEXT;
"#;

/// A department's hits in page order (issue 16's measurement, docs/BENCHMARKS.md): with 10 M
/// hits a department filter walked `hits_page` and checked every row, so a rare pairing
/// (`department` and a feed it seldom hits) read millions of rows for one page (p95 350 ms).
/// On this index a department's page reads that department's rows only.
const V3: &str = r#"
CREATE INDEX hits_department ON hits (department, time_ms DESC, node DESC, local_block DESC,
    local_index DESC);
"#;

/// The rollup of the hits shipped by one `INSERT` (`new_hits`) or of every hit (`hits`, when
/// step 4 is applied to a database that has some): counts per hour and per day (`span` 0 / 1,
/// `bucket` in hours or days since the epoch), by action, name, client and department
/// (`kind` 0–3, as `poolguard_store::rollup::Kind`; the feed, 4, since step 11), and per node, so two nodes shipping at
/// once never wait on each other's rows. Client rows keep the greatest asset and department
/// seen, which the bulletin's offender table shows. Keys are grouped and upserted in key order,
/// so concurrent shipments of one node (there are none, but a restarted one may overlap its
/// predecessor) lock rows in the same order.
macro_rules! roll_hits_from {
    ($source:literal) => {
        roll_hits_from!(
            $source,
            "(0::smallint, h.action), (1::smallint, h.name),
        (2::smallint, host(h.client)), (3::smallint, h.department)"
        )
    };
    ($source:literal, $keys:literal) => {
        concat!(
            "INSERT INTO hit_rollups AS r (span, kind, bucket, key, node, n, asset, department)
    SELECT s.span, k.kind, h.time_ms / s.width, k.key, h.node, count(*),
           CASE WHEN k.kind = 2 THEN max(h.asset) END,
           CASE WHEN k.kind = 2 THEN max(h.department) END
    FROM ",
            $source,
            " h
    CROSS JOIN (VALUES (0::smallint, 3600000::bigint), (1::smallint, 86400000::bigint))
        s(span, width)
    CROSS JOIN LATERAL (VALUES ",
            $keys,
            ") k(kind, key)
    WHERE k.key IS NOT NULL
    GROUP BY 1, 2, 3, 4, 5
    ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (span, kind, bucket, key, node) DO UPDATE SET
        n = r.n + excluded.n,
        asset = GREATEST(r.asset, excluded.asset),
        department = GREATEST(r.department, excluded.department);"
        )
    };
}

/// Hit retention (`poolguard_expire_hits`, created by step 4, replaced by step 11 to delete
/// the rollup rows of every kind it lists): `$create` is `CREATE FUNCTION` or `CREATE OR
/// REPLACE FUNCTION`, `$kinds` the rollup kinds deleted with the hits.
macro_rules! expire_hits {
    ($create:literal, $kinds:literal) => {
        concat!(
            $create,
            " poolguard_expire_hits(p_before BIGINT, p_limit INTEGER)
RETURNS INTEGER LANGUAGE plpgsql AS $$
DECLARE
    v_n INTEGER;
BEGIN
    IF NOT pg_try_advisory_xact_lock(7380963232417919589) THEN
        RETURN 0;
    END IF;
    p_before := p_before - mod(p_before, 86400000);
    DELETE FROM hits WHERE ctid = ANY (ARRAY(
        SELECT ctid FROM hits WHERE time_ms < p_before ORDER BY time_ms LIMIT p_limit));
    GET DIAGNOSTICS v_n = ROW_COUNT;
    DELETE FROM hit_rollups WHERE span = 0 AND kind IN (",
            $kinds,
            ")
        AND bucket < div(p_before, 3600000);
    DELETE FROM hit_rollups WHERE span = 1 AND kind IN (",
            $kinds,
            ")
        AND bucket < div(p_before, 86400000);
    RETURN v_n;
END $$;
"
        )
    };
}

/// Rollups of the hits (issue 18's design carried to PostgreSQL, docs/SEVERAL-NODES.md):
/// `/stats` and the bulletin read whole hours and days from `hit_rollups` and only the partial
/// hours at a window's edges from `hits`. A statement trigger with a transition table keeps
/// them in the transaction that inserts the hits, whichever path inserts them (the shipper,
/// `poolguard store migrate`, a bulk load), so they are exact at every commit: rows skipped by
/// `ON CONFLICT DO NOTHING` (a shipment repeated after a crash) are not in `new_hits` and are
/// not counted twice. Retention (`poolguard_expire_hits`) deletes hits and the rollup buckets
/// wholly before its cut-off together; nothing else deletes `hits`, and whatever does must
/// adjust the rollups in the same transaction. Late identity (`crate::ship::relearn`) updates
/// only a hit's identity columns: the rollups keep the asset and department it was shipped
/// with, as the SQLite store's keep the department. Existing hits are rolled up once, here.
///
/// Names and clients are unbounded keys (every client of a campus, a flood of random
/// subdomains), so once a bucket is closed `poolguard_trim_rollups` keeps its largest
/// [`ROLLUP_KEEP`] per node and folds the rest into one row; the shippers call it when idle
/// (`crate::ship::trim`). Actions and departments are few and stay exact.
/// The investigator's account of each incident (`poolguard_store::narrative`), one JSON
/// document per incident, as on SQLite.
const V5: &str = r#"
CREATE TABLE incident_narrative (
    incident_id   BIGINT PRIMARY KEY REFERENCES incidents (id),
    body          TEXT   NOT NULL,
    updated_ms    BIGINT NOT NULL
);
"#;

const V4: &str = concat!(
    r#"
CREATE TABLE hit_rollups (
    span          SMALLINT NOT NULL,
    kind          SMALLINT NOT NULL,
    bucket        BIGINT   NOT NULL,
    key           TEXT     NOT NULL,
    node          TEXT     NOT NULL,
    n             BIGINT   NOT NULL,
    asset         TEXT,
    department    TEXT,
    PRIMARY KEY (span, kind, bucket, key, node)
);
CREATE FUNCTION poolguard_roll_hits() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    "#,
    roll_hits_from!("new_hits"),
    r#"
    RETURN NULL;
END $$;
CREATE TRIGGER hits_rolled AFTER INSERT ON hits REFERENCING NEW TABLE AS new_hits
    FOR EACH STATEMENT EXECUTE FUNCTION poolguard_roll_hits();
-- The first bucket of each span whose name and client rows are not trimmed yet.
CREATE TABLE rollup_trimmed (
    span          SMALLINT PRIMARY KEY,
    next          BIGINT   NOT NULL
);
INSERT INTO rollup_trimmed (span, next) VALUES (0, 0), (1, 0);
-- Trims the next closed bucket of `p_span` below `p_before`: per node, the name and client
-- rows beyond the `p_keep` largest fold into one row with key '' (counted in totals, never
-- ranked), as the SQLite store's top-k does. One bucket per call, claimed with SKIP LOCKED so
-- nodes calling at once never wait on each other; true when it trimmed one.
CREATE FUNCTION poolguard_trim_rollups(p_span SMALLINT, p_before BIGINT, p_keep INTEGER)
RETURNS BOOLEAN LANGUAGE plpgsql AS $$
DECLARE
    v_next   BIGINT;
    v_bucket BIGINT;
BEGIN
    SELECT next INTO v_next FROM rollup_trimmed WHERE span = p_span FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN FALSE;
    END IF;
    SELECT min(bucket) INTO v_bucket FROM hit_rollups
        WHERE span = p_span AND kind IN (1, 2) AND bucket >= v_next AND bucket < p_before;
    IF v_bucket IS NULL THEN
        UPDATE rollup_trimmed SET next = GREATEST(next, p_before) WHERE span = p_span;
        RETURN FALSE;
    END IF;
    WITH ranked AS (
        SELECT kind, key, node,
               row_number() OVER (PARTITION BY kind, node ORDER BY n DESC, key) AS r
        FROM hit_rollups
        WHERE span = p_span AND kind IN (1, 2) AND bucket = v_bucket AND key <> ''
    ), gone AS (
        DELETE FROM hit_rollups h USING ranked
        WHERE h.span = p_span AND h.kind = ranked.kind AND h.bucket = v_bucket
          AND h.key = ranked.key AND h.node = ranked.node AND ranked.r > p_keep
        RETURNING h.kind, h.node, h.n
    )
    INSERT INTO hit_rollups AS t (span, kind, bucket, key, node, n)
    SELECT p_span, kind, v_bucket, '', node, sum(n) FROM gone GROUP BY kind, node
    ON CONFLICT (span, kind, bucket, key, node) DO UPDATE SET n = t.n + excluded.n;
    UPDATE rollup_trimmed SET next = v_bucket + 1 WHERE span = p_span;
    RETURN TRUE;
END $$;
-- Hit retention: deletes up to `p_limit` hits older than `p_before` (rounded down to a day)
-- and the rollup rows of the hours and days before it, so the rollups never count a deleted
-- hit. One node at a time (an advisory lock others skip); returns the hits deleted.
"#,
    expire_hits!("CREATE FUNCTION", "0, 1, 2, 3"),
    roll_hits_from!("hits"),
    "\n"
);

/// Name and client rows kept per bucket and node once a bucket is trimmed (the SQLite store's
/// `rollup::TOP_K`).
pub const ROLLUP_KEEP: i32 = poolguard_store::rollup::TOP_K as i32;

/// Who held the hit's address at its time (issue 15, docs/IDENTITY.md): the account, the host
/// name and the identity sources that named them (`kea`, `dhcpd+radius`). NULL for hits
/// shipped before, and when the ledger alone identified the client.
const V6: &str = r#"
ALTER TABLE hits ADD COLUMN account TEXT, ADD COLUMN hostname TEXT,
    ADD COLUMN identity_source TEXT;
"#;

/// Who held each address when, as every node learned it (issue 16, docs/SEVERAL-NODES.md,
/// "Identity"): a holding per row, keyed by its source, address and start, as the node that
/// learned it last saw it (a renewal or a Stop updates the row; an unchanged holding is not
/// rewritten). `seq` grows with every write, so a node reads what changed since it last
/// looked; the statement trigger notifies `identity`.
const V7: &str = r#"
CREATE SEQUENCE identity_seq;
CREATE TABLE identity_intervals (
    source    TEXT   NOT NULL,
    address   TEXT   NOT NULL,
    start_ms  BIGINT NOT NULL,
    end_ms    BIGINT NOT NULL,
    mac       TEXT,
    account   TEXT,
    hostname  TEXT,
    node      TEXT   NOT NULL,
    seq       BIGINT NOT NULL DEFAULT nextval('identity_seq'),
    PRIMARY KEY (source, address, start_ms)
);
CREATE INDEX identity_intervals_seq ON identity_intervals (seq);
CREATE INDEX identity_intervals_end ON identity_intervals (end_ms);
CREATE TRIGGER identity_changed AFTER INSERT OR UPDATE ON identity_intervals
    FOR EACH STATEMENT EXECUTE FUNCTION poolguard_notify_change('identity');
"#;

/// Who held the address when the incident opened (the SQLite store's step 11): account, host
/// name and the identity sources that named them.
const V8: &str = r#"
ALTER TABLE incidents ADD COLUMN account TEXT, ADD COLUMN hostname TEXT,
    ADD COLUMN identity_source TEXT;
"#;

/// The `[incidents.exempt]` entry that exempted a hit (a staff test machine), as the SQLite
/// store's hit blocks keep it since block format 5.
const V9: &str = r#"
ALTER TABLE hits ADD COLUMN exempt TEXT;
"#;

/// Issues 20 and 21: the scheduled bulletin's claimed periods (`[alerts.bulletin]`,
/// `crate::bulletin`: one row per period, inserted `ON CONFLICT DO NOTHING` by the node that
/// sends it, so a group sends each period's bulletin once), and the review queue of candidate
/// pool names (`crate::review`: one queue for the group, each node's scan position its own
/// row).
const V10: &str = r#"
CREATE TABLE bulletins_sent (
    since_ms    BIGINT PRIMARY KEY,
    until_ms    BIGINT NOT NULL,
    node        TEXT   NOT NULL,
    claimed_ms  BIGINT NOT NULL
);
CREATE TABLE review_candidates (
    name        TEXT   PRIMARY KEY,
    reason      TEXT   NOT NULL,
    state       TEXT   NOT NULL,
    clients     TEXT   NOT NULL,
    first_ms    BIGINT NOT NULL,
    last_ms     BIGINT NOT NULL,
    count       BIGINT NOT NULL,
    resolved    TEXT   NOT NULL,
    evidence    TEXT   NOT NULL,
    decided_by  TEXT,
    decided_ms  BIGINT,
    decision    TEXT
);
CREATE INDEX review_candidates_last ON review_candidates (last_ms DESC, name);
CREATE TABLE review_scan (
    node        TEXT   PRIMARY KEY,
    until_ms    BIGINT NOT NULL
);
"#;

/// Hits by feed in the rollups (kind 4, `poolguard_store::rollup::Kind::Feed`), as the SQLite
/// store's schema 17: the trigger counts the feed of every hit from now on, retention deletes
/// its rows with the others, and the hits already stored are rolled up by feed once, here (one
/// grouping of `hits`, in the migration's transaction). Feeds are few, so their rows are never
/// trimmed (`poolguard_trim_rollups` trims names and clients only), like departments.
const V11: &str = concat!(
    r#"
CREATE OR REPLACE FUNCTION poolguard_roll_hits() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    "#,
    roll_hits_from!(
        "new_hits",
        "(0::smallint, h.action), (1::smallint, h.name),
        (2::smallint, host(h.client)), (3::smallint, h.department), (4::smallint, h.feed)"
    ),
    r#"
    RETURN NULL;
END $$;
"#,
    expire_hits!("CREATE OR REPLACE FUNCTION", "0, 1, 2, 3, 4"),
    roll_hits_from!("hits", "(4::smallint, h.feed)"),
    "\n"
);

/// The channel every node listens on; the payload names what changed.
pub const CHANGES_CHANNEL: &str = "poolguard_changes";

/// Brings the database to [`SCHEMA_VERSION`] under the migration lock; refuses a database
/// from a newer build. Returns the version found before.
pub async fn migrate(client: &mut tokio_postgres::Client) -> Result<i64, PgError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS poolguard_schema (
             version    BIGINT NOT NULL,
             applied_ms BIGINT NOT NULL)",
    )
    .await?;
    let found: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM poolguard_schema",
            &[],
        )
        .await?
        .get(0);
    if found > SCHEMA_VERSION {
        return Err(PgError::NewerSchema {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    let now = crate::now_ms();
    for (i, step) in STEPS.iter().enumerate().skip(found as usize) {
        tx.batch_execute(step).await?;
        let version = i as i64 + 1;
        tx.execute(
            "INSERT INTO poolguard_schema (version, applied_ms) VALUES ($1, $2)",
            &[&version, &now],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(found)
}
