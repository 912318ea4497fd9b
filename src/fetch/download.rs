//! One transfer from one URL into a `.part` file, hashing while writing.
//!
//! HTTP(S) transfers resume: if the `.part` file already holds `n` bytes, its prefix is hashed
//! once and `Range: bytes=n-` is requested. A `206` with `Content-Range: bytes n-…` is appended;
//! a `200` (server ignores ranges) truncates the part and starts from zero; a `416` for a part
//! of exactly the expected size is treated as complete, any other `416` restarts from zero in
//! the same call. Bytes received before a dropped connection or a stall are flushed to the
//! `.part` so the next attempt resumes after them.
//!
//! Every transfer is bounded ([`Limits`]): by the expected size when it is known, else by
//! `max_size`; a `Content-Length` beyond the bound is refused before the body is read, and a body
//! that goes past it is cut there. Lengths and offsets a server sends go through checked
//! arithmetic, so a hostile `Content-Length` is a [`FetchError::Protocol`], not an overflow. A
//! `.part` that can no longer be trusted or would only fill the disk is removed: after a
//! transfer that ran past its bound, and after a failed write (a full disk). An optional
//! deadline bounds the whole fetch, however slowly the bytes trickle in.
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, LOCATION, RANGE};
use sha2::{Digest, Sha256};

use super::hash::{hash_reader, BUF_SIZE};
use zoo_converters::text::esc;

use super::{redact_url, FetchError, ProgressSink};

/// Result of a finished transfer: the content's full sha256 and size (the `.part` is fsynced).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// Lowercase hex sha256 of the whole `.part`.
    pub sha256: String,
    /// Size of the `.part`.
    pub size: u64,
    /// Bytes that were already in the `.part` and kept (resumed after); 0 for a fresh transfer.
    pub resumed_from: u64,
}

/// What bounds one transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The size the content must have, when known (registry `Size:`, `--size`, lock file).
    pub expected_size: Option<u64>,
    /// The most bytes accepted when the size is not known (`--max-size`).
    pub max_size: u64,
    /// When the whole fetch must have finished (`--deadline`), if ever.
    pub deadline: Option<Deadline>,
}

/// A point in time a fetch must finish by, with the duration it was given (for messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    /// When.
    pub at: Instant,
    /// The total time allowed.
    pub total: Duration,
}

impl Deadline {
    /// `total` from now.
    pub fn after(total: Duration) -> Deadline {
        Deadline {
            at: Instant::now().checked_add(total).unwrap_or_else(far_future),
            total,
        }
    }

    /// Whether it has passed.
    pub fn passed(&self) -> bool {
        Instant::now() >= self.at
    }

    /// Time left (zero once passed).
    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }
}

fn far_future() -> Instant {
    // A year from now is "never" for a download.
    Instant::now() + Duration::from_secs(365 * 24 * 3600)
}

impl Limits {
    /// The most bytes the content may have: its expected size, else `max_size`.
    pub fn cap(&self) -> u64 {
        self.expected_size.unwrap_or(self.max_size)
    }

    /// `Some` bound error when `size` bytes are more than allowed.
    fn too_large(&self, file_name: &str, source_name: &str, size: u64) -> Option<FetchError> {
        (size > self.cap()).then(|| self.too_large_error(file_name, source_name, size))
    }

    fn too_large_error(&self, file_name: &str, source_name: &str, size: u64) -> FetchError {
        FetchError::TooLarge {
            file_name: file_name.to_string(),
            source_name: source_name.to_string(),
            limit: self.cap(),
            size: (size > self.cap()).then_some(size),
            expected: self.expected_size.is_some(),
        }
    }
}

/// Builds the blocking HTTP client used for every transfer: `timeout` bounds connecting and
/// every single read (a stalled body fails after `timeout`, a slow but moving one does not).
/// [`Limits::deadline`] bounds the whole transfer: it is checked before the request and between
/// reads, so a fetch ends at most one stall `timeout` after its deadline.
pub fn client(timeout: Duration) -> Result<reqwest::blocking::Client, FetchError> {
    reqwest::blocking::Client::builder()
        .connect_timeout(timeout)
        .timeout(timeout)
        .user_agent(concat!("zoo/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| FetchError::Network {
            url: String::new(),
            message: format!("cannot build HTTP client: {}", error_chain(&e)),
            timed_out: false,
        })
}

/// Downloads `url` into `part`, resuming from what `part` already holds, within `limits`.
pub fn download_http(
    client: &reqwest::blocking::Client,
    url: &str,
    part: &Path,
    file_name: &str,
    limits: &Limits,
    progress: Option<&dyn ProgressSink>,
) -> Result<Transfer, FetchError> {
    let shown = redact_url(url).into_owned();
    let io_err = |e: io::Error| FetchError::io(part, e);
    let protocol = |reason: String| FetchError::Protocol {
        url: shown.clone(),
        reason,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(part)
        .map_err(io_err)?;
    let mut have = file.metadata().map_err(io_err)?.len();
    if have > limits.cap() {
        file.set_len(0).map_err(io_err)?;
        have = 0;
    }
    // Resuming: recompute the hash state of the prefix already on disk (one pass over it).
    let mut hasher = Sha256::new();
    if have > 0 {
        file.seek(SeekFrom::Start(0)).map_err(io_err)?;
        let hashed = hash_reader(&mut file, &mut hasher, have).map_err(io_err)?;
        if hashed != have {
            return Err(FetchError::io(
                part,
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "part file shrank while resuming",
                ),
            ));
        }
    }
    check_deadline(limits, &shown)?;

    let mut request = client.get(url);
    if have > 0 {
        request = request.header(RANGE, format!("bytes={have}-"));
    }
    let mut response = request
        .send()
        .map_err(|e| network_error(&shown, e, limits))?;
    let status = response.status().as_u16();
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    let content_length =
        match header(CONTENT_LENGTH) {
            Some(v) => Some(v.trim().parse::<u64>().map_err(|_| {
                protocol(format!("Content-Length: {} is not a byte count", esc(&v)))
            })?),
            None => None,
        };
    let content_range = header(CONTENT_RANGE);
    // The header as the server sent it (escaped: it is the server's text), for messages.
    let shown_range = content_range.as_deref().map_or_else(
        || "no Content-Range".to_string(),
        |v| format!("Content-Range: {}", esc(v)),
    );
    match status {
        206 if have > 0 => {
            let range = content_range.as_deref().and_then(ContentRange::parse);
            match range {
                Some(r) if r.start == have => {
                    let span = r.end - r.start + 1; // parse() guarantees start <= end
                    if content_length.is_some_and(|len| len != span) {
                        return Err(protocol(format!(
                            "{shown_range} holds {span} bytes, but Content-Length says {}",
                            content_length.unwrap_or_default()
                        )));
                    }
                    if let Some(total) = r.total {
                        if let Some(e) = limits.too_large(file_name, &shown, total) {
                            remove_part(part, file);
                            return Err(e);
                        }
                    }
                }
                _ => {
                    // Not the range we asked for: drop the part so the retry starts clean.
                    file.set_len(0).map_err(io_err)?;
                    return Err(protocol(format!(
                        "asked for bytes={have}-, got {shown_range}; restarting from zero"
                    )));
                }
            }
            file.seek(SeekFrom::Start(have)).map_err(io_err)?;
        }
        200 => {
            if have > 0 {
                // The server ignored Range: start over from byte zero.
                file.set_len(0).map_err(io_err)?;
                file.seek(SeekFrom::Start(0)).map_err(io_err)?;
                hasher = Sha256::new();
                have = 0;
            }
        }
        416 if have > 0 && limits.expected_size == Some(have) => {
            // The part is already complete (an earlier run died before renaming it).
            file.sync_all().map_err(io_err)?;
            return Ok(Transfer {
                sha256: hex::encode(hasher.finalize()),
                size: have,
                resumed_from: have,
            });
        }
        416 if have > 0 => {
            // The part is longer than what the server has (or the server cannot resume):
            // restart from byte zero, now, without a Range.
            file.set_len(0).map_err(io_err)?;
            drop(file);
            drop(response);
            return download_http(client, url, part, file_name, limits, progress);
        }
        300..=399 => {
            return Err(FetchError::Redirect {
                url: shown.clone(),
                status,
                location: header(LOCATION).map(|l| redact_url(&l).into_owned()),
            })
        }
        _ => {
            return Err(FetchError::Http {
                url: shown.clone(),
                status,
            })
        }
    }
    let announced = match content_length {
        Some(len) => Some(have.checked_add(len).ok_or_else(|| {
            protocol(format!(
                "Content-Length {len} after the {have} bytes already here overflows 64 bits"
            ))
        })?),
        None => None,
    };
    if let Some(announced) = announced {
        if let Some(expected) = limits.expected_size.filter(|e| *e != announced) {
            return Err(FetchError::SizeMismatch {
                file_name: file_name.to_string(),
                source_name: shown.clone(),
                expected,
                actual: announced,
            });
        }
        if let Some(e) = limits.too_large(file_name, &shown, announced) {
            remove_part(part, file);
            return Err(e);
        }
    }

    if let Some(p) = progress {
        p.start(file_name, &shown, limits.expected_size.or(announced), have);
    }
    let result = copy_hashing(
        &mut response,
        &mut file,
        &mut hasher,
        have,
        limits,
        progress,
    );
    let size = match result {
        Ok(size) => size,
        Err(CopyError::Read(e)) => return Err(read_error(&shown, &e, limits)),
        Err(CopyError::Write(e)) => {
            // Most often a full disk: a part that cannot be written only keeps it full.
            remove_part(part, file);
            return Err(FetchError::io(part, e));
        }
        Err(CopyError::TooLong) => {
            remove_part(part, file);
            return Err(limits.too_large_error(file_name, &shown, limits.cap()));
        }
        Err(CopyError::Deadline) => return Err(deadline_error(limits, &shown)),
    };
    if let Some(announced) = announced {
        if size != announced {
            return Err(FetchError::Network {
                url: shown,
                message: format!("body ended at byte {size} of {announced}"),
                timed_out: false,
            });
        }
    }
    file.sync_all().map_err(io_err)?;
    Ok(Transfer {
        sha256: hex::encode(hasher.finalize()),
        size,
        resumed_from: have,
    })
}

/// Copies a local file (`file://` URL) into `part`, hashing while writing. No resume: local
/// copies are cheap to restart, so a failed copy removes its part.
///
/// Only a regular file is copied (a FIFO would block, `/dev/zero` never ends), and the copy
/// stops at the length the file had when it was opened.
pub fn copy_local(
    source: &Path,
    part: &Path,
    file_name: &str,
    limits: &Limits,
    progress: Option<&dyn ProgressSink>,
) -> Result<Transfer, FetchError> {
    let source_err = |e| FetchError::io(source, e);
    // Checked before opening: opening a FIFO for reading blocks until a writer appears.
    crate::fsutil::require_regular_file(source).map_err(source_err)?;
    let input = File::open(source).map_err(source_err)?;
    let meta = input.metadata().map_err(source_err)?;
    crate::fsutil::check_regular(&meta).map_err(source_err)?;
    let len = meta.len();
    let shown = source.display().to_string();
    if let Some(expected) = limits.expected_size {
        if expected != len {
            return Err(FetchError::SizeMismatch {
                file_name: file_name.to_string(),
                source_name: shown,
                expected,
                actual: len,
            });
        }
    }
    if let Some(e) = limits.too_large(file_name, &shown, len) {
        return Err(e);
    }
    let mut file = File::create(part).map_err(|e| FetchError::io(part, e))?;
    let mut hasher = Sha256::new();
    if let Some(p) = progress {
        p.start(file_name, &shown, Some(len), 0);
    }
    let bounded = Limits {
        expected_size: Some(len),
        ..*limits
    };
    let result = copy_hashing(
        &mut input.take(len),
        &mut file,
        &mut hasher,
        0,
        &bounded,
        progress,
    );
    let failed = match result {
        Ok(size) if size == len => None,
        Ok(size) => Some(FetchError::io(
            source,
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("file shrank while being copied: {size} of {len} bytes"),
            ),
        )),
        Err(CopyError::Read(e)) => Some(FetchError::io(source, e)),
        Err(CopyError::Write(e)) => Some(FetchError::io(part, e)),
        Err(CopyError::TooLong) => Some(bounded.too_large_error(file_name, &shown, len)),
        Err(CopyError::Deadline) => Some(deadline_error(limits, &shown)),
    };
    if let Some(e) = failed {
        remove_part(part, file);
        return Err(e);
    }
    file.sync_all().map_err(|e| FetchError::io(part, e))?;
    Ok(Transfer {
        sha256: hex::encode(hasher.finalize()),
        size: len,
        resumed_from: 0,
    })
}

/// Closes and deletes a `.part` (best effort: the error being returned matters more).
fn remove_part(part: &Path, file: File) {
    drop(file);
    let _ = std::fs::remove_file(part);
}

enum CopyError {
    Read(io::Error),
    Write(io::Error),
    TooLong,
    Deadline,
}

/// Streams `reader` to `file` (positioned at `have`), hashing every byte; returns the total
/// size. Stops with [`CopyError::TooLong`] before writing a byte past [`Limits::cap`], and with
/// [`CopyError::Deadline`] once the deadline passes. Whatever was received is flushed to `file`
/// even when the read fails, so a later attempt can resume after it.
fn copy_hashing(
    reader: &mut impl Read,
    file: &mut File,
    hasher: &mut Sha256,
    have: u64,
    limits: &Limits,
    progress: Option<&dyn ProgressSink>,
) -> Result<u64, CopyError> {
    // `progress` is advanced per chunk and finished here, whatever the outcome.
    let mut out = BufWriter::with_capacity(BUF_SIZE, file);
    let mut buf = vec![0u8; BUF_SIZE];
    let mut total = have;
    let cap = limits.cap();
    let outcome = loop {
        if limits.deadline.is_some_and(|d| d.passed()) {
            break Err(CopyError::Deadline);
        }
        let n = match reader.read(&mut buf) {
            Ok(0) => break Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => break Err(CopyError::Read(e)),
        };
        let chunk = &buf[..n];
        let Some(next) = total.checked_add(n as u64).filter(|t| *t <= cap) else {
            break Err(CopyError::TooLong);
        };
        if let Err(e) = out.write_all(chunk) {
            break Err(CopyError::Write(e));
        }
        hasher.update(chunk);
        total = next;
        if let Some(p) = progress {
            p.advance(n as u64);
        }
    };
    let flushed = out.flush().map_err(CopyError::Write);
    if let Some(p) = progress {
        p.finish();
    }
    let total = outcome?;
    flushed?;
    Ok(total)
}

/// `Content-Range: bytes <start>-<end>/<total>` (`total` may be `*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ContentRange {
    start: u64,
    end: u64,
    total: Option<u64>,
}

impl ContentRange {
    /// Parses the header; `None` when malformed or inconsistent (`end < start`, `end >= total`).
    fn parse(value: &str) -> Option<ContentRange> {
        let rest = value.trim().strip_prefix("bytes")?.trim_start();
        let (range, total) = rest.split_once('/')?;
        let (start, end) = range.split_once('-')?;
        let (start, end): (u64, u64) = (start.trim().parse().ok()?, end.trim().parse().ok()?);
        let total = match total.trim() {
            "*" => None,
            t => Some(t.parse::<u64>().ok()?),
        };
        let consistent = start <= end && total.is_none_or(|t| end < t);
        consistent.then_some(ContentRange { start, end, total })
    }
}

fn check_deadline(limits: &Limits, shown: &str) -> Result<(), FetchError> {
    match limits.deadline {
        Some(d) if d.passed() => Err(deadline_error(limits, shown)),
        _ => Ok(()),
    }
}

fn deadline_error(limits: &Limits, shown: &str) -> FetchError {
    FetchError::Deadline {
        url: shown.to_string(),
        after: limits.deadline.map_or(Duration::ZERO, |d| d.total),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = s.source();
    }
    // reqwest puts the URL, credentials included, in its messages.
    redact_url(&message).into_owned()
}

/// The error of a request that got no answer; the URL is said once, by [`FetchError::Network`]
/// (reqwest's own message repeats it).
fn network_error(shown: &str, e: reqwest::Error, limits: &Limits) -> FetchError {
    let timed_out = e.is_timeout();
    if timed_out && limits.deadline.is_some_and(|d| d.passed()) {
        return deadline_error(limits, shown);
    }
    FetchError::Network {
        url: shown.to_string(),
        message: error_chain(&e.without_url()),
        timed_out,
    }
}

/// `message` without reqwest's ` for url (…)` notes.
fn without_url_note(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(i) = rest.find(" for url (") {
        out.push_str(&rest[..i]);
        let after = &rest[i + " for url (".len()..];
        rest = after.find(')').map_or("", |j| &after[j + 1..]);
    }
    out.push_str(rest);
    out
}

fn read_error(shown: &str, e: &io::Error, limits: &Limits) -> FetchError {
    let mut timed_out = e.kind() == io::ErrorKind::TimedOut;
    let mut source: Option<&(dyn std::error::Error + 'static)> = e.get_ref().map(|r| r as _);
    while let Some(s) = source {
        if let Some(re) = s.downcast_ref::<reqwest::Error>() {
            timed_out |= re.is_timeout();
        }
        source = s.source();
    }
    if timed_out && limits.deadline.is_some_and(|d| d.passed()) {
        return deadline_error(limits, shown);
    }
    // reqwest's body errors may name the URL too; it is said once, by `FetchError::Network`.
    let mut message = without_url_note(&error_chain(e));
    if timed_out && !message.contains("timed out") {
        message.push_str(" (timed out)");
    }
    FetchError::Network {
        url: shown.to_string(),
        message: format!("reading body: {message}"),
        timed_out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_content_range() {
        assert_eq!(
            ContentRange::parse("bytes 600-999/1000"),
            Some(ContentRange {
                start: 600,
                end: 999,
                total: Some(1000)
            })
        );
        assert_eq!(
            ContentRange::parse("bytes 4-9/*").map(|r| r.total),
            Some(None)
        );
        assert_eq!(ContentRange::parse("bytes */1000"), None);
        assert_eq!(ContentRange::parse("bytes 9-4/10"), None);
        assert_eq!(ContentRange::parse("bytes 4-10/10"), None);
        assert_eq!(
            ContentRange::parse("bytes 0-18446744073709551615/18446744073709551615"),
            None
        );
    }

    #[test]
    fn limits_cap_is_the_expected_size_else_the_maximum() {
        let l = Limits {
            expected_size: None,
            max_size: 10,
            deadline: None,
        };
        assert_eq!(l.cap(), 10);
        assert!(l.too_large("f", "u", 11).is_some());
        assert!(l.too_large("f", "u", 10).is_none());
        let l = Limits {
            expected_size: Some(20),
            ..l
        };
        assert_eq!(l.cap(), 20);
    }
}
