//! Is a picture file whole? A structural walk of its container, before any decoding.
//!
//! Decoders disagree on partial files: the JPEG decoder behind `image` (zune-jpeg) and every
//! browser fill what is missing with grey and report success, while a partial PNG may decode
//! up to its last whole row. A segmentation of half a picture is a silent wrong answer, so the
//! CLI and the page both ask [`check_complete`] first and refuse a file that ends before its
//! format's end marker. The walk reads only lengths and markers (no pixels), so it costs
//! nothing beside decoding, and it is the same code natively and in the browser.
//!
//! Bytes after the end marker are allowed (cameras and editors append trailers); a file in a
//! format not listed here is left to the decoder.

use std::fmt;

/// A container format this module can walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Jpeg,
    Png,
    Gif,
    WebP,
    Bmp,
    /// ISO base media files: AVIF (and HEIF) pictures.
    Avif,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Jpeg => "JPEG",
            Format::Png => "PNG",
            Format::Gif => "GIF",
            Format::WebP => "WebP",
            Format::Bmp => "BMP",
            Format::Avif => "AVIF",
        }
    }

    /// Recognises a format by its leading bytes.
    pub fn sniff(bytes: &[u8]) -> Option<Format> {
        if bytes.starts_with(&[0xFF, 0xD8]) {
            Some(Format::Jpeg)
        } else if bytes.starts_with(PNG_SIGNATURE) {
            Some(Format::Png)
        } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
            Some(Format::Gif)
        } else if bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP" {
            Some(Format::WebP)
        } else if bytes.starts_with(b"BM") && bytes.len() >= 14 {
            Some(Format::Bmp)
        } else if bytes.len() >= 8 && &bytes[4..8] == b"ftyp" {
            Some(Format::Avif)
        } else {
            None
        }
    }
}

const PNG_SIGNATURE: &[u8] = &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];

/// Why a picture is not whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incomplete {
    pub format: Format,
    /// The file's length: where its data stops.
    pub at: usize,
    /// What was still to come, e.g. "the end-of-image marker".
    pub missing: &'static str,
}

impl fmt::Display for Incomplete {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the {} data ends early, at byte {} (before {}): the file is truncated",
            self.format.name(),
            self.at,
            self.missing
        )
    }
}

impl std::error::Error for Incomplete {}

/// Where a whole picture ends, or why it is not whole.
///
/// `Ok(Some((format, end)))`: what the picture needs ends at byte `end` (anything after it is
/// ignored by decoders). `Ok(None)`: not a format walked here. A prefix of such a file cut
/// before `end` is never `Ok(Some(_))`: it is `Err`, or `Ok(None)` when it is too short to
/// name its format (under 14 bytes), which no decoder takes for a picture either.
pub fn check_complete(bytes: &[u8]) -> Result<Option<(Format, usize)>, Incomplete> {
    let Some(format) = Format::sniff(bytes) else {
        return Ok(None);
    };
    let early = |missing| Incomplete {
        format,
        at: bytes.len(),
        missing,
    };
    let end = match format {
        Format::Jpeg => jpeg_end(bytes),
        Format::Png => png_end(bytes),
        Format::Gif => gif_end(bytes),
        Format::WebP => riff_end(bytes),
        Format::Bmp => bmp_end(bytes),
        Format::Avif => isobmff_end(bytes),
    }
    .map_err(early)?;
    Ok(Some((format, end)))
}

fn be16(b: &[u8], at: usize) -> Option<usize> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?) as usize)
}

fn be32(b: &[u8], at: usize) -> Option<usize> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?) as usize)
}

fn le16(b: &[u8], at: usize) -> Option<usize> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?) as usize)
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// JPEG: segments from SOI, each scan's entropy-coded data up to the next marker, until EOI.
/// Progressive files have several scans; all of them must arrive.
fn jpeg_end(b: &[u8]) -> Result<usize, &'static str> {
    const EOI: &str = "the end-of-image marker";
    let mut pos = 2;
    loop {
        // Fill bytes (0xFF) may precede a marker; anything else between segments is skipped,
        // as decoders skip it.
        while pos < b.len() && b[pos] != 0xFF {
            pos += 1;
        }
        while pos + 1 < b.len() && b[pos + 1] == 0xFF {
            pos += 1;
        }
        let marker = *b.get(pos + 1).ok_or(EOI)?;
        match marker {
            0xD9 => return Ok(pos + 2),
            // Stand-alone markers: SOI, RSTn, TEM; and 0x00 (a stray stuffed byte).
            0xD8 | 0xD0..=0xD7 | 0x01 | 0x00 => pos += 2,
            _ => {
                let len = be16(b, pos + 2).ok_or(EOI)?;
                let end = pos + 2 + len;
                if len < 2 || end > b.len() {
                    return Err(if marker == 0xDA {
                        "the scan header"
                    } else {
                        "the end of a marker segment"
                    });
                }
                pos = end;
                if marker == 0xDA {
                    pos = scan_end(b, pos).ok_or("the end of the scan data")?;
                }
            }
        }
    }
}

/// The offset of the marker that ends entropy-coded data starting at `pos`.
fn scan_end(b: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        pos += b.get(pos..)?.iter().position(|&x| x == 0xFF)?;
        let mut next = pos + 1;
        while *b.get(next)? == 0xFF {
            next += 1;
        }
        match b[next] {
            // A stuffed zero or a restart marker belongs to the scan.
            0x00 | 0xD0..=0xD7 => pos = next + 1,
            _ => return Some(next - 1),
        }
    }
}

/// PNG: chunks (length, type, data, CRC) until IEND.
fn png_end(b: &[u8]) -> Result<usize, &'static str> {
    let mut pos = PNG_SIGNATURE.len();
    let mut seen_data = false;
    loop {
        let missing = if seen_data {
            "the IEND chunk"
        } else {
            "the image data"
        };
        let len = be32(b, pos).ok_or(missing)?;
        let kind = b.get(pos + 4..pos + 8).ok_or(missing)?;
        let end = pos
            .checked_add(12)
            .and_then(|p| p.checked_add(len))
            .ok_or(missing)?;
        if end > b.len() {
            return Err(if kind == b"IDAT" {
                "the end of the image data"
            } else {
                missing
            });
        }
        seen_data |= kind == b"IDAT";
        if kind == b"IEND" {
            return Ok(end);
        }
        pos = end;
    }
}

/// GIF: header, colour table, then blocks (extensions, images with their data sub-blocks)
/// until the trailer byte.
fn gif_end(b: &[u8]) -> Result<usize, &'static str> {
    const TRAILER: &str = "the trailer";
    let flags = *b.get(10).ok_or("the screen descriptor")?;
    let mut pos = 13;
    if flags & 0x80 != 0 {
        pos += 3 << ((flags & 7) + 1);
    }
    // Data sub-blocks: a length byte, that many bytes, until a zero length.
    let sub_blocks = |mut pos: usize| -> Option<usize> {
        loop {
            let n = *b.get(pos)? as usize;
            pos += 1 + n;
            if n == 0 {
                return (pos <= b.len()).then_some(pos);
            }
        }
    };
    loop {
        match *b.get(pos).ok_or(TRAILER)? {
            0x3B => return Ok(pos + 1),
            0x21 => pos = sub_blocks(pos + 2).ok_or("the end of an extension")?,
            0x2C => {
                let flags = *b.get(pos + 9).ok_or("an image descriptor")?;
                pos += 10;
                if flags & 0x80 != 0 {
                    pos += 3 << ((flags & 7) + 1);
                }
                // The LZW code size byte, then the image data.
                pos = sub_blocks(pos + 1).ok_or("the end of the image data")?;
            }
            // Not a GIF block: the rest is not GIF, leave it to the decoder.
            _ => return Ok(pos),
        }
    }
}

/// WebP: the RIFF header states the file's size (an odd size's pad byte may be missing).
fn riff_end(b: &[u8]) -> Result<usize, &'static str> {
    let size = le32(b, 4).ok_or("the RIFF header")? as usize;
    let end = size.saturating_add(8);
    if b.len() < end {
        return Err("the end of the RIFF data");
    }
    Ok(end)
}

/// BMP: the pixel array's offset and, uncompressed, its size from the header's dimensions.
fn bmp_end(b: &[u8]) -> Result<usize, &'static str> {
    const HEADER: &str = "the info header";
    let offset = u64::from(le32(b, 10).ok_or("the file header")?);
    let header = le32(b, 14).ok_or(HEADER)?;
    // Rows are padded to 4 bytes; u64 so that no header can overflow the sum.
    let rows = |w: u64, h: u64, bits: u64| (w * bits).div_ceil(32) * 4 * h;
    let size = if header == 12 {
        // OS/2 core header: 16-bit dimensions, always uncompressed.
        let w = le16(b, 18).ok_or(HEADER)? as u64;
        let h = le16(b, 20).ok_or(HEADER)? as u64;
        let bits = le16(b, 24).ok_or(HEADER)? as u64;
        rows(w, h, bits)
    } else {
        let w = le32(b, 18).ok_or(HEADER)? as i32;
        let h = le32(b, 22).ok_or(HEADER)? as i32;
        let bits = le16(b, 28).ok_or(HEADER)? as u64;
        let compression = le32(b, 30).ok_or(HEADER)?;
        let stated = le32(b, 34).ok_or(HEADER)?;
        match compression {
            // Uncompressed and bit-field pixels.
            0 | 3 | 6 => rows(
                u64::from(w.unsigned_abs()),
                u64::from(h.unsigned_abs()),
                bits,
            ),
            // Run-length and embedded JPEG/PNG: the header's stated size.
            _ => u64::from(stated),
        }
    };
    let end = offset + size;
    if (b.len() as u64) < end {
        Err("the end of the pixel data")
    } else {
        Ok(end as usize)
    }
}

/// AVIF/HEIF: top-level boxes, each stating its size, must be whole up to and including the
/// metadata (`meta`) and the coded image (`mdat`); what follows both is a trailer.
fn isobmff_end(b: &[u8]) -> Result<usize, &'static str> {
    let (mut pos, mut meta, mut mdat) = (0usize, false, false);
    while !(meta && mdat) {
        let whole = (|| {
            let kind = b.get(pos + 4..pos + 8)?;
            let size = match be32(b, pos)? as u64 {
                // To the end of the file.
                0 => (b.len() - pos) as u64,
                1 => ((be32(b, pos + 8)? as u64) << 32) | be32(b, pos + 12)? as u64,
                n => n,
            };
            let end = (pos as u64).checked_add(size)?;
            (size >= 8 && end <= b.len() as u64).then_some((kind, end as usize))
        })();
        let Some((kind, end)) = whole else {
            return Err(if b.get(pos + 4..pos + 8) == Some(b"mdat") || meta {
                "the end of the image data"
            } else {
                "the end of a box"
            });
        };
        meta |= kind == b"meta";
        mdat |= kind == b"mdat";
        pos = end;
    }
    Ok(pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal baseline JPEG's structure: SOI, APP0, SOF0, SOS with stuffed bytes and a
    /// restart marker in its scan, EOI.
    fn jpeg() -> Vec<u8> {
        let mut b = vec![0xFF, 0xD8];
        b.extend([0xFF, 0xE0, 0, 6, b'J', b'F', b'I', b'F']);
        b.extend([0xFF, 0xC0, 0, 11, 8, 0, 1, 0, 1, 1, 1, 0x11, 0]);
        b.extend([0xFF, 0xDA, 0, 8, 1, 1, 0, 0, 63, 0]);
        b.extend([
            0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56, 0xFF, 0xFF, 0x00, 0x78,
        ]);
        b.extend([0xFF, 0xD9]);
        b
    }

    fn png() -> Vec<u8> {
        let mut b = PNG_SIGNATURE.to_vec();
        for (kind, data) in [
            (b"IHDR", &[0u8; 13][..]),
            (b"IDAT", &[1, 2, 3, 4, 5][..]),
            (b"IEND", &[][..]),
        ] {
            b.extend((data.len() as u32).to_be_bytes());
            b.extend(kind);
            b.extend(data);
            b.extend([0; 4]);
        }
        b
    }

    fn gif() -> Vec<u8> {
        let mut b = b"GIF89a".to_vec();
        b.extend([1, 0, 1, 0, 0x80, 0, 0]); // 1x1, a 2-entry global colour table
        b.extend([0; 6]);
        b.extend([0x21, 0xF9, 4, 0, 0, 0, 0, 0]);
        b.extend([0x2C, 0, 0, 0, 0, 1, 0, 1, 0, 0, 2, 2, 0x4C, 0x01, 0]);
        b.push(0x3B);
        b
    }

    fn webp() -> Vec<u8> {
        let mut b = b"RIFF".to_vec();
        b.extend(16u32.to_le_bytes());
        b.extend(b"WEBPVP8L");
        b.extend(4u32.to_le_bytes());
        b.extend([0x2F, 0, 0, 0]);
        b
    }

    fn bmp() -> Vec<u8> {
        // 3x2, 24 bits: rows of 9 bytes padded to 12.
        let mut b = b"BM".to_vec();
        b.extend((54u32 + 24).to_le_bytes());
        b.extend([0; 4]);
        b.extend(54u32.to_le_bytes());
        b.extend(40u32.to_le_bytes());
        b.extend(3i32.to_le_bytes());
        b.extend(2i32.to_le_bytes());
        b.extend(1u16.to_le_bytes());
        b.extend(24u16.to_le_bytes());
        b.extend([0; 24]);
        b.extend([7; 24]);
        b
    }

    fn avif() -> Vec<u8> {
        let mut b = Vec::new();
        for (kind, len) in [(b"ftyp", 12usize), (b"meta", 20), (b"mdat", 9)] {
            b.extend((8 + len as u32).to_be_bytes());
            b.extend(kind);
            b.extend(vec![0; len]);
        }
        b
    }

    /// Every strict prefix that still names the format is refused, at its own length;
    /// the whole file and the file with bytes appended are accepted.
    fn every_cut(whole: &[u8], format: Format) {
        let end = whole.len();
        assert_eq!(check_complete(whole), Ok(Some((format, end))));
        let mut longer = whole.to_vec();
        longer.extend(b"trailing bytes \xFF\xD8\x00");
        assert_eq!(check_complete(&longer), Ok(Some((format, end))));
        for cut in 1..end {
            let part = &whole[..cut];
            match check_complete(part) {
                Err(e) => {
                    assert_eq!((e.format, e.at), (format, cut));
                    assert!(
                        e.to_string()
                            .contains(&format!("ends early, at byte {cut}"))
                    );
                }
                // Too short to name the format: the decoder refuses it as not a picture.
                Ok(None) => assert!(cut < 14, "{format:?} cut at {cut}"),
                Ok(Some(_)) => panic!("{format:?} cut at {cut} of {end} accepted"),
            }
        }
    }

    #[test]
    fn every_prefix_of_each_format_is_refused() {
        every_cut(&jpeg(), Format::Jpeg);
        every_cut(&png(), Format::Png);
        every_cut(&gif(), Format::Gif);
        every_cut(&webp(), Format::WebP);
        every_cut(&bmp(), Format::Bmp);
        every_cut(&avif(), Format::Avif);
    }

    #[test]
    fn a_progressive_jpeg_needs_every_scan() {
        // Two scans: a cut between them (after the first scan's data) is still refused.
        let mut b = jpeg();
        let eoi = b.len() - 2;
        let second = [0xFF, 0xDA, 0, 8, 1, 1, 0, 0, 63, 0, 0x9A, 0xBC];
        b.splice(eoi..eoi, second);
        every_cut(&b, Format::Jpeg);
        let e = check_complete(&b[..eoi + 4]).unwrap_err();
        assert_eq!(e.missing, "the scan header");
    }

    /// The prefix property on many damaged variants of each format: bytes flipped, lengths
    /// changed, segments repeated. Whatever the walk accepts, no cut before its end passes.
    #[test]
    fn no_prefix_of_an_accepted_file_is_accepted() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut accepted = 0;
        for whole in [jpeg(), png(), gif(), webp(), bmp(), avif()] {
            for _ in 0..300 {
                let mut b = whole.clone();
                for _ in 0..1 + next() % 4 {
                    let i = next() as usize % b.len();
                    match next() % 3 {
                        0 => b[i] = next() as u8,
                        1 => b[i] = [0x00, 0xFF, 0xD9, 0xDA, 0x01][next() as usize % 5],
                        _ => {
                            let j = i + next() as usize % (b.len() - i);
                            let piece = b[i..j].to_vec();
                            b.splice(j..j, piece);
                        }
                    }
                }
                if let Ok(Some((_, end))) = check_complete(&b) {
                    accepted += 1;
                    for cut in 0..end {
                        assert!(
                            !matches!(check_complete(&b[..cut]), Ok(Some(_))),
                            "{b:02x?} accepted when cut at {cut} of {end}"
                        );
                    }
                }
            }
        }
        assert!(accepted > 300, "only {accepted} variants were whole");
    }

    #[test]
    fn messages_name_what_is_missing() {
        let j = jpeg();
        let e = check_complete(&j[..j.len() - 1]).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "the JPEG data ends early, at byte {} (before the end of the scan data): the file is truncated",
                j.len() - 1
            )
        );
        let p = png();
        let e = check_complete(&p[..p.len() - 12]).unwrap_err();
        assert_eq!(e.missing, "the IEND chunk");
        assert_eq!(check_complete(b"plain text"), Ok(None));
        assert_eq!(check_complete(b""), Ok(None));
    }
}
