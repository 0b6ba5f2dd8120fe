//! The OpenAPI 3.1 document of the routes this server has (`GET /v1/openapi.json`) and
//! the reference page rendered from it (`GET /docs`, plain HTML, nothing fetched from
//! elsewhere). Every answer's schema is derived from the `dupify-api` type the server
//! serialises (`dupify_api::schema::Components`), and error codes, scopes and tiers are
//! read from `dupify-core`'s tables, so the document cannot drift from them; tests check
//! that every documented route is routed and every documented option is validated.

use std::sync::OnceLock;

use dupify_api::schema::Components;
use dupify_api::webhook::{WebhookDeliveryList, WebhookEndpoint, WebhookList};
use dupify_api::{
    Answer, AttributesResult, BatchItem, ColorsResult, CutoutResult, Deleted, DuplicatesAnswer,
    EmbedResult, Product, ProductPage, SearchAnswer, SilhouetteResult, UpsertAnswer, Usage,
};
use dupify_core::{ErrorCode, Scope};
use serde_json::{json, Map, Value};

fn error_ref() -> Value {
    json!({"$ref": "#/components/schemas/Error"})
}

/// Responses for the given codes, grouped by status, each naming its codes.
fn errors(codes: &[ErrorCode]) -> Map<String, Value> {
    let mut by_status: std::collections::BTreeMap<u16, Vec<&str>> = Default::default();
    for c in codes {
        by_status.entry(c.status()).or_default().push(c.as_str());
    }
    by_status
        .into_iter()
        .map(|(status, names)| {
            let examples: Map<String, Value> = codes
                .iter()
                .filter(|c| c.status() == status)
                .map(|c| (c.as_str().to_owned(), json!({"value": error_example(*c)})))
                .collect();
            let mut r = json!({
                "description": format!("`{}`", names.join("`, `")),
                "content": {"application/json": {"schema": error_ref(), "examples": examples}},
            });
            if status == 429 || status == 503 {
                r["headers"] = json!({"Retry-After": {"$ref": "#/components/headers/Retry-After"}});
            }
            (status.to_string(), r)
        })
        .collect()
}

/// An example body of a code, with the context fields it carries, built by the same
/// `ApiError` the server answers with.
fn error_example(c: ErrorCode) -> Value {
    use dupify_core::ApiError;
    let e = match c {
        ErrorCode::MissingParameter => ApiError::missing("image_url"),
        ErrorCode::InvalidParameter => ApiError::invalid(
            "max_colors",
            "max_colors must be an integer between 1 and 12",
        )
        .detail("value", 40),
        ErrorCode::InsufficientScope => {
            ApiError::from_code(c).detail("required_scope", Scope::Colors.as_str())
        }
        ErrorCode::QuotaExceeded => ApiError::from_code(c)
            .field("current_usage", 1000)
            .field("limit", 1000)
            .field("resets_at", "2027-01-01T00:00:00Z"),
        ErrorCode::CatalogLimitExceeded => ApiError::from_code(c)
            .field("limit", 1000)
            .field("current_size", 1000),
        ErrorCode::RateLimitExceeded => ApiError::rate_limited(12),
        ErrorCode::ImageFetchFailed => ApiError::from_code(c).detail("status", 404),
        _ => ApiError::from_code(c),
    };
    e.to_body(Some("req_0f1e2d3c4b5a69788796a5b4c3d2e1f0"))
}

/// The codes any authenticated route can answer with.
const AUTH_ERRORS: [ErrorCode; 7] = [
    ErrorCode::MissingApiKey,
    ErrorCode::InvalidApiKey,
    ErrorCode::ExpiredApiKey,
    ErrorCode::InsufficientScope,
    ErrorCode::RateLimitExceeded,
    ErrorCode::InternalError,
    ErrorCode::ServiceUnavailable,
];

/// What an image endpoint can answer with, on top of the authentication errors.
const IMAGE_ERRORS: [ErrorCode; 10] = [
    ErrorCode::MissingParameter,
    ErrorCode::InvalidParameter,
    ErrorCode::InvalidImageUrl,
    ErrorCode::InvalidBase64,
    ErrorCode::QuotaExceeded,
    ErrorCode::PayloadTooLarge,
    ErrorCode::ImageFetchFailed,
    ErrorCode::UnsupportedFormat,
    ErrorCode::ImageTooLarge,
    ErrorCode::ProcessingFailed,
];

fn metering_headers() -> Value {
    let h = |name: &str| {
        (
            name.to_string(),
            json!({"$ref": format!("#/components/headers/{name}")}),
        )
    };
    Value::Object(
        [
            "X-Request-Id",
            "X-RateLimit-Limit",
            "X-RateLimit-Remaining",
            "X-RateLimit-Reset",
            "X-Monthly-Limit",
            "X-Monthly-Remaining",
        ]
        .into_iter()
        .map(h)
        .collect(),
    )
}

/// An image endpoint: the body is one of the three image forms plus `options`; the
/// answer is `single` for one image, or the batch envelope of `single` items.
fn image_operation(
    summary: &str,
    description: &str,
    scope: Scope,
    options: Value,
    single: Value,
) -> Value {
    let mut responses = errors(&[&AUTH_ERRORS[..], &IMAGE_ERRORS[..]].concat());
    responses.insert(
        "200".into(),
        json!({
            "description": "One result for a single image; `results` in input order for `images` (a failed item holds its `error`).",
            "headers": metering_headers(),
            "content": {"application/json": {"schema": {"oneOf": [
                single.clone(),
                {"type": "object", "required": ["results", "processing_time_ms"], "properties": {
                    "results": {"type": "array", "items": {"oneOf": [single, {"$ref": "#/components/schemas/ItemError"}]}},
                    "processing_time_ms": {"type": "integer"}}}
            ]}}},
        }),
    );
    json!({
        "summary": summary,
        "description": format!("{description}\n\nScope: `{}`.", scope.as_str()),
        "security": [{"ApiKey": []}, {"Bearer": []}],
        "requestBody": {"required": true, "content": {"application/json": {"schema": image_body(options)}}},
        "responses": responses,
    })
}

/// Exactly one of these fields, given and not null (a null field counts as absent).
fn one_of(forms: &[&str]) -> Value {
    forms
        .iter()
        .map(|f| json!({"required": [f], "properties": {*f: {"not": {"type": "null"}}}}))
        .collect()
}

/// The body of an image endpoint: exactly one image form (or, for `/v1/embed`, a text
/// form), the endpoint's options, and never both spellings of the model option.
fn image_body(options: Value) -> Value {
    let mut forms = vec!["image_url", "image_base64", "images"];
    if options.get("text").is_some() {
        forms.extend(["text", "texts"]);
    }
    let mut body = json!({
        "allOf": [{"$ref": "#/components/schemas/ImageInput"}, {"type": "object", "properties": options}],
        "oneOf": one_of(&forms),
    });
    if options.get("model").is_some() && options.get("segmentation_model").is_some() {
        body["not"] = json!({"required": ["model", "segmentation_model"]});
    }
    if options.get("operations").is_some() {
        body["required"] = json!(["operations"]);
    }
    body
}

fn segmentation_option() -> Value {
    json!({"type": "string", "enum": ["u2net", "u2netp"], "description": "Segmentation model for the product mask (default: the server's first configured model)."})
}

fn build() -> Value {
    let mut c = Components::new();
    let colors = image_operation(
        "Dominant colors",
        "Colors of the product clustered in CIELAB, ordered by share, with everyday names.",
        Scope::Colors,
        json!({
            "max_colors": {"type": "integer", "minimum": 1, "maximum": 12, "default": 5},
            "foreground_only": {"type": "boolean", "default": true},
            "include_quality": {"type": "boolean", "default": false},
            "segmentation_model": segmentation_option(),
        }),
        c.schema::<Answer<ColorsResult>>(),
    );
    let embed = image_operation(
        "Image or text embedding",
        "An L2-normalised vector of the chosen `model`: by default CLIP's when a CLIP model is \
         installed, else `efficientnet-lite0` (1280 numbers, ImageNet features of the product's \
         foreground crop); `dupify-visual-v1` (384 numbers, weight-free) by name. With a CLIP \
         text tower, `text` or `texts` (≤ 32) may be sent instead of images; their vectors share \
         the image space.",
        Scope::Embed,
        json!({
            "include_quality": {"type": "boolean", "default": false},
            "model": {"type": "string", "enum": ["efficientnet-lite0", "dupify-visual-v1"],
                      "description": "Embedding model (absent = the server's default). An installed CLIP model is also accepted by its name; any other name is a 400."},
            "segmentation_model": segmentation_option(),
            "text": {"type": "string", "maxLength": 1000},
            "texts": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 32},
        }),
        c.schema::<Answer<EmbedResult>>(),
    );
    let silhouette = image_operation(
        "Silhouette vector",
        "A 128-number shape-only vector of the product's outline: invariant to color, texture, \
         position and size.",
        Scope::Silhouette,
        json!({"model": segmentation_option(), "segmentation_model": segmentation_option()}),
        c.schema::<Answer<SilhouetteResult>>(),
    );
    let attributes = image_operation(
        "Product attributes",
        "Pixel attributes (color_family, tone, pattern, orientation, has_transparency) always; \
         semantic ones (category, material, style, ...) only with a CLIP text tower, from the \
         operator's taxonomy.",
        Scope::Attributes,
        json!({"segmentation_model": segmentation_option()}),
        c.schema::<Answer<AttributesResult>>(),
    );
    let background_remove = image_operation(
        "Background removal",
        "The product cut out at the original resolution (RGBA PNG) or its 8-bit mask, by a \
         U²-Net model.",
        Scope::BackgroundRemove,
        json!({
            "output": {"type": "string", "enum": ["png", "mask"], "default": "png"},
            "crop": {"type": "boolean", "default": false},
            "response": {"type": "string", "enum": ["json", "binary"], "default": "json",
                         "description": "`binary`: the PNG itself (`image/png`) with its metadata in headers; also chosen by `Accept: image/png`. One image only."},
            "model": segmentation_option(), "segmentation_model": segmentation_option(),
        }),
        c.schema::<Answer<CutoutResult>>(),
    );
    let mut background_remove = background_remove;
    background_remove["responses"]["200"]["content"]["image/png"] = json!({
        "schema": {"type": "string", "contentMediaType": "image/png"}});
    let png_header = |d: &str| json!({"description": d, "schema": {"type": "string"}});
    if let Some(h) = background_remove["responses"]["200"]["headers"].as_object_mut() {
        for (name, d) in [
            ("X-Image-Width", "Binary answers: the PNG's width."),
            ("X-Image-Height", "Binary answers: the PNG's height."),
            ("X-Original-Width", "Binary answers: the upload's width."),
            ("X-Original-Height", "Binary answers: the upload's height."),
            (
                "X-Foreground-Ratio",
                "Binary answers: share of foreground pixels (0–1).",
            ),
            ("X-Output", "Binary answers: png or mask."),
            (
                "X-Model",
                "Binary answers: the segmentation model (or alpha).",
            ),
            (
                "X-Cached",
                "Binary answers: true when served from the cache.",
            ),
            (
                "X-Processing-Time-Ms",
                "Binary answers: server time in milliseconds.",
            ),
            (
                "X-Crop-Box",
                "Binary answers with crop: x,y,width,height, or none.",
            ),
        ] {
            h.insert(name.into(), png_header(d));
        }
    }
    let mut batch = image_operation(
        "Several operations per image",
        "Each image is fetched, decoded and segmented once for all `operations`; every (image, \
         operation) pair is cached and counted on its own. Needs `batch` plus each operation's \
         scope (`quality` needs `embed`).",
        Scope::Batch,
        json!({
            "operations": {"type": "array", "minItems": 1, "uniqueItems": true, "items": {"type": "string",
                "enum": ["embed", "colors", "silhouette", "attributes", "quality", "background_remove"]}},
            "options": {"type": "object", "description": "Per operation, the options its endpoint takes.",
                        "additionalProperties": {"type": "object"}},
            "segmentation_model": segmentation_option(),
        }),
        c.schema::<BatchItem>(),
    );
    // Batch answers always use the `results` envelope.
    batch["responses"]["200"]["content"]["application/json"]["schema"] = json!({
        "type": "object", "required": ["results", "processing_time_ms"], "properties": {
            "results": {"type": "array", "items": {"oneOf": [
                {"allOf": [c.schema::<BatchItem>()], "not": {"required": ["error"]}},
                {"$ref": "#/components/schemas/ItemError"}]}},
            "processing_time_ms": {"type": "integer", "minimum": 0}}});

    let mut usage_responses = errors(&AUTH_ERRORS);
    usage_responses.insert(
        "200".into(),
        json!({
            "description": "Tier, billing period, limits, and calls per key and per day.",
            "headers": metering_headers(),
            "content": {"application/json": {"schema": c.schema::<Usage>()}},
        }),
    );

    // ------------------------------------------------------------ catalog
    let catalog_errors = |extra: &[ErrorCode]| {
        let mut r = errors(&[&AUTH_ERRORS[..], extra].concat());
        r.remove("200");
        r
    };
    let op = |summary: &str,
              description: &str,
              body: Option<Value>,
              ok: Value,
              extra: &[ErrorCode]| {
        let mut responses = catalog_errors(extra);
        responses.insert(
            "200".into(),
            json!({"description": "OK", "headers": metering_headers(),
            "content": {"application/json": {"schema": ok}}}),
        );
        let mut o = json!({"summary": summary, "description": format!("{description}\n\nScope: `catalog`."),
            "security": [{"ApiKey": []}, {"Bearer": []}], "responses": responses});
        if let Some(b) = body {
            o["requestBody"] =
                json!({"required": true, "content": {"application/json": {"schema": b}}});
        }
        o
    };
    let upsert_ref = c.schema::<UpsertAnswer>();
    let filters = json!({"type": "object", "description": "All given filters must match. category and brand ignore case; prices are inclusive; metadata values compare by equality.",
        "properties": {"category": {"type": "string"}, "brand": {"type": "string"},
            "price_min": {"type": "number", "minimum": 0}, "price_max": {"type": "number", "minimum": 0},
            "currency": {"type": "string", "pattern": "^[A-Za-z]{3}$"},
            "metadata": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean", "null"]}}}});
    let mut upload = op(
        "Upload products (upsert by external_id)",
        "One product, or `{\"products\": [...]}` up to the tier's per-request limit (free 10, starter 100, pro 500, unlimited 1000). \
         A product with a known `external_id` is updated; its features are extracted again only when the image changed (or its last extraction failed). \
         Features are extracted in the background: `embedding_status` is `processing` until `ready` or `failed`. \
         A single product answers 201 when created, 200 when updated; a batch answers 200 with one result (or `error`) per item. \
         An upload whose image is processed successfully counts one call.",
        Some(json!({"oneOf": [{"$ref": "#/components/schemas/ProductInput"},
            {"type": "object", "required": ["products"], "additionalProperties": false, "properties": {"products": {
                "type": "array", "minItems": 1, "maxItems": 1000, "items": {
                    "description": "Each item is a ProductInput. Items are validated one by one: an invalid item fails in its slot of `results` and does not fail the others."}}}}]})),
        json!({"oneOf": [upsert_ref.clone(), {"type": "object", "required": ["results", "created", "updated", "failed"], "properties": {
            "results": {"type": "array", "items": {"oneOf": [upsert_ref.clone(), {"$ref": "#/components/schemas/ItemError"}]}},
            "created": {"type": "integer"}, "updated": {"type": "integer"}, "failed": {"type": "integer"}}}]}),
        &[ErrorCode::MissingParameter, ErrorCode::InvalidParameter, ErrorCode::InvalidImageUrl, ErrorCode::InvalidBase64,
          ErrorCode::QuotaExceeded, ErrorCode::CatalogLimitExceeded, ErrorCode::PayloadTooLarge, ErrorCode::ImageTooLarge],
    );
    upload["responses"]["201"] = json!({"description": "Created (single product)", "headers": metering_headers(),
        "content": {"application/json": {"schema": upsert_ref.clone()}}});
    let q = |name: &str, description: &str, schema: Value| json!({"name": name, "in": "query", "required": false, "description": description, "schema": schema});
    let mut list = op(
        "List products",
        "Oldest first, keyset-paginated: pass `next_cursor` back as `cursor`. Pages are stable while products are added or deleted: \
         every product that exists for the whole listing appears exactly once.",
        None,
        c.schema::<ProductPage>(),
        &[ErrorCode::InvalidParameter],
    );
    list["parameters"] = json!([
        q(
            "limit",
            "1–100, default 20.",
            json!({"type": "integer", "minimum": 1, "maximum": 100})
        ),
        q(
            "cursor",
            "`next_cursor` of the previous page.",
            json!({"type": "string"})
        ),
        q(
            "category",
            "Exact match, ignoring case.",
            json!({"type": "string"})
        ),
        q(
            "brand",
            "Exact match, ignoring case.",
            json!({"type": "string"})
        ),
        q(
            "embedding_status",
            "processing, ready or failed.",
            json!({"type": "string", "enum": ["processing", "ready", "failed"]})
        ),
        q(
            "external_id",
            "(beyond) The product with this external id.",
            json!({"type": "string"})
        ),
    ]);
    let id_param = json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string", "format": "uuid"}});
    let mut get_product = op(
        "Get a product with its features",
        "`features`: embedding model, colors, attributes, silhouette summary. `?include=embedding` adds `features.embedding`, \
         `features.silhouette.embedding` and `features.color_signature`. Another account's (or mode's) id answers 404.",
        None,
        c.schema::<Product>(),
        &[ErrorCode::InvalidParameter, ErrorCode::NotFound],
    );
    get_product["parameters"] = json!([
        id_param.clone(),
        q(
            "include",
            "`embedding`",
            json!({"type": "string", "enum": ["embedding"]})
        )
    ]);
    let mut delete_product = op(
        "Delete a product",
        "Removed from listings and search before the answer is sent.",
        None,
        c.schema::<Deleted>(),
        &[ErrorCode::NotFound],
    );
    delete_product["parameters"] = json!([id_param]);
    let search = op(
        "Visual search in the catalog",
        "Query by exactly one of `image_url`, `image_base64`, `product_id` (excluded from its own results) or (beyond) `text` \
         (needs a CLIP model with a text tower; otherwise 400 naming `text`). \
         `score` = (w_visual·visual + w_silhouette·silhouette + w_color·color) / (sum of weights), each a cosine similarity of L2-normalised vectors clamped to [0, 1]; \
         weights not given are 0 once `weights` is given (default: visual only). `scores` reports every component that could be computed. \
         Plans: HNSW over the visual vectors with exact re-scoring; exact scoring when the catalog or the filtered subset is small, or when the visual weight is 0; \
         filters are applied during graph traversal otherwise, so they never cut results short. \
         `cheaper_than` (dupes mode) keeps products priced strictly below it, compared in `filters.currency`, else the query product's currency, else USD. \
         One call.",
        Some(json!({"type": "object", "additionalProperties": false,
            "oneOf": one_of(&["image_url", "image_base64", "product_id", "text"]),
            "properties": {
            "image_url": {"type": "string"}, "image_base64": {"type": "string"},
            "product_id": {"type": "string"}, "text": {"type": "string", "maxLength": 1000},
            "top_k": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10},
            "min_score": {"type": "number", "minimum": 0, "maximum": 1, "default": 0},
            "filters": filters.clone(),
            "cheaper_than": {"type": "number", "exclusiveMinimum": 0},
            "weights": {"type": "object", "additionalProperties": false, "properties": {
                "visual": {"type": "number", "minimum": 0, "maximum": 100}, "silhouette": {"type": "number", "minimum": 0, "maximum": 100},
                "color": {"type": "number", "minimum": 0, "maximum": 100}}},
            "exclude_ids": {"type": "array", "maxItems": 1000, "items": {"type": "string"}},
            "model": {"type": "string", "description": "Embedding space to search (default: the query's)."}}})),
        c.schema::<SearchAnswer>(),
        &[ErrorCode::MissingParameter, ErrorCode::InvalidParameter, ErrorCode::InvalidImageUrl, ErrorCode::InvalidBase64,
          ErrorCode::QuotaExceeded, ErrorCode::NotFound, ErrorCode::PayloadTooLarge, ErrorCode::ImageFetchFailed,
          ErrorCode::UnsupportedFormat, ErrorCode::ImageTooLarge, ErrorCode::ProcessingFailed],
    );
    let duplicates = op(
        "Groups of near-duplicate products",
        "(beyond) Products whose visual similarity chains at or above `threshold` (single linkage over each product's 10 nearest neighbours, found with the index: \
         no all-pairs comparison). A group's `score` is its weakest link. Groups sorted by score. One call.",
        Some(json!({"type": "object", "additionalProperties": false, "properties": {
            "threshold": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.95},
            "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
            "filters": filters, "cheaper_than": {"type": "number", "exclusiveMinimum": 0}, "model": {"type": "string"}}})),
        c.schema::<DuplicatesAnswer>(),
        &[ErrorCode::InvalidParameter, ErrorCode::QuotaExceeded],
    );

    // ------------------------------------------------------------ webhooks
    let hook_id =
        json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string"}});
    let mut create_hook = op(
        "Register a webhook endpoint",
        "(beyond) `url` (http(s), under the image URL policy: no private, loopback or metadata hosts), `events`          (default: all of `product.ready`, `product.failed`), `description`. Answers 201 with the endpoint and its          signing `secret`, shown only here and on rotation. Deliveries are signed `Dupify-Signature: t=<unix>,v1=<hex          HMAC-SHA256(secret, t + \".\" + body)>` and retried with backoff for a day; at most 16 endpoints per catalog.",
        Some(json!({"type": "object", "required": ["url"], "additionalProperties": false, "properties": {
            "url": {"type": "string", "format": "uri", "maxLength": 2048},
            "events": {"type": "array", "minItems": 1, "items": {"type": "string", "enum": dupify_api::requests::WEBHOOK_EVENT_TYPES}},
            "description": {"type": "string", "minLength": 1, "maxLength": 256}}})),
        c.schema::<WebhookEndpoint>(),
        &[ErrorCode::MissingParameter, ErrorCode::InvalidParameter, ErrorCode::PayloadTooLarge],
    );
    create_hook["responses"]["201"] = create_hook["responses"]["200"].clone();
    create_hook["responses"]
        .as_object_mut()
        .map(|r| r.remove("200"));
    let list_hooks = op(
        "List webhook endpoints",
        "(beyond) The catalog's endpoints (live or test, as the key), without secrets.",
        None,
        c.schema::<WebhookList>(),
        &[],
    );
    let mut get_hook = op(
        "Get a webhook endpoint",
        "(beyond) Without its secret. `enabled` turns false after sustained failed deliveries (`disabled_reason`).",
        None,
        c.schema::<WebhookEndpoint>(),
        &[ErrorCode::NotFound],
    );
    get_hook["parameters"] = json!([hook_id.clone()]);
    let mut delete_hook = op(
        "Delete a webhook endpoint",
        "(beyond) With its undelivered events.",
        None,
        c.schema::<Deleted>(),
        &[ErrorCode::NotFound],
    );
    delete_hook["parameters"] = json!([hook_id.clone()]);
    let mut deliveries = op(
        "Delivery log of an endpoint",
        "(beyond) Newest first: each event's status (`pending`, `delivered`, `failed`), attempts, last HTTP status, error and latency.",
        None,
        c.schema::<WebhookDeliveryList>(),
        &[ErrorCode::InvalidParameter, ErrorCode::NotFound],
    );
    deliveries["parameters"] = json!([hook_id.clone(),
        {"name": "limit", "in": "query", "required": false, "description": "1–200, default 50.",
         "schema": {"type": "integer", "minimum": 1, "maximum": 200}}]);
    let mut rotate = op(
        "Rotate an endpoint's secret",
        "(beyond) A new secret signs every attempt from now on; the old one signs nothing more. Shown once.",
        None,
        c.schema::<WebhookEndpoint>(),
        &[ErrorCode::NotFound],
    );
    rotate["parameters"] = json!([hook_id.clone()]);
    let mut enable = op(
        "Enable an endpoint again",
        "(beyond) After the server disabled it: its failure count restarts and its pending events are retried.",
        None,
        c.schema::<WebhookEndpoint>(),
        &[ErrorCode::NotFound],
    );
    enable["parameters"] = json!([hook_id]);

    let plain = |summary: &str, description: &str, body: Value| {
        json!({"summary": summary, "description": description, "security": [],
               "responses": {"200": {"description": "OK", "content": body}}})
    };
    let error_schema = json!({"type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "required": ["code", "message"], "properties": {
            "code": {"type": "string", "enum": ErrorCode::ALL.iter().map(|c| c.as_str()).collect::<Vec<_>>()},
            "message": {"type": "string"},
            "details": {"type": "object", "description": "Context; `parameter` names the field for missing_parameter and invalid_parameter."},
            "request_id": {"type": "string"},
            "retry_after": {"type": "integer", "description": "rate_limit_exceeded only."},
            "current_usage": {"type": "integer"}, "limit": {"type": "integer"},
            "resets_at": {"type": "string", "format": "date-time", "description": "quota_exceeded only."}}}}});
    let header =
        |description: &str| json!({"description": description, "schema": {"type": "string"}});

    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Dupify API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Visual features and similarity for retail catalogs. Every error has one envelope; \
                            never retry 400/401/403/404/422, retry 429 after Retry-After, retry 500/503 with backoff.",
        },
        "servers": [{"url": "/"}],
        "paths": {
            "/health": {"get": plain("Liveness", "200 while the process runs.", json!({"application/json": {}}))},
            "/ready": {"get": {"summary": "Readiness", "security": [],
                "description": "200 once the database and every configured model are usable; else 503 listing what is missing.",
                "responses": {"200": {"description": "Ready"}, "503": {"description": "Not ready: `missing` and each model's `error` say why."}}}},
            "/metrics": {"get": plain("Prometheus metrics", "Requests, latency, cache, queues, inference.", json!({"text/plain": {}}))},
            "/v1/openapi.json": {"get": plain("This document", "OpenAPI 3.1.", json!({"application/json": {}}))},
            "/docs": {"get": plain("Reference page", "This document as HTML.", json!({"text/html": {}}))},
            "/v1/colors": {"post": colors},
            "/v1/embed": {"post": embed},
            "/v1/silhouette": {"post": silhouette},
            "/v1/attributes": {"post": attributes},
            "/v1/background-remove": {"post": background_remove},
            "/v1/batch": {"post": batch},
            "/v1/usage": {"get": {"summary": "Usage of the caller's account", "description": "Any valid key.",
                "security": [{"ApiKey": []}, {"Bearer": []}], "responses": usage_responses}},
            "/v1/catalog/products": {"post": upload, "get": list},
            "/v1/catalog/products/{id}": {"get": get_product, "delete": delete_product},
            "/v1/catalog/search": {"post": search},
            "/v1/catalog/duplicates": {"post": duplicates},
            "/v1/webhooks": {"post": create_hook, "get": list_hooks},
            "/v1/webhooks/{id}": {"get": get_hook, "delete": delete_hook},
            "/v1/webhooks/{id}/deliveries": {"get": deliveries},
            "/v1/webhooks/{id}/rotate-secret": {"post": rotate},
            "/v1/webhooks/{id}/enable": {"post": enable},
        },
        "components": {
            "securitySchemes": {
                "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "Bearer": {"type": "http", "scheme": "bearer"},
            },
            "headers": {
                "X-Request-Id": header("The request's id (the caller's own when it is a sane token); also in error bodies and logs."),
                "X-RateLimit-Limit": header("Requests per minute allowed to the account."),
                "X-RateLimit-Remaining": header("Requests left in the current window."),
                "X-RateLimit-Reset": header("Unix time (s) when the full burst is available again."),
                "X-Monthly-Limit": header("Monthly calls of the tier (absent for unlimited)."),
                "X-Monthly-Remaining": header("Monthly calls left (absent for unlimited)."),
                "Retry-After": header("Seconds to wait before retrying."),
            },
            "schemas": {
                "Error": error_schema,
                "ItemError": {"type": "object", "required": ["error"], "description": "A failed batch item: the error envelope without request_id.",
                              "properties": {"error": {"type": "object"}}},
                "ImageInput": {"type": "object", "description": "Exactly one of image_url, image_base64 or images.", "properties": {
                    "image_url": {"type": "string", "format": "uri", "description": "http(s); private, loopback and metadata hosts are refused."},
                    "image_base64": {"type": "string", "description": "Standard or URL-safe base64, padding optional, data: prefix allowed."},
                    "images": {"type": "array", "minItems": 1, "maxItems": 10, "items": {
                        "description": "`{\"image_url\": ...}` or `{\"image_base64\": ...}`. Items are validated one by one: an invalid item fails in its slot of `results` and does not fail the others."}}}},
                "ProductInput": {"type": "object", "required": ["title"], "additionalProperties": false,
                    "oneOf": one_of(&["image_url", "image_base64"]),
                    "description": "image_url or image_base64 is required (not both). Unknown fields are refused: custom fields go in metadata.",
                    "properties": {
                        "title": {"type": "string", "minLength": 1, "maxLength": 500},
                        "image_url": {"type": "string", "format": "uri"}, "image_base64": {"type": "string"},
                        "external_id": {"type": "string", "maxLength": 256, "description": "Upsert key within the catalog."},
                        "sku": {"type": "string", "maxLength": 256}, "description": {"type": "string", "maxLength": 10000},
                        "brand": {"type": "string", "maxLength": 256}, "category": {"type": "string", "maxLength": 256},
                        "price": {"type": "number", "minimum": 0},
                        "currency": {"type": "string", "pattern": "^[A-Za-z]{3}$", "default": "USD"},
                        "product_url": {"type": "string", "format": "uri"},
                        "metadata": {"type": "object", "description": "Flat: string, number, boolean or null values; at most 8 KB as JSON.",
                                     "additionalProperties": {"type": ["string", "number", "boolean", "null"]}}}},
                "Scope": {"type": "string", "enum": Scope::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>()},
            },
        },
    });
    // The answers' components, as derived from the types.
    if let Some(schemas) = doc["components"]["schemas"].as_object_mut() {
        for (name, schema) in c.into_schemas() {
            assert!(
                schemas.insert(name.clone(), schema).is_none(),
                "two components named {name}"
            );
        }
    }
    doc
}

/// The server reads `null` in an optional top-level field as "not given"; the schema
/// says so, so clients that serialise absent options as null are within it.
fn nullable_top_level(schema: &mut Value) {
    let required: Vec<String> = schema["required"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        for (name, p) in props.iter_mut() {
            if required.contains(name) {
                continue;
            }
            match p.get("type").cloned() {
                Some(Value::String(t)) => p["type"] = json!([t, "null"]),
                Some(Value::Array(mut ts)) if !ts.contains(&json!("null")) => {
                    ts.push(json!("null"));
                    p["type"] = Value::Array(ts);
                }
                _ => {}
            }
            if let Some(e) = p.get_mut("enum").and_then(Value::as_array_mut) {
                if !e.contains(&Value::Null) {
                    e.push(Value::Null);
                }
            }
        }
    }
    for key in ["allOf", "oneOf"] {
        if let Some(parts) = schema.get_mut(key).and_then(Value::as_array_mut) {
            for part in parts {
                nullable_top_level(part);
            }
        }
    }
}

/// The document, built once.
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = build();
        add_multipart_bodies(&mut doc);
        if let Some(paths) = doc["paths"].as_object_mut() {
            for item in paths.values_mut() {
                if let Some(ops) = item.as_object_mut() {
                    for op in ops.values_mut() {
                        if let Some(s) =
                            op.pointer_mut("/requestBody/content/application~1json/schema")
                        {
                            nullable_top_level(s);
                        }
                    }
                }
            }
        }
        for name in ["ImageInput", "ProductInput"] {
            if let Some(s) = doc.pointer_mut(&format!("/components/schemas/{name}")) {
                nullable_top_level(s);
            }
        }
        doc
    })
}

/// The endpoints that also take `multipart/form-data` (docs/API.md, "File uploads").
pub const MULTIPART_PATHS: [&str; 8] = [
    "/v1/embed",
    "/v1/colors",
    "/v1/silhouette",
    "/v1/attributes",
    "/v1/background-remove",
    "/v1/batch",
    "/v1/catalog/search",
    "/v1/catalog/products",
];

/// Each multipart endpoint's form, derived from its JSON body so the two cannot drift:
/// the same fields, `images` as 1 to 10 files, `image` as one file, objects sent as
/// JSON text (their part's content type), arrays as repeated parts.
fn add_multipart_bodies(doc: &mut Value) {
    let components = doc["components"]["schemas"].clone();
    let resolve = |v: &Value| -> Value {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => components[r.trim_start_matches("#/components/schemas/")].clone(),
            None => v.clone(),
        }
    };
    for path in MULTIPART_PATHS {
        let Some(op) = doc.pointer_mut(&format!("/paths/{}/post", path.replace('/', "~1"))) else {
            continue;
        };
        let json_schema = op["requestBody"]["content"]["application/json"]["schema"].clone();
        // The object the JSON body is: its own properties, those of its allOf parts, or
        // (product upload) the single-product form of its oneOf.
        let mut parts = vec![];
        if path == "/v1/catalog/products" {
            parts.push(resolve(&json_schema["oneOf"][0]));
        } else {
            parts.push(json_schema.clone());
            for p in json_schema["allOf"].as_array().into_iter().flatten() {
                parts.push(resolve(p));
            }
        }
        let mut props = Map::new();
        let mut closed = false;
        let mut required: Vec<Value> = vec![];
        for part in &parts {
            closed |= part["additionalProperties"] == json!(false);
            required.extend(part["required"].as_array().into_iter().flatten().cloned());
            for (k, v) in part["properties"].as_object().into_iter().flatten() {
                props.insert(k.clone(), v.clone());
            }
        }
        // No `type`: a part's bytes are the file whatever they spell, so a schema type
        // would claim a distinction the server cannot (and does not) make.
        let file = json!({"contentMediaType": "application/octet-stream",
                          "description": "An image file (JPEG, PNG, WebP or GIF, sniffed from its bytes)."});
        props.insert("image".into(), file.clone());
        if props.remove("images").is_some() {
            props.insert(
                "images".into(),
                json!({"type": "array", "minItems": 1, "maxItems": 10, "items": file,
                       "description": "Several image files (repeated parts), answered as a batch."}),
            );
        }
        let encoding: Map<String, Value> = props
            .iter()
            .filter(|(_, v)| v["type"] == "object")
            .map(|(k, _)| (k.clone(), json!({"contentType": "application/json"})))
            .collect();
        let mut schema = json!({"type": "object", "properties": props,
            "description": "The JSON body's fields as form fields (numbers and booleans as text, objects as JSON text, arrays as repeated fields), with the image as a file part."});
        if closed {
            schema["additionalProperties"] = json!(false);
        }
        if !required.is_empty() {
            schema["required"] = Value::Array(required);
        }
        op["requestBody"]["content"]["multipart/form-data"] =
            json!({"schema": schema, "encoding": encoding});
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A compact, readable type of a schema: `integer`, `string (png | mask)`, `array`.
fn type_of(schema: &Value) -> String {
    let base = match &schema["type"] {
        Value::String(t) => t.clone(),
        Value::Array(ts) => ts
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" | "),
        _ if schema.get("oneOf").is_some() => "one of several".into(),
        _ => "value".into(),
    };
    match schema["enum"].as_array() {
        Some(values) => format!(
            "{base} ({})",
            values
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" | ")
        ),
        None => base,
    }
}

/// `/docs`: every path with its summary, description, options and answers.
pub fn html() -> &'static str {
    static PAGE: OnceLock<String> = OnceLock::new();
    PAGE.get_or_init(|| {
        let doc = document();
        let mut out = String::from(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Dupify API reference</title>\
             <style>body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1b1b1b}\
             code{background:#f2f2f2;padding:0 .25rem;border-radius:3px}h2{margin-top:2.5rem;border-top:1px solid #ddd;padding-top:1rem}\
             table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #eee;padding:.3rem;text-align:left;vertical-align:top}\
             .m{font-weight:700;color:#005a9c}</style></head><body>",
        );
        out.push_str(&format!(
            "<h1>Dupify API reference</h1><p>{}</p><p>Machine-readable: <a href=\"/v1/openapi.json\">/v1/openapi.json</a>. \
             Authenticate with <code>X-API-Key: KEY</code> or <code>Authorization: Bearer KEY</code>.</p>",
            esc(doc["info"]["description"].as_str().unwrap_or_default())
        ));
        out.push_str("<h2>Errors</h2><table><tr><th>status</th><th>code</th><th>meaning</th></tr>");
        for c in ErrorCode::ALL {
            out.push_str(&format!(
                "<tr><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
                c.status(),
                c.as_str(),
                esc(c.default_message())
            ));
        }
        out.push_str("</table>");
        if let Some(paths) = doc["paths"].as_object() {
            for (path, methods) in paths {
                for (method, op) in methods.as_object().into_iter().flatten() {
                    out.push_str(&format!(
                        "<h2 id=\"{id}\"><span class=\"m\">{}</span> <code>{}</code> — {}</h2><p>{}</p>",
                        method.to_uppercase(),
                        esc(path),
                        esc(op["summary"].as_str().unwrap_or_default()),
                        esc(op["description"].as_str().unwrap_or_default()).replace("\n\n", "</p><p>"),
                        id = esc(&path.replace('/', "-"))
                    ));
                    let body = &op["requestBody"]["content"]["application/json"]["schema"]["allOf"];
                    if let Some(options) = body.get(1).and_then(|o| o["properties"].as_object()) {
                        out.push_str("<table><tr><th>option</th><th>type</th><th>notes</th></tr>");
                        for (name, schema) in options {
                            let mut notes = schema["description"].as_str().map(esc).unwrap_or_default();
                            if let Some(d) = schema.get("default") {
                                notes = format!("default {d}. {notes}");
                            }
                            out.push_str(&format!(
                                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                                esc(name),
                                esc(&type_of(schema)),
                                notes
                            ));
                        }
                        out.push_str("</table>");
                    }
                    out.push_str("<p>Answers: ");
                    let answers: Vec<String> = op["responses"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(status, r)| {
                            format!(
                                "<b>{}</b> {}",
                                esc(status),
                                esc(r["description"].as_str().unwrap_or_default())
                            )
                        })
                        .collect();
                    out.push_str(&answers.join("; "));
                    out.push_str("</p>");
                }
            }
        }
        out.push_str("</body></html>");
        out
    })
}
