//! Kafka framing: a 4-byte big-endian size, then the request or response.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::Encodable;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Why a connection stops reading.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {size} bytes exceeds socket.request.max.bytes ({max})")]
    TooLarge { size: i64, max: u32 },
    #[error("frame size {0} is negative")]
    Negative(i32),
    #[error("connection closed in the middle of a frame: {0}")]
    Truncated(std::io::Error),
}

/// Reads one frame; `Ok(None)` when the peer closed between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max: u32,
) -> Result<Option<Bytes>, FrameError> {
    let size = match reader.read_i32().await {
        Ok(size) => size,
        // A peer that closes or resets between frames has simply gone.
        Err(err)
            if matches!(
                err.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
            ) =>
        {
            return Ok(None);
        }
        Err(err) => return Err(FrameError::Truncated(err)),
    };
    if size < 0 {
        return Err(FrameError::Negative(size));
    }
    if size as u32 > max {
        return Err(FrameError::TooLarge {
            size: i64::from(size),
            max,
        });
    }
    let mut frame = BytesMut::zeroed(size as usize);
    reader
        .read_exact(&mut frame)
        .await
        .map_err(FrameError::Truncated)?;
    Ok(Some(frame.freeze()))
}

/// Encodes a response frame for a request of `key` at `version`; the codec's error
/// (a field set that the version lacks: a bug of ours) comes back as text.
pub fn encode_response(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    response: &ResponseKind,
) -> Result<Bytes, String> {
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, key.response_header_version(version))
        .map_err(|e| e.to_string())?;
    response
        .encode(&mut buf, version)
        .map_err(|e| e.to_string())?;
    let len = (buf.len() - 4) as i32;
    buf[0..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf.freeze())
}
