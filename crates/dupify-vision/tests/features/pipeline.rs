//! The features together, through the public API, as the server chains them: foreground
//! estimate → dominant colors on the foreground → quality judged with the same mask.

use dupify_vision::lab::{delta_e2000, srgb_to_lab};
use dupify_vision::{
    border_estimate, color_family, dominant_colors, nearest_name, quality, ForegroundEstimate,
    ForegroundMethod,
};
use image::{imageops, GrayImage, Luma, Rgba, RgbaImage};

/// A navy garment with a burgundy band, centred on a white studio backdrop; rendered at
/// 2× and downscaled (anti-aliased edges) with mild deterministic noise.
fn studio_shot() -> RgbaImage {
    let (w, h) = (480u32, 360u32);
    let mut state = 0x1234_5678u32;
    let big = RgbaImage::from_fn(w * 2, h * 2, |x, y| {
        let (fx, fy) = (x as f32 / 2.0, y as f32 / 2.0);
        let inside = (fx - 240.0).abs() < 110.0 && (fy - 185.0).abs() < 130.0;
        if !inside {
            return Rgba([254, 254, 254, 255]);
        }
        if (fy - 150.0).abs() < 18.0 {
            Rgba([120, 20, 40, 255])
        } else {
            Rgba([31, 42, 68, 255])
        }
    });
    let mut img = imageops::resize(&big, w, h, imageops::FilterType::Triangle);
    for p in img.pixels_mut() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let n = (state % 5) as i32 - 2;
        for c in &mut p.0[..3] {
            *c = (*c as i32 + n).clamp(0, 255) as u8;
        }
    }
    img
}

#[test]
fn studio_shot_end_to_end() {
    let img = studio_shot();
    let est = border_estimate(&img);
    assert_eq!(est.method, ForegroundMethod::BorderColor);
    // The garment is 220×260 of 480×360 ≈ 33 % of the frame.
    assert!(
        (est.foreground_ratio - 0.331).abs() < 0.02,
        "{}",
        est.foreground_ratio
    );

    let colors = dominant_colors(&img, Some(&est.mask), 5);
    let names: Vec<_> = colors.iter().map(|c| c.name).collect();
    assert_eq!(names, ["navy", "burgundy"], "{colors:?}");
    // Band: 36 of 260 rows ≈ 13.8 % of the garment.
    assert!((colors[1].percentage - 0.138).abs() < 0.03, "{colors:?}");
    assert!(delta_e2000(srgb_to_lab(colors[0].rgb), srgb_to_lab([31, 42, 68])) < 3.0);
    assert_eq!(colors.iter().map(|c| c.percentage).sum::<f64>(), 1.0);
    // Without the mask, the backdrop dominates.
    let all = dominant_colors(&img, None, 5);
    assert_eq!(all[0].name, "white", "{all:?}");

    let q = quality(&img, Some(&est.mask));
    assert!(q.sharpness > 0.7, "{q:?}");
    assert!(q.composition > 0.9, "{q:?}");
    // A navy garment is dark, but not an exposure failure.
    assert!(q.brightness > 0.3, "{q:?}");
    assert!(q.overall > 0.6, "{q:?}");
    // Judged on the whole frame, the blown-out backdrop ruins the exposure score.
    assert!(quality(&img, None).brightness < q.brightness);
}

#[test]
fn cutout_png_uses_alpha() {
    let img = RgbaImage::from_fn(120, 100, |x, y| {
        let inside = (30..90).contains(&x) && (20..80).contains(&y);
        if inside {
            Rgba([230, 200, 40, 255])
        } else {
            Rgba([0, 0, 0, 0])
        }
    });
    let est = border_estimate(&img);
    assert_eq!(est.method, ForegroundMethod::Alpha);
    assert!((est.foreground_ratio - 0.3).abs() < 1e-6);
    let c = dominant_colors(&img, Some(&est.mask), 5);
    assert_eq!(c.len(), 1);
    assert_eq!((c[0].name, c[0].percentage), ("yellow", 1.0));
    assert_eq!(color_family(c[0].rgb), "yellow");
    let q = quality(&img, Some(&est.mask));
    assert!(q.composition > 0.9 && q.brightness > 0.9, "{q:?}");
}

#[test]
fn model_masks_plug_in() {
    let mask = GrayImage::from_fn(10, 10, |x, _| Luma([if x < 4 { 255 } else { 0 }]));
    let est = ForegroundEstimate::from_mask(mask, ForegroundMethod::Model);
    assert!((est.foreground_ratio - 0.4).abs() < 1e-6);
    assert_eq!(serde_json::to_value(est.method).unwrap(), "model");
    let whole = ForegroundEstimate::whole_image(3, 2);
    assert_eq!(whole.method, ForegroundMethod::None);
    assert_eq!(whole.foreground_ratio, 1.0);
}

#[test]
fn json_shapes_match_the_spec() {
    let img = studio_shot();
    let est = border_estimate(&img);
    let q = serde_json::to_value(quality(&img, Some(&est.mask))).unwrap();
    let keys: Vec<_> = q.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys.len(), 4);
    for k in ["overall", "sharpness", "brightness", "composition"] {
        let v = q[k].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v));
    }
    let c = serde_json::to_value(dominant_colors(&img, Some(&est.mask), 3)).unwrap();
    let first = &c[0];
    assert!(first["hex"].as_str().unwrap().starts_with('#'));
    assert_eq!(first["hex"].as_str().unwrap().len(), 7);
    assert_eq!(first["rgb"].as_array().unwrap().len(), 3);
    assert_eq!(first["name"], "navy");
}

#[test]
fn bit_identical_on_repeat() {
    let img = studio_shot();
    let run = || {
        let est = border_estimate(&img);
        (
            est.mask.clone(),
            est.foreground_ratio.to_bits(),
            serde_json::to_string(&dominant_colors(&img, Some(&est.mask), 12)).unwrap(),
            serde_json::to_string(&quality(&img, Some(&est.mask))).unwrap(),
        )
    };
    assert_eq!(run(), run());
    // Names are a pure function of the color.
    assert_eq!(nearest_name([31, 42, 68]), nearest_name([31, 42, 68]));
}
