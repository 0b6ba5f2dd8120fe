//! `ClipPreprocess` against reference tensors computed with Pillow + numpy by
//! `scripts/fixtures/clip_preprocess_ref.py` (OpenAI CLIP's torchvision steps at 32 px):
//! a landscape RGB image, a portrait RGB image, and a translucent RGBA image.

use std::path::PathBuf;

use dupify_vision::clip_preprocess::{ClipPreprocess, OPENAI_MEAN, OPENAI_STD};
use serde_json::Value;

/// Largest difference allowed per value: one 8-bit level is ≈ 0.015 after normalising.
const TOLERANCE: f32 = 0.02;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn reference() -> Value {
    let text = std::fs::read_to_string(fixtures().join("clip_ref.json")).expect("clip_ref.json");
    serde_json::from_str(&text).expect("valid JSON")
}

/// |ours − reference| per value for one case, after checking the geometry it reports,
/// and the case's JSON.
fn diffs(case: &str) -> (Vec<f32>, Value) {
    let reference = reference();
    let size = reference["image_size"].as_u64().expect("image_size") as u32;
    for (i, (m, s)) in OPENAI_MEAN.iter().zip(OPENAI_STD).enumerate() {
        assert!((reference["mean"][i].as_f64().unwrap() as f32 - m).abs() < 1e-7);
        assert!((reference["std"][i].as_f64().unwrap() as f32 - s).abs() < 1e-7);
    }
    let case = &reference["cases"][case];
    let img = image::open(fixtures().join(case["input"].as_str().expect("input")))
        .expect("fixture decodes")
        .to_rgba8();
    let pre = ClipPreprocess::openai(size);

    let (w, h) = img.dimensions();
    let want_resized: Vec<u32> = serde_json::from_value(case["resized_size"].clone()).unwrap();
    let (rw, rh) = pre.resized_size(w, h);
    assert_eq!([rw, rh], want_resized[..]);
    let want_offset: Vec<u32> = serde_json::from_value(case["crop_left_top"].clone()).unwrap();
    let (left, top) = pre.crop_offset(rw, rh);
    assert_eq!([left, top], want_offset[..]);

    let want: Vec<f32> = serde_json::from_value(case["tensor"].clone()).unwrap();
    let got = pre.run(&img);
    assert_eq!(got.len(), want.len());
    assert_eq!(got.len(), 3 * (size * size) as usize);
    let d: Vec<f32> = got.iter().zip(&want).map(|(g, w)| (g - w).abs()).collect();
    let sum: f64 = got.iter().map(|v| f64::from(*v)).sum();
    eprintln!(
        "{}: max |diff| = {:.5}, mean |diff| = {:.5}, sum {sum:.3} (reference {:.3})",
        case["input"],
        max(&d),
        d.iter().sum::<f32>() / d.len() as f32,
        case["sum"].as_f64().unwrap()
    );
    (d, case.clone())
}

fn max(d: &[f32]) -> f32 {
    d.iter().copied().fold(0.0, f32::max)
}

#[test]
fn landscape_matches_pillow() {
    let (d, _) = diffs("clip_ref_input");
    assert!(max(&d) <= TOLERANCE, "max diff {}", max(&d));
}

#[test]
fn portrait_matches_pillow() {
    let (d, _) = diffs("clip_ref_portrait");
    assert!(max(&d) <= TOLERANCE, "max diff {}", max(&d));
}

/// With transparency both sides resize premultiplied 8-bit values and divide by alpha
/// afterwards, so a one-level rounding difference in the resampler becomes up to
/// 255 / alpha levels. Where the crop is at least half opaque the result stays within
/// two levels; everywhere the mean stays at the RGB cases' level.
#[test]
fn translucent_rgba_matches_pillow() {
    let (d, case) = diffs("clip_ref_rgba");
    let alpha: Vec<u8> = serde_json::from_value(case["alpha"].clone()).expect("alpha");
    let plane = alpha.len();
    let opaque_max = d
        .iter()
        .enumerate()
        .filter(|(i, _)| alpha[i % plane] >= 128)
        .map(|(_, v)| *v)
        .fold(0.0f32, f32::max);
    eprintln!("clip_ref_rgba: max |diff| where alpha >= 128: {opaque_max:.5}");
    assert!(opaque_max <= 2.0 * TOLERANCE, "{opaque_max}");
    assert!(max(&d) <= 0.1, "{}", max(&d));
    assert!(d.iter().sum::<f32>() / (d.len() as f32) < 0.005);
}

/// A one-pixel marker survives where torchvision's crop puts it: the crop window is
/// taken from the middle of the long side, nowhere else.
#[test]
fn crop_is_centred_on_the_long_side() {
    use image::{Rgba, RgbaImage};
    let pre = ClipPreprocess::openai(16);
    // Landscape 64 × 32 → resized 32 × 16, crop left = 8: a bar over source columns
    // 16..48 fills the crop exactly; outside it is black.
    let land = RgbaImage::from_fn(64, 32, |x, _| {
        if (16..48).contains(&x) {
            Rgba([255, 255, 255, 255])
        } else {
            Rgba([0, 0, 0, 255])
        }
    });
    // Portrait: the same, transposed.
    let port = RgbaImage::from_fn(32, 64, |_, y| {
        if (16..48).contains(&y) {
            Rgba([255, 255, 255, 255])
        } else {
            Rgba([0, 0, 0, 255])
        }
    });
    for img in [&land, &port] {
        let t = pre.run(img);
        let red = |x: usize, y: usize| t[y * 16 + x] * OPENAI_STD[0] + OPENAI_MEAN[0];
        // Centre is white; the first/last column or row, right at the bar's edge,
        // is still mostly white (the bicubic kernel reaches one resized pixel out).
        assert!((red(8, 8) - 1.0).abs() < 1e-6);
        for i in 0..16 {
            for (x, y) in [(0, i), (15, i), (i, 0), (i, 15)] {
                assert!(red(x, y) > 0.75, "{x},{y}: {}", red(x, y));
            }
        }
    }
    // Shifted off centre by 8 source pixels, the dark side enters the crop.
    let shifted = RgbaImage::from_fn(64, 32, |x, _| {
        if (24..56).contains(&x) {
            Rgba([255, 255, 255, 255])
        } else {
            Rgba([0, 0, 0, 255])
        }
    });
    let t = pre.run(&shifted);
    assert!(t[8 * 16] * OPENAI_STD[0] + OPENAI_MEAN[0] < 0.1);
}
