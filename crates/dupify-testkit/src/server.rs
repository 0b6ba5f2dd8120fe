//! The real server on an ephemeral port with a temporary data dir.

use std::net::SocketAddr;
use std::sync::Arc;

use dupify_core::{ApiKeySecret, KeyMode, Scopes, Tier};
use dupify_server::{ServerConfig, SharedState};
use dupify_store::prelude::*;
use dupify_store::{Account, NewAccount, NewKey, SqliteStore};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A server running in this process; stopped when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    pub base: String,
    /// The server's own state (its pipeline, store, catalogs), for tests that reach in.
    pub state: SharedState,
    /// A second store handle on the same file, as the CLI would have.
    pub store: SqliteStore,
    pub dir: TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(f: impl FnOnce(&mut ServerConfig)) -> Self {
        Self::start_in(tempfile::tempdir().unwrap(), f).await
    }

    pub async fn start_in(dir: TempDir, f: impl FnOnce(&mut ServerConfig)) -> Self {
        Self::launch(dir, None, f).await
    }

    /// A server with real models: u2netp as the segmentation model, plus the tiny
    /// random-weight CLIP export when `set` is [`ModelSet::WithClip`]. The models are
    /// loaded once per test process and shared by its servers.
    pub async fn with_models(set: ModelSet, f: impl FnOnce(&mut ServerConfig)) -> Self {
        let (models, dir) = shared_models(set);
        Self::launch(
            tempfile::tempdir().unwrap(),
            Some(models),
            |cfg: &mut ServerConfig| {
                cfg.models_dir = dir;
                cfg.segmentation_models = vec!["u2netp".into()];
                f(cfg)
            },
        )
        .await
    }

    async fn launch(
        dir: TempDir,
        models: Option<Arc<dupify_models::Models>>,
        f: impl FnOnce(&mut ServerConfig),
    ) -> Self {
        let mut cfg = ServerConfig {
            data_dir: dir.path().to_owned(),
            bind: "127.0.0.1:0".parse().unwrap(),
            shutdown_grace_secs: 5,
            // Tests that do not ask for models load none (and `/ready` has none missing):
            // no segmentation, and the weight-free embedding.
            segmentation_models: Vec::new(),
            embedding_model: dupify_vision::VISUAL_MODEL.into(),
            models_dir: "/nonexistent/dupify-test-models".into(),
            ..ServerConfig::default()
        };
        f(&mut cfg);
        let listener = tokio::net::TcpListener::bind(cfg.bind).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server_store = SqliteStore::open(dir.path()).unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let state = match models {
            Some(m) => dupify_server::build_state_with_models(cfg, Arc::new(server_store), m),
            None => dupify_server::build_state(cfg, Arc::new(server_store)),
        };
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(dupify_server::serve(listener, state.clone(), async {
            let _ = rx.await;
        }));
        TestServer {
            addr,
            base: format!("http://{addr}"),
            state,
            store,
            dir,
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    /// Graceful stop; returns the data dir so a test can start again on it.
    pub async fn stop(mut self) -> TempDir {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.unwrap().unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, dir)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn account(&self, tier: Tier, monthly: Option<u64>, rate: Option<u32>) -> Account {
        self.store
            .create_account(NewAccount {
                email: format!("{}@test.local", uuid_like()),
                tier,
                monthly_limit: monthly,
                rate_limit: rate,
            })
            .await
            .unwrap()
    }

    pub async fn key_with(
        &self,
        account: &Account,
        scopes: &str,
        mode: KeyMode,
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> (String, String) {
        let secret = ApiKeySecret::generate(mode);
        let rec = self
            .store
            .create_key(NewKey {
                account_id: account.id.clone(),
                name: "test".into(),
                hash: secret.hash(),
                prefix: secret.display_prefix(),
                mode,
                scopes: Scopes::parse_list(scopes).unwrap(),
                expires_at,
            })
            .await
            .unwrap();
        (secret.expose().to_owned(), rec.id)
    }

    /// An unlimited account's live key with every scope.
    pub async fn admin_key(&self) -> String {
        let a = self.account(Tier::Unlimited, None, None).await;
        self.key_with(&a, "", KeyMode::Live, None).await.0
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ModelSet {
    /// ONNX Runtime, u2netp and EfficientNet-Lite0 (the default embedding), no text.
    Segmentation,
    /// The same plus tests/fixtures/tiny-clip of dupify-models (16-d, with a text tower).
    WithClip,
}

/// The project's models directory, filled by `make models`.
pub fn project_models_dir() -> std::path::PathBuf {
    std::env::var_os("DUPIFY_MODELS_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models")
        })
}

/// Loads a model set once per process: a scratch models directory that links the
/// installed runtime, u2netp and EfficientNet-Lite0 (and the CLIP fixture), so each set
/// sees only its files.
fn shared_models(set: ModelSet) -> (Arc<dupify_models::Models>, std::path::PathBuf) {
    use std::sync::OnceLock;
    static SETS: [OnceLock<(Arc<dupify_models::Models>, std::path::PathBuf)>; 2] =
        [OnceLock::new(), OnceLock::new()];
    SETS[set as usize]
        .get_or_init(|| {
            let src = project_models_dir();
            let files = [
                "libonnxruntime.so",
                "u2netp.onnx",
                "efficientnet-lite0.onnx",
                "imagenet-classes.json",
            ];
            for f in files {
                assert!(
                    src.join(f).is_file(),
                    "{} is missing: run `make models` first",
                    src.join(f).display()
                );
            }
            let dir = tempfile::tempdir().unwrap().keep();
            for f in files {
                std::os::unix::fs::symlink(src.join(f), dir.join(f)).unwrap();
            }
            if set == ModelSet::WithClip {
                let clip = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                    .join("../dupify-models/tests/fixtures/tiny-clip");
                assert!(clip.is_dir(), "{} is missing", clip.display());
                std::os::unix::fs::symlink(clip, dir.join("tiny-clip")).unwrap();
            }
            let cfg = ServerConfig {
                models_dir: dir.clone(),
                segmentation_models: vec!["u2netp".into()],
                model_instances: 2,
                ..ServerConfig::default()
            };
            let models = dupify_models::Models::load(
                &cfg.models_config(),
                Arc::new(|_: &str, _: usize, _: std::time::Duration| {}),
            );
            assert!(
                models.all_ready(),
                "models failed to load: {:?}",
                models.status()
            );
            (Arc::new(models), dir)
        })
        .clone()
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "u{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
            + (std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                % 1_000_000_000)
    )
}
