//! SPDY/3.1 framing, as `kubectl port-forward` speaks it (moby/spdystream):
//! frames in and out, header blocks zlib-compressed with the SPDY/3
//! dictionary (one compression stream per direction for the whole
//! connection), and the pairing of port-forward streams by `requestID`.
//!
//! Pure: bytes in, frames out. No flow control — spdystream neither sends
//! nor honours WINDOW_UPDATE, so ferry ignores them too.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use std::collections::HashMap;
use std::sync::OnceLock;

/// The protocol version in every control frame.
pub const VERSION: u16 = 3;
/// Largest frame payload SPDY can carry (a 24-bit length).
pub const MAX_LENGTH: usize = (1 << 24) - 1;
/// Largest decompressed header block accepted.
const MAX_HEADER_BLOCK: usize = 256 * 1024;

/// RST_STREAM status: PROTOCOL_ERROR.
pub const PROTOCOL_ERROR: u32 = 1;
/// RST_STREAM status: CANCEL.
pub const CANCEL: u32 = 5;

const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const SETTINGS: u16 = 4;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const HEADERS: u16 = 8;
const WINDOW_UPDATE: u16 = 9;
const FLAG_FIN: u8 = 1;
const FLAG_UNIDIRECTIONAL: u8 = 2;

/// A header block: lowercase names; a value with several parts joins them with NUL.
pub type Headers = Vec<(String, String)>;

/// One SPDY/3.1 frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Opens a stream.
    SynStream {
        stream: u32,
        associated: u32,
        priority: u8,
        fin: bool,
        unidirectional: bool,
        headers: Headers,
    },
    /// Accepts a stream.
    SynReply {
        stream: u32,
        fin: bool,
        headers: Headers,
    },
    /// Ends a stream abnormally.
    RstStream { stream: u32, status: u32 },
    /// Settings: `(flags, id, value)`.
    Settings(Vec<(u8, u32, u32)>),
    /// A ping; the receiver echoes the peer's.
    Ping(u32),
    /// The sender stops.
    GoAway { last_good: u32, status: u32 },
    /// More headers for a stream.
    Headers {
        stream: u32,
        fin: bool,
        headers: Headers,
    },
    /// Flow-control credit (ignored here).
    WindowUpdate { stream: u32, delta: u32 },
    /// A stream's bytes; `fin` half-closes the sender's side.
    Data {
        stream: u32,
        fin: bool,
        data: Vec<u8>,
    },
}

/// Bad input on a SPDY connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpdyError {
    #[error("unsupported SPDY version {0}")]
    Version(u16),
    #[error("SPDY frame {kind} is {len} bytes, too short")]
    Short { kind: u16, len: usize },
    #[error("SPDY frame of {0} bytes is too large")]
    TooLarge(usize),
    #[error("SPDY header block: {0}")]
    HeaderBlock(String),
}

/// The SPDY/3 header compression dictionary (SPDY/3 draft, section 2.6.10.1):
/// length-prefixed words, then a run of text.
pub fn dictionary() -> &'static [u8] {
    const WORDS: &[&str] = &[
        "options",
        "head",
        "post",
        "put",
        "delete",
        "trace",
        "accept",
        "accept-charset",
        "accept-encoding",
        "accept-language",
        "accept-ranges",
        "age",
        "allow",
        "authorization",
        "cache-control",
        "connection",
        "content-base",
        "content-encoding",
        "content-language",
        "content-length",
        "content-location",
        "content-md5",
        "content-range",
        "content-type",
        "date",
        "etag",
        "expect",
        "expires",
        "from",
        "host",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-range",
        "if-unmodified-since",
        "last-modified",
        "location",
        "max-forwards",
        "pragma",
        "proxy-authenticate",
        "proxy-authorization",
        "range",
        "referer",
        "retry-after",
        "server",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "vary",
        "via",
        "warning",
        "www-authenticate",
        "method",
        "get",
        "status",
        "200 OK",
        "version",
        "HTTP/1.1",
        "url",
        "public",
        "set-cookie",
        "keep-alive",
        "origin",
    ];
    const TEXT: &str = "100101201202205206300302303304305306307402405406407408409410411412413414\
415416417502504505203 Non-Authoritative Information204 No Content301 Moved Permanently\
400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error\
501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec \
00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,\
image/gif,application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivate\
max-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.";
    static DICT: OnceLock<Vec<u8>> = OnceLock::new();
    DICT.get_or_init(|| {
        let mut d = Vec::with_capacity(1423);
        for w in WORDS {
            d.extend_from_slice(&(w.len() as u32).to_be_bytes());
            d.extend_from_slice(w.as_bytes());
        }
        d.extend_from_slice(TEXT.as_bytes());
        d
    })
}

/// The first value of header `name` (names are lowercase on the wire).
pub fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.split('\0').next().unwrap_or(""))
}

fn encode_block(headers: &Headers) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&(headers.len() as u32).to_be_bytes());
    for (n, v) in headers {
        b.extend_from_slice(&(n.len() as u32).to_be_bytes());
        b.extend_from_slice(n.to_ascii_lowercase().as_bytes());
        b.extend_from_slice(&(v.len() as u32).to_be_bytes());
        b.extend_from_slice(v.as_bytes());
    }
    b
}

fn decode_block(b: &[u8]) -> Result<Headers, SpdyError> {
    let bad = |m: &str| SpdyError::HeaderBlock(m.to_string());
    let mut at = 0usize;
    let u32_at = |at: &mut usize| -> Result<usize, SpdyError> {
        let s = b.get(*at..*at + 4).ok_or_else(|| bad("truncated"))?;
        *at += 4;
        Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]) as usize)
    };
    let count = u32_at(&mut at)?;
    let mut out = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        let n = u32_at(&mut at)?;
        let name = b.get(at..at + n).ok_or_else(|| bad("truncated name"))?;
        at += n;
        let v = u32_at(&mut at)?;
        let value = b.get(at..at + v).ok_or_else(|| bad("truncated value"))?;
        at += v;
        let name = String::from_utf8_lossy(name).to_ascii_lowercase();
        out.push((name, String::from_utf8_lossy(value).into_owned()));
    }
    Ok(out)
}

/// Turns frames into bytes; keeps the connection's header compression stream.
pub struct Encoder {
    z: Compress,
    started: bool,
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder {
            z: Compress::new(Compression::default(), true),
            started: false,
        }
    }
}

impl Encoder {
    fn compress(&mut self, input: &[u8]) -> Vec<u8> {
        if !self.started {
            self.started = true;
            // A fresh stream takes a dictionary; it cannot fail here.
            let _ = self.z.set_dictionary(dictionary());
        }
        let mut out = Vec::with_capacity(input.len() + 64);
        let mut used = 0usize;
        loop {
            let before = self.z.total_in();
            if self
                .z
                .compress_vec(&input[used..], &mut out, FlushCompress::Sync)
                .is_err()
            {
                break;
            }
            used += (self.z.total_in() - before) as usize;
            if used == input.len() && out.len() < out.capacity() {
                break;
            }
            out.reserve(out.capacity().max(64));
        }
        out
    }

    /// The frame's bytes.
    pub fn encode(&mut self, frame: &Frame) -> Vec<u8> {
        let control = |kind: u16, flags: u8, payload: &[u8]| {
            let mut b = Vec::with_capacity(8 + payload.len());
            b.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
            b.extend_from_slice(&kind.to_be_bytes());
            b.extend_from_slice(&((u32::from(flags) << 24) | payload.len() as u32).to_be_bytes());
            b.extend_from_slice(payload);
            b
        };
        let fin = |f: bool| if f { FLAG_FIN } else { 0 };
        match frame {
            Frame::SynStream {
                stream,
                associated,
                priority,
                fin: f,
                unidirectional,
                headers,
            } => {
                let mut p = Vec::new();
                p.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
                p.extend_from_slice(&(associated & 0x7fff_ffff).to_be_bytes());
                p.push(priority << 5);
                p.push(0);
                p.extend(self.compress(&encode_block(headers)));
                let flags = fin(*f)
                    | if *unidirectional {
                        FLAG_UNIDIRECTIONAL
                    } else {
                        0
                    };
                control(SYN_STREAM, flags, &p)
            }
            Frame::SynReply {
                stream,
                fin: f,
                headers,
            }
            | Frame::Headers {
                stream,
                fin: f,
                headers,
            } => {
                let mut p = (stream & 0x7fff_ffff).to_be_bytes().to_vec();
                p.extend(self.compress(&encode_block(headers)));
                let kind = if matches!(frame, Frame::SynReply { .. }) {
                    SYN_REPLY
                } else {
                    HEADERS
                };
                control(kind, fin(*f), &p)
            }
            Frame::RstStream { stream, status } => {
                let mut p = stream.to_be_bytes().to_vec();
                p.extend_from_slice(&status.to_be_bytes());
                control(RST_STREAM, 0, &p)
            }
            Frame::Settings(entries) => {
                let mut p = (entries.len() as u32).to_be_bytes().to_vec();
                for (flags, id, value) in entries {
                    p.extend_from_slice(
                        &((u32::from(*flags) << 24) | (id & 0xff_ffff)).to_be_bytes(),
                    );
                    p.extend_from_slice(&value.to_be_bytes());
                }
                control(SETTINGS, 0, &p)
            }
            Frame::Ping(id) => control(PING, 0, &id.to_be_bytes()),
            Frame::GoAway { last_good, status } => {
                let mut p = last_good.to_be_bytes().to_vec();
                p.extend_from_slice(&status.to_be_bytes());
                control(GOAWAY, 0, &p)
            }
            Frame::WindowUpdate { stream, delta } => {
                let mut p = stream.to_be_bytes().to_vec();
                p.extend_from_slice(&delta.to_be_bytes());
                control(WINDOW_UPDATE, 0, &p)
            }
            Frame::Data {
                stream,
                fin: f,
                data,
            } => {
                let mut b = Vec::with_capacity(8 + data.len());
                b.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
                b.extend_from_slice(
                    &((u32::from(fin(*f)) << 24) | data.len() as u32).to_be_bytes(),
                );
                b.extend_from_slice(data);
                b
            }
        }
    }
}

/// Turns bytes (in any pieces) into frames; keeps the connection's header
/// decompression stream.
pub struct Decoder {
    buf: Vec<u8>,
    z: Decompress,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            buf: Vec::new(),
            z: Decompress::new(true),
        }
    }
}

impl Decoder {
    /// Adds bytes read from the connection.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    fn decompress(&mut self, input: &[u8]) -> Result<Vec<u8>, SpdyError> {
        let bad = |m: String| SpdyError::HeaderBlock(m);
        let mut out = Vec::with_capacity(input.len() * 4 + 64);
        let mut used = 0usize;
        loop {
            let (in0, out0) = (self.z.total_in(), out.len());
            let mut dict = false;
            if let Err(e) = self
                .z
                .decompress_vec(&input[used..], &mut out, FlushDecompress::Sync)
            {
                if e.needs_dictionary().is_none() {
                    return Err(bad(e.to_string()));
                }
                self.z
                    .set_dictionary(dictionary())
                    .map_err(|e| bad(format!("dictionary: {e}")))?;
                dict = true;
            }
            used += (self.z.total_in() - in0) as usize;
            if used == input.len() && out.len() < out.capacity() {
                return Ok(out);
            }
            if out.len() == out.capacity() {
                if out.len() >= MAX_HEADER_BLOCK {
                    return Err(bad("too large".into()));
                }
                out.reserve(out.capacity());
            } else if !dict && out.len() == out0 && self.z.total_in() == in0 {
                return Err(bad("truncated compressed block".into()));
            }
        }
    }

    fn block(&mut self, compressed: &[u8]) -> Result<Headers, SpdyError> {
        let raw = self.decompress(compressed)?;
        decode_block(&raw)
    }

    /// The next whole frame, if the bytes so far hold one. An error leaves the
    /// connection unusable (the compression stream is out of step).
    pub fn next_frame(&mut self) -> Result<Option<Frame>, SpdyError> {
        if self.buf.len() < 8 {
            return Ok(None);
        }
        let word = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
        let flags = self.buf[4];
        let len = u32::from_be_bytes([0, self.buf[5], self.buf[6], self.buf[7]]) as usize;
        if self.buf.len() < 8 + len {
            return Ok(None);
        }
        let p: Vec<u8> = self.buf[8..8 + len].to_vec();
        self.buf.drain(..8 + len);
        let fin = flags & FLAG_FIN != 0;
        if word & 0x8000_0000 == 0 {
            return Ok(Some(Frame::Data {
                stream: word,
                fin,
                data: p,
            }));
        }
        let version = ((word >> 16) & 0x7fff) as u16;
        let kind = (word & 0xffff) as u16;
        if version != VERSION {
            return Err(SpdyError::Version(version));
        }
        let short = |need: usize| {
            if len < need {
                Err(SpdyError::Short { kind, len })
            } else {
                Ok(())
            }
        };
        let u32_at = |i: usize| u32::from_be_bytes([p[i], p[i + 1], p[i + 2], p[i + 3]]);
        let frame = match kind {
            SYN_STREAM => {
                short(10)?;
                Frame::SynStream {
                    stream: u32_at(0) & 0x7fff_ffff,
                    associated: u32_at(4) & 0x7fff_ffff,
                    priority: p[8] >> 5,
                    fin,
                    unidirectional: flags & FLAG_UNIDIRECTIONAL != 0,
                    headers: self.block(&p[10..])?,
                }
            }
            SYN_REPLY | HEADERS => {
                short(4)?;
                let stream = u32_at(0) & 0x7fff_ffff;
                let headers = self.block(&p[4..])?;
                if kind == SYN_REPLY {
                    Frame::SynReply {
                        stream,
                        fin,
                        headers,
                    }
                } else {
                    Frame::Headers {
                        stream,
                        fin,
                        headers,
                    }
                }
            }
            RST_STREAM => {
                short(8)?;
                Frame::RstStream {
                    stream: u32_at(0) & 0x7fff_ffff,
                    status: u32_at(4),
                }
            }
            SETTINGS => {
                short(4)?;
                let n = u32_at(0) as usize;
                short(4 + n.saturating_mul(8))?;
                Frame::Settings(
                    (0..n)
                        .map(|i| {
                            let fid = u32_at(4 + 8 * i);
                            ((fid >> 24) as u8, fid & 0xff_ffff, u32_at(8 + 8 * i))
                        })
                        .collect(),
                )
            }
            PING => {
                short(4)?;
                Frame::Ping(u32_at(0))
            }
            GOAWAY => {
                short(4)?;
                Frame::GoAway {
                    last_good: u32_at(0) & 0x7fff_ffff,
                    status: if len >= 8 { u32_at(4) } else { 0 },
                }
            }
            WINDOW_UPDATE => {
                short(8)?;
                Frame::WindowUpdate {
                    stream: u32_at(0) & 0x7fff_ffff,
                    delta: u32_at(4) & 0x7fff_ffff,
                }
            }
            // Unknown control frames are skipped (SPDY/3 section 2.2.1).
            _ => return self.next_frame(),
        };
        Ok(Some(frame))
    }

    /// Bytes held that do not make a whole frame yet.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

/// A port-forward stream's role (`streamType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Error,
    Data,
}

/// One forwarded connection: its error and data streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    pub request_id: String,
    pub port: u16,
    pub error: u32,
    pub data: u32,
}

/// Pairs the two streams kubectl opens per forwarded connection by their
/// `requestID` header (the kubelet's `httpStreamHandler` does the same).
#[derive(Debug, Default)]
pub struct Pairs {
    waiting: HashMap<String, (Kind, u32, u16)>,
}

impl Pairs {
    /// Records a new stream from its SYN_STREAM headers: the pair when this
    /// stream completes one, an error for a stream the protocol does not allow.
    pub fn add(&mut self, stream: u32, headers: &Headers) -> Result<Option<Forward>, String> {
        let kind = match header(headers, "streamtype") {
            Some("error") => Kind::Error,
            Some("data") => Kind::Data,
            Some(t) => return Err(format!("invalid stream type {t:?}")),
            None => return Err("streamType header is required".into()),
        };
        let port = match header(headers, "port") {
            None => return Err("port header is required".into()),
            Some(p) => match p.parse::<u16>() {
                Ok(0) => return Err(format!("port {p:?} must be > 0")),
                Ok(n) => n,
                Err(e) => return Err(format!("unable to parse {p:?} as a port: {e}")),
            },
        };
        // kubectl before 1.8 sent no requestID: its streams come in order, two by two.
        let id = header(headers, "requestid")
            .map(str::to_string)
            .unwrap_or_else(|| {
                let first = if kind == Kind::Error {
                    stream
                } else {
                    stream.saturating_sub(2)
                };
                format!("stream-{first}")
            });
        match self.waiting.remove(&id) {
            None => {
                self.waiting.insert(id, (kind, stream, port));
                Ok(None)
            }
            Some((other, s, _)) if other == kind => {
                self.waiting.insert(id.clone(), (other, s, port));
                Err(format!("request {id} already has a {kind:?} stream"))
            }
            Some((_, s, _)) => {
                let (error, data) = if kind == Kind::Error {
                    (stream, s)
                } else {
                    (s, stream)
                };
                Ok(Some(Forward {
                    request_id: id,
                    port,
                    error,
                    data,
                }))
            }
        }
    }

    /// Forgets a half-made pair whose stream was reset; its id if it was waiting.
    pub fn remove_stream(&mut self, stream: u32) -> Option<String> {
        let id = self
            .waiting
            .iter()
            .find(|(_, (_, s, _))| *s == stream)
            .map(|(id, _)| id.clone())?;
        self.waiting.remove(&id);
        Some(id)
    }

    /// Streams waiting for their partner.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }
}

#[cfg(test)]
mod tests;
