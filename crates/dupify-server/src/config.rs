//! Server settings. The CLI fills this from defaults, `dupify.toml`, `DUPIFY_*` variables
//! and flags (in that order of precedence, last wins).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    pub bind: SocketAddr,
    /// Where the database and other state live.
    pub data_dir: PathBuf,
    /// Where model files live (used by the vision pipeline).
    pub models_dir: PathBuf,
    /// Largest request body accepted, in bytes.
    pub body_limit_bytes: usize,
    /// Largest image accepted (downloaded or decoded from base64), in bytes.
    pub max_image_bytes: usize,
    /// Largest image accepted, in pixels (decompression-bomb guard).
    pub max_image_pixels: u64,
    /// Lets the server fetch from private/loopback addresses. For tests only.
    pub allow_private_image_hosts: bool,
    /// Exact private addresses image URLs may still point at (an internal image host).
    /// Every other private, loopback or link-local address stays refused.
    pub allowed_private_image_ips: Vec<std::net::IpAddr>,
    /// Connect timeout for image downloads, in seconds.
    pub fetch_connect_timeout_secs: f64,
    /// Whole-download timeout for image downloads, in seconds.
    pub fetch_timeout_secs: f64,
    /// Result cache budget in MiB (0 disables the cache).
    pub cache_max_mib: u64,
    /// Result cache time-to-live, in seconds.
    pub cache_ttl_secs: u64,
    /// Concurrent CPU-heavy jobs (decode, features). 0 = number of cores.
    pub cpu_workers: usize,
    /// Jobs allowed to wait for a CPU worker; beyond that requests get 503 with
    /// Retry-After instead of an ever-growing backlog.
    pub cpu_queue_limit: usize,
    /// Longest time to let in-flight requests finish at shutdown, in seconds.
    pub shutdown_grace_secs: u64,
    /// A connection must send a request's whole header within this many seconds, both
    /// when it opens and while it idles between keep-alive requests; else it is closed.
    pub header_read_timeout_secs: f64,
    /// A request's whole body must arrive within this many seconds of its header;
    /// else it is refused (`400 invalid_parameter` naming `body`) and the connection closed.
    pub body_read_timeout_secs: f64,
    /// Most client connections open at once; beyond it new connections are closed at
    /// once (counted in `dupify_connections_refused_total`). 0 = from the process's
    /// open-file limit (raised to its hard limit at start), leaving room for files.
    pub max_connections: usize,
    /// `text` or `json` log lines.
    pub log_format: String,
    /// Segmentation models to load at start (files `<name>.onnx` in `models_dir`); the
    /// first is the default, the others can be asked for with the `model` option.
    pub segmentation_models: Vec<String>,
    /// CLIP export to load (a subdirectory of `models_dir` with a manifest.toml, by
    /// directory or model name). Empty = the only one present, if exactly one is.
    pub clip_model: String,
    /// The default embedding model: a CLIP model's name, `efficientnet-lite0` or
    /// `dupify-visual-v1`. Empty = the CLIP model when one is installed, else
    /// `efficientnet-lite0`.
    pub embedding_model: String,
    /// ONNX Runtime shared library. Empty = `models_dir/libonnxruntime.so`.
    pub onnxruntime_library: String,
    /// Instances of each segmentation model, run side by side. 0 = number of cores, at
    /// most 4.
    pub model_instances: usize,
    /// Threads one inference may use (keep instances × threads ≤ cores).
    pub model_intra_threads: usize,
    /// Threads for an inference that runs alone (nothing else running or waiting on
    /// that model): one extra instance per model uses them. 0 = number of cores; not
    /// more than `model_intra_threads` turns it off.
    pub model_solo_threads: usize,
    /// Images allowed to wait for a model instance; beyond that 503 with Retry-After.
    pub model_queue_limit: usize,
    /// Most items one run of a batch-capable model (CLIP) takes.
    pub model_max_batch: usize,
    /// Zero-shot attribute taxonomy. Empty = `models_dir/taxonomy.toml` if present,
    /// else the built-in one.
    pub taxonomy_file: String,
    /// Longest side of a background-removal answer: larger images are cut out at this
    /// size (decoded at reduced scale where the format allows), which bounds the memory
    /// one image can take (a 50-megapixel upload would otherwise need ~1 GB on its way).
    pub cutout_max_side: u32,
    /// Base URL `dupify models pull` downloads CLIP exports from (a mirror may stand in).
    pub model_hub: String,
    /// Background workers extracting catalog features (0 disables them: uploads are
    /// queued and processed by another process or after a restart).
    pub catalog_workers: usize,
    /// How long a worker holds a job before another may take it over (a crashed
    /// worker's jobs are retried after this), in seconds.
    pub catalog_job_lease_secs: u64,
    /// Attempts per product before it is marked failed (transient download errors and
    /// interrupted runs are retried with exponential backoff).
    pub catalog_max_attempts: u32,
    /// First retry delay, in seconds (doubles per attempt, capped at 10 minutes).
    pub catalog_retry_base_secs: f64,
    /// Up to this many (matching) products a search scores every product exactly
    /// instead of walking the HNSW graph.
    pub catalog_exact_threshold: usize,
    /// HNSW beam width at search time (higher: better recall, slower).
    pub catalog_hnsw_ef: usize,
    /// How often changed catalog indexes are written to the data directory, in seconds.
    pub catalog_snapshot_secs: u64,
    /// How long a webhook receiver has to answer one delivery, in seconds.
    pub webhook_timeout_secs: f64,
    /// First retry delay of a failed webhook delivery, in seconds (doubles per attempt,
    /// capped at `webhook_retry_max_secs`).
    pub webhook_retry_base_secs: f64,
    /// Longest delay between two attempts of a delivery, in seconds.
    pub webhook_retry_max_secs: f64,
    /// How long an undelivered event is retried before it is given up, in seconds.
    pub webhook_retry_window_secs: u64,
    /// Consecutive failed attempts after which an endpoint is disabled (re-enable with
    /// `POST /v1/webhooks/{id}/enable`).
    pub webhook_disable_after: u32,
    /// Lets anyone create an account from the dashboard's sign-up page. Off: only the
    /// CLI creates accounts, and existing dashboard users can still sign in.
    pub dashboard_signup: bool,
    /// Marks dashboard cookies `Secure` on every response (also done per request when
    /// a proxy says `X-Forwarded-Proto: https`).
    pub dashboard_secure_cookies: bool,
    /// Reverse proxies (their exact addresses) whose `X-Forwarded-For` names the client.
    /// A request from one of them is attributed to the last address in that header
    /// that is not itself a trusted proxy; from anyone else the header is ignored.
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            models_dir: PathBuf::from("./models"),
            body_limit_bytes: 16 * 1024 * 1024,
            max_image_bytes: 10 * 1024 * 1024,
            max_image_pixels: 50_000_000,
            allow_private_image_hosts: false,
            allowed_private_image_ips: Vec::new(),
            fetch_connect_timeout_secs: 5.0,
            fetch_timeout_secs: 15.0,
            cache_max_mib: 256,
            cache_ttl_secs: 24 * 3600,
            cpu_workers: 0,
            cpu_queue_limit: 64,
            shutdown_grace_secs: 30,
            header_read_timeout_secs: 10.0,
            body_read_timeout_secs: 60.0,
            max_connections: 0,
            log_format: "text".into(),
            segmentation_models: vec!["u2net".into(), "u2netp".into()],
            clip_model: String::new(),
            embedding_model: String::new(),
            onnxruntime_library: String::new(),
            model_instances: 0,
            model_intra_threads: 1,
            model_solo_threads: 0,
            model_queue_limit: 32,
            model_max_batch: 16,
            taxonomy_file: String::new(),
            cutout_max_side: 4096,
            model_hub: dupify_models::pull::DEFAULT_HUB.into(),
            catalog_workers: 2,
            catalog_job_lease_secs: 60,
            catalog_max_attempts: 5,
            catalog_retry_base_secs: 2.0,
            catalog_exact_threshold: 5_000,
            catalog_hnsw_ef: 128,
            catalog_snapshot_secs: 30,
            webhook_timeout_secs: 10.0,
            webhook_retry_base_secs: 30.0,
            webhook_retry_max_secs: 3600.0,
            webhook_retry_window_secs: 24 * 3600,
            webhook_disable_after: 100,
            dashboard_signup: true,
            dashboard_secure_cookies: false,
            trusted_proxies: Vec::new(),
        }
    }
}

impl ServerConfig {
    /// The client's address: the peer's, or behind a trusted proxy the nearest
    /// untrusted address of its `X-Forwarded-For` (entries further left could be forged
    /// by the client itself).
    pub fn client_ip(
        &self,
        peer: std::net::IpAddr,
        headers: &axum::http::HeaderMap,
    ) -> std::net::IpAddr {
        if !self.trusted_proxies.contains(&peer) {
            return peer;
        }
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        for hop in forwarded.iter().rev() {
            match hop.parse::<std::net::IpAddr>() {
                Ok(ip) if self.trusted_proxies.contains(&ip) => continue,
                Ok(ip) => return ip,
                // Garbage where an address should be: trust nothing further left.
                Err(_) => return peer,
            }
        }
        peer
    }

    pub fn fetch_connect_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.fetch_connect_timeout_secs.max(0.05))
    }
    pub fn fetch_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.fetch_timeout_secs.max(0.1))
    }
    pub fn models_config(&self) -> dupify_models::ModelsConfig {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        dupify_models::ModelsConfig {
            dir: self.models_dir.clone(),
            runtime_library: (!self.onnxruntime_library.is_empty())
                .then(|| PathBuf::from(&self.onnxruntime_library)),
            segmentation: self.segmentation_models.clone(),
            clip: (!self.clip_model.is_empty()).then(|| self.clip_model.clone()),
            embedding: (!self.embedding_model.is_empty()).then(|| self.embedding_model.clone()),
            // One per core, but not past 4: each u2net instance holds ~180 MB of weights
            // and a big machine gains little from more parallel copies of one model.
            instances: if self.model_instances == 0 {
                cores.min(4)
            } else {
                self.model_instances
            },
            intra_threads: self.model_intra_threads.max(1),
            solo_threads: if self.model_solo_threads == 0 {
                cores
            } else {
                self.model_solo_threads
            },
            queue_limit: self.model_queue_limit.max(1),
            max_batch: self.model_max_batch.max(1),
        }
    }

    pub fn catalog_search_config(&self) -> dupify_catalog::SearchConfig {
        dupify_catalog::SearchConfig {
            exact_threshold: self.catalog_exact_threshold,
            ef: self.catalog_hnsw_ef.max(10),
            ..dupify_catalog::SearchConfig::default()
        }
    }

    pub fn effective_cpu_workers(&self) -> usize {
        if self.cpu_workers == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            self.cpu_workers
        }
    }

    /// The application layer's settings.
    pub fn pipeline_config(&self) -> dupify_pipeline::ContextConfig {
        dupify_pipeline::ContextConfig {
            intake: dupify_images::IntakeLimits {
                max_image_bytes: self.max_image_bytes,
                max_pixels: self.max_image_pixels,
            },
            cpu_workers: self.effective_cpu_workers(),
            cpu_queue_limit: self.cpu_queue_limit,
            cutout_max_side: self.cutout_max_side,
            taxonomy_file: (!self.taxonomy_file.is_empty())
                .then(|| PathBuf::from(&self.taxonomy_file)),
            models_dir: self.models_dir.clone(),
        }
    }
}
