//! Bytes → `Block::parse` and row iteration: a query-log block read back from a damaged
//! database must be an error, never a panic or an unbounded allocation. A block that decodes
//! re-encodes to rows that decode to the same values, and grouped by client (version 6) to the
//! same rows under the same indices.
#![no_main]

use libfuzzer_sys::fuzz_target;
use poolguard::store::blocks::codec::{Block, BlockEncoder, regroup};

fuzz_target!(|data: &[u8]| {
    let Ok(block) = Block::parse(data) else {
        return;
    };
    let rows: Vec<_> = block.entries().map_while(Result::ok).collect();
    assert!(rows.len() <= block.rows() as usize);
    let mut again = BlockEncoder::default();
    for (_, e) in &rows {
        again.push(e);
    }
    let Some(sealed) = again.seal() else {
        assert!(rows.is_empty());
        return;
    };
    let back = Block::parse(&sealed.data).expect("a fresh block parses");
    let decoded: Vec<_> = back.entries().collect::<Result<_, _>>().expect("rows decode");
    assert_eq!(decoded.len(), rows.len());
    for ((_, a), (_, b)) in decoded.iter().zip(&rows) {
        assert_eq!(a, b);
    }
    let grouped = regroup(&sealed.data)
        .expect("a fresh block regroups")
        .expect("a fresh block is not grouped");
    let grouped = Block::parse(&grouped).expect("a grouped block parses");
    assert_eq!(grouped.rows_as_written().expect("rows decode"), decoded);
});
