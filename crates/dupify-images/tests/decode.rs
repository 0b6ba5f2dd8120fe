//! Decoding real encoded images: every format, EXIF orientation, reduced-scale JPEG,
//! decompression bombs, truncated and random data.

use dupify_core::ErrorCode;
use dupify_images::{decode, fit_within, sniff, DecodeTarget, ImageFormat, IntakeLimits};
use image::{Rgb, RgbImage, Rgba, RgbaImage};

fn encode_rgb(img: &RgbImage, f: image::ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), f)
        .unwrap();
    out
}

/// A photo-like test image: smooth gradients plus a deterministic texture.
fn photo(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let t = ((x * 31 + y * 17) % 23) as u8;
        Rgb([
            (x * 255 / w) as u8 ^ t,
            (y * 255 / h) as u8,
            ((x + y) % 256) as u8,
        ])
    })
}

/// 64x32: left half red, right half blue, an 8x8 green block in the top-left corner.
fn marker() -> RgbImage {
    RgbImage::from_fn(64, 32, |x, y| {
        if x < 8 && y < 8 {
            Rgb([0, 255, 0])
        } else if x < 32 {
            Rgb([255, 0, 0])
        } else {
            Rgb([0, 0, 255])
        }
    })
}

#[test]
fn every_format_decodes_and_sniffs() {
    let img = marker();
    for (f, ours) in [
        (image::ImageFormat::Png, ImageFormat::Png),
        (image::ImageFormat::Jpeg, ImageFormat::Jpeg),
        (image::ImageFormat::Gif, ImageFormat::Gif),
        (image::ImageFormat::WebP, ImageFormat::WebP),
    ] {
        let bytes = encode_rgb(&img, f);
        assert_eq!(sniff(&bytes).unwrap(), ours);
        let d = decode(&bytes, &IntakeLimits::default(), DecodeTarget::Full).unwrap();
        assert_eq!((d.image.width(), d.image.height()), (64, 32), "{f:?}");
        assert_eq!((d.original_width, d.original_height), (64, 32));
        assert_eq!(d.format, ours);
        assert!(!d.has_alpha);
        let p = d.image.get_pixel(48, 16).0;
        assert!(p[2] > 200 && p[0] < 60, "{f:?}: {p:?}");
    }
}

#[test]
fn transparency_is_reported() {
    let img = RgbaImage::from_fn(20, 20, |x, _| {
        if x < 10 {
            Rgba([0, 0, 0, 0])
        } else {
            Rgba([200, 0, 0, 255])
        }
    });
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .unwrap();
    let d = decode(&bytes, &IntakeLimits::default(), DecodeTarget::Full).unwrap();
    assert!(d.has_alpha);
}

#[test]
fn unsupported_and_corrupt() {
    for junk in [
        &b""[..],
        b"hello",
        b"BM\x00\x00 a bitmap header",
        b"%PDF-1.7",
        b"II*\x00 tiff",
    ] {
        assert_eq!(sniff(junk).unwrap_err().code, ErrorCode::UnsupportedFormat);
    }
    let lim = IntakeLimits::default();
    for f in [
        image::ImageFormat::Png,
        image::ImageFormat::Jpeg,
        image::ImageFormat::Gif,
        image::ImageFormat::WebP,
    ] {
        let bytes = encode_rgb(&photo(120, 90), f);
        for cut in [bytes.len() / 3, bytes.len() / 2, bytes.len() - 10] {
            match decode(&bytes[..cut], &lim, DecodeTarget::Full) {
                Err(e) => assert_eq!(e.code, ErrorCode::ProcessingFailed, "{f:?} cut {cut}: {e}"),
                // Some decoders fill a truncated tail; that is fine as long as it does not panic.
                Ok(d) => assert_eq!(d.image.width(), 120),
            }
        }
    }
    // Random bytes behind every magic number never panic.
    let mut state = 99u64;
    for magic in [
        &b"\xff\xd8\xff"[..],
        b"\x89PNG\r\n\x1a\n",
        b"GIF89a",
        b"RIFF\x10\x00\x00\x00WEBPVP8 ",
    ] {
        for _ in 0..50 {
            let mut v = magic.to_vec();
            for _ in 0..200 {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                v.push((state >> 33) as u8);
            }
            let _ = decode(&v, &lim, DecodeTarget::AtLeast(64));
        }
    }
}

/// PNG whose header claims huge dimensions: refused from the header alone.
#[test]
fn decompression_bombs_are_refused_before_decoding() {
    let small = encode_rgb(&photo(8, 8), image::ImageFormat::Png);
    let mut bomb = small.clone();
    // IHDR data starts at byte 16: width, height (big-endian), then the CRC at 29..33.
    bomb[16..20].copy_from_slice(&60_000u32.to_be_bytes());
    bomb[20..24].copy_from_slice(&60_000u32.to_be_bytes());
    let crc = crc32(&bomb[12..29]);
    bomb[29..33].copy_from_slice(&crc.to_be_bytes());
    let e = decode(&bomb, &IntakeLimits::default(), DecodeTarget::Full)
        .err()
        .expect("refused");
    assert_eq!(e.code, ErrorCode::ImageTooLarge, "{e}");

    let tight = IntakeLimits {
        max_pixels: 1000,
        ..IntakeLimits::default()
    };
    let jpeg = encode_rgb(&photo(100, 100), image::ImageFormat::Jpeg);
    assert_eq!(
        decode(&jpeg, &tight, DecodeTarget::Full)
            .err()
            .unwrap()
            .code,
        ErrorCode::ImageTooLarge
    );
}

fn crc32(data: &[u8]) -> u32 {
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

#[test]
fn jpeg_decodes_at_reduced_scale() {
    let bytes = encode_rgb(&photo(2000, 1500), image::ImageFormat::Jpeg);
    let lim = IntakeLimits::default();
    let d = decode(&bytes, &lim, DecodeTarget::AtLeast(512)).unwrap();
    // 1/2 gives 1000 (1/4 would give 500 < 512).
    assert_eq!((d.image.width(), d.image.height()), (1000, 750));
    assert_eq!((d.original_width, d.original_height), (2000, 1500));
    let d = decode(&bytes, &lim, DecodeTarget::AtLeast(200)).unwrap();
    assert_eq!((d.image.width(), d.image.height()), (250, 188));
    let d = decode(&bytes, &lim, DecodeTarget::Full).unwrap();
    assert_eq!((d.image.width(), d.image.height()), (2000, 1500));
    let small = fit_within(&d.image, 512);
    assert_eq!((small.width(), small.height()), (512, 384));
    // Never enlarges.
    assert_eq!(fit_within(&small, 1024).dimensions(), (512, 384));
}

/// Inserts an APP1 Exif segment with the given orientation right after SOI.
fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    // TIFF, little-endian: header, IFD0 with one entry (0x0112 SHORT 1 = orientation).
    let mut tiff = Vec::new();
    tiff.extend_from_slice(b"II*\x00");
    tiff.extend_from_slice(&8u32.to_le_bytes());
    tiff.extend_from_slice(&1u16.to_le_bytes());
    tiff.extend_from_slice(&0x0112u16.to_le_bytes());
    tiff.extend_from_slice(&3u16.to_le_bytes());
    tiff.extend_from_slice(&1u32.to_le_bytes());
    tiff.extend_from_slice(&orientation.to_le_bytes());
    tiff.extend_from_slice(&[0, 0]);
    tiff.extend_from_slice(&0u32.to_le_bytes());
    let mut seg = b"Exif\x00\x00".to_vec();
    seg.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((seg.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&seg);
    out.extend_from_slice(&jpeg[2..]);
    out
}

#[test]
fn exif_orientation_is_applied() {
    let jpeg = encode_rgb(&marker(), image::ImageFormat::Jpeg);
    let lim = IntakeLimits::default();
    // 6 = rotate 90° clockwise to display: 64x32 becomes 32x64 and the green top-left
    // corner moves to the top-right.
    let d = decode(&with_exif_orientation(&jpeg, 6), &lim, DecodeTarget::Full).unwrap();
    assert_eq!((d.image.width(), d.image.height()), (32, 64));
    assert_eq!((d.original_width, d.original_height), (32, 64));
    let tr = d.image.get_pixel(28, 3).0;
    assert!(tr[1] > 200 && tr[0] < 80, "top-right {tr:?}");
    let tl = d.image.get_pixel(3, 3).0;
    assert!(tl[0] > 200, "top-left should be red: {tl:?}");
    // 3 = rotate 180°: green ends bottom-right.
    let d = decode(&with_exif_orientation(&jpeg, 3), &lim, DecodeTarget::Full).unwrap();
    assert_eq!(d.image.dimensions(), (64, 32));
    assert!(d.image.get_pixel(60, 28).0[1] > 200);
    // 1 = as stored.
    let d = decode(&with_exif_orientation(&jpeg, 1), &lim, DecodeTarget::Full).unwrap();
    assert!(d.image.get_pixel(3, 3).0[1] > 200);
}
