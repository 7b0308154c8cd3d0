//! Protobuf fields written straight into a buffer, borrowing their values: how the export
//! task encodes a dnstap frame without building a message struct first.
//!
//! prost's derived structs own their fields, so encoding one exchange through them copied both
//! DNS messages, the client address, the identity, the version and the policy's strings into
//! fresh allocations, only to copy them again into the frame and free them: at full query rate
//! that was most of the export task's time (docs/EXPORT.md, "Cost"). Here a message is a slice
//! of [`Field`]s that borrow from the exchange, written in one pass with no allocation beyond
//! the output buffer's growth. The structs in [`crate::dnstap`] stay the schema's reference:
//! the tests decode every frame with them and compare against their encoding byte for byte.
//!
//! Only what dnstap needs: varint (enums, `uint32`, `uint64`), `fixed32`, length-delimited
//! bytes and strings, and embedded messages (wire format: protobuf.dev, "Encoding").

/// Wire type of varint fields.
const VARINT: u32 = 0;
/// Wire type of length-delimited fields (bytes, strings, embedded messages).
const LEN: u32 = 2;
/// Wire type of `fixed32` fields.
const I32: u32 = 5;

/// One field: its number and its value. Absent optional fields are `None` in a message's
/// slice, so a message can be built as a fixed array on the stack.
#[derive(Debug, Clone, Copy)]
pub enum Field<'a> {
    /// An enum, `uint32` or `uint64` value.
    Varint(u32, u64),
    /// A `fixed32` value (little-endian).
    Fixed32(u32, u32),
    /// A `bytes` or `string` value.
    Bytes(u32, &'a [u8]),
    /// An embedded message: its fields in field-number order.
    Message(u32, &'a [Option<Field<'a>>]),
}

impl Field<'_> {
    /// Bytes this field takes on the wire, key included.
    pub fn encoded_len(&self) -> usize {
        match *self {
            Field::Varint(number, value) => key_len(number) + varint_len(value),
            Field::Fixed32(number, _) => key_len(number) + 4,
            Field::Bytes(number, bytes) => key_len(number) + delimited_len(bytes.len()),
            Field::Message(number, fields) => key_len(number) + delimited_len(fields_len(fields)),
        }
    }

    /// Appends the field (key, then value) to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match *self {
            Field::Varint(number, value) => {
                put_key(number, VARINT, out);
                put_varint(value, out);
            }
            Field::Fixed32(number, value) => {
                put_key(number, I32, out);
                out.extend_from_slice(&value.to_le_bytes());
            }
            Field::Bytes(number, bytes) => {
                put_key(number, LEN, out);
                put_varint(bytes.len() as u64, out);
                out.extend_from_slice(bytes);
            }
            Field::Message(number, fields) => {
                put_key(number, LEN, out);
                put_varint(fields_len(fields) as u64, out);
                for field in fields.iter().flatten() {
                    field.encode(out);
                }
            }
        }
    }
}

/// Bytes the present fields of a message body take.
pub fn fields_len(fields: &[Option<Field<'_>>]) -> usize {
    fields.iter().flatten().map(Field::encoded_len).sum()
}

fn key_len(number: u32) -> usize {
    varint_len(u64::from(number) << 3)
}

/// A length prefix and `len` bytes.
fn delimited_len(len: usize) -> usize {
    varint_len(len as u64) + len
}

fn varint_len(value: u64) -> usize {
    // 7 bits per byte; 0 still takes one.
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

fn put_key(number: u32, wire_type: u32, out: &mut Vec<u8>) {
    put_varint((u64::from(number) << 3) | u64::from(wire_type), out);
}

fn put_varint(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_lengths_match_the_encoding_spec() {
        // protobuf.dev's examples: 1 is 0x01, 150 is 0x96 0x01.
        let mut out = Vec::new();
        Field::Varint(1, 150).encode(&mut out);
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
        let inner = [Some(Field::Bytes(2, b"testing")), None];
        let outer = Field::Message(3, &inner);
        let mut out = Vec::new();
        outer.encode(&mut out);
        assert_eq!(out, b"\x1a\x09\x12\x07testing");
        assert_eq!(out.len(), outer.encoded_len());
        let mut out = Vec::new();
        Field::Fixed32(9, 5).encode(&mut out);
        assert_eq!(out, [0x4d, 5, 0, 0, 0]);
    }
}
