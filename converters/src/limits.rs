//! The resource budget every reader works within: bytes in memory and on disk, counts, nesting
//! depth, and time. Sizes read from a file are checked against these bounds before anything is
//! allocated, written or looped over.
//!
//! The defaults are sized for the largest checkpoint zoo handles, EfficientNet-L2: a 1.9 GB
//! `.pth` of 1914 tensors whose largest tensor is 45 MB, an object pickle of about 250 kB (which
//! the interpreter holds in about 6 MB), and a TensorFlow release tarball of a few GB. Each
//! bound leaves at least 5× headroom over that (the metadata and interpreter bounds are also
//! what keeps a reader within twice its largest tensor plus 64 MiB on any input), and
//! each can be raised without rebuilding: `ZOO_LIMITS=disk-bytes=64G,tensor-bytes=4G` (see
//! [`Limits::from_env`]); a library caller passes its own [`Limits`] to the `*_with_limits`
//! readers. A file over a bound is a typed error that names the bound and how to raise it
//! ([`LimitKind`]).
use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

/// The environment variable that overrides [`Limits::default`] (see [`Limits::from_env`]).
pub const LIMITS_ENV: &str = "ZOO_LIMITS";

/// Bounds applied to every size read from an untrusted file before allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest single tensor, in bytes.
    pub max_tensor_bytes: u64,
    /// Most tensors (or index entries) in one file.
    pub max_tensors: u64,
    /// Largest metadata structure read into memory at once (index file, pickle, header), in
    /// bytes.
    pub max_metadata_bytes: u64,
    /// Most objects, stack items, memo entries or marks of one pickle.
    pub max_pickle_items: u64,
    /// Most memory the pickle interpreter may hold for one pickle, in bytes. The interpreter is
    /// also held to [`PICKLE_AMPLIFICATION`] × the pickle's length (+ 1 MiB), whichever is less,
    /// so a small pickle cannot take much memory whatever this is set to.
    pub max_pickle_memory: u64,
    /// Largest tensor rank.
    pub max_rank: usize,
    /// Most tensor bytes one read may build and hand back in total (a whole state dict).
    pub max_memory_bytes: u64,
    /// Most bytes an extraction may write to disk (and decompress) in total.
    pub max_disk_bytes: u64,
    /// Most members of an archive (tarball entries of any kind).
    pub max_entries: u64,
    /// Deepest nesting: pickle MARK depth, components of a path inside an archive.
    pub max_depth: u64,
    /// Longest wall-clock time for one network transfer (for fetchers; the readers here do no
    /// network I/O).
    pub max_network_time: Duration,
}

/// The pickle interpreter may use at most this many bytes of memory per byte of pickle (plus
/// 1 MiB). A real `torch.save` state dict needs about 25 (one tensor is ~110 bytes of pickle and
/// ~20 small objects with their memo entries; EfficientNet-tiny's 21 kB pickle takes 0.5 MB).
pub const PICKLE_AMPLIFICATION: u64 = 64;

impl Limits {
    /// Tight bounds for the fuzz targets and the replay of their regression inputs, so that
    /// arbitrary bytes cannot make a run allocate gigabytes.
    pub const FUZZ: Limits = Limits {
        max_tensor_bytes: 1 << 24,
        max_tensors: 1 << 12,
        max_metadata_bytes: 1 << 22,
        max_pickle_items: 1 << 16,
        max_pickle_memory: 16 << 20,
        max_rank: 16,
        max_memory_bytes: 1 << 26,
        max_disk_bytes: 1 << 26,
        max_entries: 256,
        max_depth: 64,
        max_network_time: Duration::from_secs(60),
    };

    /// The defaults (see the module docs for how they are sized).
    pub const DEFAULT: Limits = Limits {
        max_tensor_bytes: 1 << 30,
        max_tensors: 1 << 16,
        max_metadata_bytes: 8 << 20,
        max_pickle_items: 1 << 20,
        max_pickle_memory: 40 << 20,
        max_rank: 16,
        max_memory_bytes: 4 << 30,
        max_disk_bytes: 16 << 30,
        max_entries: 1024,
        max_depth: 64,
        max_network_time: Duration::from_secs(6 * 3600),
    };

    /// [`Limits::DEFAULT`] with the overrides of `$ZOO_LIMITS`: comma-separated `key=value`
    /// pairs, keys as [`LimitKind::key`] names them, values a count or a size with an optional
    /// binary suffix (`K`, `M`, `G`, `T`; `network-time` in seconds, or with `s`, `m`, `h`).
    /// Unset or empty means the defaults.
    pub fn from_env() -> Result<Limits, LimitsError> {
        match std::env::var(LIMITS_ENV) {
            Ok(spec) => Limits::DEFAULT.with_overrides(&spec),
            Err(std::env::VarError::NotPresent) => Ok(Limits::DEFAULT),
            Err(std::env::VarError::NotUnicode(_)) => Err(LimitsError {
                item: String::new(),
                reason: "not valid UTF-8".into(),
            }),
        }
    }

    /// The limits the convenience readers (`pth::read`, `Bundle::open`, …) use: those of
    /// `$ZOO_LIMITS` as read once per process, or the defaults when it is unset or invalid (a
    /// program should call [`Limits::from_env`] first to report an invalid value).
    pub fn current() -> Limits {
        static CURRENT: OnceLock<Limits> = OnceLock::new();
        *CURRENT.get_or_init(|| Limits::from_env().unwrap_or(Limits::DEFAULT))
    }

    /// `self` with the overrides in `spec` (the syntax of `$ZOO_LIMITS`).
    pub fn with_overrides(mut self, spec: &str) -> Result<Limits, LimitsError> {
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let err = |reason: String| LimitsError {
                item: item.to_owned(),
                reason,
            };
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| err("expected key=value".into()))?;
            let kind = LimitKind::ALL
                .into_iter()
                .find(|k| k.key() == key.trim())
                .ok_or_else(|| {
                    err(format!(
                        "unknown limit; known: {}",
                        LimitKind::ALL.map(LimitKind::key).join(", ")
                    ))
                })?;
            let value = value.trim();
            if kind == LimitKind::NetworkTime {
                self.max_network_time = parse_duration(value).map_err(err)?;
                continue;
            }
            let n = parse_size(value).map_err(err)?;
            match kind {
                LimitKind::TensorBytes => self.max_tensor_bytes = n,
                LimitKind::Tensors => self.max_tensors = n,
                LimitKind::MetadataBytes => self.max_metadata_bytes = n,
                LimitKind::PickleItems => self.max_pickle_items = n,
                LimitKind::PickleMemory => self.max_pickle_memory = n,
                LimitKind::Rank => {
                    self.max_rank = usize::try_from(n).map_err(|_| err("too large".into()))?
                }
                LimitKind::MemoryBytes => self.max_memory_bytes = n,
                LimitKind::DiskBytes => self.max_disk_bytes = n,
                LimitKind::Entries => self.max_entries = n,
                LimitKind::Depth => self.max_depth = n,
                LimitKind::NetworkTime => unreachable!("handled above"),
            }
        }
        Ok(self)
    }

    /// The value of one bound, as a number (seconds for [`LimitKind::NetworkTime`]).
    pub fn get(&self, kind: LimitKind) -> u64 {
        match kind {
            LimitKind::TensorBytes => self.max_tensor_bytes,
            LimitKind::Tensors => self.max_tensors,
            LimitKind::MetadataBytes => self.max_metadata_bytes,
            LimitKind::PickleItems => self.max_pickle_items,
            LimitKind::PickleMemory => self.max_pickle_memory,
            LimitKind::Rank => self.max_rank as u64,
            LimitKind::MemoryBytes => self.max_memory_bytes,
            LimitKind::DiskBytes => self.max_disk_bytes,
            LimitKind::Entries => self.max_entries,
            LimitKind::Depth => self.max_depth,
            LimitKind::NetworkTime => self.max_network_time.as_secs(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// Which bound of [`Limits`] a file exceeded. Its `Display` names the bound and how to raise it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitKind {
    /// [`Limits::max_tensor_bytes`].
    TensorBytes,
    /// [`Limits::max_tensors`].
    Tensors,
    /// [`Limits::max_metadata_bytes`].
    MetadataBytes,
    /// [`Limits::max_pickle_items`].
    PickleItems,
    /// [`Limits::max_pickle_memory`] (or the pickle's length × [`PICKLE_AMPLIFICATION`]).
    PickleMemory,
    /// [`Limits::max_rank`].
    Rank,
    /// [`Limits::max_memory_bytes`].
    MemoryBytes,
    /// [`Limits::max_disk_bytes`].
    DiskBytes,
    /// [`Limits::max_entries`].
    Entries,
    /// [`Limits::max_depth`].
    Depth,
    /// [`Limits::max_network_time`].
    NetworkTime,
}

impl LimitKind {
    /// Every bound.
    pub const ALL: [LimitKind; 11] = [
        LimitKind::TensorBytes,
        LimitKind::Tensors,
        LimitKind::MetadataBytes,
        LimitKind::PickleItems,
        LimitKind::PickleMemory,
        LimitKind::Rank,
        LimitKind::MemoryBytes,
        LimitKind::DiskBytes,
        LimitKind::Entries,
        LimitKind::Depth,
        LimitKind::NetworkTime,
    ];

    /// The bound's name in `$ZOO_LIMITS`.
    pub fn key(self) -> &'static str {
        match self {
            LimitKind::TensorBytes => "tensor-bytes",
            LimitKind::Tensors => "tensors",
            LimitKind::MetadataBytes => "metadata-bytes",
            LimitKind::PickleItems => "pickle-items",
            LimitKind::PickleMemory => "pickle-memory",
            LimitKind::Rank => "rank",
            LimitKind::MemoryBytes => "memory-bytes",
            LimitKind::DiskBytes => "disk-bytes",
            LimitKind::Entries => "entries",
            LimitKind::Depth => "depth",
            LimitKind::NetworkTime => "network-time",
        }
    }
}

impl LimitKind {
    /// How to raise this bound: `raise it with ZOO_LIMITS=<key>=<n>`.
    pub fn hint(self) -> String {
        format!("raise it with {LIMITS_ENV}={}=<n>", self.key())
    }
}

/// `` `<key>` limit ``, as in "over the `tensor-bytes` limit of 1073741824 (raise it with …)".
impl fmt::Display for LimitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` limit", self.key())
    }
}

/// An invalid `$ZOO_LIMITS` item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{LIMITS_ENV}: `{item}`: {reason}")]
pub struct LimitsError {
    /// The `key=value` item.
    pub item: String,
    /// What is wrong with it.
    pub reason: String,
}

/// `123`, `64K`, `16M`, `2G`, `1T` (binary multiples; a trailing `B`/`iB` is allowed).
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim_end_matches(['B', 'b']).trim_end_matches('i');
    let (digits, shift) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => return Err(format!("unknown size suffix in {s:?}")),
            };
            (&t[..i], shift)
        }
        _ => (t, 0),
    };
    let n: u64 = digits
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 4096, 64M, 2G)"))?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("{s:?} overflows 64 bits"))
}

/// `90`, `90s`, `15m`, `6h`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let (digits, unit) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&s[..i], c),
        _ => (s, 's'),
    };
    let n: u64 = digits
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 90, 15m, 6h)"))?;
    let secs = match unit {
        's' => Some(n),
        'm' => n.checked_mul(60),
        'h' => n.checked_mul(3600),
        _ => return Err(format!("unknown time unit in {s:?}")),
    };
    secs.map(Duration::from_secs)
        .ok_or_else(|| format!("{s:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_parse_and_name_their_limit() {
        let l = Limits::DEFAULT
            .with_overrides("disk-bytes=64G, tensor-bytes=512M,network-time=2h,rank=8")
            .unwrap();
        assert_eq!(l.max_disk_bytes, 64 << 30);
        assert_eq!(l.max_tensor_bytes, 512 << 20);
        assert_eq!(l.max_network_time, Duration::from_secs(7200));
        assert_eq!(l.max_rank, 8);
        assert_eq!(l.max_entries, Limits::DEFAULT.max_entries);
        for bad in [
            "disk=1",
            "disk-bytes",
            "disk-bytes=1Q",
            "tensors=-1",
            "depth=99999999999T",
        ] {
            let e = Limits::DEFAULT.with_overrides(bad).unwrap_err();
            assert!(e.to_string().contains(bad), "{e}");
        }
        for kind in LimitKind::ALL {
            assert_eq!(kind.to_string(), format!("`{}` limit", kind.key()));
            let shown = kind.hint();
            assert!(
                shown.contains(&format!("ZOO_LIMITS={}=", kind.key())),
                "{shown}"
            );
            let l = Limits::DEFAULT
                .with_overrides(&format!("{}=7", kind.key()))
                .unwrap();
            assert_eq!(l.get(kind), 7, "{kind:?}");
        }
    }

    #[test]
    fn defaults_fit_efficientnet_l2() {
        let d = Limits::DEFAULT;
        // EfficientNet-L2: largest tensor 45 MB, 1914 tensors, whole state dict 1.93 GB.
        assert!(d.max_tensor_bytes >= 10 * 45_000_000);
        assert!(d.max_tensors >= 10 * 1914);
        assert!(d.max_memory_bytes >= 2 * 1_925_950_424);
        assert!(d.max_metadata_bytes >= 10 * 250_000);
        assert!(d.max_pickle_memory >= 5 * 6_000_000);
        // the crafted-input bound: the pickle and its interpreter within 64 MiB
        assert!(d.max_metadata_bytes + d.max_pickle_memory <= 56 << 20);
    }
}
