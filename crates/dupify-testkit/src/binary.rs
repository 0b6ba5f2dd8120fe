//! The real `dupify` binary serving a data dir, as an operator runs it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Whether `s` has the shape of an API key with `prefix` (`fe_live_` / `fe_test_`).
pub fn is_key(s: &str, prefix: &str) -> bool {
    s.len() == 40 && s.starts_with(prefix) && s[8..].bytes().all(|b| b.is_ascii_alphanumeric())
}

/// `dupify serve` on an ephemeral port; killed when dropped.
pub struct BinaryServer {
    pub child: Child,
    /// `http://127.0.0.1:PORT`, as the server printed it.
    pub base: String,
    /// The admin key printed on an empty data dir (empty on a later start).
    pub key: String,
}

impl BinaryServer {
    /// Starts `bin serve` on `data` (without models: the weight-free embedding) and waits
    /// for its start-up banner.
    pub fn spawn(bin: &Path, data: &Path) -> BinaryServer {
        // No models directory here: the weight-free embedding, as TestServer's default.
        Self::spawn_with(bin, data, &[("DUPIFY_EMBEDDING_MODEL", "dupify-visual-v1")])
    }

    /// The same with these environment variables (e.g. `DUPIFY_MODELS_DIR`).
    pub fn spawn_with(bin: &Path, data: &Path, env: &[(&str, &str)]) -> BinaryServer {
        let mut child = Command::new(bin)
            .arg("--data-dir")
            .arg(data)
            .args(["serve", "--bind", "127.0.0.1:0"])
            .env("DUPIFY_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut base, mut key) = (String::new(), String::new());
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(rest) = line.strip_prefix("Dupify is serving on ") {
                base = rest.split_whitespace().next().unwrap().to_owned();
            }
            if is_key(line.trim(), "fe_live_") {
                key = line.trim().to_owned();
            }
            if line.trim_start().starts_with("curl ") || line.starts_with("Create a key") {
                break;
            }
        }
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        assert!(!base.is_empty(), "no address printed");
        BinaryServer { child, base, key }
    }
}

impl Drop for BinaryServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
