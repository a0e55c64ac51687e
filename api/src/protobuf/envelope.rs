//! The `runtime.Unknown` envelope around every object: its type, then its
//! own message decoded by that type; raw extensions' embedded objects too.

use serde_json::Value;

use super::decode::{Decoder, Occurrences};
use super::kinds;
use super::wire::WireValue;
use super::{ProtobufError, CONTENT_TYPE, MAGIC};

const UNKNOWN: &str = "apimachinery.pkg.runtime.Unknown";
const TYPE_META: &str = "apimachinery.pkg.runtime.TypeMeta";

/// An envelope's parts.
struct Envelope<'a> {
    api_version: String,
    kind: String,
    /// The object's own message, and the offset of its first byte.
    raw: &'a [u8],
    raw_offset: usize,
    content_type: String,
}

fn text(value: Option<WireValue<'_>>) -> String {
    match value {
        Some(WireValue::Bytes(b, _)) => String::from_utf8_lossy(b).into_owned(),
        _ => String::new(),
    }
}

impl Decoder<'_> {
    fn envelope<'a>(&self, data: &'a [u8], base: usize) -> Result<Envelope<'a>, ProtobufError> {
        let schema_msg = |name| {
            self.schema
                .message(name)
                .expect("runtime messages are embedded")
        };
        let unknown = Occurrences::read(schema_msg(UNKNOWN), data, base)?;
        let (mut api_version, mut kind) = (String::new(), String::new());
        // Occurrences of a message field merge: later fields win.
        for value in unknown.all(1) {
            let WireValue::Bytes(meta, at) = value else {
                continue;
            };
            let meta = Occurrences::read(schema_msg(TYPE_META), meta, at)?;
            if meta.last(1).is_some() {
                api_version = text(meta.last(1));
            }
            if meta.last(2).is_some() {
                kind = text(meta.last(2));
            }
        }
        let (raw, raw_offset) = match unknown.last(2) {
            Some(WireValue::Bytes(raw, at)) => (raw, at),
            _ => (&[][..], base + data.len()),
        };
        Ok(Envelope {
            api_version,
            kind,
            raw,
            raw_offset,
            content_type: text(unknown.last(4)),
        })
    }

    /// An object in Kubernetes' protobuf form (after the magic) as JSON, with
    /// `apiVersion` and `kind` from its envelope.
    pub(crate) fn object(
        &self,
        data: &[u8],
        base: usize,
        depth: usize,
    ) -> Result<Value, ProtobufError> {
        let envelope = self.envelope(data, base)?;
        self.typed(&envelope, depth)
    }

    fn typed(&self, envelope: &Envelope<'_>, depth: usize) -> Result<Value, ProtobufError> {
        let Envelope {
            api_version, kind, ..
        } = envelope;
        if kind.is_empty() {
            return Err(ProtobufError::MissingKind {
                api_version: api_version.clone(),
            });
        }
        if api_version.is_empty() {
            return Err(ProtobufError::MissingApiVersion { kind: kind.clone() });
        }
        let msg = kinds::message_for(self.schema, api_version, kind)?;
        let Some(Value::Object(mut object)) =
            self.message(msg, envelope.raw, envelope.raw_offset, depth)?
        else {
            unreachable!("kinds are plain messages, which decode to objects")
        };
        object.insert("apiVersion".into(), Value::String(api_version.clone()));
        object.insert("kind".into(), Value::String(kind.clone()));
        Ok(Value::Object(object))
    }

    /// The object a raw extension (or `FieldsV1`) holds: JSON, as Kubernetes
    /// writes it, or an embedded protobuf object.
    pub(crate) fn raw_object(
        &self,
        raw: &[u8],
        offset: usize,
        depth: usize,
    ) -> Result<Value, ProtobufError> {
        if let Some(rest) = raw.strip_prefix(MAGIC) {
            return self.object(rest, offset + MAGIC.len(), depth);
        }
        serde_json::from_slice(raw).map_err(|e| ProtobufError::RawNotJson {
            offset,
            reason: e.to_string(),
        })
    }

    /// A `runtime.Unknown` inside an object: its raw JSON (as Go writes it),
    /// or its protobuf object decoded by its own type.
    pub(crate) fn nested_unknown(
        &self,
        data: &[u8],
        base: usize,
        depth: usize,
    ) -> Result<Option<Value>, ProtobufError> {
        let envelope = self.envelope(data, base)?;
        if envelope.raw.is_empty() {
            return Ok(None);
        }
        match envelope.content_type.as_str() {
            "" | "application/json" => self.raw_object(envelope.raw, envelope.raw_offset, depth),
            CONTENT_TYPE => self.typed(&envelope, depth),
            other => Err(ProtobufError::InvalidValue {
                message: UNKNOWN.into(),
                field: "contentType".into(),
                reason: format!("{other:?} is neither JSON nor Kubernetes protobuf"),
                offset: base,
            }),
        }
        .map(Some)
    }
}
