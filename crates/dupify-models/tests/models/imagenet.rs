//! EfficientNet-Lite0 as built by `make models`: the ONNX graph against the independent
//! numpy forward pass (scripts/lite0/reference.py, outputs committed as a fixture), and
//! real photos a package ships (scikit-image's samples) classified as what they show.

use crate::common::*;
use dupify_models::imagenet::{softmax, ImageNet, IMAGENET_CLASSES, IMAGENET_FEATURES};
use serde_json::Value;

fn model() -> ImageNet {
    installed("efficientnet-lite0.onnx");
    ImageNet::load(&models_dir(), loader(), &test_pool_options(), no_observer())
        .expect("the model loads")
}

/// `fixed_inputs()` of scripts/lite0/reference.py, rebuilt value for value.
fn fixed_input(name: &str) -> Vec<f32> {
    let n = 224usize;
    let mut out = Vec::with_capacity(3 * n * n);
    for c in 0..3 {
        for h in 0..n {
            for x in 0..n {
                let (cf, hf, xf) = (c as f64, h as f64, x as f64);
                let v = match name {
                    "waves" => {
                        (0.37 * hf + 0.11 * xf + 1.7 * cf).sin()
                            * (0.05 * xf - 0.023 * hf * (cf + 1.0)).cos()
                    }
                    "ramp" => ((h + 2 * x + 50 * c) % 255) as f64 / 127.5 - 1.0,
                    other => panic!("no input {other}"),
                };
                out.push(v as f32);
            }
        }
    }
    out
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|x| x.as_f64().expect("a number") as f32)
        .collect()
}

fn top(p: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..p.len()).collect();
    idx.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
    idx.truncate(k);
    idx
}

#[test]
fn the_graph_computes_what_the_numpy_reference_computes() {
    let m = model();
    let fixture: Value =
        serde_json::from_str(include_str!("../fixtures/imagenet/lite0-reference.json"))
            .expect("fixture parses");
    let cases = fixture["cases"].as_object().expect("cases");
    assert_eq!(cases.len(), 2);
    for (name, case) in cases {
        let out = m.run_blocking(fixed_input(name)).expect("inference runs");
        assert_eq!(out.embedding.len(), IMAGENET_FEATURES);
        assert_eq!(out.probabilities.len(), IMAGENET_CLASSES);

        let mut want = floats(&case["features"]);
        let norm = want.iter().map(|v| v * v).sum::<f32>().sqrt();
        want.iter_mut().for_each(|v| *v /= norm);
        let worst = out
            .embedding
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-4, "{name}: features differ by up to {worst}");

        let want_p = softmax(&floats(&case["logits"]));
        let worst = out
            .probabilities
            .iter()
            .zip(&want_p)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            worst < 1e-4,
            "{name}: probabilities differ by up to {worst}"
        );
        let want_top: Vec<usize> = case["top5"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(
            top(&out.probabilities, 5),
            want_top,
            "{name}: top 5 classes"
        );
    }
}

#[test]
fn real_photos_are_classified_as_what_they_show() {
    let m = model();
    let labels = m.labels().clone();
    // (photo, acceptable top classes): espresso; tabby / tiger cat / Egyptian Mau; moped.
    for (file, want) in [
        ("coffee.png", vec![967]),
        ("chelsea.png", vec![281, 282, 285]),
        ("motorcycle_left.png", vec![665, 670]),
    ] {
        let path = installed(&format!("testdata/{file}"));
        let img = image::open(&path).expect("the photo decodes").to_rgba8();
        let small = image::imageops::thumbnail(&img, 512, 512);
        let out = m
            .run_blocking(dupify_vision::imagenet_input(&small, None))
            .expect("inference runs");
        let best = top(&out.probabilities, 1)[0];
        let mass: f32 = want.iter().map(|&i| out.probabilities[i]).sum();
        assert!(
            want.contains(&best) && mass > 0.5,
            "{file}: top class {best} {:?} (p {:.3}); expected one of {want:?}, mass {mass:.3}",
            labels[best],
            out.probabilities[best]
        );
    }
}
