//! A data-only pickle interpreter, and the pickle writer behind `.pth` files.
//!
//! # Why an interpreter of our own
//! `torch.save` stores a state dict as a pickle, and unpickling with Python's `pickle` runs
//! arbitrary callables named in the file. This module runs pickles as a stack machine over a
//! small opcode subset (the protocol 2–5 opcodes that `torch.save` emits, plus a few harmless
//! neighbours) and an allow-list of globals. A global outside the list is a typed error that
//! names it; nothing in the file is ever called. `REDUCE`/`BUILD` only apply to allow-listed
//! callables, which this module interprets itself (e.g. `_rebuild_tensor_v2` becomes a
//! [`TensorRef`]).
//!
//! # Byte layout
//! A pickle is a sequence of one-byte opcodes, each followed by its inline argument (fixed-width
//! little-endian integers, or a length prefix and that many bytes, or newline-terminated text for
//! `GLOBAL`), and ends with `STOP` (`.`). See CPython's `pickletools.py` for the opcode table.
//!
//! # Memory
//! Objects live in an arena ([`Unpickled::objects`]) and containers hold indices into it, so
//! shared references, self-references and deep nesting cost neither reference cycles nor
//! recursion. Every opcode creates at most one object, every inline length is checked against
//! the bytes that remain before anything is copied, and stack, memo and arena sizes are bounded
//! by [`Limits::max_pickle_items`].
use std::collections::HashMap;

use crate::tensor::{byte_len, DType, Limits};

/// Longest storage key or location accepted (torch writes short decimal keys and device
/// names), and longest str that dict keys are de-duplicated by value (longer ones by
/// identity). Keeps per-opcode copying small however often a pickle repeats a string.
const MAX_KEY_LEN: usize = 256;

/// Index of an object in [`Unpickled::objects`].
pub type ObjId = usize;

/// Why a pickle could not be interpreted. Offsets are byte offsets into the pickle.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// The data ended inside an opcode or before `STOP`.
    #[error(
        "pickle ends at byte {offset} inside opcode {opcode:#04x} (needs {needed} more bytes)"
    )]
    Truncated {
        /// Offset of the opcode that was cut short (or the data length if no STOP was found).
        offset: u64,
        /// The opcode being read (0 when the data ended between opcodes).
        opcode: u8,
        /// Bytes missing.
        needed: u64,
    },
    /// An opcode outside the supported data-only subset.
    #[error("unsupported pickle opcode {opcode:#04x} at offset {offset}")]
    UnsupportedOpcode {
        /// The opcode byte.
        opcode: u8,
        /// Its offset.
        offset: u64,
    },
    /// A global that is not on the allow-list. Nothing was executed.
    #[error("global `{module}.{name}` at offset {offset} is not allow-listed; refusing to load")]
    UnsupportedGlobal {
        /// Module part, e.g. `os`.
        module: String,
        /// Name part, e.g. `system`.
        name: String,
        /// Offset of the GLOBAL / STACK_GLOBAL opcode.
        offset: u64,
    },
    /// The stack held too few items (or no MARK) for an opcode.
    #[error("pickle stack underflow at offset {offset} (opcode {opcode:#04x})")]
    StackUnderflow {
        /// Offset of the opcode.
        offset: u64,
        /// The opcode.
        opcode: u8,
    },
    /// A memo lookup of an index that was never stored.
    #[error("pickle memo has no entry {index} (offset {offset})")]
    MemoMissing {
        /// The index asked for.
        index: u64,
        /// Offset of the GET opcode.
        offset: u64,
    },
    /// An operand had the wrong type.
    #[error("at offset {offset}: {context}: expected {expected}, found {found}")]
    WrongType {
        /// Offset of the opcode.
        offset: u64,
        /// What was being done.
        context: String,
        /// Expected type.
        expected: &'static str,
        /// Type found.
        found: &'static str,
    },
    /// An allow-listed callable was called with arguments it does not accept.
    #[error("at offset {offset}: {callable}: {reason}")]
    BadCall {
        /// Offset of the REDUCE / BUILD / BINPERSID opcode.
        offset: u64,
        /// The callable (e.g. `torch._utils._rebuild_tensor_v2`).
        callable: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A size or count exceeded a [`Limits`] bound.
    #[error("at offset {offset}: {what} is {actual}, over the limit of {limit}")]
    Limit {
        /// Offset of the opcode.
        offset: u64,
        /// What was counted.
        what: &'static str,
        /// The value found.
        actual: u64,
        /// The limit.
        limit: u64,
    },
    /// Text that is not valid UTF-8 (or ASCII where required).
    #[error("invalid text at offset {offset}")]
    BadText {
        /// Offset of the opcode.
        offset: u64,
    },
}

/// An allow-listed global. These are the only callables a pickle can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Global {
    /// `collections.OrderedDict`.
    OrderedDict,
    /// `torch._utils._rebuild_tensor_v2`.
    RebuildTensorV2,
    /// `torch._utils._rebuild_parameter`.
    RebuildParameter,
    /// `torch._utils._rebuild_parameter_with_state`.
    RebuildParameterWithState,
    /// A storage class: `torch.FloatStorage` … (typed, `Some(dtype)`) or
    /// `torch.UntypedStorage` (`None`, read as bytes).
    Storage(Option<DType>),
}

impl Global {
    /// Looks up `module.name` in the allow-list.
    pub fn lookup(module: &str, name: &str) -> Option<Global> {
        Some(match (module, name) {
            ("collections", "OrderedDict") => Global::OrderedDict,
            ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensorV2,
            ("torch._utils", "_rebuild_parameter") => Global::RebuildParameter,
            ("torch._utils", "_rebuild_parameter_with_state") => Global::RebuildParameterWithState,
            ("torch" | "torch.storage", "UntypedStorage") => Global::Storage(None),
            ("torch", storage) => Global::Storage(Some(storage_dtype(storage)?)),
            _ => return None,
        })
    }

    /// The Python spelling, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Global::OrderedDict => "collections.OrderedDict",
            Global::RebuildTensorV2 => "torch._utils._rebuild_tensor_v2",
            Global::RebuildParameter => "torch._utils._rebuild_parameter",
            Global::RebuildParameterWithState => "torch._utils._rebuild_parameter_with_state",
            Global::Storage(None) => "torch.UntypedStorage",
            Global::Storage(Some(d)) => match d {
                DType::F32 => "torch.FloatStorage",
                DType::F64 => "torch.DoubleStorage",
                DType::F16 => "torch.HalfStorage",
                DType::BF16 => "torch.BFloat16Storage",
                DType::I64 => "torch.LongStorage",
                DType::I32 => "torch.IntStorage",
                DType::I16 => "torch.ShortStorage",
                DType::I8 => "torch.CharStorage",
                DType::U8 => "torch.ByteStorage",
                DType::Bool => "torch.BoolStorage",
            },
        }
    }
}

/// The dtype of a `torch.<Name>Storage` class.
fn storage_dtype(name: &str) -> Option<DType> {
    Some(match name {
        "FloatStorage" => DType::F32,
        "DoubleStorage" => DType::F64,
        "HalfStorage" => DType::F16,
        "BFloat16Storage" => DType::BF16,
        "LongStorage" => DType::I64,
        "IntStorage" => DType::I32,
        "ShortStorage" => DType::I16,
        "CharStorage" => DType::I8,
        "ByteStorage" => DType::U8,
        "BoolStorage" => DType::Bool,
        _ => return None,
    })
}

/// The storage class name `torch.save` uses for a dtype (the inverse of `storage_dtype`).
pub fn storage_class(dtype: DType) -> &'static str {
    let full = Global::Storage(Some(dtype)).name();
    full.strip_prefix("torch.").unwrap_or(full)
}

/// A storage named by a persistent id `('storage', <class>, key, location, numel[, view])`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageRef {
    /// The storage key (`data/<key>` in zip files, the key list entry in legacy files).
    pub key: String,
    /// Element type from the storage class (`U8` for untyped storages).
    pub dtype: DType,
    /// Device string as written (`cpu`, `cuda:0`); informational only.
    pub location: String,
    /// Declared element count.
    pub numel: u64,
}

/// A tensor as `_rebuild_tensor_v2` describes it: a strided view of a storage.
/// Bounds (offset + extent within the storage's declared numel) are checked on creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorRef {
    /// The storage it views.
    pub storage: StorageRef,
    /// Offset into the storage, in elements.
    pub offset: u64,
    /// Shape.
    pub shape: Vec<usize>,
    /// Strides, in elements.
    pub stride: Vec<usize>,
}

/// A Python value, restricted to what state dicts contain.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An int that fits in i64.
    Int(i64),
    /// A wider int: little-endian two's complement bytes (as LONG1/LONG4 store it).
    BigInt(Vec<u8>),
    /// A float.
    Float(f64),
    /// A str.
    Str(String),
    /// bytes / bytearray.
    Bytes(Vec<u8>),
    /// A tuple.
    Tuple(Vec<ObjId>),
    /// A list.
    List(Vec<ObjId>),
    /// A set or frozenset (kept in insertion order).
    Set(Vec<ObjId>),
    /// A dict or OrderedDict, in insertion order, with the state applied by BUILD
    /// (for torch state dicts: `{'_metadata': OrderedDict(...)}`).
    Dict {
        /// Key/value pairs in insertion order.
        items: Vec<(ObjId, ObjId)>,
        /// The BUILD state, if any.
        state: Option<ObjId>,
    },
    /// An allow-listed global (a callable or class).
    Global(Global),
    /// A storage from a persistent id.
    Storage(StorageRef),
    /// A tensor.
    Tensor(TensorRef),
}

impl Object {
    /// The Python-ish type name, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Object::None => "None",
            Object::Bool(_) => "bool",
            Object::Int(_) | Object::BigInt(_) => "int",
            Object::Float(_) => "float",
            Object::Str(_) => "str",
            Object::Bytes(_) => "bytes",
            Object::Tuple(_) => "tuple",
            Object::List(_) => "list",
            Object::Set(_) => "set",
            Object::Dict { .. } => "dict",
            Object::Global(_) => "global",
            Object::Storage(_) => "storage",
            Object::Tensor(_) => "tensor",
        }
    }
}

/// The result of running a pickle: the object arena and the root object.
#[derive(Debug, Clone)]
pub struct Unpickled {
    /// All objects created; containers refer to each other by index.
    pub objects: Vec<Object>,
    /// The object STOP returned.
    pub root: ObjId,
    /// Bytes consumed, including STOP (the next pickle in a stream starts here).
    pub len: usize,
}

impl Unpickled {
    /// The object at `id`.
    pub fn get(&self, id: ObjId) -> &Object {
        // Ids only come from this arena, so they are in range.
        &self.objects[id]
    }

    /// The root object.
    pub fn root(&self) -> &Object {
        self.get(self.root)
    }

    /// The str at `id`, if it is one.
    pub fn as_str(&self, id: ObjId) -> Option<&str> {
        match self.get(id) {
            Object::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// Key used to find an existing dict entry on SETITEM (Python replaces the value in place).
#[derive(Hash, PartialEq, Eq)]
enum DictKey {
    Str(String),
    Int(i64),
    Identity(ObjId),
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    limits: &'a Limits,
    objects: Vec<Object>,
    /// Per dict object: key → index into its items.
    dict_index: HashMap<ObjId, HashMap<DictKey, usize>>,
    stack: Vec<ObjId>,
    marks: Vec<usize>,
    memo: HashMap<u64, ObjId>,
    /// Offset of the opcode being executed.
    op_at: usize,
    op: u8,
}

/// Runs one pickle from the start of `data` up to its STOP opcode.
///
/// Errors are typed; a global outside the allow-list is [`Error::UnsupportedGlobal`].
pub fn unpickle(data: &[u8], limits: &Limits) -> Result<Unpickled, Error> {
    let mut m = Machine {
        data,
        pos: 0,
        limits,
        objects: Vec::new(),
        dict_index: HashMap::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        op_at: 0,
        op: 0,
    };
    let root = m.run()?;
    Ok(Unpickled {
        objects: m.objects,
        root,
        len: m.pos,
    })
}

impl<'a> Machine<'a> {
    fn off(&self) -> u64 {
        self.op_at as u64
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], Error> {
        let avail = (self.data.len() - self.pos) as u64;
        if n > avail {
            return Err(Error::Truncated {
                offset: self.off(),
                opcode: self.op,
                needed: n - avail,
            });
        }
        let n = n as usize;
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, Error> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, Error> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, Error> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// A newline-terminated ASCII line (GLOBAL arguments), without the newline.
    fn line(&mut self) -> Result<&'a str, Error> {
        let rest = &self.data[self.pos..];
        let Some(n) = rest.iter().position(|&b| b == b'\n') else {
            return Err(Error::Truncated {
                offset: self.off(),
                opcode: self.op,
                needed: 1,
            });
        };
        let line = &rest[..n];
        self.pos += n + 1;
        if !line.is_ascii() {
            return Err(Error::BadText { offset: self.off() });
        }
        std::str::from_utf8(line).map_err(|_| Error::BadText { offset: self.off() })
    }

    fn text(&mut self, n: u64) -> Result<String, Error> {
        let b = self.take(n)?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| Error::BadText { offset: self.off() })
    }

    fn alloc(&mut self, obj: Object) -> Result<ObjId, Error> {
        let limit = self.limits.max_pickle_items;
        if self.objects.len() as u64 >= limit {
            return Err(self.limit("object count", self.objects.len() as u64 + 1, limit));
        }
        self.objects.push(obj);
        Ok(self.objects.len() - 1)
    }

    fn limit(&self, what: &'static str, actual: u64, limit: u64) -> Error {
        Error::Limit {
            offset: self.off(),
            what,
            actual,
            limit,
        }
    }

    fn push(&mut self, id: ObjId) -> Result<(), Error> {
        let limit = self.limits.max_pickle_items;
        if self.stack.len() as u64 >= limit {
            return Err(self.limit("stack depth", self.stack.len() as u64 + 1, limit));
        }
        self.stack.push(id);
        Ok(())
    }

    fn push_new(&mut self, obj: Object) -> Result<(), Error> {
        let id = self.alloc(obj)?;
        self.push(id)
    }

    fn underflow(&self) -> Error {
        Error::StackUnderflow {
            offset: self.off(),
            opcode: self.op,
        }
    }

    fn pop(&mut self) -> Result<ObjId, Error> {
        // Items above the innermost MARK belong to it; popping past it is an underflow.
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.underflow());
        }
        self.stack.pop().ok_or_else(|| self.underflow())
    }

    fn top(&self) -> Result<ObjId, Error> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.underflow());
        }
        self.stack.last().copied().ok_or_else(|| self.underflow())
    }

    /// Pops everything above the innermost MARK, and the mark.
    fn pop_mark(&mut self) -> Result<Vec<ObjId>, Error> {
        let Some(at) = self.marks.pop() else {
            return Err(self.underflow());
        };
        Ok(self.stack.split_off(at))
    }

    fn wrong(&self, context: &str, expected: &'static str, found: ObjId) -> Error {
        Error::WrongType {
            offset: self.off(),
            context: context.to_owned(),
            expected,
            found: self.objects[found].type_name(),
        }
    }

    fn memo_put(&mut self, index: u64) -> Result<(), Error> {
        let id = self.top()?;
        let limit = self.limits.max_pickle_items;
        if self.memo.len() as u64 >= limit && !self.memo.contains_key(&index) {
            return Err(self.limit("memo size", self.memo.len() as u64 + 1, limit));
        }
        self.memo.insert(index, id);
        Ok(())
    }

    fn memo_get(&mut self, index: u64) -> Result<(), Error> {
        let id = *self.memo.get(&index).ok_or(Error::MemoMissing {
            index,
            offset: self.off(),
        })?;
        self.push(id)
    }

    fn dict_key(&self, key: ObjId) -> DictKey {
        match &self.objects[key] {
            Object::Str(s) if s.len() <= MAX_KEY_LEN => DictKey::Str(s.clone()),
            Object::Int(i) => DictKey::Int(*i),
            Object::Bool(b) => DictKey::Int(i64::from(*b)),
            _ => DictKey::Identity(key),
        }
    }

    fn set_items(&mut self, dict: ObjId, pairs: &[ObjId]) -> Result<(), Error> {
        if !pairs.len().is_multiple_of(2) {
            return Err(Error::BadCall {
                offset: self.off(),
                callable: "SETITEMS",
                reason: format!("odd number of items ({})", pairs.len()),
            });
        }
        if !matches!(self.objects[dict], Object::Dict { .. }) {
            return Err(self.wrong("SETITEM target", "dict", dict));
        }
        for kv in pairs.chunks_exact(2) {
            let key = self.dict_key(kv[0]);
            let index = self.dict_index.entry(dict).or_default();
            let Object::Dict { items, .. } = &mut self.objects[dict] else {
                unreachable!("checked above")
            };
            match index.get(&key) {
                Some(&i) => items[i].1 = kv[1],
                None => {
                    index.insert(key, items.len());
                    items.push((kv[0], kv[1]));
                }
            }
        }
        Ok(())
    }

    fn extend_list(&mut self, list: ObjId, values: Vec<ObjId>) -> Result<(), Error> {
        match &mut self.objects[list] {
            Object::List(items) | Object::Set(items) => {
                items.extend(values);
                Ok(())
            }
            _ => Err(self.wrong("APPEND target", "list", list)),
        }
    }

    fn int_from_le(&self, bytes: &[u8]) -> Object {
        if bytes.is_empty() {
            return Object::Int(0);
        }
        if bytes.len() <= 8 {
            let neg = bytes[bytes.len() - 1] & 0x80 != 0;
            let mut a = [if neg { 0xff } else { 0 }; 8];
            a[..bytes.len()].copy_from_slice(bytes);
            return Object::Int(i64::from_le_bytes(a));
        }
        Object::BigInt(bytes.to_vec())
    }

    fn run(&mut self) -> Result<ObjId, Error> {
        loop {
            self.op_at = self.pos;
            self.op = 0;
            let op = self.u8()?;
            self.op = op;
            match op {
                // PROTO n
                0x80 => {
                    let v = self.u8()?;
                    if v > 5 {
                        return Err(Error::BadCall {
                            offset: self.off(),
                            callable: "PROTO",
                            reason: format!("protocol {v} is newer than 5"),
                        });
                    }
                }
                // FRAME: an 8-byte length hint; frames only group opcodes.
                0x95 => {
                    let n = self.u64()?;
                    let avail = (self.data.len() - self.pos) as u64;
                    if n > avail {
                        return Err(Error::Truncated {
                            offset: self.off(),
                            opcode: op,
                            needed: n - avail,
                        });
                    }
                }
                // STOP
                b'.' => {
                    let root = self.pop()?;
                    return Ok(root);
                }
                // MARK
                b'(' => {
                    let limit = self.limits.max_pickle_items;
                    if self.marks.len() as u64 >= limit {
                        return Err(self.limit("mark depth", self.marks.len() as u64 + 1, limit));
                    }
                    self.marks.push(self.stack.len());
                }
                // POP
                b'0' => {
                    self.pop()?;
                }
                // POP_MARK
                b'1' => {
                    self.pop_mark()?;
                }
                // DUP
                b'2' => {
                    let id = self.top()?;
                    self.push(id)?;
                }
                // NONE, NEWTRUE, NEWFALSE
                b'N' => self.push_new(Object::None)?,
                0x88 => self.push_new(Object::Bool(true))?,
                0x89 => self.push_new(Object::Bool(false))?,
                // BININT, BININT1, BININT2
                b'J' => {
                    let v = self.u32()? as i32;
                    self.push_new(Object::Int(i64::from(v)))?
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push_new(Object::Int(i64::from(v)))?
                }
                b'M' => {
                    let v = self.u16()?;
                    self.push_new(Object::Int(i64::from(v)))?
                }
                // LONG1, LONG4
                0x8a | 0x8b => {
                    let n = if op == 0x8a {
                        u64::from(self.u8()?)
                    } else {
                        u64::from(self.u32()?)
                    };
                    let b = self.take(n)?;
                    let obj = self.int_from_le(b);
                    self.push_new(obj)?
                }
                // BINFLOAT (big-endian f64)
                b'G' => {
                    let b = self.take(8)?;
                    let mut a = [0u8; 8];
                    a.copy_from_slice(b);
                    self.push_new(Object::Float(f64::from_be_bytes(a)))?
                }
                // SHORT_BINUNICODE, BINUNICODE, BINUNICODE8
                0x8c | b'X' | 0x8d => {
                    let n = match op {
                        0x8c => u64::from(self.u8()?),
                        b'X' => u64::from(self.u32()?),
                        _ => self.u64()?,
                    };
                    let s = self.text(n)?;
                    self.push_new(Object::Str(s))?
                }
                // SHORT_BINSTRING, BINSTRING (Python 2 str; torch reads them as latin-1 text)
                b'U' | b'T' => {
                    let n = if op == b'U' {
                        u64::from(self.u8()?)
                    } else {
                        u64::from(self.u32()?)
                    };
                    let b = self.take(n)?;
                    let s = b.iter().map(|&c| char::from(c)).collect();
                    self.push_new(Object::Str(s))?
                }
                // SHORT_BINBYTES, BINBYTES, BINBYTES8, BYTEARRAY8
                b'C' | b'B' | 0x8e | 0x96 => {
                    let n = match op {
                        b'C' => u64::from(self.u8()?),
                        b'B' => u64::from(self.u32()?),
                        _ => self.u64()?,
                    };
                    let b = self.take(n)?.to_vec();
                    self.push_new(Object::Bytes(b))?
                }
                // EMPTY_TUPLE, TUPLE, TUPLE1..3
                b')' => self.push_new(Object::Tuple(Vec::new()))?,
                b't' => {
                    let items = self.pop_mark()?;
                    self.push_new(Object::Tuple(items))?
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.push_new(Object::Tuple(items))?
                }
                // EMPTY_LIST, LIST, APPEND, APPENDS
                b']' => self.push_new(Object::List(Vec::new()))?,
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push_new(Object::List(items))?
                }
                b'a' => {
                    let v = self.pop()?;
                    let list = self.top()?;
                    self.extend_list(list, vec![v])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    let list = self.top()?;
                    self.extend_list(list, items)?;
                }
                // EMPTY_SET, ADDITEMS, FROZENSET
                0x8f => self.push_new(Object::Set(Vec::new()))?,
                0x90 => {
                    let items = self.pop_mark()?;
                    let set = self.top()?;
                    self.extend_list(set, items)?;
                }
                0x91 => {
                    let items = self.pop_mark()?;
                    self.push_new(Object::Set(items))?
                }
                // EMPTY_DICT, DICT, SETITEM, SETITEMS
                b'}' => self.push_new(Object::Dict {
                    items: Vec::new(),
                    state: None,
                })?,
                b'd' => {
                    let items = self.pop_mark()?;
                    let id = self.alloc(Object::Dict {
                        items: Vec::new(),
                        state: None,
                    })?;
                    self.set_items(id, &items)?;
                    self.push(id)?
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    let d = self.top()?;
                    self.set_items(d, &[k, v])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let d = self.top()?;
                    self.set_items(d, &items)?;
                }
                // BINPUT, LONG_BINPUT, MEMOIZE, BINGET, LONG_BINGET
                b'q' => {
                    let i = u64::from(self.u8()?);
                    self.memo_put(i)?
                }
                b'r' => {
                    let i = u64::from(self.u32()?);
                    self.memo_put(i)?
                }
                0x94 => {
                    let i = self.memo.len() as u64;
                    self.memo_put(i)?
                }
                b'h' => {
                    let i = u64::from(self.u8()?);
                    self.memo_get(i)?
                }
                b'j' => {
                    let i = u64::from(self.u32()?);
                    self.memo_get(i)?
                }
                // GLOBAL, STACK_GLOBAL
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.global(module, name)?;
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Object::Str(module), Object::Str(name)) =
                        (&self.objects[module], &self.objects[name])
                    else {
                        return Err(self.wrong("STACK_GLOBAL", "two str", module));
                    };
                    let (module, name) = (module.clone(), name.clone());
                    self.global(&module, &name)?;
                }
                // REDUCE, BUILD, BINPERSID
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let result = self.reduce(callable, args)?;
                    self.push(result)?;
                }
                b'b' => {
                    let state = self.pop()?;
                    let target = self.top()?;
                    self.build(target, state)?;
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let storage = self.persistent_load(pid)?;
                    self.push_new(Object::Storage(storage))?;
                }
                _ => {
                    return Err(Error::UnsupportedOpcode {
                        opcode: op,
                        offset: self.off(),
                    })
                }
            }
        }
    }

    fn global(&mut self, module: &str, name: &str) -> Result<(), Error> {
        match Global::lookup(module, name) {
            Some(g) => self.push_new(Object::Global(g)),
            None => Err(Error::UnsupportedGlobal {
                module: module.to_owned(),
                name: name.to_owned(),
                offset: self.off(),
            }),
        }
    }

    fn tuple(&self, id: ObjId, context: &str) -> Result<Vec<ObjId>, Error> {
        match &self.objects[id] {
            Object::Tuple(items) => Ok(items.clone()),
            _ => Err(self.wrong(context, "tuple", id)),
        }
    }

    fn int(&self, id: ObjId, context: &str) -> Result<i64, Error> {
        match &self.objects[id] {
            Object::Int(i) => Ok(*i),
            Object::Bool(b) => Ok(i64::from(*b)),
            _ => Err(self.wrong(context, "int", id)),
        }
    }

    /// A non-negative int (a size, offset or count).
    fn count(&self, id: ObjId, context: &str) -> Result<u64, Error> {
        let v = self.int(id, context)?;
        u64::try_from(v).map_err(|_| Error::BadCall {
            offset: self.off(),
            callable: "size",
            reason: format!("{context} is negative ({v})"),
        })
    }

    fn bad_call(&self, callable: Global, reason: String) -> Error {
        Error::BadCall {
            offset: self.off(),
            callable: callable.name(),
            reason,
        }
    }

    fn reduce(&mut self, callable: ObjId, args: ObjId) -> Result<ObjId, Error> {
        let Object::Global(g) = self.objects[callable] else {
            return Err(self.wrong("REDUCE callable", "allow-listed global", callable));
        };
        let args = self.tuple(args, "REDUCE arguments")?;
        match g {
            Global::OrderedDict => {
                if !args.is_empty() {
                    return Err(self.bad_call(g, format!("{} arguments, expected 0", args.len())));
                }
                self.alloc(Object::Dict {
                    items: Vec::new(),
                    state: None,
                })
            }
            Global::RebuildParameter | Global::RebuildParameterWithState => {
                let want = if g == Global::RebuildParameter { 3 } else { 4 };
                if args.len() != want {
                    return Err(
                        self.bad_call(g, format!("{} arguments, expected {want}", args.len()))
                    );
                }
                match self.objects[args[0]] {
                    Object::Tensor(_) => Ok(args[0]),
                    _ => Err(self.wrong(g.name(), "tensor", args[0])),
                }
            }
            Global::RebuildTensorV2 => {
                if !(6..=7).contains(&args.len()) {
                    return Err(
                        self.bad_call(g, format!("{} arguments, expected 6 or 7", args.len()))
                    );
                }
                let Object::Storage(storage) = &self.objects[args[0]] else {
                    return Err(self.wrong(g.name(), "storage", args[0]));
                };
                let storage = storage.clone();
                let offset = self.count(args[1], "storage offset")?;
                let size = self.tuple(args[2], "size")?;
                let stride = self.tuple(args[3], "stride")?;
                if size.len() != stride.len() {
                    return Err(self.bad_call(
                        g,
                        format!("size has {} dims, stride {}", size.len(), stride.len()),
                    ));
                }
                if size.len() > self.limits.max_rank {
                    return Err(self.limit(
                        "tensor rank",
                        size.len() as u64,
                        self.limits.max_rank as u64,
                    ));
                }
                let mut shape = Vec::with_capacity(size.len());
                let mut strides = Vec::with_capacity(size.len());
                for (&s, &t) in size.iter().zip(&stride) {
                    shape.push(to_usize(self.count(s, "size")?, self.off())?);
                    strides.push(to_usize(self.count(t, "stride")?, self.off())?);
                }
                let bytes = byte_len(storage.dtype, &shape).unwrap_or(u64::MAX);
                if bytes > self.limits.max_tensor_bytes {
                    return Err(self.limit("tensor bytes", bytes, self.limits.max_tensor_bytes));
                }
                let numel = shape.iter().map(|&d| d as u64).product::<u64>();
                if numel > storage.numel {
                    return Err(self.bad_call(
                        g,
                        format!(
                            "view {shape:?} stride {strides:?} has {numel} elements, more than its storage `{}` ({}): overlapping views are not materialised",
                            storage.key, storage.numel
                        ),
                    ));
                }
                if let Some(end) = view_end(offset, &shape, &strides) {
                    if end > storage.numel {
                        return Err(self.bad_call(
                            g,
                            format!(
                                "view {shape:?} stride {strides:?} offset {offset} reaches element {end}, storage `{}` has {}",
                                storage.key, storage.numel
                            ),
                        ));
                    }
                }
                self.alloc(Object::Tensor(TensorRef {
                    storage,
                    offset,
                    shape,
                    stride: strides,
                }))
            }
            Global::Storage(_) => Err(self.bad_call(g, "storage classes are not called".into())),
        }
    }

    fn build(&mut self, target: ObjId, state: ObjId) -> Result<(), Error> {
        match &mut self.objects[target] {
            Object::Dict { state: s, .. } => {
                *s = Some(state);
                Ok(())
            }
            _ => Err(self.wrong("BUILD target", "OrderedDict", target)),
        }
    }

    /// `('storage', <storage class>, key, location, numel)`; legacy files add a sixth
    /// element, the view metadata, which must be None.
    fn persistent_load(&mut self, pid: ObjId) -> Result<StorageRef, Error> {
        let items = self.tuple(pid, "persistent id")?;
        let bad = |reason: String| Error::BadCall {
            offset: self.op_at as u64,
            callable: "persistent_load",
            reason,
        };
        if !(5..=6).contains(&items.len()) {
            return Err(bad(format!("{} elements, expected 5 or 6", items.len())));
        }
        if !matches!(&self.objects[items[0]], Object::Str(s) if s == "storage") {
            return Err(bad("first element is not 'storage'".into()));
        }
        let Object::Global(Global::Storage(dtype)) = self.objects[items[1]] else {
            return Err(self.wrong("persistent id storage class", "torch.*Storage", items[1]));
        };
        let key = match &self.objects[items[2]] {
            Object::Str(s) if s.len() <= MAX_KEY_LEN => s.clone(),
            Object::Int(i) => i.to_string(),
            _ => return Err(self.wrong("storage key", "str", items[2])),
        };
        let location = match &self.objects[items[3]] {
            Object::Str(s) if s.len() <= MAX_KEY_LEN => s.clone(),
            _ => return Err(self.wrong("storage location", "str", items[3])),
        };
        let numel = self.count(items[4], "storage numel")?;
        if items.len() == 6 && !matches!(self.objects[items[5]], Object::None) {
            return Err(bad(
                "storage views (legacy view metadata) are not supported".into(),
            ));
        }
        Ok(StorageRef {
            key,
            dtype: dtype.unwrap_or(DType::U8),
            location,
            numel,
        })
    }
}

fn to_usize(v: u64, offset: u64) -> Result<usize, Error> {
    usize::try_from(v).map_err(|_| Error::Limit {
        offset,
        what: "dimension",
        actual: v,
        limit: usize::MAX as u64,
    })
}

/// One past the largest element index a strided view touches, or `None` for an empty view.
/// Saturates at `u64::MAX` (which then fails any bounds check).
pub fn view_end(offset: u64, shape: &[usize], stride: &[usize]) -> Option<u64> {
    if shape.contains(&0) {
        return None;
    }
    let mut last = offset;
    for (&n, &s) in shape.iter().zip(stride) {
        let step = (n as u64 - 1).saturating_mul(s as u64);
        last = last.saturating_add(step);
    }
    Some(last.saturating_add(1))
}

/// Writes the `data.pkl` of a zip `.pth` file: protocol 2, a `collections.OrderedDict` of
/// `torch._utils._rebuild_tensor_v2(storage, 0, size, stride, False, OrderedDict())`,
/// where tensor `i` has its own storage, persistent id
/// `('storage', torch.<Type>Storage, '<i>', 'cpu', numel)`.
///
/// This is what `torch.save(state_dict)` writes for contiguous tensors, minus the memo
/// (which `torch.load` does not need).
#[derive(Debug, Default)]
pub struct StateDictPickler {
    out: Vec<u8>,
    count: usize,
}

impl StateDictPickler {
    /// Starts the pickle: `PROTO 2`, `OrderedDict()`, `MARK`.
    pub fn new() -> Self {
        let mut p = StateDictPickler {
            out: Vec::new(),
            count: 0,
        };
        p.out.extend_from_slice(&[0x80, 2]);
        p.global("collections", "OrderedDict");
        p.out.extend_from_slice(b")R");
        p
    }

    fn global(&mut self, module: &str, name: &str) {
        self.out.push(b'c');
        self.out.extend_from_slice(module.as_bytes());
        self.out.push(b'\n');
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(b'\n');
    }

    fn str(&mut self, s: &str) {
        self.out.push(b'X');
        self.out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.out.extend_from_slice(s.as_bytes());
    }

    /// Ints the way Python's pickler writes them at protocol 2.
    fn int(&mut self, v: u64) {
        if v < 0x100 {
            self.out.extend_from_slice(&[b'K', v as u8]);
        } else if v < 0x1_0000 {
            self.out.push(b'M');
            self.out.extend_from_slice(&(v as u16).to_le_bytes());
        } else if v < 0x8000_0000 {
            self.out.push(b'J');
            self.out.extend_from_slice(&(v as u32).to_le_bytes());
        } else {
            // LONG1: minimal little-endian two's complement.
            let mut bytes = v.to_le_bytes().to_vec();
            while bytes.len() > 1
                && bytes[bytes.len() - 1] == 0
                && bytes[bytes.len() - 2] & 0x80 == 0
            {
                bytes.pop();
            }
            if bytes[bytes.len() - 1] & 0x80 != 0 {
                bytes.push(0);
            }
            self.out.extend_from_slice(&[0x8a, bytes.len() as u8]);
            self.out.extend_from_slice(&bytes);
        }
    }

    fn int_tuple(&mut self, values: &[usize]) {
        match values.len() {
            0 => self.out.push(b')'),
            n @ 1..=3 => {
                for &v in values {
                    self.int(v as u64);
                }
                self.out.push(0x84 + n as u8);
            }
            _ => {
                self.out.push(b'(');
                for &v in values {
                    self.int(v as u64);
                }
                self.out.push(b't');
            }
        }
    }

    /// Adds entry `name` → a contiguous tensor on storage key `<index>`; returns that key.
    pub fn add(&mut self, name: &str, dtype: DType, shape: &[usize]) -> String {
        let key = self.count.to_string();
        self.count += 1;
        let numel: u64 = shape.iter().map(|&d| d as u64).product();
        self.str(name);
        self.global("torch._utils", "_rebuild_tensor_v2");
        self.out.push(b'(');
        // persistent id
        self.out.push(b'(');
        self.str("storage");
        self.global("torch", storage_class(dtype));
        self.str(&key);
        self.str("cpu");
        self.int(numel);
        self.out.extend_from_slice(b"tQ");
        // offset, size, stride, requires_grad, backward hooks
        self.int(0);
        self.int_tuple(shape);
        self.int_tuple(&crate::tensor::strides(shape));
        self.out.push(0x89);
        self.global("collections", "OrderedDict");
        self.out.extend_from_slice(b")R");
        self.out.extend_from_slice(b"tR");
        self.out.push(b's');
        key
    }

    /// Ends the pickle (`STOP`) and returns its bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.out.push(b'.');
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_os_system_by_name() {
        let data = b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00ls\x85R.";
        let e = unpickle(data, &Limits::default()).unwrap_err();
        assert_eq!(
            e,
            Error::UnsupportedGlobal {
                module: "os".into(),
                name: "system".into(),
                offset: 2
            }
        );
    }

    #[test]
    fn writer_output_reads_back() {
        let mut p = StateDictPickler::new();
        p.add("a.weight", DType::F32, &[2, 3, 4, 5]);
        p.add("big", DType::I64, &[3_000_000_000]);
        p.add("scalar", DType::F16, &[]);
        let bytes = p.finish();
        let u = unpickle(&bytes, &Limits::default()).unwrap();
        assert_eq!(u.len, bytes.len());
        let Object::Dict { items, .. } = u.root() else {
            panic!("root is {:?}", u.root())
        };
        assert_eq!(items.len(), 3);
        let Object::Tensor(t) = u.get(items[1].1) else {
            panic!()
        };
        assert_eq!(t.shape, vec![3_000_000_000]);
        assert_eq!(t.storage.numel, 3_000_000_000);
        assert_eq!(t.storage.dtype, DType::I64);
        let Object::Tensor(t) = u.get(items[0].1) else {
            panic!()
        };
        assert_eq!(t.stride, vec![60, 20, 5, 1]);
    }

    #[test]
    fn memo_and_self_reference_do_not_recurse() {
        // l = []; l.append(l)
        let data = b"\x80\x02]q\x00h\x00a.";
        let u = unpickle(data, &Limits::default()).unwrap();
        assert_eq!(u.root(), &Object::List(vec![0]));
    }

    #[test]
    fn stack_limit_is_enforced() {
        let limits = Limits {
            max_pickle_items: 10,
            ..Limits::default()
        };
        let data = [b'N'; 20];
        let e = unpickle(&data, &limits).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Limit {
                    what: "object count",
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn view_out_of_storage_is_rejected() {
        let mut p = StateDictPickler::new();
        p.add("w", DType::F32, &[2, 2]);
        let bytes = p.finish();
        // numel 4 (`K\x04tQ`), then storage offset `K\x00`
        let at = bytes.windows(4).position(|w| w == b"K\x04tQ").unwrap();
        let mut shifted = bytes.clone();
        assert_eq!(&shifted[at + 4..at + 6], b"K\x00");
        shifted[at + 5] = 1;
        let e = unpickle(&shifted, &Limits::default()).unwrap_err();
        assert!(e.to_string().contains("reaches element 5"), "{e}");
        let mut small = bytes;
        small[at + 1] = 3;
        let e = unpickle(&small, &Limits::default()).unwrap_err();
        assert!(e.to_string().contains("more than its storage"), "{e}");
    }
}
