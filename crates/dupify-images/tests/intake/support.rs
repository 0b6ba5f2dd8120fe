//! Test images built in code: encoded with the `image` crate, or assembled byte by byte
//! where the crate cannot produce what a test needs (EXIF segments, CMYK JPEGs, bombs).

#![allow(dead_code)] // each test file uses a different subset

use image::{Rgb, RgbImage};

pub fn encode(img: &RgbImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), format)
        .unwrap();
    out
}

pub fn encode_dyn(img: &image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), format)
        .unwrap();
    out
}

pub fn jpeg_quality(img: &RgbImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(img)
        .unwrap();
    out
}

/// A photo-like image: smooth gradients plus a deterministic texture.
pub fn photo(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let t = ((x * 31 + y * 17) % 23) as u8;
        Rgb([
            (x * 255 / w) as u8 ^ t,
            (y * 255 / h) as u8,
            ((x + y) % 256) as u8,
        ])
    })
}

pub const GREEN: [u8; 3] = [0, 255, 0];
pub const YELLOW: [u8; 3] = [255, 255, 0];
pub const RED: [u8; 3] = [255, 0, 0];
pub const BLUE: [u8; 3] = [0, 0, 255];

/// 64x32: left half red, right half blue, an 8x8 green block in the top-left corner and
/// an 8x8 yellow block in the top-right corner: where the two blocks end up identifies
/// every one of the 8 orientations.
pub fn marker() -> RgbImage {
    RgbImage::from_fn(64, 32, |x, y| {
        Rgb(if x < 8 && y < 8 {
            GREEN
        } else if x >= 56 && y < 8 {
            YELLOW
        } else if x < 32 {
            RED
        } else {
            BLUE
        })
    })
}

/// Whether a decoded pixel is near `want` (JPEG is lossy).
pub fn near(p: [u8; 4], want: [u8; 3]) -> bool {
    (0..3).all(|i| (p[i] as i32 - want[i] as i32).abs() < 60)
}

pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A TIFF structure (what follows `Exif\0\0`) whose IFD0 holds one entry: the
/// orientation (tag 0x0112, type SHORT, count 1, value inline).
pub fn tiff_with_orientation(orientation: u16, big_endian: bool) -> Vec<u8> {
    let u16b = |v: u16| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let u32b = |v: u32| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let mut t = Vec::new();
    t.extend_from_slice(if big_endian { b"MM" } else { b"II" });
    t.extend_from_slice(&u16b(42));
    t.extend_from_slice(&u32b(8)); // IFD0 right after the header
    t.extend_from_slice(&u16b(1)); // one entry
    t.extend_from_slice(&u16b(0x0112));
    t.extend_from_slice(&u16b(3));
    t.extend_from_slice(&u32b(1));
    t.extend_from_slice(&u16b(orientation));
    t.extend_from_slice(&[0, 0]); // the rest of the 4-byte value field
    t.extend_from_slice(&u32b(0)); // no next IFD
    t
}

/// Inserts an APP1 segment holding `Exif\0\0` + `tiff` right after SOI.
pub fn jpeg_with_app1(jpeg: &[u8], tiff: &[u8]) -> Vec<u8> {
    let mut seg = b"Exif\0\0".to_vec();
    seg.extend_from_slice(tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((seg.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&seg);
    out.extend_from_slice(&jpeg[2..]);
    out
}

pub fn jpeg_with_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    jpeg_with_app1(jpeg, &tiff_with_orientation(orientation, false))
}

/// A PNG chunk: length, type, data, CRC over type and data.
pub fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut c = (data.len() as u32).to_be_bytes().to_vec();
    c.extend_from_slice(kind);
    c.extend_from_slice(data);
    c.extend_from_slice(&crc32(&c[4..]).to_be_bytes());
    c
}

/// Inserts an eXIf chunk right after IHDR (signature 8 bytes + IHDR 25 bytes).
pub fn png_with_orientation(png: &[u8], orientation: u16) -> Vec<u8> {
    let mut out = png[..33].to_vec();
    out.extend_from_slice(&png_chunk(
        b"eXIf",
        &tiff_with_orientation(orientation, true),
    ));
    out.extend_from_slice(&png[33..]);
    out
}

/// Rewrites the dimensions in a PNG's IHDR (and its CRC).
pub fn png_claiming(png: &[u8], w: u32, h: u32) -> Vec<u8> {
    let mut bomb = png.to_vec();
    bomb[16..20].copy_from_slice(&w.to_be_bytes());
    bomb[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = crc32(&bomb[12..29]);
    bomb[29..33].copy_from_slice(&crc.to_be_bytes());
    bomb
}

/// Rewrites the dimensions in a baseline JPEG's SOF0 segment.
pub fn jpeg_claiming(jpeg: &[u8], w: u16, h: u16) -> Vec<u8> {
    let mut bomb = jpeg.to_vec();
    let sof = bomb
        .windows(2)
        .position(|m| m == [0xFF, 0xC0])
        .expect("a baseline JPEG");
    bomb[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
    bomb[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
    bomb
}

/// Rewrites a GIF's logical screen size.
pub fn gif_claiming(gif: &[u8], w: u16, h: u16) -> Vec<u8> {
    let mut bomb = gif.to_vec();
    bomb[6..8].copy_from_slice(&w.to_le_bytes());
    bomb[8..10].copy_from_slice(&h.to_le_bytes());
    bomb
}

/// Rewrites the size in a simple lossless WebP (`VP8L` chunk first).
pub fn webp_lossless_claiming(webp: &[u8], w: u32, h: u32) -> Vec<u8> {
    assert_eq!(&webp[12..16], b"VP8L", "a simple lossless WebP");
    assert_eq!(webp[20], 0x2f);
    let mut bomb = webp.to_vec();
    let old = u32::from_le_bytes(bomb[21..25].try_into().unwrap());
    let bits = (old & 0xf000_0000) | ((h - 1) << 14) | (w - 1);
    bomb[21..25].copy_from_slice(&bits.to_le_bytes());
    bomb
}

/// A baseline JPEG with four components stored the way Adobe (Photoshop) writes CMYK:
/// an APP14 "Adobe" segment with transform 0 and inverted samples (255 = no ink).
/// Each entry of `blocks` is one flat 8x8 block of (C, M, Y, K) ink amounts, laid out
/// left to right, so only DC coefficients are needed.
pub fn adobe_cmyk_jpeg(blocks: &[[u8; 4]]) -> Vec<u8> {
    let width = (blocks.len() * 8) as u16;
    let mut j = vec![0xFF, 0xD8];
    // APP14 Adobe: version 100, flags 0, 0, transform 0 (no colour transform).
    j.extend_from_slice(&[0xFF, 0xEE, 0, 14]);
    j.extend_from_slice(b"Adobe");
    j.extend_from_slice(&[0, 100, 0, 0, 0, 0, 0]);
    // DQT: table 0, all ones.
    j.extend_from_slice(&[0xFF, 0xDB, 0, 67, 0]);
    j.extend_from_slice(&[1; 64]);
    // SOF0: 8-bit, 8 rows, `width` columns, 4 components 1x1 sampled, table 0.
    j.extend_from_slice(&[0xFF, 0xC0, 0, 20, 8, 0, 8]);
    j.extend_from_slice(&width.to_be_bytes());
    j.push(4);
    for id in 1..=4 {
        j.extend_from_slice(&[id, 0x11, 0]);
    }
    // DHT DC 0: categories 0..=11 all with 4-bit codes, so category k is coded as k.
    j.extend_from_slice(&[0xFF, 0xC4, 0, 31, 0x00]);
    j.extend_from_slice(&[0, 0, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    j.extend_from_slice(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    // DHT AC 0: a single 1-bit code "0" for EOB.
    j.extend_from_slice(&[0xFF, 0xC4, 0, 20, 0x10]);
    j.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    j.push(0x00);
    // SOS: all four components, tables 0/0, full spectrum.
    j.extend_from_slice(&[0xFF, 0xDA, 0, 14, 4]);
    for id in 1..=4 {
        j.extend_from_slice(&[id, 0x00]);
    }
    j.extend_from_slice(&[0, 63, 0]);

    let mut bits = BitWriter::default();
    let mut prev = [0i32; 4];
    for block in blocks {
        for c in 0..4 {
            let stored = 255 - i32::from(block[c]); // Adobe inversion
                                                    // A flat block's DC coefficient is 8 * (sample - 128) with unit quantisation.
            let dc = 8 * (stored - 128);
            let diff = dc - prev[c];
            prev[c] = dc;
            let cat = 32 - diff.unsigned_abs().leading_zeros();
            bits.put(cat, 4);
            if cat > 0 {
                let v = if diff >= 0 {
                    diff
                } else {
                    diff + (1 << cat) - 1
                };
                bits.put(v as u32, cat);
            }
            bits.put(0, 1); // EOB
        }
    }
    j.extend_from_slice(&bits.finish());
    j.extend_from_slice(&[0xFF, 0xD9]);
    j
}

#[derive(Default)]
struct BitWriter {
    out: Vec<u8>,
    acc: u32,
    n: u32,
}

impl BitWriter {
    fn put(&mut self, value: u32, len: u32) {
        for i in (0..len).rev() {
            self.acc = (self.acc << 1) | ((value >> i) & 1);
            self.n += 1;
            if self.n == 8 {
                self.flush_byte();
            }
        }
    }

    fn flush_byte(&mut self) {
        let b = self.acc as u8;
        self.out.push(b);
        if b == 0xFF {
            self.out.push(0); // byte stuffing
        }
        self.acc = 0;
        self.n = 0;
    }

    fn finish(mut self) -> Vec<u8> {
        while self.n != 0 {
            self.put(1, 1); // pad with ones
        }
        self.out
    }
}

/// A tiny deterministic PRNG (xorshift64*), so fuzz-ish tests are reproducible.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}
