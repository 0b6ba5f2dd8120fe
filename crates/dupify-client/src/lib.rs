//! Async Rust client for the Dupify API: visual embeddings, colors, silhouettes,
//! attributes, background removal and catalog search for retail products.
//!
//! ```no_run
//! use dupify_client::{Client, ImageSource, SearchQuery, SearchRequest};
//!
//! # async fn demo() -> Result<(), dupify_client::Error> {
//! let client = Client::new("https://dupify.example.com", "fe_live_...")?;
//!
//! // Features of one photo.
//! let photo = ImageSource::from_path("dress.jpg").await?;
//! let colors = client.colors(&photo, &Default::default()).await?;
//! for c in &colors.colors {
//!     println!("{} {} {:.0} %", c.hex, c.name, c.percentage);
//! }
//!
//! // Cheaper look-alikes from the catalog.
//! let mut q = SearchRequest::new(SearchQuery::Image(photo));
//! q.cheaper_than = Some(80.0);
//! q.top_k = Some(5);
//! let hits = client.search(&q).await?;
//! for h in &hits.results {
//!     println!("{:.3} {} {:?}", h.score, h.product.title, h.product.price);
//! }
//! # Ok(()) }
//! ```
//!
//! Every call returns a [`Response`], which dereferences to the typed body and carries
//! the request id and the metering headers ([`RateLimit`]). Failures are an
//! [`Error`]; an answer of the API is [`Error::Api`] with its `code`, `message`,
//! `details` and `request_id`.
//!
//! Retries follow the API's guidance (see [`RetryPolicy`]): never on 400, 401, 403,
//! 404 or 422; on 429 after `Retry-After`; on 500 and 503 with exponential backoff and
//! jitter; within `max_retries` and an overall deadline.

mod error;
mod image;
mod retry;
mod types;
pub mod webhook;

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

pub use error::{ApiError, Error, RateLimit};
pub use image::ImageSource;
pub use retry::{RetryEvent, RetryPolicy};
pub use types::*;

/// Which header carries the key. Both work on every route.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AuthScheme {
    /// `X-API-Key: <key>`
    #[default]
    ApiKeyHeader,
    /// `Authorization: Bearer <key>`
    Bearer,
}

/// A typed body with what the response headers said.
#[derive(Clone, Debug)]
pub struct Response<T> {
    /// The typed body (also reachable through `Deref`).
    pub body: T,
    pub status: u16,
    /// `X-Request-Id`.
    pub request_id: Option<String>,
    pub rate_limit: RateLimit,
    /// Requests made for this call (1 when no retry was needed).
    pub attempts: u32,
}

impl<T> Response<T> {
    pub fn into_inner(self) -> T {
        self.body
    }
}

impl<T> std::ops::Deref for Response<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.body
    }
}

type RetryHook = Arc<dyn Fn(&RetryEvent) + Send + Sync>;

/// Builds a [`Client`].
pub struct ClientBuilder {
    base: String,
    key: Option<String>,
    auth: AuthScheme,
    retry: RetryPolicy,
    timeout: Duration,
    connect_timeout: Duration,
    user_agent: String,
    on_retry: Option<RetryHook>,
    http: Option<reqwest::Client>,
    file_uploads: bool,
}

impl ClientBuilder {
    /// Whether images given as bytes go up as `multipart/form-data` files (the
    /// default: a quarter smaller than base64 and no encoding on either side) or as
    /// `image_base64` in a JSON body (for servers without file uploads). Batches that
    /// mix URLs and bytes always go as JSON.
    pub fn file_uploads(mut self, on: bool) -> Self {
        self.file_uploads = on;
        self
    }

    /// The API key (`fe_live_...` or `fe_test_...`).
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }
    pub fn auth_scheme(mut self, auth: AuthScheme) -> Self {
        self.auth = auth;
        self
    }
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }
    /// Timeout of one attempt (default 120 s); the policy's deadline bounds the call.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }
    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.user_agent = ua.into();
        self
    }
    /// Called before each retry's wait (for logs or metrics).
    pub fn on_retry(mut self, f: impl Fn(&RetryEvent) + Send + Sync + 'static) -> Self {
        self.on_retry = Some(Arc::new(f));
        self
    }
    /// Use this `reqwest::Client` (proxies, TLS roots); timeouts set here are ignored.
    pub fn http_client(mut self, c: reqwest::Client) -> Self {
        self.http = Some(c);
        self
    }

    pub fn build(self) -> Result<Client, Error> {
        let mut base = url::Url::parse(self.base.trim())
            .map_err(|e| Error::Invalid(format!("base URL {:?}: {e}", self.base)))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(Error::Invalid(format!(
                "base URL {:?} is not http(s)",
                self.base
            )));
        }
        // Paths are joined relative to the base, which must therefore end in `/`.
        if !base.path().ends_with('/') {
            let p = format!("{}/", base.path());
            base.set_path(&p);
        }
        let key = self
            .key
            .ok_or_else(|| Error::Invalid("an API key is required".into()))?;
        if key.is_empty() || key.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(Error::Invalid(
                "the API key is empty or has whitespace".into(),
            ));
        }
        let http = match self.http {
            Some(h) => h,
            None => reqwest::Client::builder()
                .timeout(self.timeout)
                .connect_timeout(self.connect_timeout)
                .user_agent(self.user_agent)
                .build()
                .map_err(|e| Error::Invalid(format!("HTTP client: {e}")))?,
        };
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base,
                key,
                auth: self.auth,
                retry: self.retry,
                on_retry: self.on_retry,
                file_uploads: self.file_uploads,
            }),
        })
    }
}

struct Inner {
    http: reqwest::Client,
    base: url::Url,
    key: String,
    auth: AuthScheme,
    retry: RetryPolicy,
    on_retry: Option<RetryHook>,
    file_uploads: bool,
}

/// A Dupify API client. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("Client")
            .field("base", &self.inner.base.as_str())
            .field("auth", &self.inner.auth)
            .field("retry", &self.inner.retry)
            .finish()
    }
}

/// Whether resending a request after a lost answer is harmless.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Idempotent {
    Yes,
    No,
}

/// A request body: JSON, or a form with file parts.
#[derive(Clone, Debug)]
enum Payload {
    Json(Value),
    Form(Vec<(String, FormValue)>),
}

#[derive(Clone, Debug)]
enum FormValue {
    Text(String),
    File(Vec<u8>),
}

impl From<Value> for Payload {
    fn from(v: Value) -> Self {
        Payload::Json(v)
    }
}

/// A JSON body's fields as the form fields the API reads them from (docs/API.md, "File
/// uploads"): strings as text, arrays of strings as repeated fields, anything else as
/// its JSON text.
fn form_fields(m: Map<String, Value>) -> Vec<(String, FormValue)> {
    let mut out = Vec::new();
    for (k, v) in m {
        match v {
            Value::Null => {}
            Value::String(s) => out.push((k, FormValue::Text(s))),
            Value::Array(items) if items.iter().all(Value::is_string) => {
                for i in items {
                    if let Value::String(s) = i {
                        out.push((k.clone(), FormValue::Text(s)));
                    }
                }
            }
            other => out.push((k, FormValue::Text(other.to_string()))),
        }
    }
    out
}

impl Client {
    /// One image with its options: a form when the image is bytes and file uploads are
    /// on, else JSON.
    fn image_body(
        &self,
        image: &ImageSource,
        options: &impl serde::Serialize,
    ) -> Result<Payload, Error> {
        let mut m = to_map(options)?;
        if let (true, ImageSource::Bytes(b)) = (self.inner.file_uploads, image) {
            let mut parts = form_fields(m);
            parts.push(("image".into(), FormValue::File(b.clone())));
            return Ok(Payload::Form(parts));
        }
        image.write_to(&mut m);
        Ok(Payload::Json(Value::Object(m)))
    }

    /// 1 to 10 images with their options: a form when every image is bytes and file
    /// uploads are on, else JSON.
    fn images_body(
        &self,
        images: &[ImageSource],
        options: &impl serde::Serialize,
    ) -> Result<Payload, Error> {
        let mut m = to_map(options)?;
        let all_bytes = images.iter().all(|i| matches!(i, ImageSource::Bytes(_)));
        if self.inner.file_uploads && all_bytes && !images.is_empty() {
            let mut parts = form_fields(m);
            for i in images {
                if let ImageSource::Bytes(b) = i {
                    parts.push(("images".into(), FormValue::File(b.clone())));
                }
            }
            return Ok(Payload::Form(parts));
        }
        let list = images
            .iter()
            .map(|i| {
                let mut one = Map::new();
                i.write_to(&mut one);
                Value::Object(one)
            })
            .collect();
        m.insert("images".into(), Value::Array(list));
        Ok(Payload::Json(Value::Object(m)))
    }
}

fn to_map(v: &impl serde::Serialize) -> Result<Map<String, Value>, Error> {
    match serde_json::to_value(v).map_err(|e| Error::Invalid(e.to_string()))? {
        Value::Object(m) => Ok(m),
        Value::Null => Ok(Map::new()),
        other => Err(Error::Invalid(format!(
            "options must be an object, not {other}"
        ))),
    }
}

impl Client {
    /// A client with the default retry policy and `X-API-Key` auth.
    pub fn new(base_url: impl Into<String>, api_key: impl Into<String>) -> Result<Self, Error> {
        Client::builder(base_url).api_key(api_key).build()
    }

    pub fn builder(base_url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            base: base_url.into(),
            key: None,
            auth: AuthScheme::default(),
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(10),
            user_agent: format!("dupify-client/{}", env!("CARGO_PKG_VERSION")),
            on_retry: None,
            http: None,
            file_uploads: true,
        }
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        self.inner.base.as_str()
    }

    // ------------------------------------------------------------ features

    /// `POST /v1/embed` for one image.
    pub async fn embed(
        &self,
        image: &ImageSource,
        options: &EmbedOptions,
    ) -> Result<Response<Embedding>, Error> {
        self.post("v1/embed", self.image_body(image, options)?)
            .await
    }

    /// `POST /v1/embed` for 1 to 10 images; each slot is the embedding or its error.
    pub async fn embed_batch(
        &self,
        images: &[ImageSource],
        options: &EmbedOptions,
    ) -> Result<Response<BatchResponse<Embedding>>, Error> {
        self.post("v1/embed", self.images_body(images, options)?)
            .await
    }

    /// `POST /v1/embed` with `texts` (needs a CLIP text tower on the server):
    /// vectors in the same space as image embeddings.
    pub async fn embed_texts(
        &self,
        texts: &[&str],
    ) -> Result<Response<BatchResponse<Embedding>>, Error> {
        self.post("v1/embed", serde_json::json!({ "texts": texts }))
            .await
    }

    /// `POST /v1/colors`.
    pub async fn colors(
        &self,
        image: &ImageSource,
        options: &ColorsOptions,
    ) -> Result<Response<Colors>, Error> {
        self.post("v1/colors", self.image_body(image, options)?)
            .await
    }

    /// `POST /v1/colors` for 1 to 10 images.
    pub async fn colors_batch(
        &self,
        images: &[ImageSource],
        options: &ColorsOptions,
    ) -> Result<Response<BatchResponse<Colors>>, Error> {
        self.post("v1/colors", self.images_body(images, options)?)
            .await
    }

    /// `POST /v1/silhouette`.
    pub async fn silhouette(
        &self,
        image: &ImageSource,
        options: &SegmentationOptions,
    ) -> Result<Response<Silhouette>, Error> {
        self.post("v1/silhouette", self.image_body(image, options)?)
            .await
    }

    /// `POST /v1/silhouette` for 1 to 10 images.
    pub async fn silhouette_batch(
        &self,
        images: &[ImageSource],
        options: &SegmentationOptions,
    ) -> Result<Response<BatchResponse<Silhouette>>, Error> {
        self.post("v1/silhouette", self.images_body(images, options)?)
            .await
    }

    /// `POST /v1/attributes`.
    pub async fn attributes(
        &self,
        image: &ImageSource,
        options: &SegmentationOptions,
    ) -> Result<Response<Attributes>, Error> {
        self.post("v1/attributes", self.image_body(image, options)?)
            .await
    }

    /// `POST /v1/attributes` for 1 to 10 images.
    pub async fn attributes_batch(
        &self,
        images: &[ImageSource],
        options: &SegmentationOptions,
    ) -> Result<Response<BatchResponse<Attributes>>, Error> {
        self.post("v1/attributes", self.images_body(images, options)?)
            .await
    }

    /// `POST /v1/background-remove`.
    pub async fn background_remove(
        &self,
        image: &ImageSource,
        options: &BackgroundRemoveOptions,
    ) -> Result<Response<BackgroundRemoval>, Error> {
        self.post("v1/background-remove", self.image_body(image, options)?)
            .await
    }

    /// `POST /v1/background-remove` answered with the PNG itself (`response=binary`):
    /// no base64 on either side; the metadata comes from the answer's headers.
    pub async fn background_remove_png(
        &self,
        image: &ImageSource,
        options: &BackgroundRemoveOptions,
    ) -> Result<Response<CutoutPng>, Error> {
        let mut body = self.image_body(image, options)?;
        match &mut body {
            Payload::Json(Value::Object(m)) => {
                m.insert("response".into(), Value::from("binary"));
            }
            Payload::Form(parts) => {
                parts.push(("response".into(), FormValue::Text("binary".into())));
            }
            Payload::Json(_) => {}
        }
        let (raw, headers) = self
            .call_raw(
                Method::POST,
                "v1/background-remove",
                &[],
                Some(body),
                Idempotent::Yes,
            )
            .await?;
        let text = |name: &str| -> Result<String, Error> {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
                .ok_or_else(|| Error::Invalid(format!("the answer has no {name} header")))
        };
        fn number<N: std::str::FromStr>(name: &str, s: String) -> Result<N, Error> {
            s.parse()
                .map_err(|_| Error::Invalid(format!("header {name} is not a number: {s:?}")))
        }
        let crop_box = match headers.get("x-crop-box").and_then(|v| v.to_str().ok()) {
            None => None,
            Some("none") => Some(None),
            Some(b) => {
                let n: Vec<u32> = b.split(',').filter_map(|x| x.trim().parse().ok()).collect();
                match n[..] {
                    [x, y, width, height] => Some(Some(CropBox {
                        x,
                        y,
                        width,
                        height,
                    })),
                    _ => return Err(Error::Invalid(format!("header x-crop-box: {b:?}"))),
                }
            }
        };
        let output = match text("x-output")?.as_str() {
            "mask" => CutoutOutput::Mask,
            _ => CutoutOutput::Png,
        };
        let png = CutoutPng {
            width: number("x-image-width", text("x-image-width")?)?,
            height: number("x-image-height", text("x-image-height")?)?,
            original_width: number("x-original-width", text("x-original-width")?)?,
            original_height: number("x-original-height", text("x-original-height")?)?,
            foreground_ratio: number("x-foreground-ratio", text("x-foreground-ratio")?)?,
            output,
            model: text("x-model")?,
            cached: text("x-cached")? == "true",
            processing_time_ms: number("x-processing-time-ms", text("x-processing-time-ms")?)?,
            crop_box,
            png: raw.body,
        };
        Ok(Response {
            body: png,
            status: raw.status,
            request_id: raw.request_id,
            rate_limit: raw.rate_limit,
            attempts: raw.attempts,
        })
    }

    /// `POST /v1/background-remove` for 1 to 10 images.
    pub async fn background_remove_batch(
        &self,
        images: &[ImageSource],
        options: &BackgroundRemoveOptions,
    ) -> Result<Response<BatchResponse<BackgroundRemoval>>, Error> {
        self.post("v1/background-remove", self.images_body(images, options)?)
            .await
    }

    /// `POST /v1/batch`: several operations per image, each image processed once.
    pub async fn batch(
        &self,
        images: &[ImageSource],
        options: &BatchOptions,
    ) -> Result<Response<BatchResponse<BatchResult>>, Error> {
        self.post("v1/batch", self.images_body(images, options)?)
            .await
    }

    // ------------------------------------------------------------ catalog

    /// `POST /v1/catalog/products` with one product (201 created / 200 updated).
    pub async fn upload_product(
        &self,
        product: &NewProduct,
    ) -> Result<Response<UpsertResult>, Error> {
        let body = serde_json::to_value(product).map_err(|e| Error::Invalid(e.to_string()))?;
        let idem = if product.external_id.is_some() {
            Idempotent::Yes
        } else {
            Idempotent::No
        };
        self.call(
            Method::POST,
            "v1/catalog/products",
            &[],
            Some(body.into()),
            idem,
        )
        .await
    }

    /// `POST /v1/catalog/products` with up to the tier's per-request limit.
    /// Resent after a lost answer only when every product has an `external_id`
    /// (then a resend is an update, never a duplicate).
    pub async fn upload_products(
        &self,
        products: &[NewProduct],
    ) -> Result<Response<UploadResponse>, Error> {
        let body = serde_json::json!({ "products": products });
        let idem = if products.iter().all(|p| p.external_id.is_some()) {
            Idempotent::Yes
        } else {
            Idempotent::No
        };
        self.call(
            Method::POST,
            "v1/catalog/products",
            &[],
            Some(body.into()),
            idem,
        )
        .await
    }

    /// Like [`Client::upload_products`] with rows as raw JSON objects (the CLI's
    /// import passes file rows through unchanged, so the server validates every field).
    pub async fn upload_products_raw(
        &self,
        products: &[Map<String, Value>],
    ) -> Result<Response<UploadResponse>, Error> {
        let body = serde_json::json!({ "products": products });
        let idem = if products.iter().all(|p| p.contains_key("external_id")) {
            Idempotent::Yes
        } else {
            Idempotent::No
        };
        self.call(
            Method::POST,
            "v1/catalog/products",
            &[],
            Some(body.into()),
            idem,
        )
        .await
    }

    /// `GET /v1/catalog/products`: one page; pass `next_cursor` back as `cursor`.
    pub async fn list_products(
        &self,
        query: &ListProducts,
    ) -> Result<Response<ProductPage>, Error> {
        let mut q = Vec::new();
        let v = serde_json::to_value(query).map_err(|e| Error::Invalid(e.to_string()))?;
        if let Value::Object(m) = v {
            for (k, v) in m {
                let s = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                q.push((k, s));
            }
        }
        self.call(
            Method::GET,
            "v1/catalog/products",
            &q,
            None,
            Idempotent::Yes,
        )
        .await
    }

    /// `GET /v1/catalog/products/{id}`; `include_embedding` adds the stored vectors.
    pub async fn get_product(
        &self,
        id: &str,
        include_embedding: bool,
    ) -> Result<Response<Product>, Error> {
        let q: Vec<(String, String)> = if include_embedding {
            vec![("include".into(), "embedding".into())]
        } else {
            Vec::new()
        };
        let path = format!("v1/catalog/products/{}", path_segment(id)?);
        self.call(Method::GET, &path, &q, None, Idempotent::Yes)
            .await
    }

    /// `DELETE /v1/catalog/products/{id}`.
    pub async fn delete_product(&self, id: &str) -> Result<Response<Deleted>, Error> {
        let path = format!("v1/catalog/products/{}", path_segment(id)?);
        self.call(Method::DELETE, &path, &[], None, Idempotent::Yes)
            .await
    }

    // ------------------------------------------------------------ webhooks

    /// `POST /v1/webhooks`: the endpoint with its `secret` (shown only now).
    pub async fn create_webhook(
        &self,
        new: &webhook::NewWebhook,
    ) -> Result<Response<webhook::WebhookEndpoint>, Error> {
        let body = serde_json::to_value(new).map_err(|e| Error::Invalid(e.to_string()))?;
        // Not resent after a lost answer: a resend would register a second endpoint.
        self.call(
            Method::POST,
            "v1/webhooks",
            &[],
            Some(body.into()),
            Idempotent::No,
        )
        .await
    }

    /// `GET /v1/webhooks`.
    pub async fn list_webhooks(&self) -> Result<Response<webhook::WebhookList>, Error> {
        self.call(Method::GET, "v1/webhooks", &[], None, Idempotent::Yes)
            .await
    }

    /// `DELETE /v1/webhooks/{id}`.
    pub async fn delete_webhook(&self, id: &str) -> Result<Response<Deleted>, Error> {
        let path = format!("v1/webhooks/{}", path_segment(id)?);
        self.call(Method::DELETE, &path, &[], None, Idempotent::Yes)
            .await
    }

    /// `POST /v1/webhooks/{id}/rotate-secret`: the new secret signs from now on.
    pub async fn rotate_webhook_secret(
        &self,
        id: &str,
    ) -> Result<Response<webhook::WebhookEndpoint>, Error> {
        let path = format!("v1/webhooks/{}/rotate-secret", path_segment(id)?);
        self.call(Method::POST, &path, &[], None, Idempotent::No)
            .await
    }

    /// `GET /v1/webhooks/{id}/deliveries`: the delivery log, newest first.
    pub async fn webhook_deliveries(
        &self,
        id: &str,
    ) -> Result<Response<webhook::WebhookDeliveryList>, Error> {
        let path = format!("v1/webhooks/{}/deliveries", path_segment(id)?);
        self.call(Method::GET, &path, &[], None, Idempotent::Yes)
            .await
    }

    /// `POST /v1/catalog/search`.
    pub async fn search(&self, request: &SearchRequest) -> Result<Response<SearchResponse>, Error> {
        let invalid = |e: serde_json::Error| Error::Invalid(e.to_string());
        if let (true, SearchQuery::Image(ImageSource::Bytes(b))) =
            (self.inner.file_uploads, &request.query)
        {
            let mut parts = form_fields(request.options_json().map_err(invalid)?);
            parts.push(("image".into(), FormValue::File(b.clone())));
            return self.post("v1/catalog/search", Payload::Form(parts)).await;
        }
        let body = request.to_json().map_err(invalid)?;
        self.post("v1/catalog/search", body).await
    }

    /// `POST /v1/catalog/duplicates`.
    pub async fn duplicates(
        &self,
        request: &DuplicatesRequest,
    ) -> Result<Response<DuplicatesResponse>, Error> {
        let body = serde_json::to_value(request).map_err(|e| Error::Invalid(e.to_string()))?;
        self.post("v1/catalog/duplicates", body).await
    }

    // ------------------------------------------------------------ account, operations

    /// `GET /v1/usage`.
    pub async fn usage(&self) -> Result<Response<Usage>, Error> {
        self.call(Method::GET, "v1/usage", &[], None, Idempotent::Yes)
            .await
    }

    /// `GET /ready`: the readiness document (200 or 503 alike).
    pub async fn ready(&self) -> Result<Value, Error> {
        let url = self.url("ready", &[])?;
        let res = self
            .inner
            .http
            .get(url)
            .send()
            .await
            .map_err(|source| Error::Transport {
                source,
                attempts: 1,
            })?;
        res.json().await.map_err(|source| Error::Transport {
            source,
            attempts: 1,
        })
    }

    /// Any route, for what this version has no method for: the JSON body, with the same
    /// auth, retries and error handling. `path` is relative, e.g. `"v1/usage"`.
    pub async fn request<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Response<T>, Error> {
        let idem = if method == Method::POST {
            Idempotent::No
        } else {
            Idempotent::Yes
        };
        self.call(
            method,
            path.trim_start_matches('/'),
            &[],
            body.map(Payload::from),
            idem,
        )
        .await
    }

    // ------------------------------------------------------------ transport

    /// Image operations are pure functions of the input: resending one is harmless.
    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: impl Into<Payload>,
    ) -> Result<Response<T>, Error> {
        self.call(Method::POST, path, &[], Some(body.into()), Idempotent::Yes)
            .await
    }

    fn url(&self, path: &str, query: &[(String, String)]) -> Result<url::Url, Error> {
        let mut u = self
            .inner
            .base
            .join(path)
            .map_err(|e| Error::Invalid(format!("path {path:?}: {e}")))?;
        if !query.is_empty() {
            u.query_pairs_mut().extend_pairs(query);
        }
        Ok(u)
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<Payload>,
        idempotent: Idempotent,
    ) -> Result<Response<T>, Error> {
        let (raw, _) = self.call_raw(method, path, query, body, idempotent).await?;
        let data = serde_json::from_slice(&raw.body).map_err(Error::Decode)?;
        Ok(Response {
            body: data,
            status: raw.status,
            request_id: raw.request_id,
            rate_limit: raw.rate_limit,
            attempts: raw.attempts,
        })
    }

    /// One call with the retry policy applied; a 2xx answer's bytes and headers.
    async fn call_raw(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<Payload>,
        idempotent: Idempotent,
    ) -> Result<(Response<Vec<u8>>, reqwest::header::HeaderMap), Error> {
        let url = self.url(path, query)?;
        // A JSON body is serialised once; every attempt sends the same bytes (a form is
        // rebuilt from the same parts: reqwest's forms are consumed by sending).
        let (bytes, form) = match body {
            Some(Payload::Json(b)) => (
                Some(serde_json::to_vec(&b).map_err(|e| Error::Invalid(e.to_string()))?),
                None,
            ),
            Some(Payload::Form(parts)) => (None, Some(parts)),
            None => (None, None),
        };
        let policy = &self.inner.retry;
        let started = Instant::now();
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let mut req = self.inner.http.request(method.clone(), url.clone());
            req = match self.inner.auth {
                AuthScheme::ApiKeyHeader => req.header("X-API-Key", &self.inner.key),
                AuthScheme::Bearer => req.bearer_auth(&self.inner.key),
            };
            if let Some(deadline) = policy.deadline {
                let left = deadline.saturating_sub(started.elapsed());
                if left.is_zero() {
                    return Err(Error::DeadlineExceeded {
                        deadline,
                        attempts: attempt - 1,
                        last: Box::new(Error::Invalid("no attempt fitted in the deadline".into())),
                    });
                }
                req = req.timeout(left);
            }
            if let Some(b) = &bytes {
                req = req
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(b.clone());
            }
            if let Some(parts) = &form {
                let mut f = reqwest::multipart::Form::new();
                for (name, v) in parts {
                    f = match v {
                        FormValue::Text(t) => f.text(name.clone(), t.clone()),
                        FormValue::File(b) => f.part(
                            name.clone(),
                            reqwest::multipart::Part::bytes(b.clone()).file_name("image"),
                        ),
                    };
                }
                req = req.multipart(f);
            }
            let (failure, wait, status, code) = match req.send().await {
                Err(source) => {
                    // A connect failure never reached the server; anything later may
                    // have, so only requests that are safe to resend go again.
                    let resend = source.is_connect() || idempotent == Idempotent::Yes;
                    let wait = (resend && attempt <= policy.max_retries)
                        .then(|| policy.backoff(attempt - 1));
                    (
                        Error::Transport {
                            source,
                            attempts: attempt,
                        },
                        wait,
                        None,
                        None,
                    )
                }
                Ok(res) => {
                    let status = res.status().as_u16();
                    let headers = res.headers().clone();
                    let body = match res.bytes().await {
                        Ok(b) => b,
                        Err(source) => {
                            let wait = (idempotent == Idempotent::Yes
                                && attempt <= policy.max_retries)
                                .then(|| policy.backoff(attempt - 1));
                            let e = Error::Transport {
                                source,
                                attempts: attempt,
                            };
                            match wait {
                                Some(w) => {
                                    if !self
                                        .wait(&method, path, attempt, None, None, w, started)
                                        .await
                                    {
                                        return Err(deadline_error(policy, attempt, e));
                                    }
                                    continue;
                                }
                                None => return Err(e),
                            }
                        }
                    };
                    if (200..300).contains(&status) {
                        let response = Response {
                            body: body.to_vec(),
                            status,
                            request_id: headers
                                .get("x-request-id")
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_owned),
                            rate_limit: RateLimit::from_headers(&headers),
                            attempts: attempt,
                        };
                        return Ok((response, headers));
                    }
                    let api = ApiError::from_parts(status, &headers, &body, attempt);
                    let wait = if attempt <= policy.max_retries {
                        policy.wait_for_status(status, api.retry_after, attempt - 1)
                    } else {
                        None
                    };
                    let code = Some(api.code.clone());
                    (Error::Api(Box::new(api)), wait, Some(status), code)
                }
            };
            match wait {
                None => return Err(failure),
                Some(w) => {
                    if !self
                        .wait(&method, path, attempt, status, code, w, started)
                        .await
                    {
                        return Err(deadline_error(policy, attempt, failure));
                    }
                }
            }
        }
    }

    /// Sleeps before the next attempt; `false` when the wait would end past the deadline.
    #[allow(clippy::too_many_arguments)]
    async fn wait(
        &self,
        method: &Method,
        path: &str,
        attempt: u32,
        status: Option<u16>,
        code: Option<String>,
        wait: Duration,
        started: Instant,
    ) -> bool {
        if let Some(d) = self.inner.retry.deadline {
            if started.elapsed() + wait >= d {
                return false;
            }
        }
        if let Some(hook) = &self.inner.on_retry {
            hook(&RetryEvent {
                method: method.to_string(),
                path: format!("/{path}"),
                attempt,
                status,
                code,
                wait,
            });
        }
        tokio::time::sleep(wait).await;
        true
    }
}

fn deadline_error(policy: &RetryPolicy, attempts: u32, last: Error) -> Error {
    match policy.deadline {
        Some(deadline) => Error::DeadlineExceeded {
            deadline,
            attempts,
            last: Box::new(last),
        },
        None => last,
    }
}

/// Percent-encodes an id for use as one path segment (ids are UUIDs, but a caller's
/// string must never change the route: an empty id would name the list route, and
/// `.`/`..` are resolved away by URL parsing even when encoded).
fn path_segment(s: &str) -> Result<String, Error> {
    if s.is_empty() || s.trim_matches('.').is_empty() {
        return Err(Error::Invalid(format!("{s:?} is not a product id")));
    }
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_cannot_escape_their_segment() {
        assert_eq!(path_segment("abc-123").ok().as_deref(), Some("abc-123"));
        assert_eq!(path_segment("../usage").ok().as_deref(), Some("..%2Fusage"));
        assert_eq!(path_segment("a b?c").ok().as_deref(), Some("a%20b%3Fc"));
        for bad in ["", ".", ".."] {
            assert!(path_segment(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn base_urls_are_checked_and_normalised() {
        let c = Client::new("http://localhost:8080/api", "fe_test_x").expect("valid");
        assert_eq!(c.base_url(), "http://localhost:8080/api/");
        assert!(matches!(
            Client::new("ftp://x", "k"),
            Err(Error::Invalid(_))
        ));
        assert!(matches!(
            Client::new("http://x", "bad key"),
            Err(Error::Invalid(_))
        ));
        assert!(format!("{c:?}").contains("localhost") && !format!("{c:?}").contains("fe_test_x"));
    }
}
