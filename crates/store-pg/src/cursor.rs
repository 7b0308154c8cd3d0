//! How the PostgreSQL store spells the cursor of a hit list.
//!
//! A hit is keyed by the node that recorded it and its place in that node's local store
//! (`node`, `local_block`, `local_index`), so two nodes' hits at the same millisecond never
//! share a key: a page continues strictly below `(time_ms, node, local_block, local_index)`.
//! The cursor is that key as hex (8 + 8 + 4 bytes, then the node name's bytes); callers only
//! ever see [`Cursor`], and a text that does not decode is [`StoreError::BadCursor`].
//!
//! Incidents, the audit log and the delivery log continue below an id, spelled as SQLite
//! spells it (`poolguard_store::cursor::id`).

use poolguard_store::{Cursor, StoreError};

/// Where a hit list continues: strictly below this key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HitKey {
    pub time_ms: i64,
    pub node: String,
    pub local_block: i64,
    pub local_index: i32,
}

/// Fixed-size part of the key: time, block, index.
const FIXED: usize = 8 + 8 + 4;

/// The cursor continuing below `key`.
pub fn of_key(key: &HitKey) -> Cursor {
    let mut b = Vec::with_capacity(FIXED + key.node.len());
    b.extend_from_slice(&key.time_ms.to_be_bytes());
    b.extend_from_slice(&key.local_block.to_be_bytes());
    b.extend_from_slice(&key.local_index.to_be_bytes());
    b.extend_from_slice(key.node.as_bytes());
    Cursor(hex::encode(b))
}

/// The key a hit cursor continues below.
pub fn key(c: &Cursor) -> Result<HitKey, StoreError> {
    let b = hex::decode(c.as_str()).map_err(|_| StoreError::BadCursor)?;
    if b.len() < FIXED {
        return Err(StoreError::BadCursor);
    }
    let (fixed, node) = b.split_at(FIXED);
    let (t, rest) = fixed.split_at(8);
    let (block, index) = rest.split_at(8);
    let bad = |_| StoreError::BadCursor;
    Ok(HitKey {
        time_ms: i64::from_be_bytes(t.try_into().map_err(bad)?),
        local_block: i64::from_be_bytes(block.try_into().map_err(bad)?),
        local_index: i32::from_be_bytes(index.try_into().map_err(bad)?),
        node: String::from_utf8(node.to_vec()).map_err(|_| StoreError::BadCursor)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let k = HitKey {
            time_ms: 1_793_491_200_000,
            node: "resolver-b".into(),
            local_block: 42,
            local_index: 7,
        };
        assert_eq!(key(&of_key(&k)).expect("decodes"), k);
        for bad in ["abc", "00", &"g".repeat(40), &"00".repeat(19)] {
            assert!(matches!(
                key(&Cursor(bad.to_string())),
                Err(StoreError::BadCursor)
            ));
        }
        // A node name that is not UTF-8 is no cursor of ours.
        let mut raw = "00".repeat(FIXED);
        raw.push_str("ff");
        assert!(matches!(key(&Cursor(raw)), Err(StoreError::BadCursor)));
    }
}
