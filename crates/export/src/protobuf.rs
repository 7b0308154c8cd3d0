//! Protobuf fields written straight into a buffer from borrowed values: how the export task
//! encodes a dnstap frame without building a message struct first.
//!
//! prost's derived structs own their fields, so encoding one exchange through them copied both
//! DNS messages, the client address, the identity, the version and the policy's strings into
//! fresh allocations, only to copy them again into the frame and free them: at full query rate
//! that was most of the export task's time (docs/EXPORT.md, "Cost"). Here each field is
//! appended in one call, and an embedded message's length is filled in after its body is
//! written ([`message`]), so nothing is measured twice and nothing is allocated beyond the
//! output buffer's growth. The structs in [`crate::dnstap`] stay the schema's reference: the
//! tests decode every frame with them and compare against their encoding byte for byte.
//!
//! Only what dnstap needs: varint (enums, `uint32`, `uint64`), `fixed32`, length-delimited
//! bytes and strings, and embedded messages (wire format: protobuf.dev, "Encoding").

/// Wire type of varint fields.
const VARINT: u32 = 0;
/// Wire type of length-delimited fields (bytes, strings, embedded messages).
const LEN: u32 = 2;
/// Wire type of `fixed32` fields.
const I32: u32 = 5;

/// Appends an enum, `uint32` or `uint64` field.
pub fn varint(number: u32, value: u64, out: &mut Vec<u8>) {
    put_key(number, VARINT, out);
    put_varint(value, out);
}

/// Appends a `fixed32` field (little-endian).
pub fn fixed32(number: u32, value: u32, out: &mut Vec<u8>) {
    put_key(number, I32, out);
    out.extend_from_slice(&value.to_le_bytes());
}

/// Appends a `bytes` or `string` field.
pub fn bytes(number: u32, value: &[u8], out: &mut Vec<u8>) {
    put_key(number, LEN, out);
    put_varint(value.len() as u64, out);
    out.extend_from_slice(value);
}

/// Appends an embedded message whose fields `body` appends. `guess` = how many bytes its
/// length most likely takes (1 below 128 bytes, 2 below 16 KiB): that much room is left
/// before the body, and the body is moved only when the guess was wrong.
pub fn message(number: u32, guess: usize, out: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) {
    put_key(number, LEN, out);
    let at = out.len();
    out.resize(at + guess, 0);
    body(out);
    let len = out.len() - at - guess;
    let need = varint_len(len as u64);
    if need != guess {
        let end = out.len();
        if need > guess {
            out.resize(end + need - guess, 0);
        }
        out.copy_within(at + guess..end, at + need);
        out.truncate(at + need + len);
    }
    let (prefix, n) = varint_bytes(len as u64);
    out[at..at + n].copy_from_slice(&prefix[..n]);
}

fn varint_len(value: u64) -> usize {
    // 7 bits per byte; 0 still takes one.
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

fn put_key(number: u32, wire_type: u32, out: &mut Vec<u8>) {
    put_varint((u64::from(number) << 3) | u64::from(wire_type), out);
}

#[inline]
fn put_varint(value: u64, out: &mut Vec<u8>) {
    // Keys, enums and most lengths take one byte.
    if value < 0x80 {
        out.push(value as u8);
        return;
    }
    let (bytes, n) = varint_bytes(value);
    out.extend_from_slice(&bytes[..n]);
}

/// `value` as a varint: the bytes, and how many of them are used.
fn varint_bytes(mut value: u64) -> ([u8; 10], usize) {
    let mut bytes = [0u8; 10];
    let mut n = 0;
    while value >= 0x80 {
        bytes[n] = (value as u8) | 0x80;
        value >>= 7;
        n += 1;
    }
    bytes[n] = value as u8;
    (bytes, n + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_laid_out_as_the_encoding_spec_says() {
        // protobuf.dev's examples: 150 is 0x96 0x01; field 3 holding field 2 = "testing".
        let mut out = Vec::new();
        varint(1, 150, &mut out);
        assert_eq!(out, [0x08, 0x96, 0x01]);
        for value in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut out = Vec::new();
            put_varint(value, &mut out);
            assert_eq!(out.len(), varint_len(value), "{value}");
        }
        let mut out = Vec::new();
        fixed32(9, 5, &mut out);
        assert_eq!(out, [0x4d, 5, 0, 0, 0]);
        // Whatever room was guessed for the length, the bytes are the same.
        for guess in 1..=3 {
            let mut out = Vec::new();
            message(3, guess, &mut out, |m| bytes(2, b"testing", m));
            assert_eq!(out, b"\x1a\x09\x12\x07testing", "guess {guess}");
        }
    }

    #[test]
    fn an_embedded_message_longer_or_shorter_than_guessed_is_moved_into_place() {
        for (len, guess) in [(100, 2), (200, 1), (20_000, 2), (200, 3)] {
            let value = vec![7u8; len];
            let mut out = vec![0xAA];
            message(14, guess, &mut out, |m| bytes(10, &value, m));
            let mut want = vec![0xAA, 0x72];
            let body_len = 1 + varint_len(len as u64) + len;
            put_varint(body_len as u64, &mut want);
            want.push(0x52);
            put_varint(len as u64, &mut want);
            want.extend_from_slice(&value);
            assert!(out == want, "len {len}, guess {guess}");
        }
    }
}
