//! Length-prefixed bincode frames over QUIC streams.
//!
//! A frame is a 4-byte big-endian length followed by that many bytes of bincode
//! (v2, serde, standard config). The length is checked against the limit before
//! anything is allocated; a bad frame is an error for its stream only.

use crate::{Error, Result};
use serde::{de::DeserializeOwned, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Hard ceiling on any frame, whatever the configured limit.
pub const ABSOLUTE_MAX_FRAME: usize = 64 * 1024 * 1024;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<ABSOLUTE_MAX_FRAME>()
}

/// Encodes `msg` into one frame (length prefix included).
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; 4];
    bincode::serde::encode_into_std_write(msg, &mut buf, config())
        .map_err(|e| Error::Malformed(format!("encode: {e}")))?;
    let len = u32::try_from(buf.len() - 4).map_err(|_| Error::FrameTooLarge {
        len: buf.len(),
        limit: ABSOLUTE_MAX_FRAME,
    })?;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf)
}

/// Decodes one frame body (without its length prefix).
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T> {
    let (msg, used) = bincode::serde::decode_from_slice(body, config())
        .map_err(|e| Error::Malformed(e.to_string()))?;
    if used != body.len() {
        return Err(Error::Malformed(format!(
            "{} trailing bytes after message",
            body.len() - used
        )));
    }
    Ok(msg)
}

/// Writes one frame.
pub async fn write_frame<W, T>(w: &mut W, msg: &T) -> Result<()>
where
    W: AsyncWrite + Unpin,
    T: Serialize,
{
    let buf = encode(msg)?;
    w.write_all(&buf)
        .await
        .map_err(|e| Error::Stream(e.to_string()))
}

/// Reads one frame. `Ok(None)` means the stream ended cleanly between frames.
pub async fn read_frame<R, T>(r: &mut R, limit: usize) -> Result<Option<T>>
where
    R: AsyncRead + Unpin,
    T: DeserializeOwned,
{
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let n = r
            .read(&mut len[got..])
            .await
            .map_err(|e| Error::Stream(e.to_string()))?;
        if n == 0 {
            return if got == 0 {
                Ok(None)
            } else {
                Err(Error::Truncated)
            };
        }
        got += n;
    }
    let len = u32::from_be_bytes(len) as usize;
    let limit = limit.min(ABSOLUTE_MAX_FRAME);
    if len > limit {
        return Err(Error::FrameTooLarge { len, limit });
    }
    // Grow with the data actually received, so a peer that declares a large
    // frame and sends nothing pins no memory.
    let mut body = Vec::with_capacity(len.min(64 * 1024));
    let got = (&mut *r)
        .take(len as u64)
        .read_to_end(&mut body)
        .await
        .map_err(|e| Error::Stream(e.to_string()))?;
    if got < len {
        return Err(Error::Truncated);
    }
    decode(&body).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trip_and_limits() {
        let msg = ("hello".to_string(), vec![7u8; 100]);
        let buf = encode(&msg).unwrap();
        let got: Option<(String, Vec<u8>)> = read_frame(&mut &buf[..], 1 << 20).await.unwrap();
        assert_eq!(got.unwrap(), msg);

        let err = read_frame::<_, (String, Vec<u8>)>(&mut &buf[..], 10)
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::FrameTooLarge { limit: 10, .. }),
            "{err}"
        );

        let err = read_frame::<_, (String, Vec<u8>)>(&mut &buf[..buf.len() - 3], 1 << 20)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Truncated), "{err}");

        let huge = [0xffu8, 0xff, 0xff, 0xff];
        let err = read_frame::<_, String>(&mut &huge[..], usize::MAX)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::FrameTooLarge { .. }), "{err}");

        let mut garbage = 5u32.to_be_bytes().to_vec();
        garbage.extend_from_slice(&[0xff; 5]);
        let err = read_frame::<_, (String, Vec<u8>)>(&mut &garbage[..], 1 << 20)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Malformed(_)), "{err}");

        let none: Option<String> = read_frame(&mut &[][..], 10).await.unwrap();
        assert!(none.is_none());
    }
}
