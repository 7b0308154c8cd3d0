//! CSV exports open in Excel on a Chinese Windows: every `format=csv` starts with a UTF-8 byte
//! order mark unless `bom=false`, and a bad `bom` is a 400 naming the parameter.

mod api_support;

use std::sync::Arc;

use api_support::{Api, Harness, T0, event, ledger};
use poolguard::record::Outcome;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Every CSV export, each with its other parameters.
const EXPORTS: [&str; 5] = [
    "/api/v1/hits?format=csv",
    "/api/v1/queries?format=csv",
    "/api/v1/incidents?format=csv",
    "/api/v1/quarantine?format=csv",
    "/api/v1/reports/summary?format=csv&since=2026-11-01T00:00:00Z&until=2026-11-02T00:00:00Z",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_exports_start_with_a_utf8_bom_unless_bom_false() {
    let h = Harness::new(|_| {});
    h.ledger.store(Arc::new(ledger(
        "network,mac,asset,kind,location,department,owner,contact\n\
         10.20.3.7,,rig-7,workstation,理科楼 301,物理学院,张伟,\n",
    )));
    h.sink.submit(event(
        T0,
        "10.20.3.7:1",
        "pool.minexmr.com",
        "A",
        Outcome::Blocked,
        Some("mining"),
    ));
    h.flush().await;
    let api = Api::start(&h, None).await;

    // The hit's department, read back as a spreadsheet would: BOM, then UTF-8.
    let (status, ctype, body) = api.get_bytes("/api/v1/hits?format=csv").await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(ctype.as_deref(), Some("text/csv; charset=utf-8"));
    assert!(body.starts_with(BOM), "no BOM: {:02x?}", &body[..8]);
    let text = std::str::from_utf8(&body[BOM.len()..]).expect("UTF-8 after the BOM");
    let mut rdr = csv::Reader::from_reader(text.as_bytes());
    let col = rdr
        .headers()
        .expect("header")
        .iter()
        .position(|h| h == "department")
        .expect("department column");
    let rows: Vec<csv::StringRecord> = rdr.records().collect::<Result<_, _>>().expect("rows");
    assert_eq!(rows.len(), 1);
    assert_eq!(&rows[0][col], "物理学院");

    for path in EXPORTS {
        let (status, _, body) = api.get_bytes(path).await;
        assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
        assert!(body.starts_with(BOM), "{path}: no BOM");
        assert!(!body[BOM.len()..].starts_with(BOM), "{path}: two BOMs");

        for off in ["bom=false", "bom=0"] {
            let (status, _, body) = api.get_bytes(&format!("{path}&{off}")).await;
            assert_eq!(status, 200, "{path}&{off}");
            assert!(
                !body.is_empty() && !body.starts_with(BOM),
                "{path}&{off}: {:02x?}",
                &body[..body.len().min(8)]
            );
            std::str::from_utf8(&body).expect("UTF-8");
        }
        let (status, _, body) = api.get_bytes(&format!("{path}&bom=true")).await;
        assert_eq!(status, 200);
        assert!(body.starts_with(BOM), "{path}&bom=true");

        let (status, _, body) = api.get_bytes(&format!("{path}&bom=yes")).await;
        assert_eq!(status, 400, "{path}&bom=yes");
        let err: serde_json::Value = serde_json::from_slice(&body).expect("JSON error");
        assert_eq!(err["parameter"], "bom", "{err}");
        let msg = err["error"].as_str().unwrap_or_default();
        assert!(
            msg.contains("`yes`") && msg.contains("true or false"),
            "{msg}"
        );
    }

    // NDJSON and JSON never start with a BOM (RFC 8259 section 8.1), whatever `bom` says.
    for path in [
        "/api/v1/hits?format=ndjson&bom=true",
        "/api/v1/hits?bom=true",
    ] {
        let (status, _, body) = api.get_bytes(path).await;
        assert_eq!(status, 200, "{path}");
        assert!(!body.starts_with(BOM), "{path}");
        let first = body.split(|b| *b == b'\n').next().unwrap_or_default();
        serde_json::from_slice::<serde_json::Value>(first).expect("JSON");
    }
    api.stop().await;
}
