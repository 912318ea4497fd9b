//! Predicts the byte size of `torch.save(state_dict)` for a [`Network`], without writing anything.
//!
//! Both containers are emulated opcode by opcode (pickle protocol 2, as `torch.save` uses), so
//! the prediction is exact, not an estimate.
//!
//! **Legacy (pre-1.6, `_use_new_zipfile_serialization=False`)**: five things back to back:
//! 1. magic-number pickle (`LONG1 0x1950a86a20f9469cfc6c`, 15 bytes), protocol-version pickle
//!    (`1001`, 6 bytes), sys-info pickle (`{protocol_version, little_endian, type_sizes}`,
//!    116 bytes): 137 bytes together;
//! 2. the state-dict pickle; each tensor is `_rebuild_tensor_v2(persid, offset, size, stride,
//!    requires_grad, OrderedDict())` whose persistent id is `('storage', <Type>Storage, key,
//!    'cpu', numel, None)`, `key` being `str(storage._cdata)` (a pointer, 14 decimal digits on
//!    x86-64 Linux);
//! 3. the pickled sorted list of storage keys;
//! 4. per storage: `numel` as u64 LE, then the raw LE data.
//!
//! **Zip (torch ≥ 1.6; record set as torch 2.13 writes it)**: an uncompressed zip whose records
//! are `<archive>/data.pkl` (same pickle, keys `"0"`, `"1"`, …, persistent id without the view
//! field), `.format_version`, `.storage_alignment`, `byteorder`, `data/<i>` per storage,
//! `version`, `.data/serialization_id`. Each local header (30 bytes + name) carries an `FB`
//! extra field padding the data to 64 bytes; each record is followed by a 16-byte data
//! descriptor; the central directory has 46 bytes + name per record; the archive ends with a
//! zip64 end record (56), zip64 locator (20) and end record (22). Offsets and sizes beyond
//! 4 GiB follow PyTorch's `getPadding` but have not been checked against a real file.
//!
//! An `OrderedDict` state dict (what `Module.state_dict()` returns) also pickles its
//! `_metadata` attribute: one `{'version': v}` per module, in module pre-order, BatchNorm
//! version 2, everything else 1. Which modules exist depends on the code that built the model,
//! so it is a [`Metadata`] layout, not derived from the parameters alone.
//!
//! Sizes are summed with saturating arithmetic, so nothing here panics or wraps. A built
//! [`Network`] is bounded (`arch::efficientnet::Bounds`) far below where a size could reach
//! `u64::MAX`, so for any network `ArchConfig::resolve` returned the prediction is exact.
use crate::arch::{ModuleKind, Name, Network, ParamKind};

/// pickle `BATCHSIZE` (CPython `Modules/_pickle.c`): items per MARK … SETITEMS/APPENDS.
const BATCH: u64 = 1000;

/// Which `.pth` container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Container {
    /// Pre-1.6 `torch.save`: pickles followed by raw storages.
    Legacy,
    /// torch ≥ 1.6 `torch.save`: an uncompressed zip.
    Zip,
}

impl Container {
    /// The card's `Format` name.
    pub fn format_name(self) -> &'static str {
        match self {
            Container::Legacy => "pth-legacy",
            Container::Zip => "pth-zip",
        }
    }

    /// What it is, for a verdict's detail.
    pub fn describe(self) -> &'static str {
        match self {
            Container::Legacy => "legacy (pre-1.6) torch.save",
            Container::Zip => "zip (torch >= 1.6) torch.save",
        }
    }
}

/// The `_metadata` a state dict carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metadata {
    /// A plain `dict` without `_metadata` (e.g. loaded from safetensors, then saved).
    None,
    /// An `OrderedDict` without `_metadata`: a copy of a state dict (`OrderedDict(sd)`, or one
    /// filled key by key), as the Lite, MobileNetV3 and RandAugment-b8 release files were saved.
    Stripped,
    /// `Module.state_dict()` of the 2020 timm (0.1.18–0.2.1) EfficientNet: per module
    /// `act1`/`act2` activations (a `ds` block also has an `act2` identity), `se.avg_pool`
    /// inside each SE, and `global_pool.pool` inside the head pool. The Noisy Student files.
    Timm2020,
    /// timm 0.1.1–0.1.14 (2019): activations were functions, not modules, so no `act1`/`act2`
    /// (blocks, stem, head) and no `se.act1`; no `se.avg_pool` either. The first TF ports
    /// (AutoAugment b0–b4 and b6, EdgeTPU, MixNet).
    Timm2019,
    /// timm 0.3.x–0.4.5 (2021): [`Metadata::Timm2020`] without `se.avg_pool` (the SE squeeze
    /// became a `mean`). AdvProp, CondConv and the RandAugment b5/b7 files.
    Timm2021,
}

impl Metadata {
    /// Every layout, the one the Noisy Student files use first.
    pub const ALL: [Metadata; 5] = [
        Metadata::Timm2020,
        Metadata::Timm2019,
        Metadata::Timm2021,
        Metadata::Stripped,
        Metadata::None,
    ];

    /// What the layout is, for a verdict's detail.
    pub fn describe(self) -> &'static str {
        match self {
            Metadata::None => "a plain dict without `_metadata`",
            Metadata::Stripped => "an OrderedDict without `_metadata`",
            Metadata::Timm2020 => "timm 0.1.18–0.2.1's module tree in `_metadata`",
            Metadata::Timm2019 => {
                "timm 0.1.1–0.1.14's module tree in `_metadata` (no activation modules)"
            }
            Metadata::Timm2021 => "timm 0.3–0.4.5's module tree in `_metadata` (no `se.avg_pool`)",
        }
    }
}

/// Everything about a saved state dict that the spec does not fix.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SaveLayout {
    /// `_metadata` layout.
    pub metadata: Metadata,
    /// Whether every BatchNorm has an int64 `num_batches_tracked` after `running_var`.
    pub num_batches_tracked: bool,
    /// Decimal digits of the legacy storage keys (`str(storage._cdata)`).
    pub storage_key_width: usize,
    /// Zip archive root (torch uses the file stem).
    pub archive_name: String,
}

impl SaveLayout {
    /// The Noisy Student release files (timm `v0.1-weights`, 2020): legacy `torch.save` of
    /// `Module.state_dict()` with `num_batches_tracked`, 14-digit storage keys. Reproduces every
    /// `File Size` on the card.
    pub fn timm_2020_release(archive_name: &str) -> SaveLayout {
        SaveLayout {
            metadata: Metadata::Timm2020,
            num_batches_tracked: true,
            storage_key_width: 14,
            archive_name: archive_name.to_owned(),
        }
    }

    /// A plain dict of the spec's tensors (no `num_batches_tracked`, no `_metadata`), as the
    /// tiny fixture was written.
    pub fn plain(archive_name: &str) -> SaveLayout {
        SaveLayout {
            metadata: Metadata::None,
            num_batches_tracked: false,
            storage_key_width: 14,
            archive_name: archive_name.to_owned(),
        }
    }
}

/// One entry of the saved dict: what its pickle and storage sizes depend on (the length of its
/// key, not the key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    name_len: usize,
    dims: [usize; 4],
    ndim: usize,
    dtype: StorageType,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StorageType {
    Float,
    Long,
}

impl StorageType {
    fn itemsize(self) -> u64 {
        match self {
            StorageType::Float => 4,
            StorageType::Long => 8,
        }
    }
    fn class(self) -> &'static str {
        match self {
            StorageType::Float => "FloatStorage",
            StorageType::Long => "LongStorage",
        }
    }
}

impl Entry {
    fn shape(&self) -> &[usize] {
        &self.dims[..self.ndim]
    }

    fn numel(&self) -> u64 {
        self.shape()
            .iter()
            .fold(1u64, |n, &d| n.saturating_mul(d as u64))
    }
}

fn entries(net: &Network, layout: &SaveLayout) -> Vec<Entry> {
    let mut out = vec![];
    net.for_each_tensor(&mut |t| {
        let mut dims = [0; 4];
        dims[..t.shape().len()].copy_from_slice(t.shape());
        out.push(Entry {
            name_len: t.name.len(),
            dims,
            ndim: t.shape().len(),
            dtype: StorageType::Float,
        });
        if layout.num_batches_tracked && t.kind == ParamKind::RunningVar {
            let nbt = Name {
                leaf: Some("num_batches_tracked"),
                ..t.name
            };
            out.push(Entry {
                name_len: nbt.len(),
                dims: [0; 4],
                ndim: 0,
                dtype: StorageType::Long,
            });
        }
    });
    out
}

/// `_metadata` entries `(module path, version)` in `state_dict()` order.
///
/// The module tree is [`Network::modules`]; a layout adds the modules its timm version had
/// that the graph does not model: timm 0.1's `se.avg_pool` (the SE squeeze was a module) and
/// `global_pool.pool` (inside `SelectAdaptivePool2d`).
pub fn metadata_entries(net: &Network, metadata: Metadata) -> Vec<(String, u8)> {
    let mut m = vec![];
    for_each_metadata_entry(net, metadata, |name, version| {
        m.push((name.to_string(), version))
    });
    m
}

/// Calls `f` on each of [`metadata_entries`], in that order, without building names.
fn for_each_metadata_entry<'a>(
    net: &'a Network,
    metadata: Metadata,
    mut f: impl FnMut(Name<'a>, u8),
) {
    if matches!(metadata, Metadata::None | Metadata::Stripped) {
        return;
    }
    net.for_each_module(&mut |name, kind| {
        if kind == ModuleKind::Act && metadata == Metadata::Timm2019 {
            return;
        }
        let version = match kind {
            ModuleKind::BatchNorm => 2,
            ModuleKind::Container
            | ModuleKind::Conv
            | ModuleKind::Act
            | ModuleKind::SqueezeExcite
            | ModuleKind::Pool
            | ModuleKind::Flatten
            | ModuleKind::Linear => 1,
        };
        let child = match kind {
            ModuleKind::SqueezeExcite if metadata == Metadata::Timm2020 => Some("avg_pool"),
            ModuleKind::Pool => Some("pool"),
            _ => None,
        };
        f(name, version);
        if let Some(child) = child {
            f(name.child(child), 1);
        }
    });
}

/// Byte counter for a protocol-2 pickle as CPython's C pickler writes it: tracks the memo so
/// `BINPUT`/`BINGET` (memo index < 256) vs `LONG_BINPUT`/`LONG_BINGET` are sized right.
#[derive(Debug, Default)]
struct PickleSize {
    bytes: u64,
    memo: u64,
}

impl PickleSize {
    fn op(&mut self, n: u64) {
        self.bytes = self.bytes.saturating_add(n);
    }
    /// Memoizes the object just written; returns its memo index.
    fn put(&mut self) -> u64 {
        let idx = self.memo;
        self.op(if idx < 256 { 2 } else { 5 });
        self.memo = self.memo.saturating_add(1);
        idx
    }
    fn get(&mut self, idx: u64) {
        self.op(if idx < 256 { 2 } else { 5 });
    }
    /// `BINUNICODE` + put.
    fn str(&mut self, len: usize) -> u64 {
        self.op(5u64.saturating_add(len as u64));
        self.put()
    }
    /// A memoized constant: written and memoized once, then `BINGET`.
    fn once(&mut self, slot: &mut Option<u64>, first: impl FnOnce(&mut Self)) {
        match *slot {
            Some(idx) => self.get(idx),
            None => {
                first(self);
                *slot = Some(self.put());
            }
        }
    }
    /// `BININT1`/`BININT2`/`BININT`/`LONG1`.
    fn int(&mut self, v: u64) {
        self.op(match v {
            0..=0xff => 2,
            0x100..=0xffff => 3,
            0x1_0000..=0x7fff_ffff => 5,
            _ => {
                // LONG1: opcode, length byte, minimal two's complement little-endian.
                let bits = 64 - v.leading_zeros() as u64 + 1;
                2 + bits.div_ceil(8)
            }
        });
    }
    /// `GLOBAL module\nname\n` (not memoized here).
    fn global(&mut self, module: &str, name: &str) {
        self.op(3u64.saturating_add(module.len() as u64 + name.len() as u64));
    }
    /// A tuple of ints: `EMPTY_TUPLE` (not memoized), `TUPLE1..3`, or `MARK … TUPLE`; + put.
    fn int_tuple(&mut self, items: &[u64]) {
        if items.is_empty() {
            self.op(1);
            return;
        }
        if items.len() > 3 {
            self.op(1);
        }
        for &v in items {
            self.int(v);
        }
        self.op(1);
        self.put();
    }
}

/// Extra bytes of MARK/SETITEMS/SETITEM around `n` items of an exact `dict`.
fn exact_dict_framing(n: u64) -> u64 {
    match n {
        0 => 0,
        1 => 1,
        _ => (n / BATCH + 1) * 2,
    }
}

/// … of a dict subclass (`OrderedDict`), pickled through `__reduce__`'s item iterator.
fn iter_dict_framing(n: u64) -> u64 {
    let last = match n % BATCH {
        0 => 0,
        1 => 1,
        _ => 2,
    };
    n / BATCH * 2 + last
}

/// … of an exact `list`.
fn exact_list_framing(n: u64) -> u64 {
    match n {
        0 => 0,
        1 => 1,
        _ => n.div_ceil(BATCH) * 2,
    }
}

#[derive(Default)]
struct Memo {
    rebuild: Option<u64>,
    storage: Option<u64>,
    float: Option<u64>,
    long: Option<u64>,
    cpu: Option<u64>,
    ordered_dict: Option<u64>,
    version: Option<u64>,
}

/// Size of the state-dict pickle. `key_len(i)` is the length of storage `i`'s key.
fn state_dict_pickle(
    entries: &[Entry],
    metadata: &[(usize, u8)],
    ordered: bool,
    legacy: bool,
    key_len: impl Fn(usize) -> usize,
) -> u64 {
    let mut p = PickleSize::default();
    let mut memo = Memo::default();
    p.op(2); // PROTO 2
    if ordered {
        p.once(&mut memo.ordered_dict, |p| {
            p.global("collections", "OrderedDict")
        });
        p.op(2); // EMPTY_TUPLE, REDUCE
        p.put();
        p.op(iter_dict_framing(entries.len() as u64));
    } else {
        p.op(1); // EMPTY_DICT
        p.put();
        p.op(exact_dict_framing(entries.len() as u64));
    }
    for (i, e) in entries.iter().enumerate() {
        p.str(e.name_len);
        p.once(&mut memo.rebuild, |p| {
            p.global("torch._utils", "_rebuild_tensor_v2")
        });
        p.op(2); // MARK (args), MARK (persistent id)
        p.once(&mut memo.storage, |p| p.op(5 + "storage".len() as u64));
        let slot = match e.dtype {
            StorageType::Float => &mut memo.float,
            StorageType::Long => &mut memo.long,
        };
        p.once(slot, |p| p.global("torch", e.dtype.class()));
        p.str(key_len(i));
        p.once(&mut memo.cpu, |p| p.op(5 + "cpu".len() as u64));
        p.int(e.numel());
        if legacy {
            p.op(1); // NONE: view_metadata
        }
        p.op(1); // TUPLE
        p.put();
        p.op(1); // BINPERSID
        p.int(0); // storage_offset
        let shape = e.dims.map(|d| d as u64);
        let shape = &shape[..e.ndim];
        let mut stride = [0u64; 4];
        let mut acc = 1;
        for (s, &d) in stride.iter_mut().zip(shape).rev() {
            *s = acc;
            acc *= d;
        }
        p.int_tuple(shape);
        p.int_tuple(&stride[..e.ndim]);
        p.op(1); // NEWFALSE: requires_grad
        p.once(&mut memo.ordered_dict, |p| {
            p.global("collections", "OrderedDict")
        });
        p.op(2); // EMPTY_TUPLE, REDUCE: backward hooks
        p.put();
        p.op(1); // TUPLE (6 args)
        p.put();
        p.op(1); // REDUCE
        p.put();
    }
    if ordered && !metadata.is_empty() {
        // BUILD state {'_metadata': OrderedDict(...)}
        p.op(1); // EMPTY_DICT
        p.put();
        p.str("_metadata".len());
        p.once(&mut memo.ordered_dict, |p| {
            p.global("collections", "OrderedDict")
        });
        p.op(2); // EMPTY_TUPLE, REDUCE
        p.put();
        p.op(iter_dict_framing(metadata.len() as u64));
        for &(name_len, version) in metadata {
            p.str(name_len);
            p.op(1); // EMPTY_DICT
            p.put();
            p.once(&mut memo.version, |p| p.op(5 + "version".len() as u64));
            p.int(u64::from(version));
            p.op(1); // SETITEM
        }
        p.op(2); // SETITEM ('_metadata'), BUILD
    }
    p.op(1); // STOP
    p.bytes
}

/// The three header pickles of a legacy file (magic number, protocol version, sys info).
fn legacy_header() -> u64 {
    let magic = 2 + 2 + 10 + 1; // PROTO, LONG1 len 10, STOP
    let protocol = 2 + 3 + 1; // PROTO, BININT2 1001, STOP
    let mut p = PickleSize::default();
    p.op(2 + 1); // PROTO, EMPTY_DICT
    p.put();
    p.op(1); // MARK
    p.str("protocol_version".len());
    p.int(1001);
    p.str("little_endian".len());
    p.op(1); // NEWTRUE
    p.str("type_sizes".len());
    p.op(1); // EMPTY_DICT
    p.put();
    p.op(1); // MARK
    for (k, _) in [("short", 2), ("int", 4), ("long", 4)] {
        p.str(k.len());
        p.int(2);
    }
    p.op(3); // SETITEMS, SETITEMS, STOP
    magic + protocol + p.bytes
}

/// Byte breakdown of a predicted `.pth`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SizePrediction {
    /// Which container.
    pub container: Container,
    /// Legacy: the three header pickles (137). Zip: 0.
    pub header: u64,
    /// The state-dict pickle (`data.pkl` in a zip).
    pub pickle: u64,
    /// Legacy: the storage-key list pickle. Zip: 0.
    pub key_list: u64,
    /// Legacy: Σ (8 + numel·itemsize). Zip: Σ numel·itemsize.
    pub storages: u64,
    /// Zip: everything else (headers, padding, descriptors, small records, directory). Legacy: 0.
    pub zip_overhead: u64,
    /// Tensors saved.
    pub tensors: usize,
    /// The file size.
    pub total: u64,
}

/// Predicts the size of `torch.save(state_dict)` for `spec` under `layout`.
pub fn predict(net: &Network, layout: &SaveLayout, container: Container) -> SizePrediction {
    let entries = entries(net, layout);
    let mut metadata = vec![];
    for_each_metadata_entry(net, layout.metadata, |name, version| {
        metadata.push((name.len(), version))
    });
    let ordered = layout.metadata != Metadata::None;
    let data: Vec<u64> = entries
        .iter()
        .map(|e| e.numel().saturating_mul(e.dtype.itemsize()))
        .collect();
    match container {
        Container::Legacy => {
            let width = layout.storage_key_width;
            let pickle = state_dict_pickle(&entries, &metadata, ordered, true, |_| width);
            let n = entries.len() as u64;
            let mut keys = PickleSize::default();
            keys.op(2 + 1); // PROTO, EMPTY_LIST
            keys.put();
            keys.op(exact_list_framing(n));
            for _ in 0..n {
                keys.str(width);
            }
            keys.op(1); // STOP
            let storages = data
                .iter()
                .fold(0u64, |s, d| s.saturating_add(8).saturating_add(*d));
            let header = legacy_header();
            SizePrediction {
                container,
                header,
                pickle,
                key_list: keys.bytes,
                storages,
                zip_overhead: 0,
                tensors: entries.len(),
                total: header
                    .saturating_add(pickle)
                    .saturating_add(keys.bytes)
                    .saturating_add(storages),
            }
        }
        Container::Zip => {
            let pickle = state_dict_pickle(&entries, &metadata, ordered, false, |i| {
                decimal_digits(i as u64)
            });
            // Records as (name length, data size): `<root>/<record>`.
            let root = layout.archive_name.len() + 1;
            let named = |record: &str, size: u64| (root + record.len(), size);
            let head = [
                named("data.pkl", pickle),
                named(".format_version", 1),
                named(".storage_alignment", 2),
                named("byteorder", "little".len() as u64),
            ];
            let storages = data
                .iter()
                .enumerate()
                .map(|(i, &d)| (root + "data/".len() + decimal_digits(i as u64), d));
            let tail = [named("version", 2), named(".data/serialization_id", 40)];
            let total = zip_size(head.into_iter().chain(storages).chain(tail));
            let storages = data.iter().fold(0u64, |s, d| s.saturating_add(*d));
            SizePrediction {
                container,
                header: 0,
                pickle,
                key_list: 0,
                storages,
                zip_overhead: total.saturating_sub(storages).saturating_sub(pickle),
                tensors: entries.len(),
                total,
            }
        }
    }
}

fn decimal_digits(v: u64) -> usize {
    v.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// Size of an uncompressed zip as PyTorch's `PyTorchStreamWriter` (miniz) writes it, from its
/// records' name lengths and data sizes in order.
fn zip_size(records: impl IntoIterator<Item = (usize, u64)>) -> u64 {
    const LOCAL: u64 = 30;
    const CENTRAL: u64 = 46;
    const ALIGN: u64 = 64;
    const U32_MAX: u64 = u32::MAX as u64;
    let mut cursor = 0u64;
    let mut central = 0u64;
    for (name, size) in records {
        let name = name as u64;
        // PyTorch `getPadding`: data starts after the header, name and a 4-byte FB header
        // (plus zip64 fields for large sizes/offsets), rounded up to ALIGN.
        let mut start = cursor.saturating_add(LOCAL + 4).saturating_add(name);
        let mut zip64 = 0;
        if size >= U32_MAX || cursor >= U32_MAX {
            zip64 += 4;
            if size >= U32_MAX {
                zip64 += 16;
            }
            if cursor >= U32_MAX {
                zip64 += 8;
            }
            start = start.saturating_add(zip64);
        }
        let data_start = start.div_ceil(ALIGN).saturating_mul(ALIGN);
        let descriptor = if size >= U32_MAX { 24 } else { 16 };
        // miniz repeats the zip64 fields in the central directory entry.
        central = central.saturating_add(CENTRAL + zip64).saturating_add(name);
        cursor = data_start.saturating_add(size).saturating_add(descriptor);
    }
    cursor.saturating_add(central).saturating_add(56 + 20 + 22)
}

/// A documented file size checked against the prediction.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SizeCheck {
    /// The card's number.
    pub documented: u64,
    /// What the spec predicts.
    pub predicted: SizePrediction,
    /// The real file's size, when it is at hand.
    pub actual: Option<u64>,
    /// `predicted.total == documented` (and `actual == documented` when known).
    pub passed: bool,
}

/// Every layout of [`Metadata::ALL`] other than `layout`'s own, with its prediction (the other
/// fields of `layout` kept), in [`Metadata::ALL`] order; each is predicted as it is taken.
pub fn other_layouts<'a>(
    net: &'a Network,
    container: Container,
    layout: &'a SaveLayout,
) -> impl Iterator<Item = (SaveLayout, SizePrediction)> + 'a {
    Metadata::ALL
        .into_iter()
        .filter(|m| *m != layout.metadata)
        .map(move |metadata| {
            let l = SaveLayout {
                metadata,
                ..layout.clone()
            };
            let p = predict(net, &l, container);
            (l, p)
        })
}

/// The first of [`other_layouts`] whose prediction is exactly `documented`: the rule that
/// explains a card value the default layout does not reproduce.
pub fn explaining_layout(
    net: &Network,
    documented: u64,
    container: Container,
    layout: &SaveLayout,
) -> Option<(SaveLayout, SizePrediction)> {
    other_layouts(net, container, layout).find(|(_, p)| p.total == documented)
}

/// The layout a file of `documented` bytes was saved with: `default` when it predicts the
/// value (or nothing is documented), else the layout that explains it, else `default`.
pub fn layout_for(
    net: &Network,
    documented: Option<u64>,
    container: Container,
    default: SaveLayout,
) -> SaveLayout {
    let Some(doc) = documented else {
        return default;
    };
    if predict(net, &default, container).total == doc {
        return default;
    }
    explaining_layout(net, doc, container, &default).map_or(default, |(l, _)| l)
}

/// Checks a card's `File Size` against the size predicted for `container` under `layout`;
/// `actual` is the real file's size if it is cached.
pub fn check_file_size(
    net: &Network,
    documented: u64,
    container: Container,
    layout: &SaveLayout,
    actual: Option<u64>,
) -> SizeCheck {
    let predicted = predict(net, layout, container);
    let passed = predicted.total == documented && actual.is_none_or(|a| a == documented);
    SizeCheck {
        documented,
        predicted,
        actual,
        passed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_137_bytes() {
        assert_eq!(legacy_header(), 137);
    }

    #[test]
    fn framing_follows_cpython_batches() {
        assert_eq!(exact_dict_framing(197), 2);
        assert_eq!(exact_dict_framing(1000), 4); // a trailing empty MARK SETITEMS
        assert_eq!(iter_dict_framing(1000), 2);
        assert_eq!(iter_dict_framing(1001), 3);
        assert_eq!(exact_list_framing(1001), 4);
        assert_eq!(decimal_digits(0), 1);
        assert_eq!(decimal_digits(196), 3);
    }
}
