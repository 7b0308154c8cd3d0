//! Frame Streams (fstrm), the transport dnstap rides on: framing and the bidirectional
//! handshake.
//!
//! From the Frame Streams protocol (farsightsec/fstrm, `fstrm/control.h`): a *data frame* is a
//! 32-bit big-endian length followed by that many bytes. A *control frame* starts with an
//! "escape" length of 0, then the control frame's length, then its type and its fields, all
//! 32-bit big-endian; the only field is CONTENT_TYPE (1), a length and a string.
//!
//! Bidirectional handshake, sender's view: send READY (with our content type), read ACCEPT
//! (the receiver's content types; ours must be among them), send START (with the content type),
//! then data frames. At the end: send STOP, read FINISH. The pure functions below build and
//! parse the frames; [`handshake`] and [`finish`] drive them over any async stream.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The content type dnstap uses.
pub const DNSTAP_CONTENT_TYPE: &[u8] = b"protobuf:dnstap.Dnstap";

/// Control frame ACCEPT: the receiver's answer to READY, listing the content types it takes.
pub const CONTROL_ACCEPT: u32 = 0x01;
/// Control frame START: opens the stream with the content type we send.
pub const CONTROL_START: u32 = 0x02;
/// Control frame STOP: we have no more data frames (sent at shutdown).
pub const CONTROL_STOP: u32 = 0x03;
/// Control frame READY: opens the bidirectional handshake with our content type.
pub const CONTROL_READY: u32 = 0x04;
/// Control frame FINISH: the receiver's answer to STOP, after which we close.
pub const CONTROL_FINISH: u32 = 0x05;
/// The one control field type.
pub const FIELD_CONTENT_TYPE: u32 = 0x01;
/// Largest control frame we read (fstrm's own limit, `FSTRM_CONTROL_FRAME_LENGTH_MAX`).
pub const MAX_CONTROL_LEN: usize = 512;
/// Longest content type (fstrm's `FSTRM_CONTROL_FIELD_CONTENT_TYPE_LENGTH_MAX`).
pub const MAX_CONTENT_TYPE_LEN: usize = 256;

/// What went wrong on a Frame Streams connection.
#[derive(Debug, thiserror::Error)]
pub enum FstrmError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("the receiver did not answer within {0:?}")]
    Timeout(Duration),
    #[error("malformed control frame: {0}")]
    Malformed(&'static str),
    #[error("expected control frame {expected:#x}, got {got:#x}")]
    Unexpected { expected: u32, got: u32 },
    #[error("the receiver does not accept content type {0}")]
    ContentType(String),
}

/// A parsed control frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Control {
    /// One of the `CONTROL_*` types.
    pub kind: u32,
    /// Its CONTENT_TYPE fields, to check that the receiver takes dnstap.
    pub content_types: Vec<Vec<u8>>,
}

/// The bytes of a control frame of `kind` with `content_types`, escape included.
pub fn control_frame(kind: u32, content_types: &[&[u8]]) -> Vec<u8> {
    let body_len: usize = 4 + content_types.iter().map(|c| 8 + c.len()).sum::<usize>();
    let mut out = Vec::with_capacity(8 + body_len);
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&(body_len as u32).to_be_bytes());
    out.extend_from_slice(&kind.to_be_bytes());
    for c in content_types {
        out.extend_from_slice(&FIELD_CONTENT_TYPE.to_be_bytes());
        out.extend_from_slice(&(c.len() as u32).to_be_bytes());
        out.extend_from_slice(c);
    }
    out
}

/// Appends a data frame to `out` whose payload `write` appends in place (a frame needs no
/// buffer of its own). `None`, with `out` as it was, when the payload cannot be framed (0 bytes,
/// which would read as a control escape, or longer than a 32-bit length).
pub fn data_frame(out: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) -> Option<()> {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    write(out);
    let len = u32::try_from(out.len() - start - 4).ok().filter(|&l| l > 0);
    match len {
        Some(len) => {
            out[start..start + 4].copy_from_slice(&len.to_be_bytes());
            Some(())
        }
        None => {
            out.truncate(start);
            None
        }
    }
}

/// Parses a control frame's body (type and fields, after the escape and length).
pub fn parse_control(body: &[u8]) -> Result<Control, FstrmError> {
    let word = |at: usize| -> Result<u32, FstrmError> {
        body.get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or(FstrmError::Malformed("truncated"))
    };
    let kind = word(0)?;
    let mut content_types = Vec::new();
    let mut at = 4;
    // At most MAX_CONTROL_LEN / 8 fields fit; the bound also ends the loop on junk.
    while at < body.len() {
        let field = word(at)?;
        let len = word(at + 4)? as usize;
        at += 8;
        if field != FIELD_CONTENT_TYPE {
            return Err(FstrmError::Malformed("unknown control field"));
        }
        if len > MAX_CONTENT_TYPE_LEN {
            return Err(FstrmError::Malformed("content type too long"));
        }
        let value = body
            .get(at..at + len)
            .ok_or(FstrmError::Malformed("truncated content type"))?;
        content_types.push(value.to_vec());
        at += len;
    }
    Ok(Control {
        kind,
        content_types,
    })
}

/// Reads one control frame (escape, length, body) within `limit`.
pub async fn read_control<R: AsyncRead + Unpin>(
    reader: &mut R,
    limit: Duration,
) -> Result<Control, FstrmError> {
    let read = async {
        let mut head = [0u8; 8];
        reader.read_exact(&mut head).await?;
        if head[..4] != [0, 0, 0, 0] {
            return Err(FstrmError::Malformed(
                "data frame where a control frame belongs",
            ));
        }
        let len = u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as usize;
        if !(4..=MAX_CONTROL_LEN).contains(&len) {
            return Err(FstrmError::Malformed("control frame length out of range"));
        }
        let mut body = vec![0u8; len];
        reader.read_exact(&mut body).await?;
        parse_control(&body)
    };
    tokio::time::timeout(limit, read)
        .await
        .map_err(|_| FstrmError::Timeout(limit))?
}

/// The sender's side of the handshake: READY → ACCEPT → START, each step within `limit`.
pub async fn handshake<R, W>(
    reader: &mut R,
    writer: &mut W,
    content_type: &[u8],
    limit: Duration,
) -> Result<(), FstrmError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    write_within(
        writer,
        &control_frame(CONTROL_READY, &[content_type]),
        limit,
    )
    .await?;
    let accept = read_control(reader, limit).await?;
    check_accept(&accept, content_type)?;
    write_within(
        writer,
        &control_frame(CONTROL_START, &[content_type]),
        limit,
    )
    .await
}

/// Whether `accept` is an ACCEPT that lists `content_type`.
pub fn check_accept(accept: &Control, content_type: &[u8]) -> Result<(), FstrmError> {
    if accept.kind != CONTROL_ACCEPT {
        return Err(FstrmError::Unexpected {
            expected: CONTROL_ACCEPT,
            got: accept.kind,
        });
    }
    if !accept.content_types.iter().any(|c| c == content_type) {
        return Err(FstrmError::ContentType(
            String::from_utf8_lossy(content_type).into_owned(),
        ));
    }
    Ok(())
}

/// The sender's end of a stream: STOP, then wait (within `limit`) for FINISH.
pub async fn finish<R, W>(reader: &mut R, writer: &mut W, limit: Duration) -> Result<(), FstrmError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    write_within(writer, &control_frame(CONTROL_STOP, &[]), limit).await?;
    let reply = read_control(reader, limit).await?;
    if reply.kind != CONTROL_FINISH {
        return Err(FstrmError::Unexpected {
            expected: CONTROL_FINISH,
            got: reply.kind,
        });
    }
    Ok(())
}

async fn write_within<W: AsyncWrite + Unpin>(
    writer: &mut W,
    bytes: &[u8],
    limit: Duration,
) -> Result<(), FstrmError> {
    let write = async {
        writer.write_all(bytes).await?;
        writer.flush().await
    };
    tokio::time::timeout(limit, write)
        .await
        .map_err(|_| FstrmError::Timeout(limit))?
        .map_err(FstrmError::Io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_frame_is_laid_out_as_fstrm_expects() {
        let frame = control_frame(CONTROL_READY, &[DNSTAP_CONTENT_TYPE]);
        let ct = DNSTAP_CONTENT_TYPE.len() as u32;
        let mut expected = vec![0, 0, 0, 0];
        expected.extend_from_slice(&(4 + 8 + ct).to_be_bytes());
        expected.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 1]);
        expected.extend_from_slice(&ct.to_be_bytes());
        expected.extend_from_slice(DNSTAP_CONTENT_TYPE);
        assert_eq!(frame, expected);
        // STOP carries no field.
        assert_eq!(
            control_frame(CONTROL_STOP, &[]),
            [0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 3]
        );
    }

    #[test]
    fn control_frames_round_trip_and_junk_is_an_error() {
        let frame = control_frame(CONTROL_ACCEPT, &[b"a", DNSTAP_CONTENT_TYPE]);
        let parsed = parse_control(&frame[8..]).expect("parses");
        assert_eq!(parsed.kind, CONTROL_ACCEPT);
        assert_eq!(parsed.content_types.len(), 2);
        check_accept(&parsed, DNSTAP_CONTENT_TYPE).expect("ours is listed");
        assert!(check_accept(&parsed, b"protobuf:other").is_err());
        let finish = parse_control(&control_frame(CONTROL_FINISH, &[])[8..]).unwrap();
        assert!(check_accept(&finish, DNSTAP_CONTENT_TYPE).is_err());
        // Truncated field, unknown field, overlong content type.
        assert!(parse_control(&frame[8..frame.len() - 1]).is_err());
        assert!(parse_control(&[0, 0, 0, 1, 0, 0, 0, 9, 0, 0, 0, 0]).is_err());
        assert!(parse_control(&[0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 4, 0]).is_err());
        assert!(parse_control(&[0, 0]).is_err());
    }

    #[test]
    fn data_frames_are_length_prefixed_and_never_empty() {
        let mut out = Vec::new();
        data_frame(&mut out, |o| o.extend_from_slice(b"abc")).expect("framed");
        assert_eq!(out, [0, 0, 0, 3, b'a', b'b', b'c']);
        assert!(
            data_frame(&mut out, |_| {}).is_none(),
            "0 would read as an escape"
        );
        assert_eq!(out.len(), 7, "a refused frame leaves nothing behind");
    }

    #[tokio::test]
    async fn handshake_and_finish_against_a_scripted_receiver() {
        let (mut ours, theirs) = tokio::io::duplex(4096);
        let receiver = tokio::spawn(async move {
            let (mut r, mut w) = tokio::io::split(theirs);
            let ready = read_control(&mut r, Duration::from_secs(5)).await.unwrap();
            assert_eq!(ready.kind, CONTROL_READY);
            w.write_all(&control_frame(CONTROL_ACCEPT, &[DNSTAP_CONTENT_TYPE]))
                .await
                .unwrap();
            let start = read_control(&mut r, Duration::from_secs(5)).await.unwrap();
            assert_eq!(start.kind, CONTROL_START);
            assert_eq!(start.content_types, vec![DNSTAP_CONTENT_TYPE.to_vec()]);
            let stop = read_control(&mut r, Duration::from_secs(5)).await.unwrap();
            assert_eq!(stop.kind, CONTROL_STOP);
            w.write_all(&control_frame(CONTROL_FINISH, &[]))
                .await
                .unwrap();
        });
        let (mut r, mut w) = tokio::io::split(&mut ours);
        handshake(&mut r, &mut w, DNSTAP_CONTENT_TYPE, Duration::from_secs(5))
            .await
            .expect("handshake");
        finish(&mut r, &mut w, Duration::from_secs(5))
            .await
            .expect("finish");
        receiver.await.unwrap();
    }

    #[tokio::test]
    async fn a_receiver_that_never_accepts_times_out() {
        let (mut ours, _theirs) = tokio::io::duplex(4096);
        let (mut r, mut w) = tokio::io::split(&mut ours);
        let err = handshake(
            &mut r,
            &mut w,
            DNSTAP_CONTENT_TYPE,
            Duration::from_millis(50),
        )
        .await
        .expect_err("no ACCEPT");
        assert!(matches!(err, FstrmError::Timeout(_)), "{err}");
    }
}
