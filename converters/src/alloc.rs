//! Allocations sized from a file go through here: `try_reserve`, so a size that passed the
//! [`crate::Limits`] checks but still cannot be allocated is a typed error, never an abort.

/// A zeroed buffer of `len` bytes, or `None` when it cannot be allocated.
pub(crate) fn zeroed(len: u64) -> Option<Vec<u8>> {
    let n = usize::try_from(len).ok()?;
    let mut v = with_capacity(len)?;
    v.resize(n, 0);
    Some(v)
}

/// An empty buffer with room for `len` bytes, or `None` when it cannot be allocated.
pub(crate) fn with_capacity(len: u64) -> Option<Vec<u8>> {
    let len = usize::try_from(len).ok()?;
    let mut v = Vec::new();
    v.try_reserve_exact(len).ok()?;
    Some(v)
}

/// Resizes `buf` to `len` bytes (new bytes zero), or `false` when it cannot be allocated.
pub(crate) fn resize(buf: &mut Vec<u8>, len: u64) -> bool {
    let Ok(len) = usize::try_from(len) else {
        return false;
    };
    if len > buf.len() && buf.try_reserve_exact(len - buf.len()).is_err() {
        return false;
    }
    buf.resize(len, 0);
    true
}
