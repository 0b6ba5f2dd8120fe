//! A bounded work queue per model, served by a few worker threads that each own one
//! engine instance. Requests that are waiting together are run as one batch when the
//! model's batch dimension allows it (the way text-embeddings-inference batches);
//! fixed-batch models (the U²-Net exports) get one request per run, and parallelism
//! comes from running several instances at once. A full queue is refused at once,
//! never turned into an unbounded backlog.
//!
//! Threads: each instance runs its inferences on `threads` threads, so that instances
//! running side by side fill the cores without oversubscribing them. An inference that
//! would run alone (no other instance busy, nothing waiting) is given to one extra
//! "solo" instance with `solo_threads` threads instead, so a lone request is not held
//! to one core while the others idle. Measured on 2 cores (docs/BENCHMARKS.md): u2netp
//! alone 220 ms on 1 thread, 122 ms on 2, while two 1-thread instances side by side
//! give 13 % more throughput than sharing 2 threads.

use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use tokio::sync::oneshot;

use crate::engine::{EngineError, EngineLoader, ModelSpec, TensorData};

/// Called after every inference run with (model, batch size, run time).
pub type Observer = Arc<dyn Fn(&str, usize, Duration) + Send + Sync>;

/// Per output, every item's values back to back.
type Outputs = Vec<Vec<f32>>;
type Reply = oneshot::Receiver<Result<Outputs, EngineError>>;

#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// Engine instances (threads). With intra-op threads each, the product should not
    /// exceed the cores.
    pub instances: usize,
    /// Requests waiting beyond the ones running; more are refused with `Overloaded`.
    pub queue_limit: usize,
    /// Most items per run for batch-capable models.
    pub max_batch: usize,
    /// Threads per inference of each instance.
    pub threads: usize,
    /// Threads of the solo instance used when an inference would run alone; no solo
    /// instance when this is not more than `threads`.
    pub solo_threads: usize,
}

struct Job {
    inputs: Vec<TensorData>,
    enqueued: Instant,
    reply: oneshot::Sender<Result<Vec<Vec<f32>>, EngineError>>,
}

#[derive(Default)]
struct Stats {
    queued: AtomicUsize,
    /// Instances running an inference now.
    running: AtomicUsize,
    runs: AtomicU64,
    items: AtomicU64,
    solo_runs: AtomicU64,
}

type SharedEngine = Arc<std::sync::Mutex<Box<dyn crate::engine::Engine>>>;

/// A model loaded in `instances` copies behind one queue.
pub struct ModelPool {
    name: String,
    fingerprint: String,
    spec: ModelSpec,
    sender: Sender<Job>,
    stats: Arc<Stats>,
    max_batch: usize,
}

fn record(name: &str, batch: usize, waited: Duration, took: Duration) {
    tracing::trace!(
        model = name,
        batch,
        waited_ms = waited.as_millis() as u64,
        took_ms = took.as_millis() as u64,
        "inference"
    );
}

impl ModelPool {
    /// Loads `instances` copies of the model (failing fast if the file does not load)
    /// and starts their threads.
    pub fn start(
        name: &str,
        path: &Path,
        loader: Arc<dyn EngineLoader>,
        options: &PoolOptions,
        observe: Observer,
    ) -> Result<Self, EngineError> {
        let instances = options.instances.max(1);
        // A single instance never runs beside another of its model: it gets the solo
        // thread count itself (a separate solo instance would only be used when idle).
        let threads = if instances == 1 {
            options.threads.max(options.solo_threads).max(1)
        } else {
            options.threads.max(1)
        };
        let mut engines = Vec::with_capacity(instances);
        for _ in 0..instances {
            engines.push(loader.load(path, threads)?);
        }
        let solo: Option<SharedEngine> = if instances > 1 && options.solo_threads > threads {
            Some(Arc::new(std::sync::Mutex::new(
                loader.load(path, options.solo_threads)?,
            )))
        } else {
            None
        };
        let spec = engines[0].spec().clone();
        // The first run of an instance pays for allocation and weight prepacking (u2net:
        // ~1.5 s): pay it now rather than on a customer's first request.
        let started = Instant::now();
        engines.iter_mut().for_each(|e| e.warm_up());
        if let Some(Ok(mut e)) = solo.as_ref().map(|s| s.lock()) {
            e.warm_up();
        }
        tracing::debug!(
            model = name,
            ms = started.elapsed().as_millis() as u64,
            "warmed up"
        );
        let max_batch = if spec.batch_capable() {
            options.max_batch.max(1)
        } else {
            1
        };
        let (sender, receiver) = bounded::<Job>(options.queue_limit.max(1));
        let stats = Arc::new(Stats::default());
        for (i, mut engine) in engines.into_iter().enumerate() {
            let receiver: Receiver<Job> = receiver.clone();
            let stats = stats.clone();
            let observe = observe.clone();
            let model = name.to_string();
            let solo = solo.clone();
            std::thread::Builder::new()
                .name(format!("model-{name}-{i}"))
                .spawn(move || {
                    // Ends when every sender is gone (the pool was dropped).
                    while let Ok(first) = receiver.recv() {
                        let mut jobs = vec![first];
                        while jobs.len() < max_batch {
                            match receiver.try_recv() {
                                Ok(job) => jobs.push(job),
                                Err(_) => break,
                            }
                        }
                        stats.queued.fetch_sub(jobs.len(), Ordering::Relaxed);
                        // Callers that gave up (a dropped request) need no work.
                        jobs.retain(|j| !j.reply.is_closed());
                        if jobs.is_empty() {
                            continue;
                        }
                        let others = stats.running.fetch_add(1, Ordering::SeqCst);
                        // Alone: nobody else running and nothing waiting. The solo
                        // instance may still be finishing a run; then use our own.
                        let solo_guard = solo
                            .as_ref()
                            .filter(|_| others == 0 && receiver.is_empty())
                            .and_then(|s| s.try_lock().ok());
                        let result = match solo_guard {
                            Some(mut wide) => {
                                stats.solo_runs.fetch_add(1, Ordering::Relaxed);
                                run_batch(&model, wide.as_mut(), &jobs, &stats, observe.as_ref())
                            }
                            None => {
                                run_batch(&model, engine.as_mut(), &jobs, &stats, observe.as_ref())
                            }
                        };
                        // Free before replying: the caller's next request must find
                        // this instance idle (and the solo instance unlocked).
                        stats.running.fetch_sub(1, Ordering::SeqCst);
                        reply(jobs, result);
                    }
                })
                .map_err(|e| EngineError::Runtime(format!("cannot start a model thread: {e}")))?;
        }
        Ok(ModelPool {
            name: name.to_string(),
            fingerprint: fingerprint(path),
            spec,
            sender,
            stats,
            max_batch,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// Refuses a model whose one input is not `[batch, 3, side, side]` (dynamic
    /// dimensions accepted): a mismatch would fail every request while `/ready` said ready.
    pub fn require_image_input(&self, side: u32, path: &Path) -> Result<(), EngineError> {
        let side = i64::from(side);
        let input = self
            .spec
            .inputs
            .first()
            .map(|i| i.dims.clone())
            .unwrap_or_default();
        let fits = |d: i64, want: i64| d < 0 || d == want;
        if self.spec.inputs.len() != 1
            || input.len() != 4
            || !fits(input[1], 3)
            || !fits(input[2], side)
            || !fits(input[3], side)
        {
            return Err(EngineError::Load {
                path: path.display().to_string(),
                reason: format!(
                    "expected one [batch, 3, {side}, {side}] input, found {:?}",
                    self.spec.inputs
                ),
            });
        }
        Ok(())
    }

    /// The position of the output called `name`.
    pub fn output_index(&self, name: &str, path: &Path) -> Result<usize, EngineError> {
        self.spec
            .outputs
            .iter()
            .position(|o| o.name == name)
            .ok_or_else(|| EngineError::Load {
                path: path.display().to_string(),
                reason: format!(
                    "no output named {name} (has {:?})",
                    self.spec
                        .outputs
                        .iter()
                        .map(|o| &o.name)
                        .collect::<Vec<_>>()
                ),
            })
    }

    /// `name@<size>-<mtime>` of the loaded file: part of cache keys, so replacing a
    /// model file under the same name never serves answers of the old one.
    pub fn key(&self) -> String {
        format!("{}@{}", self.name, self.fingerprint)
    }

    pub fn max_batch(&self) -> usize {
        self.max_batch
    }

    /// Requests waiting for an instance.
    pub fn queue_depth(&self) -> usize {
        self.stats.queued.load(Ordering::Relaxed)
    }

    /// Runs that went to the solo (all-threads) instance.
    pub fn solo_runs(&self) -> u64 {
        self.stats.solo_runs.load(Ordering::Relaxed)
    }

    /// (runs, items) so far: items / runs is the mean batch size.
    pub fn counters(&self) -> (u64, u64) {
        (
            self.stats.runs.load(Ordering::Relaxed),
            self.stats.items.load(Ordering::Relaxed),
        )
    }

    /// Queues one item (each input tensor for a single batch item) and waits for its
    /// outputs. Refused at once with `Overloaded` when the queue is full.
    pub async fn infer(&self, inputs: Vec<TensorData>) -> Result<Vec<Vec<f32>>, EngineError> {
        self.enqueue(inputs)?.wait().await
    }

    /// Queues one item now and returns a handle to await its outputs later: several
    /// items queued back to back can share one batch.
    pub fn enqueue(&self, inputs: Vec<TensorData>) -> Result<Pending, EngineError> {
        self.submit(inputs).map(Pending)
    }

    /// Blocking form of [`ModelPool::infer`] for callers outside the async runtime
    /// (the CLI, benchmarks).
    pub fn infer_blocking(&self, inputs: Vec<TensorData>) -> Result<Vec<Vec<f32>>, EngineError> {
        let rx = self.submit(inputs)?;
        rx.blocking_recv().map_err(|_| EngineError::Stopped)?
    }

    fn submit(&self, inputs: Vec<TensorData>) -> Result<Reply, EngineError> {
        let (reply, rx) = oneshot::channel();
        self.stats.queued.fetch_add(1, Ordering::Relaxed);
        let job = Job {
            inputs,
            enqueued: Instant::now(),
            reply,
        };
        match self.sender.try_send(job) {
            Ok(()) => Ok(rx),
            Err(TrySendError::Full(_)) => {
                self.stats.queued.fetch_sub(1, Ordering::Relaxed);
                metrics::counter!("dupify_overload_rejections_total", "stage" => "model")
                    .increment(1);
                Err(EngineError::Overloaded)
            }
            Err(TrySendError::Disconnected(_)) => {
                self.stats.queued.fetch_sub(1, Ordering::Relaxed);
                Err(EngineError::Stopped)
            }
        }
    }
}

/// An item queued with [`ModelPool::enqueue`].
pub struct Pending(Reply);

impl Pending {
    pub async fn wait(self) -> Result<Vec<Vec<f32>>, EngineError> {
        self.0.await.map_err(|_| EngineError::Stopped)?
    }
}

/// Size and modification time of a model file, cheap to read at load (hashing 176 MB
/// would cost a second per start).
fn fingerprint(path: &Path) -> String {
    let meta = std::fs::metadata(path).ok();
    let len = meta.as_ref().map_or(0, |m| m.len());
    let mtime = meta
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    format!("{len:x}-{mtime:x}")
}

/// Runs one batch on `engine` (the caller has already dropped abandoned jobs).
fn execute(
    model: &str,
    engine: &mut dyn crate::engine::Engine,
    jobs: &[Job],
    stats: &Stats,
    observe: &(dyn Fn(&str, usize, Duration) + Send + Sync),
) -> Result<Outputs, EngineError> {
    let waited = jobs
        .iter()
        .map(|j| j.enqueued.elapsed())
        .max()
        .unwrap_or_default();
    let batch = jobs.len();
    let started = Instant::now();
    let result = if batch == 1 {
        engine.run(1, &jobs[0].inputs)
    } else {
        concat_inputs(jobs).and_then(|inputs| engine.run(batch, &inputs))
    };
    let took = started.elapsed();
    stats.runs.fetch_add(1, Ordering::Relaxed);
    stats.items.fetch_add(batch as u64, Ordering::Relaxed);
    observe(model, batch, took);
    record(model, batch, waited, took);
    result
}

/// [`execute`] with two safety nets: a panicking engine becomes an error for its items
/// (the worker and the counters survive), and a failed batch of several items is
/// retried item by item, so one bad item (or another customer's) fails alone.
fn run_batch(
    model: &str,
    engine: &mut dyn crate::engine::Engine,
    jobs: &[Job],
    stats: &Stats,
    observe: &(dyn Fn(&str, usize, Duration) + Send + Sync),
) -> Vec<Result<Outputs, EngineError>> {
    let mut guarded = |jobs: &[Job]| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            execute(model, &mut *engine, jobs, stats, observe)
        }))
        .unwrap_or_else(|_| {
            tracing::error!(model, "the inference engine panicked");
            Err(EngineError::Run("the inference engine panicked".into()))
        })
    };
    match guarded(jobs) {
        Ok(outputs) => split(outputs, jobs.len()),
        Err(_) if jobs.len() > 1 => jobs
            .iter()
            .map(|j| guarded(std::slice::from_ref(j)))
            .collect(),
        Err(e) => vec![Err(e)],
    }
}

/// Splits every output of a batch evenly across its `n` items.
fn split(outputs: Outputs, n: usize) -> Vec<Result<Outputs, EngineError>> {
    if n == 1 {
        return vec![Ok(outputs)];
    }
    let per_item: Vec<usize> = outputs.iter().map(|o| o.len() / n).collect();
    (0..n)
        .map(|i| {
            Ok(outputs
                .iter()
                .zip(&per_item)
                .map(|(o, &k)| o[i * k..(i + 1) * k].to_vec())
                .collect())
        })
        .collect()
}

/// Hands each job its result.
fn reply(jobs: Vec<Job>, results: Vec<Result<Outputs, EngineError>>) {
    for (job, result) in jobs.into_iter().zip(results) {
        let _ = job.reply.send(result);
    }
}

fn concat_inputs(jobs: &[Job]) -> Result<Vec<TensorData>, EngineError> {
    let mut inputs = jobs[0].inputs.clone();
    for job in &jobs[1..] {
        if job.inputs.len() != inputs.len() {
            return Err(EngineError::Input(
                "items with different inputs in one batch".into(),
            ));
        }
        for (acc, item) in inputs.iter_mut().zip(&job.inputs) {
            acc.extend(item)?;
        }
    }
    Ok(inputs)
}

#[cfg(test)]
mod tests {
    use std::sync::{Condvar, Mutex};

    use super::*;
    use crate::engine::{Engine, IoSpec};

    type Gate = Arc<(Mutex<bool>, Condvar)>;
    type Batches = Arc<Mutex<Vec<usize>>>;

    /// An engine whose runs wait for a gate to open, and that records each batch size
    /// and its thread count. Output: every input value doubled.
    struct Gated {
        spec: ModelSpec,
        threads: usize,
        gate: Arc<(Mutex<bool>, Condvar)>,
        batches: Arc<Mutex<Vec<usize>>>,
        threads_used: Arc<Mutex<Vec<usize>>>,
    }

    impl Engine for Gated {
        fn spec(&self) -> &ModelSpec {
            &self.spec
        }
        fn run(
            &mut self,
            batch: usize,
            inputs: &[TensorData],
        ) -> Result<Vec<Vec<f32>>, EngineError> {
            let (lock, cvar) = &*self.gate;
            let mut open = lock.lock().unwrap();
            while !*open {
                open = cvar.wait(open).unwrap();
            }
            drop(open);
            self.batches.lock().unwrap().push(batch);
            self.threads_used.lock().unwrap().push(self.threads);
            match &inputs[0] {
                TensorData::F32(v) if v.first() == Some(&-1.0) => panic!("engine bug"),
                TensorData::F32(v) if v.len() == batch * 2 => {
                    Ok(vec![v.iter().map(|x| x * 2.0).collect()])
                }
                _ => Err(EngineError::Input("bad".into())),
            }
        }
    }

    struct GatedLoader {
        batch_dim: i64,
        gate: Arc<(Mutex<bool>, Condvar)>,
        batches: Arc<Mutex<Vec<usize>>>,
        threads_used: Arc<Mutex<Vec<usize>>>,
    }

    impl EngineLoader for GatedLoader {
        fn load(&self, _: &Path, threads: usize) -> Result<Box<dyn Engine>, EngineError> {
            let io = |n: &str| IoSpec {
                name: n.into(),
                dims: vec![self.batch_dim, 2],
            };
            Ok(Box::new(Gated {
                spec: ModelSpec {
                    inputs: vec![io("x")],
                    outputs: vec![io("y")],
                },
                threads,
                gate: self.gate.clone(),
                batches: self.batches.clone(),
                threads_used: self.threads_used.clone(),
            }))
        }
    }

    fn pool(batch_dim: i64, instances: usize, queue_limit: usize) -> (ModelPool, Gate, Batches) {
        let (p, gate, batches, _) = pool_with(batch_dim, instances, queue_limit, 1);
        (p, gate, batches)
    }

    fn pool_with(
        batch_dim: i64,
        instances: usize,
        queue_limit: usize,
        solo_threads: usize,
    ) -> (ModelPool, Gate, Batches, Batches) {
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let batches = Arc::new(Mutex::new(Vec::new()));
        let threads_used = Arc::new(Mutex::new(Vec::new()));
        let loader = Arc::new(GatedLoader {
            batch_dim,
            gate: gate.clone(),
            batches: batches.clone(),
            threads_used: threads_used.clone(),
        });
        let options = PoolOptions {
            instances,
            queue_limit,
            max_batch: 8,
            threads: 1,
            solo_threads,
        };
        let observe: Observer = Arc::new(|_: &str, _: usize, _: Duration| {});
        let p =
            ModelPool::start("fake", Path::new("fake.onnx"), loader, &options, observe).unwrap();
        (p, gate, batches, threads_used)
    }

    fn open(gate: &(Mutex<bool>, Condvar)) {
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
    }

    fn wait_until(mut f: impl FnMut() -> bool) {
        let start = Instant::now();
        while !f() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "condition never held"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    #[tokio::test]
    async fn items_waiting_together_share_one_run() {
        let (p, gate, batches) = pool(-1, 1, 32);
        assert_eq!(p.max_batch(), 8);
        // The first item occupies the worker (blocked at the gate); the next 10 wait.
        let first = p.enqueue(vec![TensorData::F32(vec![0.0, 1.0])]).unwrap();
        wait_until(|| p.queue_depth() == 0);
        let rest: Vec<_> = (1..=10)
            .map(|i| {
                p.enqueue(vec![TensorData::F32(vec![i as f32, -(i as f32)])])
                    .unwrap()
            })
            .collect();
        assert_eq!(p.queue_depth(), 10);
        open(&gate);
        assert_eq!(first.wait().await.unwrap(), vec![vec![0.0, 2.0]]);
        for (i, r) in rest.into_iter().enumerate() {
            let i = (i + 1) as f32;
            // Each item gets its own slice of the batched output.
            assert_eq!(r.wait().await.unwrap(), vec![vec![2.0 * i, -2.0 * i]]);
        }
        // 1, then at most max_batch (8), then the remaining 2.
        assert_eq!(*batches.lock().unwrap(), vec![1, 8, 2]);
        assert_eq!(p.counters(), (3, 11));
    }

    #[tokio::test]
    async fn fixed_batch_models_run_one_item_at_a_time() {
        let (p, gate, batches) = pool(1, 2, 32);
        assert_eq!(p.max_batch(), 1);
        let pending: Vec<_> = (0..6)
            .map(|i| {
                p.enqueue(vec![TensorData::F32(vec![i as f32, 0.0])])
                    .unwrap()
            })
            .collect();
        open(&gate);
        for (i, r) in pending.into_iter().enumerate() {
            assert_eq!(r.wait().await.unwrap(), vec![vec![2.0 * i as f32, 0.0]]);
        }
        assert_eq!(*batches.lock().unwrap(), vec![1; 6]);
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once() {
        let (p, gate, _) = pool(1, 1, 2);
        let running = p.enqueue(vec![TensorData::F32(vec![1.0, 1.0])]).unwrap();
        wait_until(|| p.queue_depth() == 0);
        let waiting: Vec<_> = (0..2)
            .map(|_| p.enqueue(vec![TensorData::F32(vec![1.0, 1.0])]).unwrap())
            .collect();
        assert!(matches!(
            p.enqueue(vec![TensorData::F32(vec![1.0, 1.0])]),
            Err(EngineError::Overloaded)
        ));
        assert_eq!(p.queue_depth(), 2);
        open(&gate);
        running.wait().await.unwrap();
        for w in waiting {
            w.wait().await.unwrap();
        }
        // Room again once the backlog is served.
        p.infer(vec![TensorData::F32(vec![1.0, 1.0])])
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn abandoned_items_are_skipped_and_a_bad_item_fails_alone() {
        let (p, gate, batches) = pool(-1, 1, 32);
        let first = p.enqueue(vec![TensorData::F32(vec![0.0, 0.0])]).unwrap();
        wait_until(|| p.queue_depth() == 0);
        // A caller that went away (its request was dropped) costs no inference.
        drop(p.enqueue(vec![TensorData::F32(vec![5.0, 5.0])]).unwrap());
        // A malformed item fails the batch it is in; the batch is retried item by item,
        // so only that item fails.
        let bad = p.enqueue(vec![TensorData::F32(vec![1.0])]).unwrap();
        let ok = p.enqueue(vec![TensorData::F32(vec![1.0, 1.0])]).unwrap();
        open(&gate);
        first.wait().await.unwrap();
        assert!(bad.wait().await.is_err());
        assert_eq!(ok.wait().await.unwrap(), vec![vec![2.0, 2.0]]);
        assert_eq!(*batches.lock().unwrap(), vec![1, 2, 1, 1]);
    }

    #[tokio::test]
    async fn a_panicking_engine_fails_its_item_and_the_pool_carries_on() {
        let (p, gate, _, threads_used) = pool_with(1, 2, 32, 2);
        open(&gate);
        let e = p
            .infer(vec![TensorData::F32(vec![-1.0, 0.0])])
            .await
            .unwrap_err();
        assert!(e.to_string().contains("panicked"), "{e}");
        // Both workers still serve, and the lone request still gets the solo instance
        // (the running count was not left raised by the panic).
        threads_used.lock().unwrap().clear();
        for _ in 0..4 {
            p.infer(vec![TensorData::F32(vec![1.0, 0.0])])
                .await
                .unwrap();
        }
        assert_eq!(*threads_used.lock().unwrap(), vec![2, 2, 2, 2]);
    }

    #[tokio::test]
    async fn a_lone_inference_gets_the_solo_instance_and_concurrent_ones_do_not() {
        let (p, gate, _, threads_used) = pool_with(1, 2, 32, 2);
        open(&gate);
        // One at a time: every run alone, on the 2-thread instance.
        for i in 0..3 {
            p.infer(vec![TensorData::F32(vec![i as f32, 0.0])])
                .await
                .unwrap();
        }
        assert_eq!(*threads_used.lock().unwrap(), vec![2, 2, 2]);
        assert_eq!(p.solo_runs(), 3);
        // Two in flight with the gate closed: the first may go solo, the second sees
        // it running and takes a 1-thread instance; nothing runs on more threads than
        // the cores while the other runs.
        *gate.0.lock().unwrap() = false;
        threads_used.lock().unwrap().clear();
        let a = p.enqueue(vec![TensorData::F32(vec![1.0, 0.0])]).unwrap();
        wait_until(|| p.queue_depth() == 0);
        let b = p.enqueue(vec![TensorData::F32(vec![2.0, 0.0])]).unwrap();
        wait_until(|| p.queue_depth() == 0);
        open(&gate);
        a.wait().await.unwrap();
        b.wait().await.unwrap();
        let mut used = threads_used.lock().unwrap().clone();
        used.sort();
        assert_eq!(used, vec![1, 2]);
    }
}
