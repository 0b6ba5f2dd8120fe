//! Decoding real encoded images: every format, colour models, EXIF orientation,
//! reduced-scale JPEG, decompression bombs, truncated, mutated and random data.

use std::time::Instant;

use crate::support::*;
use dupify_core::ErrorCode;
use dupify_images::{
    decode, fit_within, sniff, DecodeTarget, DecodedImage, ImageFormat, IntakeLimits,
};
use image::{DynamicImage, GrayImage, Luma, Rgba, RgbaImage};

const ALL_FORMATS: [(image::ImageFormat, ImageFormat); 4] = [
    (image::ImageFormat::Jpeg, ImageFormat::Jpeg),
    (image::ImageFormat::Png, ImageFormat::Png),
    // The `image` crate's WebP encoder is lossless.
    (image::ImageFormat::WebP, ImageFormat::WebP),
    (image::ImageFormat::Gif, ImageFormat::Gif),
];

/// The 2000x1500 quality-90 JPEG several tests use, encoded once per test binary
/// (encoding is slow in debug builds).
fn big_jpeg() -> &'static [u8] {
    static BYTES: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BYTES.get_or_init(|| jpeg_quality(&photo(2000, 1500), 90))
}

fn full(bytes: &[u8]) -> Result<DecodedImage, dupify_core::ApiError> {
    decode(bytes, &IntakeLimits::default(), DecodeTarget::Full)
}

fn code(r: Result<DecodedImage, dupify_core::ApiError>) -> ErrorCode {
    r.expect_err("should fail").code
}

#[test]
fn every_format_sniffs_and_decodes() {
    let img = marker();
    for (f, ours) in ALL_FORMATS {
        let bytes = encode(&img, f);
        assert_eq!(sniff(&bytes).unwrap(), ours, "{f:?}");
        let d = full(&bytes).unwrap();
        assert_eq!(d.image.dimensions(), (64, 32), "{f:?}");
        assert_eq!((d.original_width, d.original_height), (64, 32));
        assert_eq!(d.format, ours);
        assert!(!d.has_alpha, "{f:?}");
        assert!(near(d.image.get_pixel(2, 2).0, GREEN), "{f:?}");
        assert!(near(d.image.get_pixel(20, 20).0, RED), "{f:?}");
        assert!(near(d.image.get_pixel(48, 20).0, BLUE), "{f:?}");
        assert!(d.image.pixels().all(|p| p.0[3] == 255));
        // Reduced targets are honoured where possible and harmless elsewhere.
        let d = decode(&bytes, &IntakeLimits::default(), DecodeTarget::AtLeast(16)).unwrap();
        assert!(d.image.width() >= 16);
        assert_eq!((d.original_width, d.original_height), (64, 32));
    }
    assert_eq!(ImageFormat::Jpeg.as_str(), "jpeg");
    assert_eq!(ImageFormat::Png.as_str(), "png");
    assert_eq!(ImageFormat::WebP.as_str(), "webp");
    assert_eq!(ImageFormat::Gif.as_str(), "gif");
}

#[test]
fn gif_decodes_its_first_frame() {
    use image::codecs::gif::GifEncoder;
    use image::{Delay, Frame};
    let first = RgbaImage::from_pixel(16, 16, Rgba([255, 0, 0, 255]));
    let second = RgbaImage::from_pixel(16, 16, Rgba([0, 0, 255, 255]));
    let mut bytes = Vec::new();
    {
        let mut enc = GifEncoder::new(&mut bytes);
        for f in [first, second] {
            enc.encode_frame(Frame::from_parts(
                f,
                0,
                0,
                Delay::from_numer_denom_ms(100, 1),
            ))
            .unwrap();
        }
    }
    let d = full(&bytes).unwrap();
    assert_eq!(d.format, ImageFormat::Gif);
    assert!(near(d.image.get_pixel(8, 8).0, RED));
}

#[test]
fn transparency_is_reported_only_when_used() {
    let img = RgbaImage::from_fn(20, 20, |x, _| {
        if x < 10 {
            Rgba([0, 0, 0, 0])
        } else {
            Rgba([200, 0, 0, 255])
        }
    });
    for f in [image::ImageFormat::Png, image::ImageFormat::WebP] {
        let bytes = encode_dyn(&DynamicImage::ImageRgba8(img.clone()), f);
        let d = full(&bytes).unwrap();
        assert!(d.has_alpha, "{f:?}");
        assert_eq!(d.image.get_pixel(2, 2).0[3], 0);
        assert_eq!(d.image.get_pixel(15, 2).0, [200, 0, 0, 255]);
    }
    // An alpha channel that is fully opaque everywhere is not "alpha".
    let opaque = RgbaImage::from_pixel(20, 20, Rgba([1, 2, 3, 255]));
    let bytes = encode_dyn(&DynamicImage::ImageRgba8(opaque), image::ImageFormat::Png);
    assert!(!full(&bytes).unwrap().has_alpha);
}

#[test]
fn grayscale_and_16_bit_inputs_become_rgba() {
    let gray = GrayImage::from_fn(32, 16, |x, _| Luma([if x < 16 { 30 } else { 220 }]));
    for f in [image::ImageFormat::Jpeg, image::ImageFormat::Png] {
        let bytes = encode_dyn(&DynamicImage::ImageLuma8(gray.clone()), f);
        let d = full(&bytes).unwrap();
        let [r, g, b, a] = d.image.get_pixel(4, 8).0;
        assert!(
            r == g && g == b && (r as i32 - 30).abs() < 8 && a == 255,
            "{f:?}"
        );
        let [r, g, b, _] = d.image.get_pixel(28, 8).0;
        assert!(r == g && g == b && (r as i32 - 220).abs() < 8, "{f:?}");
    }
    let deep =
        image::ImageBuffer::<image::Rgb<u16>, _>::from_pixel(8, 8, image::Rgb([65535, 0, 32768]));
    let bytes = encode_dyn(&DynamicImage::ImageRgb16(deep), image::ImageFormat::Png);
    assert_eq!(
        full(&bytes).unwrap().image.get_pixel(3, 3).0,
        [255, 0, 128, 255]
    );
}

#[test]
fn adobe_cmyk_jpeg_converts_to_rgb() {
    let bytes = adobe_cmyk_jpeg(&[
        [255, 0, 0, 0],   // full cyan
        [0, 255, 255, 0], // magenta + yellow = red
        [0, 0, 0, 128],   // half black
        [0, 0, 0, 0],     // no ink = white
        [0, 0, 0, 255],   // full black
    ]);
    assert_eq!(sniff(&bytes).unwrap(), ImageFormat::Jpeg);
    let d = full(&bytes).unwrap();
    assert_eq!(d.image.dimensions(), (40, 8));
    let at = |block: u32| d.image.get_pixel(block * 8 + 4, 4).0;
    let close =
        |p: [u8; 4], want: [u8; 3]| (0..3).all(|i| (p[i] as i32 - want[i] as i32).abs() <= 3);
    assert!(close(at(0), [0, 255, 255]), "cyan: {:?}", at(0));
    assert!(close(at(1), [255, 0, 0]), "red: {:?}", at(1));
    assert!(close(at(2), [127, 127, 127]), "gray: {:?}", at(2));
    assert!(close(at(3), [255, 255, 255]), "white: {:?}", at(3));
    assert!(close(at(4), [0, 0, 0]), "black: {:?}", at(4));
    assert!(!d.has_alpha && at(0)[3] == 255);
    // Reduced-scale decoding works for CMYK too.
    let d = decode(&bytes, &IntakeLimits::default(), DecodeTarget::AtLeast(5)).unwrap();
    assert_eq!(d.image.dimensions(), (5, 1));
    assert!(close(d.image.get_pixel(0, 0).0, [0, 255, 255]));
}

#[test]
fn exif_orientation_is_applied_for_all_eight_values() {
    let jpeg = encode(&marker(), image::ImageFormat::Jpeg);
    let png = encode(&marker(), image::ImageFormat::Png);
    // (orientation, displayed size, where the green stored-top-left block and the
    // yellow stored-top-right block must land).
    let table = [
        (1, (64, 32), "TL", "TR"),
        (2, (64, 32), "TR", "TL"),
        (3, (64, 32), "BR", "BL"),
        (4, (64, 32), "BL", "BR"),
        (5, (32, 64), "TL", "BL"),
        (6, (32, 64), "TR", "BR"),
        (7, (32, 64), "BR", "TR"),
        (8, (32, 64), "BL", "TL"),
    ];
    let corner = |name: &str, (w, h): (u32, u32)| match name {
        "TL" => (3, 3),
        "TR" => (w - 4, 3),
        "BR" => (w - 4, h - 4),
        _ => (3, h - 4),
    };
    for (o, size, green, yellow) in table {
        for (what, bytes) in [
            ("jpeg", jpeg_with_orientation(&jpeg, o)),
            ("png", png_with_orientation(&png, o)),
        ] {
            let d = full(&bytes).unwrap_or_else(|e| panic!("{what} {o}: {e}"));
            assert_eq!(d.image.dimensions(), size, "{what} orientation {o}");
            assert_eq!((d.original_width, d.original_height), size);
            let (x, y) = corner(green, size);
            assert!(
                near(d.image.get_pixel(x, y).0, GREEN),
                "{what} {o}: green not {green}"
            );
            let (x, y) = corner(yellow, size);
            assert!(
                near(d.image.get_pixel(x, y).0, YELLOW),
                "{what} {o}: yellow not {yellow}"
            );
        }
    }
}

#[test]
fn exif_variants_and_damage() {
    let jpeg = encode(&marker(), image::ImageFormat::Jpeg);
    // Big-endian TIFF works like little-endian.
    let be = jpeg_with_app1(&jpeg, &tiff_with_orientation(6, true));
    assert_eq!(full(&be).unwrap().image.dimensions(), (32, 64));
    // Out-of-range orientation or garbage EXIF: shown as stored, not refused.
    for tiff in [
        tiff_with_orientation(9, false),
        tiff_with_orientation(0, false),
        b"II*\x00\xff\xff\xff\x7f garbage".to_vec(),
        b"not tiff at all".to_vec(),
    ] {
        let d = full(&jpeg_with_app1(&jpeg, &tiff)).unwrap();
        assert_eq!(d.image.dimensions(), (64, 32));
        assert!(near(d.image.get_pixel(3, 3).0, GREEN));
    }
    // Orientation plus reduced-scale decoding: 6 on a 2000x1500 photo.
    let big = jpeg_with_orientation(big_jpeg(), 6);
    let d = decode(&big, &IntakeLimits::default(), DecodeTarget::AtLeast(512)).unwrap();
    assert_eq!(d.image.dimensions(), (750, 1000));
    assert_eq!((d.original_width, d.original_height), (1500, 2000));
}

#[test]
fn jpeg_decodes_at_reduced_scale() {
    let bytes = big_jpeg();
    let lim = IntakeLimits::default();
    for (target, size) in [
        (DecodeTarget::AtLeast(512), (1000, 750)), // 1/4 would give 500 < 512
        (DecodeTarget::AtLeast(500), (500, 375)),
        (DecodeTarget::AtLeast(200), (250, 188)),
        (DecodeTarget::AtLeast(100), (250, 188)), // 1/8 is the smallest scale
        (DecodeTarget::AtLeast(1001), (2000, 1500)),
        (DecodeTarget::Full, (2000, 1500)),
    ] {
        let d = decode(bytes, &lim, target).unwrap();
        assert_eq!(d.image.dimensions(), size, "{target:?}");
        assert_eq!((d.original_width, d.original_height), (2000, 1500));
    }
    // A reduced decode looks like a downscaled full decode.
    let half = decode(bytes, &lim, DecodeTarget::AtLeast(512))
        .unwrap()
        .image;
    let fullsize = decode(bytes, &lim, DecodeTarget::Full).unwrap().image;
    let resized = fit_within(fullsize, 1000);
    assert_eq!(resized.dimensions(), half.dimensions());
    let diff: u64 = half
        .as_raw()
        .iter()
        .zip(resized.as_raw())
        .map(|(a, b)| (*a as i64 - *b as i64).unsigned_abs())
        .sum();
    let mean = diff as f64 / half.as_raw().len() as f64;
    assert!(mean < 12.0, "mean abs difference {mean}");
    // Non-JPEG formats ignore the reduction.
    let png = encode(&photo(300, 200), image::ImageFormat::Png);
    let d = decode(&png, &lim, DecodeTarget::AtLeast(64)).unwrap();
    assert_eq!(d.image.dimensions(), (300, 200));
}

#[test]
fn fit_within_after_decode() {
    let d = full(big_jpeg()).unwrap();
    let tall = fit_within(image::imageops::rotate90(&d.image), 512);
    let small = fit_within(d.image, 512);
    assert_eq!(small.dimensions(), (512, 384));
    assert_eq!(fit_within(small, 1024).dimensions(), (512, 384));
    assert_eq!(tall.dimensions(), (384, 512));
}

#[test]
fn unsupported_formats() {
    for junk in [
        &b""[..],
        b"hello",
        b"BM\x00\x00 a bitmap header",
        b"%PDF-1.7",
        b"II*\x00 tiff",
        b"MM\x00* tiff",
        b"<svg xmlns='http://www.w3.org/2000/svg'/>",
        b"\x00\x00\x00\x0cjP  \r\n\x87\n", // JPEG 2000
        b"\x00\x00\x00\x1cftypavif",
        b"RIFF\x24\x00\x00\x00WAVEfmt ",
        b"\xff\xd8", // too short to be a JPEG
    ] {
        assert_eq!(sniff(junk).unwrap_err().code, ErrorCode::UnsupportedFormat);
        assert_eq!(code(full(junk)), ErrorCode::UnsupportedFormat);
    }
}

#[test]
fn truncated_jpeg_is_processing_failed() {
    let bytes = jpeg_quality(&photo(256, 192), 90);
    for cut in [bytes.len() / 2, bytes.len() - 100, 200] {
        let e = full(&bytes[..cut]).expect_err("truncated");
        assert_eq!(e.code, ErrorCode::ProcessingFailed, "cut {cut}: {e}");
        assert!(e.message.contains("truncated"), "{}", e.message);
        let e = decode(
            &bytes[..cut],
            &IntakeLimits::default(),
            DecodeTarget::AtLeast(64),
        )
        .expect_err("truncated");
        assert_eq!(e.code, ErrorCode::ProcessingFailed);
    }
}

#[test]
fn truncated_prefixes_of_every_format_never_panic() {
    let lim = IntakeLimits::default();
    for (f, _) in ALL_FORMATS {
        let bytes = encode(&photo(48, 40), f);
        let step = (bytes.len() / 150).max(1);
        for cut in (0..bytes.len()).step_by(step) {
            match decode(&bytes[..cut], &lim, DecodeTarget::AtLeast(8)) {
                // Shorter than the magic bytes: not recognisable as an image.
                Err(e) if cut < 12 && e.code == ErrorCode::UnsupportedFormat => {}
                Err(e) => assert_eq!(e.code, ErrorCode::ProcessingFailed, "{f:?} cut {cut}: {e}"),
                // Some decoders tolerate a missing tail (e.g. a GIF trailer).
                Ok(d) => assert_eq!(d.original_width, 48, "{f:?} cut {cut}"),
            }
        }
    }
}

#[test]
fn mutated_and_random_data_never_panics() {
    let lim = IntakeLimits {
        max_pixels: 4_000_000, // keep accidental huge-but-legal mutants quick
        ..IntakeLimits::default()
    };
    let allowed = [
        ErrorCode::ProcessingFailed,
        ErrorCode::UnsupportedFormat,
        ErrorCode::ImageTooLarge,
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for (f, _) in ALL_FORMATS {
        let original = encode(&photo(40, 30), f);
        for _ in 0..150 {
            let mut v = original.clone();
            for _ in 0..1 + rng.below(6) {
                let i = 8 + rng.below(v.len() - 8); // keep the magic intact
                v[i] = rng.next() as u8;
            }
            if let Err(e) = decode(&v, &lim, DecodeTarget::AtLeast(8)) {
                assert!(allowed.contains(&e.code), "{f:?}: {e}");
            }
        }
    }
    for magic in [
        &b"\xff\xd8\xff"[..],
        b"\xff\xd8\xff\xc0\x00\x11\x08\x00\x10\x00\x10\x03",
        b"\x89PNG\r\n\x1a\n",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR",
        b"GIF89a",
        b"RIFF\x10\x00\x00\x00WEBPVP8 ",
        b"RIFF\x10\x00\x00\x00WEBPVP8L",
        b"RIFF\x10\x00\x00\x00WEBPVP8X",
    ] {
        for len in [0, 1, 7, 50, 400] {
            for _ in 0..20 {
                let mut v = magic.to_vec();
                v.extend((0..len).map(|_| rng.next() as u8));
                if let Err(e) = decode(&v, &lim, DecodeTarget::AtLeast(8)) {
                    assert!(allowed.contains(&e.code), "{e}");
                }
            }
        }
    }
}

/// Headers that claim huge dimensions are refused from the header alone: fast, and
/// (see tests/bomb_alloc.rs) without allocating the pixels.
#[test]
fn decompression_bombs_are_refused() {
    let lim = IntakeLimits::default();
    let png = encode(&photo(8, 8), image::ImageFormat::Png);
    let jpeg = encode(&photo(16, 16), image::ImageFormat::Jpeg);
    let gif = encode(&photo(8, 8), image::ImageFormat::Gif);
    let webp = encode(&photo(8, 8), image::ImageFormat::WebP);
    for (what, bomb) in [
        ("png", png_claiming(&png, 20_000, 20_000)),
        ("png wide", png_claiming(&png, 1_000_000, 100)),
        ("jpeg", jpeg_claiming(&jpeg, 65_000, 65_000)),
        ("gif", gif_claiming(&gif, 65_535, 65_535)),
        ("webp", webp_lossless_claiming(&webp, 16_000, 16_000)),
    ] {
        let t = Instant::now();
        let e = decode(&bomb, &lim, DecodeTarget::AtLeast(256)).expect_err(what);
        assert_eq!(e.code, ErrorCode::ImageTooLarge, "{what}: {e}");
        assert!(
            t.elapsed().as_millis() < 500,
            "{what} took {:?}",
            t.elapsed()
        );
        assert_eq!(
            e.details.as_ref().unwrap()["max_pixels"],
            50_000_000,
            "{what}"
        );
    }
    // The limit is configurable and exact: 100x100 is refused at 9,999 pixels.
    let jpeg = encode(&photo(100, 100), image::ImageFormat::Jpeg);
    for (f, bytes) in [
        ("jpeg", jpeg),
        ("png", encode(&photo(100, 100), image::ImageFormat::Png)),
    ] {
        let tight = IntakeLimits {
            max_pixels: 9_999,
            ..IntakeLimits::default()
        };
        let e = decode(&bytes, &tight, DecodeTarget::Full).expect_err(f);
        assert_eq!(e.code, ErrorCode::ImageTooLarge);
        assert!(e.message.contains("100x100"), "{}", e.message);
        let exact = IntakeLimits {
            max_pixels: 10_000,
            ..IntakeLimits::default()
        };
        assert!(decode(&bytes, &exact, DecodeTarget::Full).is_ok(), "{f}");
    }
    // A zero-sized header is corrupt, not "too large".
    assert_eq!(
        code(full(&png_claiming(&png, 0, 8))),
        ErrorCode::ProcessingFailed
    );
}
