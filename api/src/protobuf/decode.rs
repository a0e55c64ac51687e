//! A message's bytes to JSON, field by field, by its schema.
//!
//! As Kubernetes' Go decoder does: the last occurrence of a singular scalar
//! wins, repeated occurrences of a singular message merge, repeated fields
//! append (packed or not), map entries are added in order, and unknown field
//! numbers are skipped. As its JSON encoder then does: empty strings and bytes
//! are left out (Go's `omitempty`; `""` and absent decode alike). A zero
//! number or `false` is left out only where Go's field is a plain value tagged
//! `omitempty` (`omitempty.txt`, generated from Kubernetes' Go types by
//! `tools/gen-omitempty.py`): pointer fields (`replicas: 0`) keep their zero,
//! and the schema alone cannot tell them apart.

use serde_json::{Map, Number, Value};
use std::collections::HashSet;
use std::sync::OnceLock;

use super::format;
use super::schema::{Field, JsonName, Label, Message, Scalar, Schema, Type};
use super::special::{self, Special};
use super::wire::{self, Reader, WireValue};
use super::ProtobufError;

/// How deep messages may nest (raw extensions and embedded objects included).
pub(crate) const MAX_DEPTH: usize = 100;

/// Decodes messages of one schema.
pub(crate) struct Decoder<'s> {
    pub schema: &'s Schema,
}

/// The known fields of one message as read: each field's values in wire
/// order, with the offsets of their tags.
pub(crate) struct Occurrences<'s, 'a> {
    msg: &'s Message,
    base: usize,
    values: Vec<Vec<(WireValue<'a>, usize)>>,
}

impl<'s, 'a> Occurrences<'s, 'a> {
    /// Reads `data` (at offset `base`) as a `msg`: checks each known field's
    /// wire type, skips unknown field numbers.
    pub(crate) fn read(
        msg: &'s Message,
        data: &'a [u8],
        base: usize,
    ) -> Result<Self, ProtobufError> {
        let mut values = vec![Vec::new(); msg.fields.len()];
        let mut reader = Reader::new(data, base);
        while let Some(wf) = reader.next_field()? {
            let Ok(i) = msg.fields.binary_search_by_key(&wf.number, |f| f.number) else {
                continue;
            };
            let field = &msg.fields[i];
            let packed = field.label == Label::Repeated;
            check_wire(
                &msg.name,
                &field.name,
                field.number,
                &field.ty,
                packed,
                &wf.value,
                wf.offset,
            )?;
            values[i].push((wf.value, wf.offset));
        }
        Ok(Occurrences { msg, base, values })
    }

    fn index(&self, number: u32) -> Option<usize> {
        self.msg.fields.iter().position(|f| f.number == number)
    }

    /// The last value of field `number`.
    pub(crate) fn last(&self, number: u32) -> Option<WireValue<'a>> {
        let i = self.index(number)?;
        self.values[i].last().map(|(v, _)| *v)
    }

    /// Every value of field `number`, in wire order.
    pub(crate) fn all(&self, number: u32) -> impl Iterator<Item = WireValue<'a>> + '_ {
        let values = self.index(number).map_or(&[][..], |i| &self.values[i][..]);
        values.iter().map(|(v, _)| *v)
    }

    /// The offset of the message's first byte.
    pub(crate) fn base(&self) -> usize {
        self.base
    }

    /// An invalid value of field `field`, placed at its last occurrence.
    pub(crate) fn invalid(&self, field: &str, reason: String) -> ProtobufError {
        let offset = self
            .msg
            .fields
            .iter()
            .position(|f| f.name == field)
            .and_then(|i| self.values[i].last())
            .map_or(self.base, |(_, offset)| *offset);
        invalid_value(self.msg, field, reason, offset)
    }
}

impl<'s> Decoder<'s> {
    /// The JSON of `data` (at offset `base`) read as `msg`; `None` where Go's
    /// JSON is `null` (a zero `Time`), which a singular field leaves out.
    pub(crate) fn message(
        &self,
        msg: &'s Message,
        data: &[u8],
        base: usize,
        depth: usize,
    ) -> Result<Option<Value>, ProtobufError> {
        if depth >= MAX_DEPTH {
            return Err(ProtobufError::TooDeep {
                limit: MAX_DEPTH,
                offset: base,
            });
        }
        let occurrences = Occurrences::read(msg, data, base)?;
        if let Some(special) = msg.special {
            return special::convert(self, special, &occurrences, data, depth + 1);
        }
        let mut object = Map::new();
        for (field, values) in msg.fields.iter().zip(&occurrences.values) {
            let Some(value) = self.field(msg, field, values, depth + 1)? else {
                continue;
            };
            match (&field.json, value) {
                (JsonName::Key(key), value) => {
                    object.insert(key.clone(), value);
                }
                // Go's JSON: an embedded struct's fields join the parent's; the
                // parent's own fields win a clash.
                (JsonName::Inline, Value::Object(inner)) => {
                    for (key, value) in inner {
                        object.entry(key).or_insert(value);
                    }
                }
                (JsonName::Inline, _) => {
                    let reason = "an inline field must hold an object".to_string();
                    return Err(occurrences.invalid(&field.name, reason));
                }
            }
        }
        Ok(Some(Value::Object(object)))
    }

    /// One field's JSON from all its occurrences; `None` leaves it out.
    fn field(
        &self,
        msg: &Message,
        field: &'s Field,
        values: &[(WireValue<'_>, usize)],
        depth: usize,
    ) -> Result<Option<Value>, ProtobufError> {
        let Some(&(last, last_offset)) = values.last() else {
            return Ok(None);
        };
        match (field.label, &field.ty) {
            (Label::Map(_), _) => self.map(msg, field, values, depth).map(Some),
            (Label::Repeated, _) => self.repeated(msg, field, values, depth).map(Some),
            (Label::Optional, Type::Scalar(s)) => {
                let value = scalar(*s, last)
                    .map_err(|r| invalid_value(msg, &field.name, r, last_offset))?;
                Ok(match value {
                    // Go's `omitempty`; "" decodes as absent.
                    Value::String(text) if text.is_empty() => None,
                    Value::Bool(false) if omits_zero(&msg.name, &field.name) => None,
                    Value::Number(n)
                        if n.as_f64() == Some(0.0) && omits_zero(&msg.name, &field.name) =>
                    {
                        None
                    }
                    value => Some(value),
                })
            }
            (Label::Optional, Type::Message(name)) => self.singular(self.msg(name), values, depth),
        }
    }

    /// A singular message field: one occurrence, or several merged (their
    /// bytes concatenated, as protobuf merges them).
    fn singular(
        &self,
        msg: &'s Message,
        values: &[(WireValue<'_>, usize)],
        depth: usize,
    ) -> Result<Option<Value>, ProtobufError> {
        let mut chunks = values.iter().filter_map(|(value, _)| match value {
            WireValue::Bytes(data, offset) => Some((*data, *offset)),
            _ => None,
        });
        // Go's custom decoders of these replace the value; the rest merge.
        let replaces = matches!(
            msg.special,
            Some(Special::Time | Special::MicroTime | Special::Quantity)
        );
        if values.len() == 1 || replaces {
            let (data, base) = chunks.next_back().expect("wire type checked");
            return self.message(msg, data, base, depth);
        }
        let (mut merged, mut base) = (Vec::new(), None);
        for (data, offset) in chunks {
            merged.extend_from_slice(data);
            base.get_or_insert(offset);
        }
        self.message(msg, &merged, base.unwrap_or_default(), depth)
    }

    /// A repeated field: messages, scalars, or packed runs of numbers.
    fn repeated(
        &self,
        msg: &Message,
        field: &Field,
        values: &[(WireValue<'_>, usize)],
        depth: usize,
    ) -> Result<Value, ProtobufError> {
        let mut array = Vec::new();
        for &(value, offset) in values {
            let invalid = |reason| invalid_value(msg, &field.name, reason, offset);
            match (&field.ty, value) {
                (Type::Message(name), WireValue::Bytes(data, base)) => {
                    let element = self.message(self.msg(name), data, base, depth)?;
                    array.push(element.unwrap_or(Value::Null));
                }
                (Type::Scalar(s), WireValue::Bytes(data, base)) if is_numeric(*s) => {
                    packed(*s, data, base, &mut array, invalid)?;
                }
                (Type::Scalar(s), value) => array.push(scalar(*s, value).map_err(invalid)?),
                (Type::Message(_), _) => unreachable!("wire type checked"),
            }
        }
        Ok(Value::Array(array))
    }

    /// A map field: an object of its entries, later keys replacing earlier.
    fn map(
        &self,
        msg: &Message,
        field: &Field,
        values: &[(WireValue<'_>, usize)],
        depth: usize,
    ) -> Result<Value, ProtobufError> {
        let mut object = Map::new();
        for &(value, _) in values {
            let WireValue::Bytes(entry, base) = value else {
                unreachable!("wire type checked")
            };
            let (key, value) = self.map_entry(msg, field, entry, base, depth)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }

    /// One map entry (key field 1, value field 2) as a JSON key and value;
    /// a missing key or value is its type's zero.
    fn map_entry(
        &self,
        msg: &Message,
        field: &Field,
        entry: &[u8],
        base: usize,
        depth: usize,
    ) -> Result<(String, Value), ProtobufError> {
        let Label::Map(key_type) = field.label else {
            unreachable!("only map fields have entries")
        };
        let (mut key, mut value) = (None, None);
        let mut reader = Reader::new(entry, base);
        while let Some(wf) = reader.next_field()? {
            let (what, ty, slot) = match wf.number {
                1 => ("map key", &Type::Scalar(key_type), &mut key),
                2 => ("map value", &field.ty, &mut value),
                _ => continue,
            };
            let name = format!("{} ({what})", field.name);
            check_wire(
                &msg.name,
                &name,
                field.number,
                ty,
                false,
                &wf.value,
                wf.offset,
            )?;
            *slot = Some((wf.value, wf.offset));
        }
        let invalid = |reason, offset| invalid_value(msg, &field.name, reason, offset);
        let key = match key {
            Some((v, offset)) => scalar(key_type, v).map_err(|r| invalid(r, offset))?,
            None => zero(key_type),
        };
        let key = match key {
            Value::String(s) => s,
            other => other.to_string(),
        };
        let value = match (&field.ty, value) {
            (Type::Scalar(s), Some((v, offset))) => {
                scalar(*s, v).map_err(|r| invalid(r, offset))?
            }
            (Type::Scalar(s), None) => zero(*s),
            (Type::Message(name), v) => {
                let (data, at) = match v {
                    Some((WireValue::Bytes(data, at), _)) => (data, at),
                    _ => (&[][..], base),
                };
                self.message(self.msg(name), data, at, depth)?
                    .unwrap_or(Value::Null)
            }
        };
        Ok((key, value))
    }

    /// A message the schema resolved: present by construction.
    fn msg(&self, name: &str) -> &'s Message {
        self.schema
            .message(name)
            .expect("field types resolve to messages of the schema")
    }
}

fn invalid_value(msg: &Message, field: &str, reason: String, offset: usize) -> ProtobufError {
    ProtobufError::InvalidValue {
        message: msg.name.clone(),
        field: field.to_string(),
        reason,
        offset,
    }
}

/// Checks a field's wire type: `packed` allows length-delimited runs of a
/// repeated numeric field.
fn check_wire(
    message: &str,
    field: &str,
    number: u32,
    ty: &Type,
    packed: bool,
    value: &WireValue<'_>,
    offset: usize,
) -> Result<(), ProtobufError> {
    let expected = match ty {
        Type::Message(_) => wire::LEN,
        Type::Scalar(s) => scalar_wire(*s),
    };
    let found = value.wire_type();
    if found == expected || (packed && expected != wire::LEN && found == wire::LEN) {
        return Ok(());
    }
    Err(ProtobufError::WrongWireType {
        message: message.to_string(),
        field: field.to_string(),
        number,
        found: wire::wire_name(found),
        expected: wire::wire_name(expected),
        offset,
    })
}

fn scalar_wire(s: Scalar) -> u8 {
    match s {
        Scalar::Double | Scalar::Fixed64 | Scalar::Sfixed64 => wire::FIXED64,
        Scalar::Float | Scalar::Fixed32 | Scalar::Sfixed32 => wire::FIXED32,
        Scalar::String | Scalar::Bytes => wire::LEN,
        _ => wire::VARINT,
    }
}

fn is_numeric(s: Scalar) -> bool {
    !matches!(s, Scalar::String | Scalar::Bytes)
}

/// A scalar's JSON as Go's decoder and JSON encoder give it.
fn scalar(s: Scalar, value: WireValue<'_>) -> Result<Value, String> {
    let float = |f: f64| {
        Number::from_f64(f)
            .map(Value::Number)
            .ok_or_else(|| format!("{f} has no JSON form"))
    };
    Ok(match (s, value) {
        (Scalar::Int32, WireValue::Varint(v)) => Value::from(v as i32),
        (Scalar::Int64, WireValue::Varint(v)) => Value::from(v as i64),
        (Scalar::Uint32, WireValue::Varint(v)) => Value::from(v as u32),
        (Scalar::Uint64, WireValue::Varint(v)) => Value::from(v),
        (Scalar::Sint32, WireValue::Varint(v)) => {
            let v = v as u32;
            Value::from((v >> 1) as i32 ^ -((v & 1) as i32))
        }
        (Scalar::Sint64, WireValue::Varint(v)) => Value::from((v >> 1) as i64 ^ -((v & 1) as i64)),
        (Scalar::Bool, WireValue::Varint(v)) => Value::Bool(v != 0),
        (Scalar::Fixed32, WireValue::Fixed32(v)) => Value::from(v),
        (Scalar::Sfixed32, WireValue::Fixed32(v)) => Value::from(v as i32),
        (Scalar::Float, WireValue::Fixed32(v)) => float(f64::from(f32::from_bits(v)))?,
        (Scalar::Fixed64, WireValue::Fixed64(v)) => Value::from(v),
        (Scalar::Sfixed64, WireValue::Fixed64(v)) => Value::from(v as i64),
        (Scalar::Double, WireValue::Fixed64(v)) => float(f64::from_bits(v))?,
        (Scalar::String, WireValue::Bytes(b, _)) => {
            // Go keeps invalid UTF-8 in strings; its JSON encoder writes U+FFFD.
            Value::String(String::from_utf8_lossy(b).into_owned())
        }
        (Scalar::Bytes, WireValue::Bytes(b, _)) => Value::String(format::base64(b)),
        (s, v) => unreachable!("wire type checked: {s:?} {v:?}"),
    })
}

/// A packed run of numeric scalars, appended to `out`.
fn packed(
    s: Scalar,
    data: &[u8],
    base: usize,
    out: &mut Vec<Value>,
    invalid: impl Fn(String) -> ProtobufError,
) -> Result<(), ProtobufError> {
    let mut reader = Reader::new(data, base);
    while !reader.at_end() {
        let value = match scalar_wire(s) {
            wire::FIXED32 => WireValue::Fixed32(u32::from_le_bytes(reader.fixed()?)),
            wire::FIXED64 => WireValue::Fixed64(u64::from_le_bytes(reader.fixed()?)),
            _ => WireValue::Varint(reader.varint()?),
        };
        out.push(scalar(s, value).map_err(&invalid)?);
    }
    Ok(())
}

/// Whether Go's JSON encoder leaves this field out when it is zero: a plain
/// (non-pointer) bool or number tagged `omitempty`, by `omitempty.txt`.
pub(crate) fn omits_zero(message: &str, field: &str) -> bool {
    static PLAIN: OnceLock<HashSet<(&'static str, &'static str)>> = OnceLock::new();
    PLAIN
        .get_or_init(|| {
            include_str!("omitempty.txt")
                .lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| l.split_once(' '))
                .collect()
        })
        .contains(&(message, field))
}

/// A scalar's zero value, for a map entry without its key or value.
fn zero(s: Scalar) -> Value {
    match s {
        Scalar::String | Scalar::Bytes => Value::String(String::new()),
        Scalar::Bool => Value::Bool(false),
        Scalar::Double | Scalar::Float => Value::from(0.0),
        _ => Value::from(0),
    }
}
