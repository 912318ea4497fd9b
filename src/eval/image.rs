//! Image decoding, pixel for pixel what timm's `Image.open(f).convert("RGB")` gives on Pillow
//! 13.0.0.
//!
//! - **JPEG** through libjpeg-turbo (the `turbojpeg` crate, vendored libjpeg-turbo 3.1; Pillow's
//!   wheel bundles 3.2). Pillow decodes with libjpeg's defaults (`JDCT_ISLOW`, smooth "fancy"
//!   chroma upsampling; `draft()` is never called by timm), which are also TurboJPEG's defaults,
//!   so RGB and grayscale decodes are bit-identical (measured on 4:2:0, 4:2:2, 4:4:4, progressive
//!   and grayscale files; `tests/python/eval_parity.py`).
//! - **Grayscale** JPEG/PNG → RGB by replication (Pillow's `l2rgb`).
//! - **CMYK** JPEG: Pillow always reads 4-component JPEGs with rawmode `CMYK;I` ("assume adobe
//!   conventions", `JpegImagePlugin.py`), i.e. it stores `255 − v`; `convert("RGB")` is then
//!   `cmyk2rgb` (`libImaging/Convert.c`): `nk = 255 − k; out = CLIP8(nk − MULDIV255(c, nk))` with
//!   `MULDIV255(a, b) = ((a·b + 128) >> 8) + a·b + 128) >> 8`. libjpeg converts YCCK to CMYK itself.
//! - **PNG** through the `png` crate: palette and sub-byte grey expanded, 16-bit samples reduced
//!   to their high byte (Pillow's `RGB;16B` rawmode), alpha dropped (Pillow's `rgba2rgb`).
//!   16-bit greyscale is refused: Pillow opens it as `I;16` and clips rather than shifts.
//! - No EXIF orientation and no ICC profile is applied: timm applies neither.
//!
//! A JPEG that ends before its end-of-image marker is an error ([`EvalError::Truncated`]), as it is
//! for Pillow ("image file is truncated"). libjpeg's other warnings (say, extraneous bytes before
//! a marker) are not errors for Pillow either: the decoded pixels are kept.
use std::io::Cursor;

use super::EvalError;

/// An 8-bit RGB image, rows top to bottom, pixels interleaved (`HWC`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    /// Columns.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// `width · height · 3` bytes.
    pub data: Vec<u8>,
}

/// What a file's first bytes say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `FF D8 FF`.
    Jpeg,
    /// `89 50 4E 47 0D 0A 1A 0A`.
    Png,
}

/// The format from the magic bytes (never from the file name: ImageNet's train set has a PNG
/// named `.JPEG`).
pub fn sniff(bytes: &[u8]) -> Option<Format> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(Format::Jpeg)
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(Format::Png)
    } else {
        None
    }
}

/// Decodes a JPEG or PNG to RGB as Pillow does. `name` names the image in errors (a path, or
/// `shard.tar:member`).
pub fn decode(bytes: &[u8], name: &str) -> Result<RgbImage, EvalError> {
    match sniff(bytes) {
        Some(Format::Jpeg) => decode_jpeg(bytes, name),
        Some(Format::Png) => decode_png(bytes, name),
        None => Err(EvalError::UnknownFormat {
            image: name.to_string(),
            magic: bytes.iter().take(8).map(|b| format!("{b:02x}")).collect(),
        }),
    }
}

/// Whether the JPEG's end-of-image marker `FF D9` is in its last 4 KiB (some writers append
/// padding or data after it). Entropy-coded data never holds `FF D9` (an `FF` byte there is
/// stuffed with `00`), so finding it means the scan data ended normally.
fn has_eoi(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(4096)..];
    tail.windows(2).any(|w| w == [0xFF, 0xD9])
}

fn jpeg_error(name: &str, bytes: &[u8], message: String) -> EvalError {
    if !has_eoi(bytes) || message.contains("Premature end of JPEG file") {
        EvalError::Truncated {
            image: name.to_string(),
            len: bytes.len() as u64,
            detail: message,
        }
    } else {
        EvalError::Jpeg {
            image: name.to_string(),
            message,
        }
    }
}

/// libjpeg's warning messages (`jerror.h`, `JWRN_*`): TurboJPEG returns them as errors after
/// decoding the whole image; Pillow ignores them.
fn is_libjpeg_warning(message: &str) -> bool {
    const WARNINGS: [&str; 7] = [
        "Corrupt JPEG data",
        "Unknown Adobe color transform code",
        "Inconsistent progression sequence",
        "Warning: unknown JFIF revision",
        "Invalid SOS parameters for sequential JPEG",
        "Application transferred too many scanlines",
        "Unsupported marker type",
    ];
    WARNINGS.iter().any(|w| message.contains(w))
}

fn decode_jpeg(bytes: &[u8], name: &str) -> Result<RgbImage, EvalError> {
    let err = |e: turbojpeg::Error| jpeg_error(name, bytes, e.to_string());
    let mut d = turbojpeg::Decompressor::new().map_err(err)?;
    let header = d.read_header(bytes).map_err(err)?;
    let (width, height) = (header.width, header.height);
    let format = match header.colorspace {
        turbojpeg::Colorspace::Gray => turbojpeg::PixelFormat::GRAY,
        turbojpeg::Colorspace::CMYK | turbojpeg::Colorspace::YCCK => turbojpeg::PixelFormat::CMYK,
        _ => turbojpeg::PixelFormat::RGB,
    };
    let channels = format.size();
    let len = width
        .checked_mul(height)
        .and_then(|n| n.checked_mul(channels))
        .filter(|&n| n <= MAX_PIXELS * 4)
        .ok_or_else(|| EvalError::Unsupported {
            image: name.to_string(),
            what: format!("{width}x{height} pixels (more than {MAX_PIXELS})"),
        })?;
    let mut pixels = vec![0u8; len];
    let image = turbojpeg::Image {
        pixels: pixels.as_mut_slice(),
        width,
        pitch: width * channels,
        height,
        format,
    };
    if let Err(e) = d.decompress(bytes, image) {
        let message = e.to_string();
        // A warning still decodes every row; a truncated file is an error, as for Pillow.
        if !is_libjpeg_warning(&message) || !has_eoi(bytes) {
            return Err(jpeg_error(name, bytes, message));
        }
    }
    let data = match format {
        turbojpeg::PixelFormat::GRAY => gray_to_rgb(&pixels),
        turbojpeg::PixelFormat::CMYK => pixels.chunks_exact(4).flat_map(cmyk_to_rgb).collect(),
        _ => pixels,
    };
    Ok(RgbImage {
        width,
        height,
        data,
    })
}

/// The largest image decoded (a 2 GB RGBA buffer); ImageNet's largest is about 25 Mpixel.
pub const MAX_PIXELS: usize = 1 << 29;

fn gray_to_rgb(gray: &[u8]) -> Vec<u8> {
    gray.iter().flat_map(|&v| [v, v, v]).collect()
}

/// One raw libjpeg CMYK pixel → Pillow's RGB (`CMYK;I` unpack, then `cmyk2rgb`).
fn cmyk_to_rgb(raw: &[u8]) -> [u8; 3] {
    let muldiv255 = |a: i32, b: i32| {
        let t = a * b + 128;
        ((t >> 8) + t) >> 8
    };
    let nk = i32::from(raw[3]); // 255 − (255 − raw k)
    let chan = |v: u8| (nk - muldiv255(255 - i32::from(v), nk)).clamp(0, 255) as u8;
    [chan(raw[0]), chan(raw[1]), chan(raw[2])]
}

fn decode_png(bytes: &[u8], name: &str) -> Result<RgbImage, EvalError> {
    let err = |e: png::DecodingError| {
        let message = e.to_string();
        if matches!(e, png::DecodingError::IoError(_)) || message.contains("EOF") {
            EvalError::Truncated {
                image: name.to_string(),
                len: bytes.len() as u64,
                detail: message,
            }
        } else {
            EvalError::Png {
                image: name.to_string(),
                message,
            }
        }
    };
    let mut decoder = png::Decoder::new(Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let header = decoder.read_header_info().map_err(err)?;
    let (source_color, source_depth) = (header.color_type, header.bit_depth);
    let (width, height) = (header.width as usize, header.height as usize);
    if width.saturating_mul(height) > MAX_PIXELS {
        return Err(EvalError::Unsupported {
            image: name.to_string(),
            what: format!("{width}x{height} pixels (more than {MAX_PIXELS})"),
        });
    }
    if source_depth == png::BitDepth::Sixteen
        && matches!(
            source_color,
            png::ColorType::Grayscale | png::ColorType::GrayscaleAlpha
        )
    {
        return Err(EvalError::Unsupported {
            image: name.to_string(),
            what: "16-bit greyscale PNG (Pillow reads it as I;16 and clips; not reproduced)".into(),
        });
    }
    let mut reader = decoder.read_info().map_err(err)?;
    let mut buf = vec![0u8; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut buf).map_err(err)?;
    let buf = &buf[..frame.buffer_size()];
    let rows = |bpp: usize| {
        buf.chunks(frame.line_size)
            .flat_map(move |row| row[..width * bpp].chunks_exact(bpp))
    };
    let data: Vec<u8> = match frame.color_type {
        png::ColorType::Rgb => rows(3).flatten().copied().collect(),
        png::ColorType::Rgba => rows(4).flat_map(|p| [p[0], p[1], p[2]]).collect(),
        png::ColorType::Grayscale => rows(1).flat_map(|p| [p[0], p[0], p[0]]).collect(),
        png::ColorType::GrayscaleAlpha => rows(2).flat_map(|p| [p[0], p[0], p[0]]).collect(),
        png::ColorType::Indexed => {
            return Err(EvalError::Unsupported {
                image: name.to_string(),
                what: "indexed PNG left unexpanded".into(),
            })
        }
    };
    Ok(RgbImage {
        width,
        height,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmyk_matches_pillows_arithmetic() {
        // Raw (Adobe-inverted) 255 everywhere = no ink = white; raw k = 0 = full black.
        assert_eq!(cmyk_to_rgb(&[255, 255, 255, 255]), [255, 255, 255]);
        assert_eq!(cmyk_to_rgb(&[255, 255, 255, 0]), [0, 0, 0]);
        // Pillow: c = 255 − 55 = 200, nk = 255 − (255 − 200) = 200 → 200 − MULDIV255(200, 200) = 43.
        assert_eq!(cmyk_to_rgb(&[55, 255, 0, 200])[0], 43);
    }

    #[test]
    fn unknown_format_names_the_image_and_its_bytes() {
        let e = decode(b"GIF89a..", "val/n01/x.JPEG").unwrap_err();
        assert_eq!(
            e.to_string(),
            "val/n01/x.JPEG: not a JPEG or PNG (first bytes 474946383961 2e2e)"
                .replace("61 2e", "612e")
        );
    }

    #[test]
    fn eoi_is_found_before_padding_only() {
        assert!(has_eoi(&[0xFF, 0xD8, 1, 2, 0xFF, 0xD9]));
        assert!(has_eoi(&[0xFF, 0xD8, 1, 2, 0xFF, 0xD9, 0, 0]));
        assert!(!has_eoi(&[0xFF, 0xD8, 1, 2, 3]));
    }
}
