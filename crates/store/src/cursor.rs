//! How the SQLite store spells its cursors: the keys the HTTP API has always sent.
//!
//! The query log and the hits continue from `(time_ms, id)`, sent as 32 hex digits (two
//! big-endian i64); incidents, the audit log and the delivery log continue below an id, sent
//! in decimal. Callers only ever see [`Cursor`]; a text that does not decode is
//! [`StoreError::BadCursor`] (the API's 400 on `cursor`).

use crate::StoreError;
use crate::traits::Cursor;

/// The cursor continuing below `(time_ms, id)`.
pub fn of_key((time_ms, id): (i64, i64)) -> Cursor {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&time_ms.to_be_bytes());
    b[8..].copy_from_slice(&id.to_be_bytes());
    Cursor(hex::encode(b))
}

/// The `(time_ms, id)` a list cursor continues below.
pub fn key(c: &Cursor) -> Result<(i64, i64), StoreError> {
    let mut b = [0u8; 16];
    hex::decode_to_slice(c.as_str(), &mut b).map_err(|_| StoreError::BadCursor)?;
    let (t, id) = b.split_at(8);
    let t = t.try_into().map_err(|_| StoreError::BadCursor)?;
    let id = id.try_into().map_err(|_| StoreError::BadCursor)?;
    Ok((i64::from_be_bytes(t), i64::from_be_bytes(id)))
}

/// The id an id cursor continues below.
pub fn id(c: &Cursor) -> Result<i64, StoreError> {
    c.as_str().parse().map_err(|_| StoreError::BadCursor)
}

/// The cursor after a page of `items` (newest first) that asked for `limit`: the last id
/// when the page is full, none when it is the last page.
pub fn after<T>(items: &[T], limit: usize, id: impl Fn(&T) -> i64) -> Option<Cursor> {
    (items.len() == limit)
        .then(|| items.last().map(|r| Cursor(id(r).to_string())))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        for k in [(0, 0), (1_793_491_200_000, 42), (-5, i64::MAX)] {
            assert_eq!(key(&of_key(k)).expect("decodes"), k);
        }
        for bad in ["abc".to_string(), "g".repeat(32)] {
            assert!(matches!(key(&Cursor(bad)), Err(StoreError::BadCursor)));
        }
        assert!(matches!(
            id(&Cursor("x1".into())),
            Err(StoreError::BadCursor)
        ));
        assert_eq!(id(&Cursor("17".into())).expect("id"), 17);
    }
}
