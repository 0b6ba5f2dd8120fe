//! Raw inference time of the installed models through our ONNX Runtime engine, to
//! compare with the same model run from Python (scripts/bench_infer_peer.py) and to see
//! what the rest of a request costs on top.
//!
//! `cargo run --release -p dupify-models --example infer_bench -- [MODELS_DIR] [RUNS]`

use std::path::PathBuf;
use std::time::Instant;

use dupify_models::onnx::OnnxLoader;
use dupify_models::{EngineLoader, TensorData};

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "models".into()));
    let runs: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(20);
    // The same deterministic pseudo-random input for every model and run.
    let mut state = 0x9e37_79b9_u32;
    let input: Vec<f32> = (0..3 * 320 * 320)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state as f32 / u32::MAX as f32) * 4.0 - 2.0
        })
        .collect();
    println!("| model | intra-op threads | median ms | min ms | runs |");
    println!("|---|---:|---:|---:|---:|");
    for name in ["u2netp", "u2net"] {
        let path = dir.join(format!("{name}.onnx"));
        if !path.is_file() {
            eprintln!("{} missing, skipped", path.display());
            continue;
        }
        for threads in [1, 2] {
            let loader = OnnxLoader {
                library: dir.join("libonnxruntime.so"),
                intra_threads: threads,
            };
            let mut engine = loader.load(&path).expect("model loads");
            let inputs = [TensorData::F32(input.clone())];
            engine.run(1, &inputs).expect("warm-up");
            let mut times: Vec<f64> = (0..runs)
                .map(|_| {
                    let t = Instant::now();
                    engine.run(1, &inputs).expect("inference");
                    t.elapsed().as_secs_f64() * 1000.0
                })
                .collect();
            times.sort_by(f64::total_cmp);
            println!(
                "| {name} | {threads} | {:.1} | {:.1} | {runs} |",
                times[times.len() / 2],
                times[0]
            );
        }
    }
}
