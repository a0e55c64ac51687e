//! The protobuf wire format: varints, tags, and the fields of one message.
//!
//! Every offset is absolute (from the first byte of the request body), so an
//! error can say where in the body it happened.

use super::ProtobufError;

/// The widest varint: ten bytes carry 64 bits.
const MAX_VARINT_LEN: usize = 10;
/// The largest field number protobuf allows.
const MAX_FIELD_NUMBER: u64 = (1 << 29) - 1;

/// Wire type 0: a varint.
pub(crate) const VARINT: u8 = 0;
/// Wire type 1: eight little-endian bytes.
pub(crate) const FIXED64: u8 = 1;
/// Wire type 2: a varint length and that many bytes.
pub(crate) const LEN: u8 = 2;
/// Wire type 3: the start of a (deprecated) group.
const START_GROUP: u8 = 3;
/// Wire type 4: the end of a group.
const END_GROUP: u8 = 4;
/// Wire type 5: four little-endian bytes.
pub(crate) const FIXED32: u8 = 5;

/// A wire type's number and name, for error messages.
pub(crate) fn wire_name(wire_type: u8) -> &'static str {
    match wire_type {
        VARINT => "0 (varint)",
        FIXED64 => "1 (64-bit)",
        LEN => "2 (length-delimited)",
        START_GROUP => "3 (start group)",
        END_GROUP => "4 (end group)",
        FIXED32 => "5 (32-bit)",
        _ => "invalid",
    }
}

/// One field's value as it was on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WireValue<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    /// Length-delimited bytes and the offset of their first byte.
    Bytes(&'a [u8], usize),
    /// A group (wire types 3 to 4), only ever skipped.
    Group,
}

impl WireValue<'_> {
    /// The wire type this value came with.
    pub(crate) fn wire_type(&self) -> u8 {
        match self {
            WireValue::Varint(_) => VARINT,
            WireValue::Fixed64(_) => FIXED64,
            WireValue::Fixed32(_) => FIXED32,
            WireValue::Bytes(..) => LEN,
            WireValue::Group => START_GROUP,
        }
    }
}

/// One field of a message: its number, value and the offset of its tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WireField<'a> {
    pub number: u32,
    pub value: WireValue<'a>,
    pub offset: usize,
}

/// Reads the fields of one message, in order.
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    /// Absolute offset of `data[0]`.
    base: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `data`, whose first byte is at absolute offset `base`.
    pub(crate) fn new(data: &'a [u8], base: usize) -> Self {
        Reader { data, pos: 0, base }
    }

    fn offset(&self) -> usize {
        self.base + self.pos
    }

    /// The next field, or `None` at the end of the message.
    pub(crate) fn next_field(&mut self) -> Result<Option<WireField<'a>>, ProtobufError> {
        if self.pos == self.data.len() {
            return Ok(None);
        }
        let offset = self.offset();
        let key = self.varint()?;
        let number = key >> 3;
        let wire_type = (key & 7) as u8;
        if number == 0 || number > MAX_FIELD_NUMBER {
            return Err(ProtobufError::InvalidFieldNumber { number, offset });
        }
        let value = self.value(wire_type, number, offset)?;
        Ok(Some(WireField {
            number: number as u32,
            value,
            offset,
        }))
    }

    fn value(
        &mut self,
        wire_type: u8,
        number: u64,
        offset: usize,
    ) -> Result<WireValue<'a>, ProtobufError> {
        Ok(match wire_type {
            VARINT => WireValue::Varint(self.varint()?),
            FIXED64 => WireValue::Fixed64(u64::from_le_bytes(self.fixed::<8>()?)),
            FIXED32 => WireValue::Fixed32(u32::from_le_bytes(self.fixed::<4>()?)),
            LEN => {
                let len_offset = self.offset();
                let len = self.varint()?;
                let remaining = self.data.len() - self.pos;
                if len > remaining as u64 {
                    return Err(ProtobufError::Truncated {
                        offset: len_offset,
                        len,
                        remaining,
                    });
                }
                let start = self.pos;
                self.pos += len as usize;
                WireValue::Bytes(&self.data[start..self.pos], self.base + start)
            }
            START_GROUP => {
                self.skip_group(number)?;
                WireValue::Group
            }
            _ => return Err(ProtobufError::InvalidWireType { wire_type, offset }),
        })
    }

    /// Skips a group's fields up to its end-group tag for field `number`.
    fn skip_group(&mut self, number: u64) -> Result<(), ProtobufError> {
        loop {
            let offset = self.offset();
            if self.pos == self.data.len() {
                return Err(ProtobufError::UnterminatedGroup { offset });
            }
            let key = self.varint()?;
            let (inner, wire_type) = (key >> 3, (key & 7) as u8);
            if wire_type == END_GROUP {
                if inner == number {
                    return Ok(());
                }
                return Err(ProtobufError::InvalidWireType { wire_type, offset });
            }
            if inner == 0 || inner > MAX_FIELD_NUMBER {
                return Err(ProtobufError::InvalidFieldNumber {
                    number: inner,
                    offset,
                });
            }
            self.value(wire_type, inner, offset)?;
        }
    }

    /// `N` little-endian bytes.
    pub(crate) fn fixed<const N: usize>(&mut self) -> Result<[u8; N], ProtobufError> {
        let offset = self.offset();
        let bytes = self
            .data
            .get(self.pos..self.pos + N)
            .ok_or(ProtobufError::Truncated {
                offset,
                len: N as u64,
                remaining: self.data.len() - self.pos,
            })?;
        self.pos += N;
        Ok(bytes.try_into().expect("slice of N bytes"))
    }

    /// Whether every byte has been read.
    pub(crate) fn at_end(&self) -> bool {
        self.pos == self.data.len()
    }

    /// A varint of at most ten bytes. As in Go's decoder, bits past the 64th
    /// are dropped; an eleventh byte is an error.
    pub(crate) fn varint(&mut self) -> Result<u64, ProtobufError> {
        let offset = self.offset();
        let mut value = 0u64;
        for i in 0..MAX_VARINT_LEN {
            let Some(&byte) = self.data.get(self.pos) else {
                return Err(ProtobufError::TruncatedVarint { offset });
            };
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(ProtobufError::VarintOverflow { offset })
    }
}
