//! Segmentation quality on composites with known alpha (built by scripts/seg_eval_data.py):
//! mean IoU of each U²-Net model's mask against the ground truth, per background kind,
//! with the time per image.
//!
//! `cargo run --release -p dupify-models --example seg_eval -- DATA_DIR [MODELS_DIR]`
//!
//! The image goes through what the server does: decode, working copy (longer side ≤ 512),
//! U²-Net preprocessing, inference, min-max, and the mask upsampled to the image's size
//! and cut at 128.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dupify_models::onnx::OnnxLoader;
use dupify_models::{PoolOptions, Segmenter};
use image::GrayImage;
use serde_json::Value;

fn iou(mask: &GrayImage, truth: &GrayImage) -> (f64, f64) {
    let m = dupify_images::resize_mask(mask, truth.width(), truth.height());
    let (mut inter, mut union, mut abs) = (0u64, 0u64, 0u64);
    for (a, b) in m.as_raw().iter().zip(truth.as_raw()) {
        let (fa, fb) = (*a >= 128, *b >= 128);
        inter += u64::from(fa && fb);
        union += u64::from(fa || fb);
        abs += u64::from(a.abs_diff(*b));
    }
    let mae = abs as f64 / 255.0 / truth.as_raw().len().max(1) as f64;
    (inter as f64 / union.max(1) as f64, mae)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let data = PathBuf::from(args.next().expect("usage: seg_eval DATA_DIR [MODELS_DIR]"));
    let models = PathBuf::from(args.next().unwrap_or_else(|| "models".into()));
    let index: Value = serde_json::from_str(
        &std::fs::read_to_string(data.join("index.json")).expect("index.json"),
    )
    .expect("JSON");
    let samples = index["samples"].as_array().expect("samples");
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let loader = Arc::new(OnnxLoader {
        library: models.join("libonnxruntime.so"),
    });
    let options = PoolOptions {
        instances: 1,
        queue_limit: 4,
        max_batch: 1,
        threads,
        solo_threads: 0,
    };
    println!(
        "{} composites, {threads} intra-op threads, mask cut at 128\n",
        samples.len()
    );
    println!("| model | mean IoU | median IoU | IoU < 0.5 | MAE | ms / image | by background (mean IoU) |");
    println!("|---|---:|---:|---:|---:|---:|---|");
    for name in ["u2net", "u2netp"] {
        let path = models.join(format!("{name}.onnx"));
        if !path.is_file() {
            eprintln!("{} missing, skipped", path.display());
            continue;
        }
        let seg = Segmenter::start(
            name,
            &path,
            loader.clone(),
            &options,
            Arc::new(|_: &str, _: usize, _: Duration| {}),
        )
        .expect("model loads");
        let mut ious = Vec::new();
        let mut maes = Vec::new();
        let mut by_kind: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        let mut took = Duration::ZERO;
        for s in samples {
            let img = load(&data, s["image"].as_str().unwrap());
            let truth = image::open(data.join(s["mask"].as_str().unwrap()))
                .unwrap()
                .to_luma8();
            let working = dupify_images::fit_within(img, 512);
            let t = Instant::now();
            let mask = seg.mask_blocking(&working).expect("inference");
            took += t.elapsed();
            let (i, m) = iou(&mask, &truth);
            ious.push(i);
            maes.push(m);
            by_kind
                .entry(s["background"]["kind"].as_str().unwrap_or("?").to_string())
                .or_default()
                .push(i);
        }
        let n = ious.len().max(1) as f64;
        let mean = ious.iter().sum::<f64>() / n;
        let mut sorted = ious.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        let low = ious.iter().filter(|&&i| i < 0.5).count();
        let kinds: Vec<String> = by_kind
            .iter()
            .map(|(k, v)| format!("{k} {:.3}", v.iter().sum::<f64>() / v.len() as f64))
            .collect();
        println!(
            "| {name} | {mean:.3} | {median:.3} | {low} | {:.4} | {:.0} | {} |",
            maes.iter().sum::<f64>() / n,
            took.as_secs_f64() * 1000.0 / n,
            kinds.join(", ")
        );
    }
}

fn load(dir: &Path, file: &str) -> image::RgbaImage {
    image::open(dir.join(file))
        .expect("image decodes")
        .to_rgba8()
}
