//! U²-Netp (the small shipped model) through ONNX Runtime on images whose foreground is
//! known: the pinned weights load, the preprocessing matches the model, and the mask
//! finds the product.

use crate::common::*;
use dupify_models::{PoolOptions, Segmenter, SEG_SIDE};
use image::{GrayImage, Rgba, RgbaImage};

fn segmenter(name: &str) -> Segmenter {
    let options = test_pool_options();
    Segmenter::start(
        name,
        &installed(&format!("{name}.onnx")),
        loader(),
        &options,
        no_observer(),
    )
    .expect("segmentation model loads")
}

/// A product-like object: a rounded dark-red body with a lighter stripe pattern and a
/// handle, on a light, slightly graded studio backdrop. Returns the image and its truth.
fn product_on_backdrop(w: u32, h: u32) -> (RgbaImage, GrayImage) {
    let (cx, cy) = (w as f32 * 0.5, h as f32 * 0.55);
    let (rx, ry) = (w as f32 * 0.28, h as f32 * 0.3);
    let inside = |x: f32, y: f32| {
        let body = ((x - cx) / rx).powi(2) + ((y - cy) / ry).powi(2) <= 1.0;
        let d = ((x - cx).powi(2) + (y - (cy - ry)).powi(2)).sqrt();
        let handle = y < cy - ry * 0.6 && (rx * 0.45..rx * 0.6).contains(&d);
        body || handle
    };
    let img = RgbaImage::from_fn(w, h, |x, y| {
        let (xf, yf) = (x as f32, y as f32);
        if inside(xf, yf) {
            if (y / 9) % 3 == 0 {
                Rgba([220, 170, 60, 255])
            } else {
                Rgba([150, 25, 35, 255])
            }
        } else {
            let g = 236 - (yf / h as f32 * 20.0) as u8;
            Rgba([g, g, g.saturating_sub(4), 255])
        }
    });
    let truth = GrayImage::from_fn(w, h, |x, y| {
        image::Luma([if inside(x as f32, y as f32) { 255 } else { 0 }])
    });
    (img, truth)
}

fn iou(mask: &GrayImage, truth: &GrayImage) -> f64 {
    let m = dupify_images::resize_mask(mask, truth.width(), truth.height());
    let (mut inter, mut union) = (0u64, 0u64);
    for (a, b) in m.as_raw().iter().zip(truth.as_raw()) {
        let (a, b) = (*a >= 128, *b >= 128);
        inter += u64::from(a && b);
        union += u64::from(a || b);
    }
    inter as f64 / union.max(1) as f64
}

#[test]
fn the_pinned_model_has_the_expected_interface() {
    let s = segmenter("u2netp");
    let spec = s.pool().spec();
    assert_eq!(spec.inputs[0].name, "input.1");
    assert_eq!(spec.inputs[0].dims, vec![1, 3, 320, 320]);
    assert!(!spec.outputs.is_empty());
    // Fixed batch of one: the pool must not try to batch it.
    assert_eq!(s.pool().max_batch(), 1);
}

#[test]
fn finds_the_product_on_a_studio_backdrop() {
    let s = segmenter("u2netp");
    let (img, truth) = product_on_backdrop(480, 400);
    let mask = s.mask_blocking(&img).unwrap();
    assert_eq!(mask.dimensions(), (SEG_SIDE, SEG_SIDE));
    let score = iou(&mask, &truth);
    assert!(score > 0.8, "IoU {score:.3}");
    // Min-max normalised: the map spans the whole 8-bit range.
    assert_eq!(mask.as_raw().iter().max(), Some(&255));
    assert_eq!(mask.as_raw().iter().min(), Some(&0));
}

#[tokio::test]
async fn concurrent_requests_on_two_instances_agree_with_one_at_a_time() {
    let options = PoolOptions {
        instances: 2,
        queue_limit: 8,
        max_batch: 4,
        threads: 1,
        solo_threads: 0,
    };
    let s = std::sync::Arc::new(
        Segmenter::start(
            "u2netp",
            &installed("u2netp.onnx"),
            loader(),
            &options,
            no_observer(),
        )
        .unwrap(),
    );
    let images: Vec<RgbaImage> = [(320, 320), (400, 300), (300, 420), (500, 500)]
        .iter()
        .map(|&(w, h)| product_on_backdrop(w, h).0)
        .collect();
    let mut alone: Vec<GrayImage> = Vec::new();
    for i in &images {
        alone.push(s.mask(dupify_models::segment::preprocess(i)).await.unwrap());
    }
    let pending: Vec<_> = images
        .iter()
        .map(|i| s.enqueue(dupify_models::segment::preprocess(i)).unwrap())
        .collect();
    for (p, want) in pending.into_iter().zip(&alone) {
        let got = p.mask().await.unwrap();
        let differing = got
            .as_raw()
            .iter()
            .zip(want.as_raw())
            .filter(|(a, b)| a.abs_diff(**b) > 1)
            .count();
        assert_eq!(differing, 0);
    }
}

#[test]
fn a_missing_or_foreign_model_file_is_a_load_error() {
    let options = PoolOptions {
        instances: 1,
        queue_limit: 1,
        max_batch: 1,
        threads: 1,
        solo_threads: 0,
    };
    let gone = std::path::Path::new("/nonexistent/u2net.onnx");
    let e = Segmenter::start("u2net", gone, loader(), &options, no_observer())
        .err()
        .expect("missing file fails");
    assert!(e.to_string().contains("not found"), "{e}");
    // A valid ONNX file of the wrong shape (the CLIP vision tower) is refused by name.
    let clip = tiny_clip_dir().join("vision.onnx");
    let e = Segmenter::start("u2net", &clip, loader(), &options, no_observer())
        .err()
        .expect("wrong shape fails");
    assert!(e.to_string().contains("[1, 3, 320, 320]"), "{e}");
}
