//! One transfer from one URL into a `.part` file, hashing while writing.
//!
//! HTTP(S) transfers resume: if the `.part` file already holds `n` bytes, its prefix is hashed
//! once and `Range: bytes=n-` is requested. A `206` with `Content-Range: bytes n-…` is appended;
//! a `200` (server ignores ranges) truncates the part and starts from zero; a `416` for a part
//! of exactly the expected size is treated as complete. Bytes received before a dropped
//! connection or a stall are flushed to the `.part` so the next attempt resumes after them.
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, RANGE};
use sha2::{Digest, Sha256};

use super::hash::{hash_reader, BUF_SIZE};
use super::{FetchError, ProgressSink};

/// Result of a finished transfer: the content's full sha256 and size (the `.part` is fsynced).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// Lowercase hex sha256 of the whole `.part`.
    pub sha256: String,
    /// Size of the `.part`.
    pub size: u64,
}

/// Builds the blocking HTTP client used for every transfer: `timeout` bounds connecting and
/// every single read (a stalled body fails after `timeout`, a slow but moving one does not).
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

/// Downloads `url` into `part`, resuming from what `part` already holds.
///
/// `expected_size` bounds the transfer: a server announcing or sending more is rejected before
/// the disk fills.
pub fn download_http(
    client: &reqwest::blocking::Client,
    url: &str,
    part: &Path,
    file_name: &str,
    expected_size: Option<u64>,
    progress: Option<&dyn ProgressSink>,
) -> Result<Transfer, FetchError> {
    let io_err = |e: io::Error| FetchError::io(part, e);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(part)
        .map_err(io_err)?;
    let mut have = file.metadata().map_err(io_err)?.len();
    if expected_size.is_some_and(|size| have > size) {
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

    let mut request = client.get(url);
    if have > 0 {
        request = request.header(RANGE, format!("bytes={have}-"));
    }
    let mut response = request.send().map_err(|e| network_error(url, e))?;
    let status = response.status().as_u16();
    let content_length = response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match status {
        206 if have > 0 => {
            let start = response
                .headers()
                .get(CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_content_range_start);
            if start != Some(have) {
                // Not the range we asked for: drop the part so the retry starts clean.
                file.set_len(0).map_err(io_err)?;
                return Err(FetchError::Protocol {
                    url: url.to_string(),
                    reason: format!(
                        "asked for bytes={have}-, got Content-Range {:?}; restarting from zero",
                        response.headers().get(CONTENT_RANGE)
                    ),
                });
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
        416 if have > 0 && expected_size == Some(have) => {
            // The part is already complete (an earlier run died before renaming it).
            file.sync_all().map_err(io_err)?;
            return Ok(Transfer {
                sha256: hex::encode(hasher.finalize()),
                size: have,
            });
        }
        416 if have > 0 => {
            file.set_len(0).map_err(io_err)?;
            return Err(FetchError::Protocol {
                url: url.to_string(),
                reason: format!("range bytes={have}- not satisfiable; restarting from zero"),
            });
        }
        _ => {
            return Err(FetchError::Http {
                url: url.to_string(),
                status,
            })
        }
    }
    let announced = content_length.map(|len| have + len);
    if let (Some(expected), Some(announced)) = (expected_size, announced) {
        if expected != announced {
            return Err(FetchError::SizeMismatch {
                file_name: file_name.to_string(),
                source_name: url.to_string(),
                expected,
                actual: announced,
            });
        }
    }

    if let Some(p) = progress {
        p.start(file_name, url, expected_size.or(announced), have);
    }
    let result = copy_hashing(
        &mut response,
        &mut file,
        &mut hasher,
        have,
        expected_size,
        progress,
    );
    let size = match result {
        Ok(size) => size,
        Err(CopyError::Read(e)) => return Err(read_error(url, &e)),
        Err(CopyError::Write(e)) => return Err(FetchError::io(part, e)),
        Err(CopyError::TooLong { limit }) => {
            file.set_len(0).map_err(io_err)?;
            return Err(FetchError::SizeMismatch {
                file_name: file_name.to_string(),
                source_name: url.to_string(),
                expected: limit,
                actual: limit + 1,
            });
        }
    };
    if let Some(announced) = announced {
        if size != announced {
            return Err(FetchError::Network {
                url: url.to_string(),
                message: format!("body ended at byte {size} of {announced}"),
                timed_out: false,
            });
        }
    }
    file.sync_all().map_err(io_err)?;
    Ok(Transfer {
        sha256: hex::encode(hasher.finalize()),
        size,
    })
}

/// Copies a local file (`file://` URL) into `part`, hashing while writing. No resume: local
/// copies are cheap to restart.
pub fn copy_local(
    source: &Path,
    part: &Path,
    file_name: &str,
    expected_size: Option<u64>,
    progress: Option<&dyn ProgressSink>,
) -> Result<Transfer, FetchError> {
    let mut input = File::open(source).map_err(|e| FetchError::io(source, e))?;
    let len = input
        .metadata()
        .map_err(|e| FetchError::io(source, e))?
        .len();
    if let Some(expected) = expected_size {
        if expected != len {
            return Err(FetchError::SizeMismatch {
                file_name: file_name.to_string(),
                source_name: source.display().to_string(),
                expected,
                actual: len,
            });
        }
    }
    let mut file = File::create(part).map_err(|e| FetchError::io(part, e))?;
    let mut hasher = Sha256::new();
    if let Some(p) = progress {
        p.start(file_name, &source.display().to_string(), Some(len), 0);
    }
    let result = copy_hashing(
        &mut input,
        &mut file,
        &mut hasher,
        0,
        expected_size,
        progress,
    );
    let size = match result {
        Ok(size) => size,
        Err(CopyError::Read(e)) => return Err(FetchError::io(source, e)),
        Err(CopyError::Write(e)) => return Err(FetchError::io(part, e)),
        Err(CopyError::TooLong { limit }) => {
            return Err(FetchError::SizeMismatch {
                file_name: file_name.to_string(),
                source_name: source.display().to_string(),
                expected: limit,
                actual: limit + 1,
            })
        }
    };
    file.sync_all().map_err(|e| FetchError::io(part, e))?;
    Ok(Transfer {
        sha256: hex::encode(hasher.finalize()),
        size,
    })
}

enum CopyError {
    Read(io::Error),
    Write(io::Error),
    TooLong { limit: u64 },
}

/// Streams `reader` to `file` (positioned at `have`), hashing every byte; returns the total
/// size. Whatever was received is flushed to `file` even when the read fails, so a later
/// attempt can resume after it.
fn copy_hashing(
    reader: &mut impl Read,
    file: &mut File,
    hasher: &mut Sha256,
    have: u64,
    limit: Option<u64>,
    progress: Option<&dyn ProgressSink>,
) -> Result<u64, CopyError> {
    // `progress` is advanced per chunk and finished here, whatever the outcome.
    let mut out = BufWriter::with_capacity(BUF_SIZE, file);
    let mut buf = vec![0u8; BUF_SIZE];
    let mut total = have;
    let outcome = loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => break Err(CopyError::Read(e)),
        };
        let chunk = &buf[..n];
        if let Some(limit) = limit {
            if total + n as u64 > limit {
                break Err(CopyError::TooLong { limit });
            }
        }
        if let Err(e) = out.write_all(chunk) {
            break Err(CopyError::Write(e));
        }
        hasher.update(chunk);
        total += n as u64;
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

/// Parses the first byte position of `Content-Range: bytes <start>-<end>/<total>`.
fn parse_content_range_start(value: &str) -> Option<u64> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (start, _) = rest.split_once('-')?;
    start.trim().parse().ok()
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
    message
}

/// The error of a request that got no answer; the URL is said once, by [`FetchError::Network`]
/// (reqwest's own message repeats it).
fn network_error(url: &str, e: reqwest::Error) -> FetchError {
    let timed_out = e.is_timeout();
    FetchError::Network {
        url: url.to_string(),
        message: error_chain(&e.without_url()),
        timed_out,
    }
}

fn read_error(url: &str, e: &io::Error) -> FetchError {
    let mut timed_out = e.kind() == io::ErrorKind::TimedOut;
    let mut source: Option<&(dyn std::error::Error + 'static)> = e.get_ref().map(|r| r as _);
    while let Some(s) = source {
        if let Some(re) = s.downcast_ref::<reqwest::Error>() {
            timed_out |= re.is_timeout();
        }
        source = s.source();
    }
    // reqwest's body errors may name the URL too; it is said once, by `FetchError::Network`.
    let mut message = error_chain(e).replace(&format!(" for url ({url})"), "");
    if timed_out && !message.contains("timed out") {
        message.push_str(" (timed out)");
    }
    FetchError::Network {
        url: url.to_string(),
        message: format!("reading body: {message}"),
        timed_out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_content_range() {
        assert_eq!(parse_content_range_start("bytes 600-999/1000"), Some(600));
        assert_eq!(parse_content_range_start("bytes */1000"), None);
    }
}
