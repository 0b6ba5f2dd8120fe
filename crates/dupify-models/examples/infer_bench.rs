//! Raw inference time of the installed models through our ONNX Runtime engine, to
//! compare with the same model run from Python (scripts/bench_infer_peer.py) and to
//! choose the threading of the model pools (docs/MODELS.md).
//!
//! `cargo run --release -p dupify-models --example infer_bench -- [MODELS_DIR] [RUNS]`
//!
//! For each model and thread count per engine it prints the median time of a lone
//! inference, and the throughput of two engines running back to back on two threads
//! (what two concurrent requests do to the server).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use dupify_models::onnx::OnnxLoader;
use dupify_models::{Engine, EngineLoader, TensorData};

fn input() -> Vec<f32> {
    // The same deterministic pseudo-random input for every model and run.
    let mut state = 0x9e37_79b9_u32;
    (0..3 * 320 * 320)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state as f32 / u32::MAX as f32) * 4.0 - 2.0
        })
        .collect()
}

fn median_ms(engine: &mut dyn Engine, inputs: &[TensorData], runs: usize) -> f64 {
    engine.run(1, inputs).expect("warm-up");
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            engine.run(1, inputs).expect("inference");
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Inferences per second of two engines each run `runs` times on its own thread.
fn pair_throughput(
    loader: &OnnxLoader,
    path: &std::path::Path,
    threads: usize,
    inputs: &Arc<[TensorData]>,
    runs: usize,
) -> f64 {
    let mut engines: Vec<Box<dyn Engine>> = (0..2)
        .map(|_| loader.load(path, threads).expect("loads"))
        .collect();
    for e in &mut engines {
        e.run(1, inputs).expect("warm-up");
    }
    let start = Instant::now();
    let handles: Vec<_> = engines
        .into_iter()
        .map(|mut e| {
            let inputs = inputs.clone();
            std::thread::spawn(move || {
                for _ in 0..runs {
                    e.run(1, &inputs).expect("inference");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread");
    }
    (2 * runs) as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "models".into()));
    let runs: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(20);
    let inputs: Arc<[TensorData]> = Arc::from(vec![TensorData::F32(input())]);
    println!("| model | threading | lone inference, median ms | 2 concurrent, inferences/s |");
    println!("|---|---|---:|---:|");
    for name in ["u2netp", "u2net"] {
        let path = dir.join(format!("{name}.onnx"));
        if !path.is_file() {
            eprintln!("{} missing, skipped", path.display());
            continue;
        }
        let loader = OnnxLoader {
            library: dir.join("libonnxruntime.so"),
        };
        for threads in [1, 2] {
            let mut engine = loader.load(&path, threads).expect("model loads");
            let lone = median_ms(engine.as_mut(), &inputs, runs);
            let pair = pair_throughput(&loader, &path, threads, &inputs, runs / 2);
            println!("| {name} | {threads} per instance | {lone:.1} | {pair:.2} |");
        }
    }
}
