//! Test harness: a real server on an ephemeral port with a temporary data dir, plus
//! helpers that make real images.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine;
use dupify_core::{ApiKeySecret, KeyMode, Scopes, Tier};
use dupify_server::ServerConfig;
use dupify_store::{Account, NewAccount, NewKey, SqliteStore, Store};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct TestServer {
    pub addr: SocketAddr,
    pub base: String,
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
            // Tests that do not ask for models load none (and `/ready` has none missing).
            segmentation_models: Vec::new(),
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
        let handle = tokio::spawn(dupify_server::serve(listener, state, async {
            let _ = rx.await;
        }));
        TestServer {
            addr,
            base: format!("http://{addr}"),
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
    /// ONNX Runtime + u2netp: the default `dupify-visual-v1` embedding, no text.
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
/// installed runtime and u2netp (and the CLIP fixture), so each set sees only its files.
fn shared_models(set: ModelSet) -> (Arc<dupify_models::Models>, std::path::PathBuf) {
    use std::sync::OnceLock;
    static SETS: [OnceLock<(Arc<dupify_models::Models>, std::path::PathBuf)>; 2] =
        [OnceLock::new(), OnceLock::new()];
    SETS[set as usize]
        .get_or_init(|| {
            let src = project_models_dir();
            for f in ["libonnxruntime.so", "u2netp.onnx"] {
                assert!(
                    src.join(f).is_file(),
                    "{} is missing: run `make models` first",
                    src.join(f).display()
                );
            }
            let dir = tempfile::tempdir().unwrap().keep();
            for f in ["libonnxruntime.so", "u2netp.onnx"] {
                std::os::unix::fs::symlink(src.join(f), dir.join(f)).unwrap();
            }
            if set == ModelSet::WithClip {
                let clip = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                    .join("../dupify-models/tests/fixtures/tiny-clip");
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

fn uuid_like() -> String {
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

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn encode(img: &image::RgbImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), format)
        .unwrap();
    out
}

pub fn png(img: &image::RgbImage) -> Vec<u8> {
    encode(img, image::ImageFormat::Png)
}

/// A solid image in a color derived from `seed`, so every seed gives different bytes.
pub fn distinct_png(seed: u32) -> String {
    let c = [
        (seed * 37 % 256) as u8,
        (seed * 91 % 256) as u8,
        (seed * 151 % 256) as u8,
    ];
    let img = image::RgbImage::from_fn(16, 16, |x, y| {
        if (x + y) % 7 == 0 {
            image::Rgb([c[0] ^ 0x55, c[1], c[2]])
        } else {
            image::Rgb(c)
        }
    });
    b64(&png(&img))
}

/// 70% #1f2a44 on the left, 30% white on the right.
pub fn navy_white(width: u32, height: u32) -> image::RgbImage {
    let split = width * 7 / 10;
    image::RgbImage::from_fn(width, height, |x, _| {
        if x < split {
            image::Rgb([0x1f, 0x2a, 0x44])
        } else {
            image::Rgb([255, 255, 255])
        }
    })
}

pub async fn post(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    body: Value,
) -> reqwest::Response {
    client
        .post(url)
        .header("X-API-Key", key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

pub async fn colors_of(server: &TestServer, key: &str, b64_img: &str) -> reqwest::Response {
    post(
        &client(),
        &server.url("/v1/colors"),
        key,
        json!({"image_base64": b64_img}),
    )
    .await
}

/// Asserts the envelope and returns the `error` object.
pub async fn expect_error(res: reqwest::Response, status: u16, code: &str) -> Value {
    let got = res.status().as_u16();
    let rid = res
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: Value = res.json().await.unwrap();
    assert_eq!(got, status, "status for {code}: body {body}");
    assert_eq!(body["error"]["code"], code, "body {body}");
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    let rid = rid.expect("X-Request-Id header");
    assert_eq!(body["error"]["request_id"], rid.as_str());
    body["error"].clone()
}

/// Sends every body to `/v1/colors` at once and returns the responses in order.
pub async fn parallel_colors(
    server: &TestServer,
    key: &str,
    bodies: Vec<Value>,
) -> Vec<reqwest::Response> {
    let c = client();
    let tasks: Vec<_> = bodies
        .into_iter()
        .map(|body| {
            let (c, url, key) = (c.clone(), server.url("/v1/colors"), key.to_owned());
            tokio::spawn(async move { post(&c, &url, &key, body).await })
        })
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// `GET /v1/usage` with `key`, as JSON (whatever the status).
pub async fn usage_of(s: &TestServer, key: &str) -> Value {
    client()
        .get(s.url("/v1/usage"))
        .header("X-API-Key", key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Posts `body` to `path` and asserts a 400 `invalid_parameter` naming `parameter`.
pub async fn expect_invalid(s: &TestServer, key: &str, path: &str, body: Value, parameter: &str) {
    let e = expect_error(
        post(&client(), &s.url(path), key, body.clone()).await,
        400,
        "invalid_parameter",
    )
    .await;
    assert_eq!(e["details"]["parameter"], parameter, "{body}");
}
