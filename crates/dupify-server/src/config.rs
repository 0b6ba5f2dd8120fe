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
    /// `text` or `json` log lines.
    pub log_format: String,
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
            log_format: "text".into(),
        }
    }
}

impl ServerConfig {
    pub fn fetch_connect_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.fetch_connect_timeout_secs.max(0.05))
    }
    pub fn fetch_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.fetch_timeout_secs.max(0.1))
    }
    pub fn effective_cpu_workers(&self) -> usize {
        if self.cpu_workers == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            self.cpu_workers
        }
    }
}
