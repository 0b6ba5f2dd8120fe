//! The CLIP loader on the tiny random-weight export in tests/fixtures/tiny-clip, against
//! the numbers scripts/fixtures/make_tiny_clip.py computed independently with Python's
//! onnxruntime, Pillow, numpy and tokenizers (reference.json).

use std::sync::Arc;

use crate::common::*;
use dupify_models::clip::Clip;
use dupify_models::PoolOptions;
use image::{Rgba, RgbaImage};
use serde_json::Value;

fn reference() -> Value {
    let text = std::fs::read_to_string(tiny_clip_dir().join("reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn ints(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn load(max_batch: usize) -> Clip {
    let options = PoolOptions {
        instances: 1,
        queue_limit: 64,
        max_batch,
        threads: 1,
        solo_threads: 0,
    };
    Clip::load(&tiny_clip_dir(), loader(), &options, no_observer()).expect("tiny-clip loads")
}

#[test]
fn manifest_and_shapes() {
    let clip = load(8);
    assert_eq!(clip.name(), "tiny-clip");
    assert_eq!(clip.dimensions(), 16);
    assert!(clip.has_text());
    // The vision export has a dynamic batch axis, so the pool batches.
    assert_eq!(clip.max_batch(), 8);
}

#[test]
fn image_embedding_matches_the_python_reference() {
    let r = reference();
    let clip = load(8);
    // The crop the reference made (already 32×32): preprocessing is then only /255 and
    // mean/std, so the tensor is exact and the embedding must agree to float precision.
    let crop = image::open(tiny_clip_dir().join("ref_image_crop.png"))
        .unwrap()
        .to_rgba8();
    let input = clip.preprocess(&crop);
    assert_eq!(input.len(), 3 * 32 * 32);
    let sum: f64 = input.iter().map(|&v| f64::from(v)).sum();
    assert!(
        (sum - r["preprocessed"]["sum"].as_f64().unwrap()).abs() < 0.01,
        "tensor sum {sum}"
    );
    for s in r["preprocessed"]["samples"].as_array().unwrap() {
        let (c, y, x) = (
            s[0].as_u64().unwrap() as usize,
            s[1].as_u64().unwrap() as usize,
            s[2].as_u64().unwrap() as usize,
        );
        let want = s[3].as_f64().unwrap() as f32;
        let got = input[c * 1024 + y * 32 + x];
        assert!((got - want).abs() < 1e-4, "[{c},{y},{x}] {got} vs {want}");
    }
    let got = clip.embed_image_blocking(&crop).unwrap();
    let want = floats(&r["image_embeds_l2"]);
    assert!(max_diff(&got, &want) < 1e-4, "{got:?}\nvs\n{want:?}");
    assert!((dot(&got, &got) - 1.0).abs() < 1e-5);

    // The full pipeline (our bicubic resize + crop of the 70×45 original) lands close:
    // resamplers differ by a level or two per pixel.
    let original = image::open(tiny_clip_dir().join("ref_image.png"))
        .unwrap()
        .to_rgba8();
    let full = clip.embed_image_blocking(&original).unwrap();
    assert!(dot(&full, &want) > 0.999, "cosine {}", dot(&full, &want));
}

#[test]
fn tokenizer_round_trip_and_padding() {
    let r = reference();
    let clip = load(8);
    for t in r["texts"].as_array().unwrap() {
        let (ids, mask) = clip.tokenize(t["text"].as_str().unwrap()).unwrap();
        assert_eq!(ids, ints(&t["input_ids"]), "{}", t["text"]);
        assert_eq!(mask, ints(&t["attention_mask"]), "{}", t["text"]);
    }
    // Longer than the context (16): truncated, and the end-of-text token is kept last,
    // because CLIP pools the sequence at it.
    let long = "a photo of a red dress ".repeat(6);
    let (ids, mask) = clip.tokenize(&long).unwrap();
    assert_eq!(ids.len(), 16);
    assert_eq!(ids[0], 232);
    assert_eq!(ids[15], 233);
    assert!(mask.iter().all(|&m| m == 1));
}

#[tokio::test]
async fn text_embeddings_match_the_python_reference() {
    let r = reference();
    let clip = load(8);
    let texts: Vec<String> = r["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["text"].as_str().unwrap().to_string())
        .collect();
    let got = clip.embed_texts(&texts).await.unwrap();
    let image = floats(&r["image_embeds_l2"]);
    for (g, t) in got.iter().zip(r["texts"].as_array().unwrap()) {
        let want = floats(&t["text_embeds_l2"]);
        assert!(
            max_diff(g, &want) < 1e-4,
            "{}: {g:?} vs {want:?}",
            t["text"]
        );
        let sim = dot(g, &image);
        assert!(
            (sim - t["similarity"].as_f64().unwrap() as f32).abs() < 1e-4,
            "similarity {sim}"
        );
    }
}

#[tokio::test]
async fn zero_shot_colour_check() {
    let r = reference();
    let clip = Arc::new(load(8));
    let check = &r["zero_shot_colour_check"];
    let colours: Vec<&str> = check["colour_rgb"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let prompts: Vec<String> = colours
        .iter()
        .map(|c| format!("a photo of a {c} dress"))
        .collect();
    let texts = clip.embed_texts(&prompts).await.unwrap();
    for (name, rgb) in check["colour_rgb"].as_object().unwrap() {
        let rgb = ints(rgb);
        let img = RgbaImage::from_pixel(
            40,
            40,
            Rgba([rgb[0] as u8, rgb[1] as u8, rgb[2] as u8, 255]),
        );
        let v = clip.embed_image(clip.preprocess(&img)).await.unwrap();
        let best = texts
            .iter()
            .zip(&colours)
            .max_by(|a, b| dot(a.0, &v).total_cmp(&dot(b.0, &v)))
            .map(|(_, c)| *c)
            .unwrap();
        assert_eq!(best, check["best_prompt"][name].as_str().unwrap(), "{name}");
    }
}

#[tokio::test]
async fn concurrent_images_are_batched_and_give_the_same_vectors() {
    let clip = Arc::new(load(16));
    let images: Vec<RgbaImage> = (0..12u8)
        .map(|i| {
            RgbaImage::from_fn(48, 40, move |x, y| {
                Rgba([i * 20, x as u8 * 5, y as u8 * 6, 255])
            })
        })
        .collect();
    // One at a time: the reference vectors.
    let mut alone = Vec::new();
    for img in &images {
        alone.push(clip.embed_image(clip.preprocess(img)).await.unwrap());
    }
    // All queued before any is awaited: the worker takes whatever waits as one batch.
    let pending: Vec<_> = images
        .iter()
        .map(|img| clip.enqueue_image(clip.preprocess(img)).unwrap())
        .collect();
    let mut together = Vec::new();
    for p in pending {
        together.push(p.embedding().await.unwrap());
    }
    for (a, b) in alone.iter().zip(&together) {
        assert!(max_diff(a, b) < 1e-5);
    }
}

#[test]
fn broken_manifests_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let src = tiny_clip_dir();
    for f in ["vision.onnx", "text.onnx", "tokenizer.json"] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    let manifest = std::fs::read_to_string(src.join("manifest.toml")).unwrap();
    let options = PoolOptions {
        instances: 1,
        queue_limit: 4,
        max_batch: 4,
        threads: 1,
        solo_threads: 0,
    };
    let cases = [
        (
            manifest.replace("image_size = 32", "image_size = 64"),
            "input",
        ),
        (
            manifest.replace("image_embeds\"", "pooled\""),
            "no output named pooled",
        ),
        (
            manifest.replace("tokenizer = \"tokenizer.json\"\n", ""),
            "go together",
        ),
        (
            manifest.replace("kind = \"clip\"", "kind = \"sam\""),
            "kind",
        ),
        (format!("{manifest}\nsurprise = 1\n"), "surprise"),
        (
            manifest.replace("dimensions = 16", "dimensions = 32"),
            "manifest says 32",
        ),
    ];
    for (text, expect) in cases {
        std::fs::write(dir.path().join("manifest.toml"), &text).unwrap();
        let err = match Clip::load(dir.path(), loader(), &options, no_observer()) {
            Ok(_) => panic!("loaded a manifest that should fail with {expect:?}"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(expect), "{err:?} should mention {expect:?}");
    }
}
