//! Where Kubernetes' JSON differs from a field-by-field rendering of the
//! protobuf message: messages with their own JSON form (`Quantity`, `Time`,
//! `IntOrString`, ...), Go fields embedded with `json:",inline"`, and the two
//! fields whose protobuf name is not their JSON name.
//!
//! The tables name what Kubernetes 1.33's Go types say; [`mark`] fails if a
//! refreshed schema no longer has one of them.

use serde_json::Value;

use super::decode::{Decoder, Occurrences};
use super::format;
use super::schema::{JsonName, Schema};
use super::wire::WireValue;
use super::ProtobufError;

/// A message whose JSON is not an object of its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Special {
    /// `resource.Quantity`: its `string`.
    Quantity,
    /// `intstr.IntOrString`: `intVal` or `strVal`, as `type` says.
    IntOrString,
    /// `metav1.Time`: RFC 3339 seconds; an empty message is the zero time.
    Time,
    /// `metav1.MicroTime`: RFC 3339 with six fraction digits.
    MicroTime,
    /// `metav1.Duration`: Go's duration string.
    Duration,
    /// `runtime.RawExtension` and `metav1.FieldsV1`: the JSON held in field 1.
    RawJson,
    /// `runtime.Unknown`: an embedded object with its own type.
    Unknown,
    /// A Go named slice (`type ExtraValue []string`): the array of `items`.
    Items,
}

const SPECIAL_MESSAGES: &[(&str, Special)] = &[
    ("apimachinery.pkg.api.resource.Quantity", Special::Quantity),
    (
        "apimachinery.pkg.api.resource.QuantityValue",
        Special::Quantity,
    ),
    (
        "apimachinery.pkg.util.intstr.IntOrString",
        Special::IntOrString,
    ),
    ("apimachinery.pkg.apis.meta.v1.Time", Special::Time),
    (
        "apimachinery.pkg.apis.meta.v1.MicroTime",
        Special::MicroTime,
    ),
    ("apimachinery.pkg.apis.meta.v1.Duration", Special::Duration),
    ("apimachinery.pkg.apis.meta.v1.FieldsV1", Special::RawJson),
    ("apimachinery.pkg.runtime.RawExtension", Special::RawJson),
    ("apimachinery.pkg.runtime.Unknown", Special::Unknown),
    ("apimachinery.pkg.apis.meta.v1.Verbs", Special::Items),
    ("api.authentication.v1.ExtraValue", Special::Items),
    ("api.authorization.v1.ExtraValue", Special::Items),
];

/// Go fields embedded with `json:",inline"` (message, protobuf field name).
const INLINE_FIELDS: &[(&str, &str)] = &[
    ("api.core.v1.Volume", "volumeSource"),
    ("api.core.v1.PersistentVolumeSpec", "persistentVolumeSource"),
    ("api.core.v1.Probe", "handler"),
    ("api.core.v1.EphemeralContainer", "ephemeralContainerCommon"),
    ("api.core.v1.SecretProjection", "localObjectReference"),
    ("api.core.v1.ConfigMapVolumeSource", "localObjectReference"),
    ("api.core.v1.ConfigMapProjection", "localObjectReference"),
    ("api.core.v1.ConfigMapKeySelector", "localObjectReference"),
    ("api.core.v1.SecretKeySelector", "localObjectReference"),
    ("api.core.v1.ConfigMapEnvSource", "localObjectReference"),
    ("api.core.v1.SecretEnvSource", "localObjectReference"),
    ("api.networking.v1.IngressRule", "ingressRuleValue"),
];

/// Fields whose JSON name is not their protobuf name (message, field, JSON).
const RENAMED_FIELDS: &[(&str, &str, &str)] = &[
    ("api.authentication.v1.BoundObjectReference", "uID", "uid"),
    (
        "api.networking.v1.IngressClassParametersReference",
        "aPIGroup",
        "apiGroup",
    ),
];

/// Marks the tables' messages and fields in `schema`.
pub(crate) fn mark(schema: &mut Schema) -> Result<(), String> {
    for (name, special) in SPECIAL_MESSAGES {
        let msg = schema
            .message_mut(name)
            .ok_or_else(|| format!("special message {name} is not in the schema"))?;
        msg.special = Some(*special);
    }
    let fields = INLINE_FIELDS
        .iter()
        .map(|(m, f)| (*m, *f, JsonName::Inline))
        .chain(
            RENAMED_FIELDS
                .iter()
                .map(|(m, f, j)| (*m, *f, JsonName::Key(j.to_string()))),
        );
    for (message, field, json) in fields {
        let msg = schema
            .message_mut(message)
            .ok_or_else(|| format!("message {message} is not in the schema"))?;
        let f = msg
            .fields
            .iter_mut()
            .find(|f| f.name == field)
            .ok_or_else(|| format!("message {message} has no field {field}"))?;
        f.json = json;
    }
    Ok(())
}

/// The JSON of a special message; `None` where Go's JSON would be `null`
/// (a zero time, an empty raw extension), which a singular field leaves out.
pub(crate) fn convert(
    dec: &Decoder<'_>,
    special: Special,
    fields: &Occurrences<'_, '_>,
    data: &[u8],
    depth: usize,
) -> Result<Option<Value>, ProtobufError> {
    let invalid = |field: &str, reason: String| fields.invalid(field, reason);
    let int = |n: u32| match fields.last(n) {
        Some(WireValue::Varint(v)) => v as i64,
        _ => 0,
    };
    let bytes = |n: u32| match fields.last(n) {
        Some(WireValue::Bytes(b, offset)) => Some((b, offset)),
        _ => None,
    };
    let string = |n: u32| bytes(n).map(|(b, _)| String::from_utf8_lossy(b).into_owned());
    Ok(match special {
        Special::Time if data.is_empty() => None,
        Special::Time => {
            // Go keeps whole seconds only (`time.Unix(seconds, 0)`).
            let text = format::rfc3339(int(1), None)
                .ok_or_else(|| invalid("seconds", format!("{} is out of range", int(1))))?;
            Some(Value::String(text))
        }
        Special::MicroTime if data.is_empty() => None,
        Special::MicroTime => {
            let (secs, micros) = format::unix_micros(int(1), int(2) as i32)
                .ok_or_else(|| invalid("seconds", format!("{} is out of range", int(1))))?;
            let text = format::rfc3339(secs, Some(micros))
                .ok_or_else(|| invalid("seconds", format!("{secs} is out of range")))?;
            Some(Value::String(text))
        }
        Special::Duration => Some(Value::String(format::go_duration(int(1)))),
        Special::Quantity => match string(1) {
            None => Some(Value::String("0".into())),
            Some(s) if s.is_empty() => return Err(invalid("string", "empty quantity".into())),
            Some(s) => Some(Value::String(s)),
        },
        Special::IntOrString => match int(1) {
            0 => Some(Value::from(int(2) as i32)),
            1 => Some(Value::String(string(3).unwrap_or_default())),
            t => {
                return Err(invalid(
                    "type",
                    format!("{t} is neither 0 (int) nor 1 (string)"),
                ))
            }
        },
        Special::RawJson => match bytes(1) {
            Some((raw, offset)) if !raw.is_empty() => Some(dec.raw_object(raw, offset, depth)?),
            _ => None,
        },
        Special::Unknown => dec.nested_unknown(data, fields.base(), depth)?,
        Special::Items => {
            let items = fields.all(1).map(|v| match v {
                WireValue::Bytes(b, _) => Value::String(String::from_utf8_lossy(b).into_owned()),
                _ => Value::Null,
            });
            Some(Value::Array(items.collect()))
        }
    })
}
