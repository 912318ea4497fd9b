//! A data-only pickle interpreter, and the pickle writer behind `.pth` files.
//!
//! # Why an interpreter of our own
//! `torch.save` stores a state dict as a pickle, and unpickling with Python's `pickle` runs
//! arbitrary callables named in the file. This module runs pickles as a stack machine over an
//! allow-list of opcodes and globals. A global outside the list is a typed error that names it;
//! nothing in the file is ever called. `REDUCE`/`BUILD` only apply to allow-listed callables,
//! which this module interprets itself (e.g. `_rebuild_tensor_v2` becomes a [`TensorRef`]).
//!
//! # What it reads: what `torch.load(weights_only=True)` reads, or less
//! The opcodes are those of PyTorch's weights-only unpickler (`torch/_weights_only_unpickler.py`)
//! except `NEWOBJ`: `PROTO`, `STOP`, `GLOBAL`, `REDUCE`, `BUILD`, `MARK`, the tuple, list, dict
//! and set builders (`EMPTY_*`, `TUPLE*`, `APPEND(S)`, `SETITEM(S)`), `NONE`, `NEWTRUE`,
//! `NEWFALSE`, `BININT*`, `LONG1`, `BINFLOAT`, `BINUNICODE`, `SHORT_BINSTRING`, `BINPERSID` and
//! the memo (`BINPUT`, `LONG_BINPUT`, `BINGET`, `LONG_BINGET`). Anything else (protocol 4
//! `FRAME`, `MEMOIZE`, `STACK_GLOBAL`, `SHORT_BINUNICODE`, bytes, `DICT`, `POP`, …) is refused as
//! torch refuses it. Where torch would fail while building an object (a non-float tensor that
//! requires grad, tensor metadata, a storage key reused with another dtype, an unhashable dict
//! key, `BUILD` on a plain dict) this module refuses too, so a pickle it accepts is one torch
//! loads, to the same values. It refuses some pickles torch loads (overlapping views, storage
//! views, tuple dict keys, globals torch maps from Python 2 names); never the reverse.
//!
//! # Byte layout
//! A pickle is a sequence of one-byte opcodes, each followed by its inline argument (fixed-width
//! little-endian integers, or a length prefix and that many bytes, or newline-terminated text for
//! `GLOBAL`), and ends with `STOP` (`.`). See CPython's `pickletools.py` for the opcode table.
//!
//! # Memory
//! Objects live in an arena ([`Unpickled::objects`]) and containers hold indices into it, so
//! shared references, self-references and deep nesting cost neither reference cycles nor
//! recursion. Equal strings are stored once. Every inline length is checked against the bytes
//! that remain before anything is copied, and every object, container slot, stack and memo
//! entry is charged against a memory budget of [`Limits::max_pickle_memory`] or
//! [`PICKLE_AMPLIFICATION`] × the pickle's length (+ 1 MiB), whichever is less; counts are
//! bounded by [`Limits::max_pickle_items`] and MARK nesting by [`Limits::max_depth`].
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;

use crate::limits::{LimitKind, Limits, PICKLE_AMPLIFICATION};
use crate::tensor::{byte_len, DType};
use crate::text::esc;

/// Longest storage key or location accepted (torch writes short decimal keys and device names).
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
    #[error("unsupported pickle opcode {opcode:#04x}{} at offset {offset} (torch.load(weights_only=True) does not read it either)", opcode_name(*opcode).map(|n| format!(" ({n})")).unwrap_or_default())]
    UnsupportedOpcode {
        /// The opcode byte.
        opcode: u8,
        /// Its offset.
        offset: u64,
    },
    /// A global that is not on the allow-list. Nothing was executed.
    #[error(
        "global `{}.{}` at offset {offset} is not allow-listed; refusing to load",
        esc(module),
        esc(name)
    )]
    UnsupportedGlobal {
        /// Module part, e.g. `os`.
        module: String,
        /// Name part, e.g. `system`.
        name: String,
        /// Offset of the GLOBAL opcode.
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
        /// What is wrong (names from the file in it are escaped).
        reason: String,
    },
    /// One storage key declared with two different dtypes or sizes. torch keeps the first
    /// declaration for every tensor on that key, so the second tensor would be read differently.
    #[error("at offset {offset}: storage `{}` is declared as {first_dtype:?} × {first_numel} and as {dtype:?} × {numel}; refusing an ambiguous storage", esc(key))]
    StorageRedeclared {
        /// Offset of the second BINPERSID.
        offset: u64,
        /// The storage key.
        key: String,
        /// dtype of the first declaration.
        first_dtype: DType,
        /// Element count of the first declaration.
        first_numel: u64,
        /// dtype of this declaration.
        dtype: DType,
        /// Element count of this declaration.
        numel: u64,
    },
    /// A size or count exceeded a [`Limits`] bound.
    #[error("at offset {offset}: {what} is {actual}, over the {kind} of {limit} ({})", kind.hint())]
    Limit {
        /// Offset of the opcode.
        offset: u64,
        /// What was counted.
        what: &'static str,
        /// The value found.
        actual: u64,
        /// The limit.
        limit: u64,
        /// Which bound.
        kind: LimitKind,
    },
    /// Text that is not valid UTF-8 (or ASCII where required).
    #[error("invalid text at offset {offset}")]
    BadText {
        /// Offset of the opcode.
        offset: u64,
    },
}

/// The pickletools name of an opcode this interpreter refuses, for messages.
fn opcode_name(op: u8) -> Option<&'static str> {
    Some(match op {
        0x95 => "FRAME",
        0x94 => "MEMOIZE",
        0x93 => "STACK_GLOBAL",
        0x8c => "SHORT_BINUNICODE",
        0x8d => "BINUNICODE8",
        0x8e => "BINBYTES8",
        0x96 => "BYTEARRAY8",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        0x8b => "LONG4",
        0x90 => "ADDITEMS",
        0x91 => "FROZENSET",
        0x81 => "NEWOBJ",
        0x92 => "NEWOBJ_EX",
        0x82..=0x84 => "EXT",
        b'T' => "BINSTRING",
        b'C' => "SHORT_BINBYTES",
        b'B' => "BINBYTES",
        b'd' => "DICT",
        b'l' => "LIST",
        b'0' => "POP",
        b'1' => "POP_MARK",
        b'2' => "DUP",
        b'P' => "PERSID",
        b'i' => "INST",
        b'o' => "OBJ",
        b'g' => "GET",
        b'p' => "PUT",
        b'I' => "INT",
        b'L' => "LONG",
        b'F' => "FLOAT",
        b'S' => "STRING",
        b'V' => "UNICODE",
        _ => return None,
    })
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
    /// `torch.storage.UntypedStorage` (`None`, read as bytes).
    Storage(Option<DType>),
}

impl Global {
    /// Looks up `module.name` in the allow-list (the spellings torch's weights-only unpickler
    /// allows; `torch.UntypedStorage` is not one of them).
    pub fn lookup(module: &str, name: &str) -> Option<Global> {
        Some(match (module, name) {
            ("collections", "OrderedDict") => Global::OrderedDict,
            ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensorV2,
            ("torch._utils", "_rebuild_parameter") => Global::RebuildParameter,
            ("torch._utils", "_rebuild_parameter_with_state") => Global::RebuildParameterWithState,
            ("torch.storage", "UntypedStorage") => Global::Storage(None),
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
            Global::Storage(None) => "torch.storage.UntypedStorage",
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
    /// A wider int: minimal little-endian two's complement bytes (as LONG1 stores it).
    BigInt(Vec<u8>),
    /// A float.
    Float(f64),
    /// A str.
    Str(String),
    /// A tuple.
    Tuple(Vec<ObjId>),
    /// A list.
    List(Vec<ObjId>),
    /// A set (kept in insertion order).
    Set(Vec<ObjId>),
    /// A dict or OrderedDict, in insertion order, with the state applied by BUILD
    /// (for torch state dicts: `{'_metadata': OrderedDict(...)}`).
    Dict {
        /// Key/value pairs in insertion order.
        items: Vec<(ObjId, ObjId)>,
        /// The BUILD state, if any.
        state: Option<ObjId>,
        /// `collections.OrderedDict` (true) or a plain dict.
        ordered: bool,
    },
    /// An allow-listed global (a callable or class).
    Global(Global),
    /// A storage from a persistent id.
    Storage(Box<StorageRef>),
    /// A tensor.
    Tensor(Box<TensorRef>),
}

impl Object {
    /// The Python-ish type name, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Object::None => "None",
            Object::Bool(_) => "bool",
            Object::Int(_) => "int",
            // "expected int, found int" would say nothing: the value is an int wider than 64 bits.
            Object::BigInt(_) => "int wider than 64 bits",
            Object::Float(_) => "float",
            Object::Str(_) => "str",
            Object::Tuple(_) => "tuple",
            Object::List(_) => "list",
            Object::Set(_) => "set",
            Object::Dict { ordered: true, .. } => "OrderedDict",
            Object::Dict { .. } => "dict",
            Object::Global(_) => "global",
            Object::Storage(_) => "storage",
            Object::Tensor(_) => "tensor",
        }
    }

    /// Heap bytes this object owns (for the memory budget).
    fn heap_bytes(&self) -> u64 {
        let ids = |v: &Vec<ObjId>| (v.capacity() * std::mem::size_of::<ObjId>()) as u64;
        match self {
            Object::BigInt(b) => b.capacity() as u64,
            Object::Str(s) => s.capacity() as u64,
            Object::Tuple(v) | Object::List(v) | Object::Set(v) => ids(v),
            Object::Dict { items, .. } => (items.capacity() * 16) as u64,
            Object::Storage(s) => {
                (std::mem::size_of::<StorageRef>() + s.key.capacity() + s.location.capacity())
                    as u64
            }
            Object::Tensor(t) => {
                (std::mem::size_of::<TensorRef>()
                    + t.storage.key.capacity()
                    + t.storage.location.capacity()
                    + (t.shape.capacity() + t.stride.capacity()) * 8) as u64
            }
            _ => 0,
        }
    }
}

/// Which persistent ids a pickle may hold: torch's zip format stores 5-element ids
/// `('storage', class, key, location, numel)`, the legacy format 6-element ones with the view
/// metadata last (and typed storage classes only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersistentIds {
    /// Either form (a standalone pickle).
    Any,
    /// The zip format's.
    Zip,
    /// The legacy format's.
    Legacy,
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

/// Key used to find an existing dict entry on SETITEM (Python replaces the value in place):
/// Python's equality for the hashable values a pickle can hold. `1`, `1.0` and `True` are one
/// key; a str is its (interned) object; other objects are keys by identity.
#[derive(Hash, PartialEq, Eq)]
enum DictKey {
    Str(ObjId),
    Int(i64),
    Float(u64),
    Big(Vec<u8>),
    None,
    Identity(ObjId),
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    limits: &'a Limits,
    pids: PersistentIds,
    objects: Vec<Object>,
    /// Per dict object: key → index into its items.
    dict_index: HashMap<ObjId, HashMap<DictKey, usize>>,
    /// Hash of a str's content → its object (equal strings are stored once).
    strings: HashMap<u64, ObjId>,
    hasher: RandomState,
    /// Storage key → (dtype, numel) of its first declaration.
    storages: HashMap<String, (DType, u64)>,
    stack: Vec<ObjId>,
    marks: Vec<usize>,
    memo: HashMap<u64, ObjId>,
    /// Bytes charged so far, and the budget.
    memory: u64,
    budget: u64,
    budget_kind_limit: u64,
    /// Highest stack and mark depths charged for so far.
    stack_charged: usize,
    marks_charged: usize,
    /// Offset of the opcode being executed.
    op_at: usize,
    op: u8,
}

/// Extra bytes charged for a dict's first item: its key index (a hash map with a few slots,
/// and its entry in the map of indexes) and the first allocation of its item vector.
const FIRST_ITEM_BYTES: u64 = 192;
/// Bytes charged per object slot in the arena.
const OBJECT_BYTES: u64 = std::mem::size_of::<Object>() as u64;
/// Bytes charged per memo entry, per dict index entry, and per interned string (hash map
/// slots with their control bytes and growth slack).
const MAP_ENTRY_BYTES: u64 = 48;

/// Runs one pickle from the start of `data` up to its STOP opcode, accepting either form of
/// persistent id (see [`unpickle_as`]).
///
/// Errors are typed; a global outside the allow-list is [`Error::UnsupportedGlobal`].
pub fn unpickle(data: &[u8], limits: &Limits) -> Result<Unpickled, Error> {
    unpickle_as(data, limits, PersistentIds::Any)
}

/// [`unpickle`] for a pickle of a known container format, whose persistent ids must have that
/// format's form.
pub fn unpickle_as(data: &[u8], limits: &Limits, pids: PersistentIds) -> Result<Unpickled, Error> {
    let proportional = (data.len() as u64)
        .saturating_mul(PICKLE_AMPLIFICATION)
        .saturating_add(1 << 20);
    let mut m = Machine {
        data,
        pos: 0,
        limits,
        pids,
        objects: Vec::new(),
        dict_index: HashMap::new(),
        strings: HashMap::new(),
        hasher: RandomState::new(),
        storages: HashMap::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        memory: 0,
        budget: proportional.min(limits.max_pickle_memory),
        budget_kind_limit: limits.max_pickle_memory,
        stack_charged: 0,
        marks_charged: 0,
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

    /// Charges `bytes` against the memory budget.
    fn charge(&mut self, bytes: u64) -> Result<(), Error> {
        self.memory = self.memory.saturating_add(bytes);
        if self.memory > self.budget {
            return Err(Error::Limit {
                offset: self.off(),
                what: if self.budget < self.budget_kind_limit {
                    "interpreter memory (bytes; at most 64 per byte of pickle + 1 MiB)"
                } else {
                    "interpreter memory (bytes)"
                },
                actual: self.memory,
                limit: self.budget,
                kind: LimitKind::PickleMemory,
            });
        }
        Ok(())
    }

    fn alloc(&mut self, obj: Object) -> Result<ObjId, Error> {
        let limit = self.limits.max_pickle_items;
        if self.objects.len() as u64 >= limit {
            return Err(self.limit(
                "object count",
                self.objects.len() as u64 + 1,
                limit,
                LimitKind::PickleItems,
            ));
        }
        // The arena grows by doubling: charge the slot twice.
        self.charge(2 * OBJECT_BYTES + obj.heap_bytes())?;
        self.objects.push(obj);
        Ok(self.objects.len() - 1)
    }

    /// A str object with this content: the existing one if an equal str was seen before.
    fn string(&mut self, s: &str) -> Result<ObjId, Error> {
        let h = self.hasher.hash_one(s);
        if let Some(&id) = self.strings.get(&h) {
            if matches!(&self.objects[id], Object::Str(t) if t == s) {
                return Ok(id);
            }
            // A 64-bit hash collision: keep this one as its own object.
            return self.alloc(Object::Str(s.to_owned()));
        }
        self.charge(MAP_ENTRY_BYTES)?;
        let id = self.alloc(Object::Str(s.to_owned()))?;
        self.strings.insert(h, id);
        Ok(id)
    }

    fn limit(&self, what: &'static str, actual: u64, limit: u64, kind: LimitKind) -> Error {
        Error::Limit {
            offset: self.off(),
            what,
            actual,
            limit,
            kind,
        }
    }

    fn push(&mut self, id: ObjId) -> Result<(), Error> {
        let limit = self.limits.max_pickle_items;
        if self.stack.len() as u64 >= limit {
            return Err(self.limit(
                "stack depth",
                self.stack.len() as u64 + 1,
                limit,
                LimitKind::PickleItems,
            ));
        }
        if self.stack.len() >= self.stack_charged {
            self.charge(2 * std::mem::size_of::<ObjId>() as u64)?;
            self.stack_charged = self.stack.len() + 1;
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
        if !self.memo.contains_key(&index) {
            let limit = self.limits.max_pickle_items;
            if self.memo.len() as u64 >= limit {
                return Err(self.limit(
                    "memo size",
                    self.memo.len() as u64 + 1,
                    limit,
                    LimitKind::PickleItems,
                ));
            }
            self.charge(MAP_ENTRY_BYTES)?;
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

    /// The key `key` is stored under, or an error for an unhashable or unsupported key type.
    fn dict_key(&self, key: ObjId) -> Result<DictKey, Error> {
        Ok(match &self.objects[key] {
            Object::Str(_) => DictKey::Str(key),
            Object::Int(i) => DictKey::Int(*i),
            Object::Bool(b) => DictKey::Int(i64::from(*b)),
            Object::None => DictKey::None,
            Object::BigInt(b) => DictKey::Big(b.clone()),
            Object::Float(f) if f.is_nan() => DictKey::Identity(key),
            Object::Float(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => DictKey::Int(*f as i64),
            Object::Float(f) => DictKey::Float(f.to_bits()),
            Object::Global(_) | Object::Storage(_) | Object::Tensor(_) => DictKey::Identity(key),
            Object::List(_) | Object::Set(_) | Object::Dict { .. } => {
                return Err(self.wrong("dict key", "a hashable value", key))
            }
            Object::Tuple(_) => {
                return Err(self.wrong("dict key", "str, int, float, bool or None", key))
            }
        })
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
            let key = self.dict_key(kv[0])?;
            let exists = self
                .dict_index
                .get(&dict)
                .and_then(|index| index.get(&key))
                .copied();
            match exists {
                Some(i) => {
                    if let Object::Dict { items, .. } = &mut self.objects[dict] {
                        items[i].1 = kv[1];
                    }
                }
                None => {
                    let key_heap = match &key {
                        DictKey::Big(b) => b.len() as u64,
                        _ => 0,
                    };
                    // a dict's first item also allocates its key index and its item vector
                    let first = if self.dict_index.contains_key(&dict) {
                        0
                    } else {
                        FIRST_ITEM_BYTES
                    };
                    self.charge(2 * 16 + MAP_ENTRY_BYTES + key_heap + first)?;
                    let index = self.dict_index.entry(dict).or_default();
                    let Object::Dict { items, .. } = &mut self.objects[dict] else {
                        unreachable!("checked above")
                    };
                    index.insert(key, items.len());
                    items.push((kv[0], kv[1]));
                }
            }
        }
        Ok(())
    }

    fn extend_list(&mut self, list: ObjId, values: Vec<ObjId>) -> Result<(), Error> {
        if !matches!(self.objects[list], Object::List(_)) {
            return Err(self.wrong("APPEND target", "list", list));
        }
        self.charge(2 * 8 * values.len() as u64)?;
        if let Object::List(items) = &mut self.objects[list] {
            items.extend(values);
        }
        Ok(())
    }

    /// An int from LONG1's little-endian two's complement bytes: `Int` when it fits in i64
    /// (however many bytes encode it), else `BigInt` with redundant sign bytes removed, so
    /// equal values are equal objects.
    fn int_from_le(&self, bytes: &[u8]) -> Object {
        let Some(&last) = bytes.last() else {
            return Object::Int(0);
        };
        let sign = if last & 0x80 != 0 { 0xff } else { 0 };
        let mut n = bytes.len();
        while n > 1 && bytes[n - 1] == sign && (bytes[n - 2] & 0x80) == (sign & 0x80) {
            n -= 1;
        }
        let bytes = &bytes[..n];
        if bytes.len() <= 8 {
            let mut a = [sign; 8];
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
                // STOP
                b'.' => {
                    let root = self.pop()?;
                    return Ok(root);
                }
                // MARK
                b'(' => {
                    let limit = self.limits.max_pickle_items.min(self.limits.max_depth);
                    if self.marks.len() as u64 >= limit {
                        let kind = if self.limits.max_depth <= self.limits.max_pickle_items {
                            LimitKind::Depth
                        } else {
                            LimitKind::PickleItems
                        };
                        return Err(self.limit(
                            "MARK nesting depth",
                            self.marks.len() as u64 + 1,
                            limit,
                            kind,
                        ));
                    }
                    if self.marks.len() >= self.marks_charged {
                        self.charge(16)?;
                        self.marks_charged = self.marks.len() + 1;
                    }
                    self.marks.push(self.stack.len());
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
                // LONG1
                0x8a => {
                    let n = u64::from(self.u8()?);
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
                // BINUNICODE (UTF-8), SHORT_BINSTRING (a Python 2 str; torch.load decodes it
                // as UTF-8)
                b'X' | b'U' => {
                    let n = if op == b'X' {
                        u64::from(self.u32()?)
                    } else {
                        u64::from(self.u8()?)
                    };
                    let b = self.take(n)?;
                    let s = std::str::from_utf8(b)
                        .map_err(|_| Error::BadText { offset: self.off() })?;
                    let id = self.string(s)?;
                    self.push(id)?
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
                // EMPTY_LIST, APPEND, APPENDS
                b']' => self.push_new(Object::List(Vec::new()))?,
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
                // EMPTY_SET
                0x8f => self.push_new(Object::Set(Vec::new()))?,
                // EMPTY_DICT, SETITEM, SETITEMS
                b'}' => self.push_new(Object::Dict {
                    items: Vec::new(),
                    state: None,
                    ordered: false,
                })?,
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
                // BINPUT, LONG_BINPUT, BINGET, LONG_BINGET
                b'q' => {
                    let i = u64::from(self.u8()?);
                    self.memo_put(i)?
                }
                b'r' => {
                    let i = u64::from(self.u32()?);
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
                // GLOBAL
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.global(module, name)?;
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
                    self.push_new(Object::Storage(Box::new(storage)))?;
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

    /// The items of the tuple at `id`, if it has between `min` and `max` of them (checked
    /// before anything is copied, so a huge tuple costs nothing here).
    fn tuple(&self, id: ObjId, context: &str, max: usize) -> Result<Vec<ObjId>, Error> {
        match &self.objects[id] {
            Object::Tuple(items) if items.len() <= max => Ok(items.clone()),
            Object::Tuple(items) => Err(Error::BadCall {
                offset: self.off(),
                callable: "tuple",
                reason: format!(
                    "{context} has {} items, at most {max} expected",
                    items.len()
                ),
            }),
            _ => Err(self.wrong(context, "tuple", id)),
        }
    }

    /// A non-negative int (a size, offset or count). Bools are refused: torch's size and
    /// offset arguments are ints, and a bool there is not what `torch.save` writes.
    fn count(&self, id: ObjId, context: &str) -> Result<u64, Error> {
        let v = match &self.objects[id] {
            Object::Int(i) => *i,
            _ => return Err(self.wrong(context, "int", id)),
        };
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

    /// `requires_grad`: a bool, and only true for a floating-point tensor (torch raises
    /// "only Tensors of floating point dtype can require gradients" otherwise).
    fn requires_grad(&self, g: Global, id: ObjId, dtype: DType) -> Result<(), Error> {
        match self.objects[id] {
            Object::Bool(false) => Ok(()),
            Object::Bool(true)
                if matches!(dtype, DType::F16 | DType::BF16 | DType::F32 | DType::F64) =>
            {
                Ok(())
            }
            Object::Bool(true) => Err(self.bad_call(
                g,
                format!("requires_grad is True for a {dtype:?} tensor; torch refuses that"),
            )),
            _ => Err(self.wrong(g.name(), "bool requires_grad", id)),
        }
    }

    /// An argument that must be empty: None or an empty dict (backward hooks, tensor
    /// metadata, parameter state). A non-empty one would change the tensor torch builds.
    fn empty_arg(&self, g: Global, id: ObjId, what: &str, none_ok: bool) -> Result<(), Error> {
        match &self.objects[id] {
            Object::None if none_ok => Ok(()),
            Object::Dict { items, state, .. } if items.is_empty() && state.is_none() => Ok(()),
            other => Err(self.bad_call(
                g,
                format!(
                    "{what} must be {}an empty dict, found a {}{}",
                    if none_ok { "None or " } else { "" },
                    other.type_name(),
                    if matches!(other, Object::Dict { .. }) {
                        " with items"
                    } else {
                        ""
                    }
                ),
            )),
        }
    }

    fn reduce(&mut self, callable: ObjId, args: ObjId) -> Result<ObjId, Error> {
        let Object::Global(g) = self.objects[callable] else {
            return Err(self.wrong("REDUCE callable", "allow-listed global", callable));
        };
        let args = self.tuple(args, "REDUCE arguments", 7)?;
        match g {
            Global::OrderedDict => {
                if !args.is_empty() {
                    return Err(self.bad_call(g, format!("{} arguments, expected 0", args.len())));
                }
                self.alloc(Object::Dict {
                    items: Vec::new(),
                    state: None,
                    ordered: true,
                })
            }
            Global::RebuildParameter | Global::RebuildParameterWithState => {
                let want = if g == Global::RebuildParameter { 3 } else { 4 };
                if args.len() != want {
                    return Err(
                        self.bad_call(g, format!("{} arguments, expected {want}", args.len()))
                    );
                }
                let Object::Tensor(t) = &self.objects[args[0]] else {
                    return Err(self.wrong(g.name(), "tensor", args[0]));
                };
                self.requires_grad(g, args[1], t.storage.dtype)?;
                self.empty_arg(g, args[2], "backward_hooks", false)?;
                if want == 4 {
                    self.empty_arg(g, args[3], "state", true)?;
                }
                Ok(args[0])
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
                let storage = (**storage).clone();
                let offset = self.count(args[1], "storage offset")?;
                let max_rank = self.limits.max_rank;
                let rank_err = |e: Error| match e {
                    Error::BadCall { .. } => self.limit(
                        "tensor rank",
                        match &self.objects[args[2]] {
                            Object::Tuple(v) => v.len() as u64,
                            _ => 0,
                        },
                        max_rank as u64,
                        LimitKind::Rank,
                    ),
                    e => e,
                };
                let size = self.tuple(args[2], "size", max_rank).map_err(rank_err)?;
                let stride = self.tuple(args[3], "stride", max_rank)?;
                if size.len() != stride.len() {
                    return Err(self.bad_call(
                        g,
                        format!("size has {} dims, stride {}", size.len(), stride.len()),
                    ));
                }
                self.requires_grad(g, args[4], storage.dtype)?;
                self.empty_arg(g, args[5], "backward_hooks", false)?;
                if args.len() == 7 {
                    self.empty_arg(g, args[6], "metadata", true)?;
                }
                let mut shape = Vec::with_capacity(size.len());
                let mut strides = Vec::with_capacity(size.len());
                for (&s, &t) in size.iter().zip(&stride) {
                    shape.push(to_usize(self.count(s, "size")?, self.off())?);
                    strides.push(to_usize(self.count(t, "stride")?, self.off())?);
                }
                let bytes = byte_len(storage.dtype, &shape).unwrap_or(u64::MAX);
                if bytes > self.limits.max_tensor_bytes {
                    return Err(self.limit(
                        "tensor bytes",
                        bytes,
                        self.limits.max_tensor_bytes,
                        LimitKind::TensorBytes,
                    ));
                }
                let numel = shape.iter().map(|&d| d as u64).product::<u64>();
                if numel > storage.numel {
                    return Err(self.bad_call(
                        g,
                        format!(
                            "view {shape:?} stride {strides:?} has {numel} elements, more than its storage `{}` ({}): overlapping views are not materialised",
                            esc(&storage.key), storage.numel
                        ),
                    ));
                }
                if let Some(end) = view_end(offset, &shape, &strides) {
                    if end > storage.numel {
                        return Err(self.bad_call(
                            g,
                            format!(
                                "view {shape:?} stride {strides:?} offset {offset} reaches element {end}, storage `{}` has {}",
                                esc(&storage.key), storage.numel
                            ),
                        ));
                    }
                }
                self.alloc(Object::Tensor(Box::new(TensorRef {
                    storage,
                    offset,
                    shape,
                    stride: strides,
                })))
            }
            Global::Storage(_) => Err(self.bad_call(g, "storage classes are not called".into())),
        }
    }

    fn build(&mut self, target: ObjId, state: ObjId) -> Result<(), Error> {
        if !matches!(self.objects[state], Object::Dict { .. }) {
            return Err(self.wrong("BUILD state", "dict", state));
        }
        match &mut self.objects[target] {
            Object::Dict {
                state: s,
                ordered: true,
                ..
            } => {
                *s = Some(state);
                Ok(())
            }
            _ => Err(self.wrong("BUILD target", "OrderedDict", target)),
        }
    }

    /// `('storage', <storage class>, key, location, numel)` in zip files; legacy files add a
    /// sixth element, the view metadata, which must be None, and name typed storages only.
    fn persistent_load(&mut self, pid: ObjId) -> Result<StorageRef, Error> {
        let items = self.tuple(pid, "persistent id", 6)?;
        let bad = |reason: String| Error::BadCall {
            offset: self.op_at as u64,
            callable: "persistent_load",
            reason,
        };
        let allowed: &[usize] = match self.pids {
            PersistentIds::Any => &[5, 6],
            PersistentIds::Zip => &[5],
            PersistentIds::Legacy => &[6],
        };
        if !allowed.contains(&items.len()) {
            return Err(bad(format!(
                "{} elements, expected {}",
                items.len(),
                allowed
                    .iter()
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(" or ")
            )));
        }
        if !matches!(&self.objects[items[0]], Object::Str(s) if s == "storage") {
            return Err(bad("first element is not 'storage'".into()));
        }
        let Object::Global(Global::Storage(dtype)) = self.objects[items[1]] else {
            return Err(self.wrong("persistent id storage class", "torch.*Storage", items[1]));
        };
        if dtype.is_none() && items.len() == 6 {
            return Err(bad(
                "untyped storages have no dtype in legacy files (torch fails on them too)".into(),
            ));
        }
        let key = match &self.objects[items[2]] {
            Object::Str(s) if s.len() <= MAX_KEY_LEN && !s.is_empty() => s.clone(),
            _ => return Err(self.wrong("storage key", "a short str", items[2])),
        };
        let location = match &self.objects[items[3]] {
            Object::Str(s) if known_location(s) => s.clone(),
            Object::Str(s) => {
                return Err(bad(format!(
                    "storage location {:?} is not cpu, cuda or cuda:<n>",
                    esc(s)
                )))
            }
            _ => return Err(self.wrong("storage location", "str", items[3])),
        };
        let numel = self.count(items[4], "storage numel")?;
        if items.len() == 6 && !matches!(self.objects[items[5]], Object::None) {
            return Err(bad(
                "storage views (legacy view metadata) are not supported".into(),
            ));
        }
        let dtype = dtype.unwrap_or(DType::U8);
        match self.storages.get(&key) {
            Some(&(d, n)) if (d, n) != (dtype, numel) => {
                return Err(Error::StorageRedeclared {
                    offset: self.off(),
                    key,
                    first_dtype: d,
                    first_numel: n,
                    dtype,
                    numel,
                })
            }
            Some(_) => {}
            None => {
                self.charge(MAP_ENTRY_BYTES + key.len() as u64)?;
                self.storages.insert(key.clone(), (dtype, numel));
            }
        }
        Ok(StorageRef {
            key,
            dtype,
            location,
            numel,
        })
    }
}

/// Device names torch restores without a `map_location`: `cpu`, `cuda`, `cuda:<n>`.
fn known_location(s: &str) -> bool {
    match s.strip_prefix("cuda") {
        Some("") => true,
        Some(rest) => rest.strip_prefix(':').is_some_and(|n| {
            !n.is_empty() && n.len() <= 4 && n.bytes().all(|b| b.is_ascii_digit())
        }),
        None => s == "cpu",
    }
}

fn to_usize(v: u64, offset: u64) -> Result<usize, Error> {
    usize::try_from(v).map_err(|_| Error::Limit {
        offset,
        what: "dimension",
        actual: v,
        limit: usize::MAX as u64,
        kind: LimitKind::TensorBytes,
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

    /// Report P38: a type mismatch on an int wider than 64 bits read "expected int, found int".
    #[test]
    fn a_wide_int_is_named_apart_from_an_int() {
        assert_eq!(Object::Int(1).type_name(), "int");
        assert_eq!(
            Object::BigInt(vec![0, 0, 0, 0, 0, 0, 0, 0, 1]).type_name(),
            "int wider than 64 bits"
        );
    }

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
        let roomy = Limits {
            max_tensor_bytes: u64::MAX,
            ..Limits::default()
        };
        let u = unpickle_as(&bytes, &roomy, PersistentIds::Zip).unwrap();
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
