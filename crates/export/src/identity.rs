//! The client's identity from the asset ledger, as each export format carries it.
//!
//! Looked up by the export's own task (when it encodes), never on the DNS path: the task reads
//! the current [`SharedLedger`](poolguard_clients::SharedLedger) snapshot, a lock-free load.
//! Only the fields a SIEM groups by are sent: the network that matched, the asset (device)
//! name and kind, its location, department and owner (the responsible person). Absent fields
//! are left out rather than sent empty.

use poolguard_clients::Identity;

/// The exported fields of `identity` as `(key, value)`, in a fixed order, absent ones left out.
/// The keys are the syslog SD-PARAM names and the dnstap `extra` JSON keys.
pub fn fields(identity: &Identity) -> impl Iterator<Item = (&'static str, &str)> {
    [
        ("network", &identity.network),
        ("asset", &identity.asset),
        ("kind", &identity.kind),
        ("location", &identity.location),
        ("department", &identity.department),
        ("owner", &identity.owner),
    ]
    .into_iter()
    .filter_map(|(key, value)| value.as_deref().map(|v| (key, v)))
}

/// The dnstap `extra` bytes: a compact JSON object of [`fields`], keys sorted, e.g.
/// `{"asset":"gpu-ws-07","department":"Physics","network":"10.1.0.0/16","owner":"Lab Manager"}`.
pub fn extra_json(identity: &Identity) -> Vec<u8> {
    let map: serde_json::Map<String, serde_json::Value> = fields(identity)
        .map(|(k, v)| (k.to_string(), serde_json::Value::from(v)))
        .collect();
    serde_json::to_vec(&map).unwrap_or_default()
}

/// The ECS fields of `identity`, merged into a syslog JSON body: `host.name` = asset,
/// `host.type` = kind, `host.geo.name` = location, `organization.name` = department,
/// `user.name` = owner, `labels.network` = the ledger network.
pub fn ecs(identity: &Identity, doc: &mut serde_json::Value) {
    let mut set = |path: [&str; 2], value: &Option<String>| {
        if let Some(v) = value {
            doc[path[0]][path[1]] = serde_json::Value::from(v.as_str());
        }
    };
    set(["host", "name"], &identity.asset);
    set(["host", "type"], &identity.kind);
    set(["organization", "name"], &identity.department);
    set(["user", "name"], &identity.owner);
    set(["labels", "network"], &identity.network);
    if let Some(location) = &identity.location {
        doc["host"]["geo"]["name"] = serde_json::Value::from(location.as_str());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_fields_are_left_out_and_the_json_is_compact() {
        let id = Identity {
            asset: Some("gpu-ws-07".into()),
            owner: Some("张伟".into()),
            contact: Some("not exported".into()),
            ..Identity::default()
        };
        assert_eq!(
            String::from_utf8(extra_json(&id)).unwrap(),
            r#"{"asset":"gpu-ws-07","owner":"张伟"}"#
        );
        let mut doc = serde_json::json!({"host": {}});
        ecs(&id, &mut doc);
        assert_eq!(doc["host"]["name"], "gpu-ws-07");
        assert_eq!(doc["user"]["name"], "张伟");
        assert!(doc.get("organization").is_none());
    }
}
