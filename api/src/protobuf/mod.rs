//! Kubernetes' protobuf request bodies (`application/vnd.kubernetes.protobuf`)
//! to the JSON objects Kubernetes would have decoded from them.
//!
//! kubectl's typed clients send built-in kinds in this form and never fall
//! back to JSON; ferry stores JSON, so its HTTPS front end turns such a body
//! into JSON with [`decode_object`].
//!
//! A body is the magic `k8s\0` and a `runtime.Unknown` envelope: the object's
//! `apiVersion` and `kind`, and its own message. Messages are read by the
//! schemas of Kubernetes' `generated.proto` files (from the `k8s-rs-pb`
//! crate's sources, embedded by `api/build.rs`, parsed once on first use), and
//! rendered as Kubernetes' JSON encoder renders the Go values they decode to.
//!
//! Layout:
//! - `wire`: varints, tags and the fields of one message, with byte offsets.
//! - `parse`: the proto2 subset of Kubernetes' `.proto` files.
//! - `schema`: the embedded files, type names resolved as protoc does.
//! - `special`: messages and fields whose JSON is not field-by-field.
//! - `decode`: a message to JSON by its schema.
//! - `envelope`: the `runtime.Unknown` envelope; `kinds`: apiVersion and kind
//!   to a message.
//! - `format`: RFC 3339 times, Go durations, base64.

mod decode;
mod envelope;
mod format;
mod kinds;
mod parse;
mod schema;
mod special;
mod wire;

#[cfg(test)]
mod tests;

use serde_json::Value;

/// The first bytes of every Kubernetes protobuf body.
pub const MAGIC: &[u8; 4] = b"k8s\0";

/// The media type of Kubernetes protobuf bodies.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// Why a body could not be decoded. Offsets count from the body's first byte.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtobufError {
    /// The body does not start with `k8s\0`.
    #[error("the body does not start with the Kubernetes protobuf magic \"k8s\\0\"")]
    BadMagic,
    /// Nothing follows the magic.
    #[error("the body has nothing after the \"k8s\\0\" magic")]
    EmptyBody,
    /// A varint runs past the end of its message.
    #[error("truncated varint at byte {offset}")]
    TruncatedVarint {
        /// Where the varint starts.
        offset: usize,
    },
    /// A varint is longer than ten bytes.
    #[error("varint at byte {offset} is longer than 10 bytes")]
    VarintOverflow {
        /// Where the varint starts.
        offset: usize,
    },
    /// A length-delimited or fixed-size value runs past the end of its message.
    #[error("value at byte {offset} needs {len} bytes but only {remaining} remain")]
    Truncated {
        /// Where the length (or the value) starts.
        offset: usize,
        /// Bytes the value needs.
        len: u64,
        /// Bytes left in the enclosing message.
        remaining: usize,
    },
    /// A tag carries field number 0 or one above 2^29 - 1.
    #[error("invalid field number {number} at byte {offset}")]
    InvalidFieldNumber {
        /// The number in the tag.
        number: u64,
        /// Where the tag starts.
        offset: usize,
    },
    /// A tag carries wire type 6 or 7, or an end-group without its start.
    #[error("invalid wire type {wire_type} at byte {offset}")]
    InvalidWireType {
        /// The wire type in the tag.
        wire_type: u8,
        /// Where the tag starts.
        offset: usize,
    },
    /// A group (skipped as an unknown field) has no end.
    #[error("group starting before byte {offset} has no end")]
    UnterminatedGroup {
        /// Where the message ended.
        offset: usize,
    },
    /// A known field came with the wrong wire type.
    #[error("wrong wire type {found} for field {field} ({number}) of message {message} at byte {offset}; expected {expected}")]
    WrongWireType {
        /// The message's full name.
        message: String,
        /// The field's name.
        field: String,
        /// The field's number.
        number: u32,
        /// The wire type found.
        found: &'static str,
        /// The wire type the schema wants.
        expected: &'static str,
        /// Where the tag starts.
        offset: usize,
    },
    /// A field's value has no JSON form (a bad time, quantity, or type tag).
    #[error("field {field} of message {message} at byte {offset}: {reason}")]
    InvalidValue {
        /// The message's full name.
        message: String,
        /// The field's name.
        field: String,
        /// What is wrong.
        reason: String,
        /// Where the field (or its message) starts.
        offset: usize,
    },
    /// A raw extension holds neither JSON nor a Kubernetes protobuf object.
    #[error("raw object at byte {offset} is not JSON: {reason}")]
    RawNotJson {
        /// Where the raw bytes start.
        offset: usize,
        /// The JSON parser's message.
        reason: String,
    },
    /// The envelope names no kind.
    #[error("the object names no kind (apiVersion {api_version:?})")]
    MissingKind {
        /// The apiVersion it names.
        api_version: String,
    },
    /// The envelope names no apiVersion.
    #[error("the object of kind {kind:?} names no apiVersion")]
    MissingApiVersion {
        /// The kind it names.
        kind: String,
    },
    /// No schema for this apiVersion and kind; send it as JSON instead.
    #[error("no kind {kind:?} is known in {api_version:?} for protobuf bodies; send it as JSON")]
    UnknownKind {
        /// The apiVersion named.
        api_version: String,
        /// The kind named.
        kind: String,
    },
    /// Messages nest deeper than the limit.
    #[error("messages nest deeper than {limit} levels at byte {offset}")]
    TooDeep {
        /// The limit.
        limit: usize,
        /// Where the message too deep starts.
        offset: usize,
    },
    /// The embedded schemas did not load: a bug in the vendored files.
    #[error("the embedded protobuf schemas are invalid: {0}")]
    Schema(String),
}

/// Decodes a Kubernetes protobuf body (`k8s\0` and a `runtime.Unknown`
/// envelope) into the JSON object Kubernetes would decode, with `apiVersion`
/// and `kind` set.
pub fn decode_object(body: &[u8]) -> Result<Value, ProtobufError> {
    let rest = body.strip_prefix(MAGIC).ok_or(ProtobufError::BadMagic)?;
    if rest.is_empty() {
        return Err(ProtobufError::EmptyBody);
    }
    let schema = schema::Schema::embedded().map_err(ProtobufError::Schema)?;
    decode::Decoder { schema }.object(rest, MAGIC.len(), 0)
}
