//! The served OpenAPI document is valid OpenAPI 3 (checked by a real validator, not by us), and
//! every operation has a unique id, a resource tag and a described response: client generators
//! name their methods after operation ids, and two `list`s make them fail or silently merge.

mod api_support;

#[path = "support/tools.rs"]
mod tools;

use std::collections::BTreeMap;

use api_support::{Api, Harness};

/// The resources the API is organised by; every operation is tagged with exactly one of them.
const RESOURCES: [&str; 16] = [
    "queries",
    "hits",
    "stats",
    "clients",
    "ledger",
    "tokens",
    "audit",
    "feeds",
    "check",
    "publish",
    "incidents",
    "quarantine",
    "reports",
    "alerts",
    "ops",
    "openapi",
];

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_validates_with_unique_ids_resource_tags_and_described_responses() {
    tools::require_python_module("openapi_spec_validator", "openapi-spec-validator");
    let h = Harness::new(|_| {});
    let api = Api::start(&h, None).await;
    let (status, body) = api.get("/api/v1/openapi.json").await;
    assert_eq!(status, 200, "{body}");

    // The real validator, on exactly the bytes the server sent.
    let file = h.dir.path().join("openapi.json");
    std::fs::write(&file, &body).expect("write document");
    let python = tools::require_tool("python3", "python3");
    let out = std::process::Command::new(python)
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .expect("run openapi_spec_validator");
    assert!(
        out.status.success(),
        "openapi-spec-validator rejects the served document:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let doc: serde_json::Value = serde_json::from_str(&body).expect("json document");
    let declared: Vec<&str> = doc["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str())
        .collect();
    let paths = doc["paths"].as_object().expect("paths");
    let mut ids: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut problems = Vec::new();
    let mut operations = 0;
    for (path, item) in paths {
        for method in METHODS {
            let Some(op) = item.get(method) else { continue };
            operations += 1;
            let here = format!("{} {path}", method.to_uppercase());
            match op["operationId"].as_str() {
                Some(id) if !id.is_empty() => {
                    ids.entry(id.to_string()).or_default().push(here.clone())
                }
                _ => problems.push(format!("{here}: no operationId")),
            }
            let tags: Vec<&str> = op["tags"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t.as_str())
                .collect();
            if tags.len() != 1 || !RESOURCES.contains(&tags[0]) || !declared.contains(&tags[0]) {
                problems.push(format!(
                    "{here}: tags {tags:?}, want one of the resources {RESOURCES:?}"
                ));
            }
            let responses = op["responses"].as_object().expect("responses");
            for (code, r) in responses {
                if r["description"]
                    .as_str()
                    .is_none_or(|d| d.trim().is_empty())
                {
                    problems.push(format!("{here}: response {code} has no description"));
                }
            }
        }
    }
    // Every tag used is declared once at the top with a description (the docs' sections).
    for t in doc["tags"].as_array().into_iter().flatten() {
        let name = t["name"].as_str().unwrap_or_default();
        if !RESOURCES.contains(&name) || t["description"].as_str().is_none_or(str::is_empty) {
            problems.push(format!("declared tag {t}: not a resource or undescribed"));
        }
    }
    for (id, uses) in &ids {
        if uses.len() > 1 {
            problems.push(format!(
                "operationId `{id}` used {} times: {uses:?}",
                uses.len()
            ));
        }
    }
    assert!(operations > 30, "only {operations} operations documented");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    api.stop().await;
}
