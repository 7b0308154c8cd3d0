//! The crate graph is the architecture: `scripts/check-layers.sh` (also a `.ci/run` step) must
//! pass on this workspace and must refuse a dependency that points up.

#[path = "support/tools.rs"]
#[allow(dead_code)]
mod tools;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the checker on `metadata`; returns (success, stdout + stderr).
fn check(metadata: &str) -> (bool, String) {
    let python = tools::require_tool("python3", "python3");
    let mut child = Command::new(python)
        .arg(root().join("scripts/check-layers.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(metadata.as_bytes())
        .expect("metadata written");
    let out = child.wait_with_output().expect("checker ran");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn metadata() -> String {
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(root())
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("metadata is UTF-8")
}

#[test]
fn every_dependency_of_the_workspace_points_down() {
    let (ok, text) = check(&metadata());
    assert!(ok, "{text}");
    assert!(text.contains("layers ok: 16 crates"), "{text}");
}

#[test]
fn a_dependency_that_points_up_is_refused() {
    // The real metadata with one upward edge added: the store depending on incidents.
    let mut meta: serde_json::Value = serde_json::from_str(&metadata()).expect("json");
    let store = meta["packages"]
        .as_array_mut()
        .expect("packages")
        .iter_mut()
        .find(|p| p["name"] == "poolguard-store")
        .expect("the store crate");
    store["dependencies"]
        .as_array_mut()
        .expect("dependencies")
        .push(serde_json::json!({ "name": "poolguard-incidents", "kind": null }));
    let (ok, text) = check(&meta.to_string());
    assert!(!ok, "{text}");
    assert!(
        text.contains("poolguard-store (layer 3) depends on poolguard-incidents (layer 4)"),
        "{text}"
    );
}

#[test]
fn a_crate_missing_from_the_table_is_refused() {
    let mut meta: serde_json::Value = serde_json::from_str(&metadata()).expect("json");
    meta["packages"]
        .as_array_mut()
        .expect("packages")
        .push(serde_json::json!({ "name": "poolguard-new", "dependencies": [] }));
    let (ok, text) = check(&meta.to_string());
    assert!(!ok, "{text}");
    assert!(
        text.contains("poolguard-new: not in the layer table"),
        "{text}"
    );
}
