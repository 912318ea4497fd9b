//! Just enough protobuf to read and write the two messages of a tensor bundle index.
//!
//! Wire format (proto3): a message is a sequence of fields. Each field starts with a varint key
//! `(field_number << 3) | wire_type`; wire type 0 is a varint, 1 a little-endian fixed64,
//! 2 a varint length followed by that many bytes (strings, sub-messages), 5 a little-endian
//! fixed32. Wire types 3 and 4 (groups) are not used by these messages and are rejected.
//! Unknown fields are skipped; for a scalar field that occurs twice the last value wins, and a
//! sub-message that occurs twice is merged (as protobuf does).
//!
//! The messages (from TensorFlow's `tensor_bundle.proto`, `tensor_shape.proto`, `versions.proto`):
//! - `BundleHeaderProto { int32 num_shards = 1; Endianness endianness = 2; VersionDef version = 3; }`
//! - `VersionDef { int32 producer = 1; int32 min_consumer = 2; repeated int32 bad_consumers = 3; }`
//! - `BundleEntryProto { DataType dtype = 1; TensorShapeProto shape = 2; int32 shard_id = 3;
//!   int64 offset = 4; int64 size = 5; fixed32 crc32c = 6; repeated TensorSliceProto slices = 7; }`
//! - `TensorShapeProto { repeated Dim dim = 2; bool unknown_rank = 3; }`, `Dim { int64 size = 1; string name = 2; }`

/// A malformed message: what is wrong and where (byte offset inside the message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProtoError {
    /// Offset inside the encoded message.
    pub offset: usize,
    /// What was wrong.
    pub what: String,
}

type PResult<T> = Result<T, ProtoError>;

fn err<T>(offset: usize, what: impl Into<String>) -> PResult<T> {
    Err(ProtoError {
        offset,
        what: what.into(),
    })
}

/// One decoded field value.
enum Value<'a> {
    Varint(u64),
    Fixed64,
    Bytes(&'a [u8]),
    Fixed32(u32),
}

/// Decodes a base-128 varint at `*pos`, advancing it. At most 10 bytes; overflowing bits are an error.
pub(crate) fn read_varint(buf: &[u8], pos: &mut usize) -> PResult<u64> {
    let start = *pos;
    let mut value = 0u64;
    for i in 0..10 {
        let Some(&byte) = buf.get(*pos) else {
            return err(start, "varint runs past the end");
        };
        *pos += 1;
        let bits = u64::from(byte & 0x7f);
        if i == 9 && bits > 1 {
            return err(start, "varint overflows 64 bits");
        }
        value |= bits << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    err(start, "varint longer than 10 bytes")
}

/// Appends `v` as a varint.
pub(crate) fn write_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Fields<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Fields { buf, pos: 0 }
    }

    /// The next `(field number, offset of the field, value)`, or `None` at the end.
    fn next_field(&mut self) -> PResult<Option<(u64, usize, Value<'a>)>> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let at = self.pos;
        let key = read_varint(self.buf, &mut self.pos)?;
        let number = key >> 3;
        if number == 0 {
            return err(at, "field number 0");
        }
        let value = match key & 7 {
            0 => Value::Varint(read_varint(self.buf, &mut self.pos)?),
            1 => {
                self.take(8, at)?;
                Value::Fixed64
            }
            2 => {
                let len_at = self.pos;
                let len = read_varint(self.buf, &mut self.pos)?;
                let len = usize::try_from(len).or_else(|_| err(len_at, "length overflows"))?;
                Value::Bytes(self.take(len, len_at)?)
            }
            5 => {
                let b = self.take(4, at)?;
                Value::Fixed32(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            }
            t => return err(at, format!("unsupported wire type {t} for field {number}")),
        };
        Ok(Some((number, at, value)))
    }

    fn take(&mut self, len: usize, at: usize) -> PResult<&'a [u8]> {
        let end = self.pos.checked_add(len).filter(|&e| e <= self.buf.len());
        let Some(end) = end else {
            return err(
                at,
                format!(
                    "field needs {len} bytes, {} remain",
                    self.buf.len() - self.pos
                ),
            );
        };
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
}

fn wrong_type<T>(at: usize, number: u64, want: &str) -> PResult<T> {
    err(at, format!("field {number} should be {want}"))
}

fn varint(v: Value<'_>, at: usize, number: u64) -> PResult<u64> {
    match v {
        Value::Varint(x) => Ok(x),
        _ => wrong_type(at, number, "a varint"),
    }
}

/// An `int32` field: protobuf encodes negative values sign-extended to 64 bits. A varint that
/// is neither (protobuf parsers would silently keep its low 32 bits) is an error showing the
/// whole value.
fn int32(v: Value<'_>, at: usize, number: u64) -> PResult<i32> {
    let x = varint(v, at, number)?;
    i32::try_from(x as i64).map_err(|_| ProtoError {
        offset: at,
        what: format!("field {number}: varint {x} does not fit an int32"),
    })
}

fn bytes<'a>(v: Value<'a>, at: usize, number: u64) -> PResult<&'a [u8]> {
    match v {
        Value::Bytes(b) => Ok(b),
        _ => wrong_type(at, number, "length-delimited"),
    }
}

/// `BundleHeaderProto`, flattened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct HeaderProto {
    pub num_shards: i32,
    /// 0 = little, 1 = big.
    pub endianness: i32,
    pub producer: i32,
    pub min_consumer: i32,
    pub bad_consumers: Vec<i32>,
}

impl HeaderProto {
    pub(crate) fn decode(buf: &[u8]) -> PResult<Self> {
        let mut h = HeaderProto::default();
        let mut f = Fields::new(buf);
        while let Some((n, at, v)) = f.next_field()? {
            match n {
                1 => h.num_shards = int32(v, at, n)?,
                2 => h.endianness = int32(v, at, n)?,
                3 => {
                    let inner = bytes(v, at, n)?;
                    h.decode_version(inner).map_err(|e| ProtoError {
                        offset: at + e.offset,
                        what: format!("in version: {}", e.what),
                    })?;
                }
                _ => {}
            }
        }
        Ok(h)
    }

    fn decode_version(&mut self, buf: &[u8]) -> PResult<()> {
        let mut f = Fields::new(buf);
        while let Some((n, at, v)) = f.next_field()? {
            match (n, v) {
                (1, v) => self.producer = int32(v, at, n)?,
                (2, v) => self.min_consumer = int32(v, at, n)?,
                (3, v @ Value::Varint(_)) => self.bad_consumers.push(int32(v, at, n)?),
                (3, Value::Bytes(packed)) => {
                    let mut p = 0;
                    while p < packed.len() {
                        let x = read_varint(packed, &mut p).map_err(|e| ProtoError {
                            offset: at + e.offset,
                            what: e.what,
                        })?;
                        self.bad_consumers.push(int32(Value::Varint(x), at, n)?);
                    }
                }
                (3, _) => return wrong_type(at, n, "a varint or packed varints"),
                _ => {}
            }
        }
        Ok(())
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.num_shards != 0 {
            out.push(1 << 3);
            write_varint(&mut out, self.num_shards as i64 as u64);
        }
        if self.endianness != 0 {
            out.push(2 << 3);
            write_varint(&mut out, self.endianness as i64 as u64);
        }
        let mut version = Vec::new();
        if self.producer != 0 {
            version.push(1 << 3);
            write_varint(&mut version, self.producer as i64 as u64);
        }
        if self.min_consumer != 0 {
            version.push(2 << 3);
            write_varint(&mut version, self.min_consumer as i64 as u64);
        }
        for &b in &self.bad_consumers {
            version.push(3 << 3);
            write_varint(&mut version, b as i64 as u64);
        }
        out.push((3 << 3) | 2);
        write_varint(&mut out, version.len() as u64);
        out.extend_from_slice(&version);
        out
    }
}

/// `BundleEntryProto`, flattened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct EntryProto {
    pub dtype: i32,
    pub dims: Vec<i64>,
    pub unknown_rank: bool,
    pub shard_id: i32,
    pub offset: i64,
    pub size: i64,
    /// Masked crc32c of the tensor bytes.
    pub crc32c: u32,
    /// Number of `slices` entries (partitioned variables; unsupported by the reader).
    pub slices: usize,
}

impl EntryProto {
    /// Decodes an entry; more than `max_rank` dims is an error (checked before they are stored).
    pub(crate) fn decode(buf: &[u8], max_rank: usize) -> PResult<Self> {
        let mut e = EntryProto::default();
        let mut f = Fields::new(buf);
        while let Some((n, at, v)) = f.next_field()? {
            match n {
                1 => e.dtype = int32(v, at, n)?,
                2 => {
                    let inner = bytes(v, at, n)?;
                    e.decode_shape(inner, max_rank).map_err(|x| ProtoError {
                        offset: at + x.offset,
                        what: format!("in shape: {}", x.what),
                    })?;
                }
                3 => e.shard_id = int32(v, at, n)?,
                4 => e.offset = varint(v, at, n)? as i64,
                5 => e.size = varint(v, at, n)? as i64,
                6 => match v {
                    Value::Fixed32(x) => e.crc32c = x,
                    _ => return wrong_type(at, n, "fixed32"),
                },
                7 => {
                    bytes(v, at, n)?;
                    e.slices += 1;
                }
                _ => {}
            }
        }
        Ok(e)
    }

    fn decode_shape(&mut self, buf: &[u8], max_rank: usize) -> PResult<()> {
        let mut f = Fields::new(buf);
        while let Some((n, at, v)) = f.next_field()? {
            match n {
                2 => {
                    if self.dims.len() >= max_rank {
                        return err(at, format!("more than {max_rank} dimensions"));
                    }
                    let dim = bytes(v, at, n)?;
                    let mut size = 0i64;
                    let mut df = Fields::new(dim);
                    while let Some((dn, dat, dv)) = df.next_field().map_err(|x| ProtoError {
                        offset: at + x.offset,
                        what: x.what,
                    })? {
                        if dn == 1 {
                            size = varint(dv, at + dat, dn)? as i64;
                        }
                    }
                    self.dims.push(size);
                }
                3 => self.unknown_rank = varint(v, at, n)? != 0,
                _ => {}
            }
        }
        Ok(())
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.dtype != 0 {
            out.push(1 << 3);
            write_varint(&mut out, self.dtype as i64 as u64);
        }
        let mut shape = Vec::new();
        for &d in &self.dims {
            let mut dim = Vec::new();
            if d != 0 {
                dim.push(1 << 3);
                write_varint(&mut dim, d as u64);
            }
            shape.push((2 << 3) | 2);
            write_varint(&mut shape, dim.len() as u64);
            shape.extend_from_slice(&dim);
        }
        out.push((2 << 3) | 2);
        write_varint(&mut out, shape.len() as u64);
        out.extend_from_slice(&shape);
        if self.shard_id != 0 {
            out.push(3 << 3);
            write_varint(&mut out, self.shard_id as i64 as u64);
        }
        if self.offset != 0 {
            out.push(4 << 3);
            write_varint(&mut out, self.offset as u64);
        }
        if self.size != 0 {
            out.push(5 << 3);
            write_varint(&mut out, self.size as u64);
        }
        if self.crc32c != 0 {
            out.push((6 << 3) | 5);
            out.extend_from_slice(&self.crc32c.to_le_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_round_trip_and_errors() {
        for v in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut b = Vec::new();
            write_varint(&mut b, v);
            let mut p = 0;
            assert_eq!(read_varint(&b, &mut p).unwrap(), v);
            assert_eq!(p, b.len());
        }
        let mut p = 0;
        assert!(read_varint(&[0x80, 0x80], &mut p).is_err());
        let mut p = 0;
        let e = read_varint(&[0xff; 10], &mut p).unwrap_err();
        assert!(e.what.contains("overflows"), "{e:?}");
    }

    #[test]
    fn entry_round_trip() {
        let e = EntryProto {
            dtype: 1,
            dims: vec![3, 0, 5],
            shard_id: 2,
            offset: 1 << 40,
            size: 60,
            crc32c: 0xdead_beef,
            ..Default::default()
        };
        assert_eq!(EntryProto::decode(&e.encode(), 16).unwrap(), e);
        assert!(EntryProto::decode(&e.encode(), 2)
            .unwrap_err()
            .what
            .contains("more than 2 dimensions"));
    }

    #[test]
    fn header_round_trip_and_fixture_bytes() {
        let h = HeaderProto {
            num_shards: 3,
            endianness: 1,
            producer: 1,
            min_consumer: 0,
            bad_consumers: vec![7],
        };
        assert_eq!(HeaderProto::decode(&h.encode()).unwrap(), h);
        // The header value TensorFlow wrote into the fixture's index.
        let tf = HeaderProto::decode(&[0x08, 0x01, 0x1a, 0x02, 0x08, 0x01]).unwrap();
        assert_eq!((tf.num_shards, tf.endianness, tf.producer), (1, 0, 1));
    }

    #[test]
    fn truncated_and_group_fields_are_errors() {
        // length-delimited field claiming 5 bytes with 1 present
        let e = EntryProto::decode(&[0x12, 0x05, 0x00], 16).unwrap_err();
        assert!(e.what.contains("needs 5 bytes, 1 remain"), "{e:?}");
        // wire type 3 (start group)
        let e = EntryProto::decode(&[0x0b], 16).unwrap_err();
        assert!(e.what.contains("wire type 3"), "{e:?}");
        // crc32c with the wrong wire type
        let e = EntryProto::decode(&[0x30, 0x01], 16).unwrap_err();
        assert!(e.what.contains("fixed32"), "{e:?}");
    }
}
