//! The catalog's request bodies (docs/API.md, "Catalog"). Unknown fields are refused:
//! a misspelt filter or product field must not be dropped in silence.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{check, ImageItem, Rejection, Request, SourceRef, Whole};
use crate::catalog::PRODUCT_FIELDS;

const MAX_TITLE: usize = 500;
const MAX_SHORT: usize = 256;
const MAX_DESCRIPTION: usize = 10_000;
const MAX_URL: usize = 2_048;
/// Most ids in a search's `exclude_ids`.
pub const MAX_EXCLUDE: usize = 1_000;

/// One product of `POST /v1/catalog/products`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(expecting = "a JSON object")]
pub struct ProductUpload {
    pub title: Option<String>,
    pub image_url: Option<String>,
    pub image_base64: Option<String>,
    /// The `image` file part of a multipart upload (an index into its files).
    pub image_file: Option<usize>,
    pub external_id: Option<String>,
    pub sku: Option<String>,
    pub description: Option<String>,
    pub brand: Option<String>,
    pub category: Option<String>,
    pub price: Option<f64>,
    /// Upper-cased; `USD` when not given.
    pub currency: Option<String>,
    pub product_url: Option<String>,
    pub metadata: Option<Map<String, Value>>,
    #[serde(flatten)]
    unknown: Map<String, Value>,
}

impl Request for ProductUpload {
    fn validate(&mut self) -> Result<(), Rejection> {
        check::no_unknown(&self.unknown, "", |k| {
            format!(
                "unknown product field {k:?}; put custom fields in metadata (known: {})",
                PRODUCT_FIELDS.join(", ")
            )
        })?;
        check::text(&mut self.title, "title", MAX_TITLE)?;
        if self.title.is_none() {
            return Err(Rejection::missing("title"));
        }
        super::images::one_image(
            self.image_url.is_some(),
            self.image_base64.is_some(),
            self.image_file.is_some(),
        )?;
        check::text(&mut self.external_id, "external_id", MAX_SHORT)?;
        check::text(&mut self.sku, "sku", MAX_SHORT)?;
        check::text(&mut self.description, "description", MAX_DESCRIPTION)?;
        check::text(&mut self.brand, "brand", MAX_SHORT)?;
        check::text(&mut self.category, "category", MAX_SHORT)?;
        check::non_negative(self.price, "price")?;
        check::currency(&mut self.currency, "currency")?;
        self.currency.get_or_insert_with(|| "USD".into());
        check::http_url(&mut self.product_url, "product_url", MAX_URL)?;
        check::metadata(self.metadata.as_ref(), "metadata")
    }
}

impl ProductUpload {
    /// The product's image (taken out; validated, so exactly one form is there).
    pub fn take_image(&mut self) -> SourceRef {
        ImageItem {
            image_url: self.image_url.take(),
            image_base64: self.image_base64.take(),
            image_file: self.image_file.take(),
        }
        .into_source("")
    }
}

/// `{"products": [...]}`: several products in one upload. Items are read one by one
/// ([`ProductUpload`] under `products[i].`), so one bad item fails alone.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(expecting = "a JSON object")]
pub struct ProductsUpload {
    pub products: Option<Vec<Value>>,
    #[serde(flatten)]
    unknown: Map<String, Value>,
}

impl Request for ProductsUpload {
    fn validate(&mut self) -> Result<(), Rejection> {
        check::no_unknown(&self.unknown, "", |_| {
            "a batch upload has only the products field; put product fields inside each item".into()
        })?;
        if self.products.is_none() {
            return Err(Rejection::invalid("products", "products must be an array"));
        }
        Ok(())
    }
}

/// Search and duplicates filters (`filters`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(expecting = "a JSON object")]
pub struct Filters {
    /// Compared case-insensitively (lower-cased here).
    pub category: Option<String>,
    pub brand: Option<String>,
    pub price_min: Option<f64>,
    pub price_max: Option<f64>,
    pub currency: Option<String>,
    /// Equality on each key.
    pub metadata: Option<Map<String, Value>>,
    #[serde(flatten)]
    unknown: Map<String, Value>,
}

impl Request for Filters {
    fn validate(&mut self) -> Result<(), Rejection> {
        check::no_unknown(&self.unknown, "", |_| {
            "unknown filter; use category, brand, price_min, price_max, currency, metadata".into()
        })?;
        check::text(&mut self.category, "category", MAX_SHORT)?;
        check::text(&mut self.brand, "brand", MAX_SHORT)?;
        for s in [&mut self.category, &mut self.brand].into_iter().flatten() {
            *s = s.to_lowercase();
        }
        check::non_negative(self.price_min, "price_min")?;
        check::non_negative(self.price_max, "price_max")?;
        if let (Some(a), Some(b)) = (self.price_min, self.price_max) {
            if a > b {
                return Err(Rejection::invalid(
                    "price_min",
                    "price_min must not be above price_max",
                ));
            }
        }
        check::currency(&mut self.currency, "currency")?;
        check::metadata(self.metadata.as_ref(), "metadata")
    }
}

/// The blend of the three similarities (`weights`); weights not given are 0 once any
/// is given, so `{"silhouette": 1}` is a pure shape search.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(expecting = "a JSON object")]
pub struct SearchWeights {
    pub visual: Option<f64>,
    pub silhouette: Option<f64>,
    pub color: Option<f64>,
    #[serde(flatten)]
    unknown: Map<String, Value>,
}

impl Request for SearchWeights {
    fn validate(&mut self) -> Result<(), Rejection> {
        check::no_unknown(&self.unknown, "", |_| {
            "unknown weight; use visual, silhouette, color".into()
        })?;
        for (w, name) in [
            (self.visual, "visual"),
            (self.silhouette, "silhouette"),
            (self.color, "color"),
        ] {
            check::number_in(
                w,
                name,
                0.0,
                100.0,
                "a weight must be a number between 0 and 100",
            )?;
        }
        if self.visual.unwrap_or(0.0) + self.silhouette.unwrap_or(0.0) + self.color.unwrap_or(0.0)
            <= 0.0
        {
            return Err(Rejection::invalid(
                "",
                "at least one weight must be above 0",
            ));
        }
        Ok(())
    }
}

/// What a search looks for.
#[derive(Debug, Clone, PartialEq)]
pub enum SearchQuery {
    Image(SourceRef),
    /// Products like this catalog product (its stored features).
    Product(String),
    /// A text, in a CLIP model's space.
    Text(String),
}

/// `POST /v1/catalog/search`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(expecting = "a JSON object")]
pub struct SearchRequest {
    pub image_url: Option<String>,
    pub image_base64: Option<String>,
    /// The `image` file part of a multipart search (an index into its files).
    pub image_file: Option<usize>,
    pub product_id: Option<String>,
    pub text: Option<String>,
    pub top_k: Option<Whole>,
    pub min_score: Option<f64>,
    pub filters: Option<Filters>,
    /// Dupes mode: only products priced below this.
    pub cheaper_than: Option<f64>,
    pub weights: Option<SearchWeights>,
    pub exclude_ids: Option<Vec<String>>,
    /// Search the vectors of this embedding model (default: the server's).
    pub model: Option<String>,
    #[serde(flatten)]
    unknown: Map<String, Value>,
}

/// Checks a nested request's own rules, naming its fields under `prefix`.
fn nested<T: Request>(t: Option<&mut T>, prefix: &str) -> Result<(), Rejection> {
    match t {
        Some(t) => t.validate().map_err(|r| r.under(prefix)),
        None => Ok(()),
    }
}

fn cheaper_than(v: Option<f64>) -> Result<(), Rejection> {
    match v {
        Some(n) if !(n.is_finite() && n > 0.0) => Err(Rejection::invalid(
            "cheaper_than",
            "cheaper_than must be a number > 0",
        )
        .detail("value", n)),
        _ => Ok(()),
    }
}

impl Request for SearchRequest {
    fn validate(&mut self) -> Result<(), Rejection> {
        check::no_unknown(&self.unknown, "", |_| {
            "unknown field; search takes image_url, image_base64, product_id, text, top_k, min_score, filters, cheaper_than, weights, exclude_ids, model".into()
        })?;
        check::exactly_one(&[
            ("image_url", self.image_url.is_some()),
            ("image_base64", self.image_base64.is_some()),
            ("product_id", self.product_id.is_some()),
            ("text", self.text.is_some()),
            ("image", self.image_file.is_some()),
        ])?;
        self.top_k()?;
        check::number_in(
            self.min_score,
            "min_score",
            0.0,
            1.0,
            "min_score must be a number between 0 and 1",
        )?;
        nested(self.weights.as_mut(), "weights.")?;
        nested(self.filters.as_mut(), "filters.")?;
        cheaper_than(self.cheaper_than)?;
        if let Some(t) = &self.text {
            super::vision::check_text(t, "text")?;
        }
        if let Some(ids) = &self.exclude_ids {
            if ids.len() > MAX_EXCLUDE {
                return Err(Rejection::invalid(
                    "exclude_ids",
                    format!("exclude_ids takes at most {MAX_EXCLUDE} ids"),
                )
                .detail("count", ids.len()));
            }
        }
        Ok(())
    }
}

impl SearchRequest {
    /// `top_k`: 1 to 100, default 10.
    pub fn top_k(&self) -> Result<usize, Rejection> {
        check::whole(self.top_k, "top_k", 1, 100, 10).map(|n| n as usize)
    }

    /// What to search for (taken out of the request; validated, so exactly one is there).
    pub fn take_query(&mut self) -> SearchQuery {
        if let Some(id) = self.product_id.take() {
            SearchQuery::Product(id)
        } else if let Some(t) = self.text.take() {
            SearchQuery::Text(t)
        } else {
            SearchQuery::Image(
                ImageItem {
                    image_url: self.image_url.take(),
                    image_base64: self.image_base64.take(),
                    image_file: self.image_file.take(),
                }
                .into_source(""),
            )
        }
    }
}

/// `POST /v1/catalog/duplicates`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(expecting = "a JSON object")]
pub struct DuplicatesRequest {
    pub threshold: Option<f64>,
    pub filters: Option<Filters>,
    pub limit: Option<Whole>,
    pub model: Option<String>,
    pub cheaper_than: Option<f64>,
    #[serde(flatten)]
    unknown: Map<String, Value>,
}

impl Request for DuplicatesRequest {
    fn validate(&mut self) -> Result<(), Rejection> {
        check::no_unknown(&self.unknown, "", |_| {
            "unknown field; duplicates takes threshold, filters, limit, model, cheaper_than".into()
        })?;
        check::number_in(
            self.threshold,
            "threshold",
            0.0,
            1.0,
            "threshold must be a number between 0 and 1",
        )?;
        self.limit()?;
        nested(self.filters.as_mut(), "filters.")?;
        cheaper_than(self.cheaper_than)
    }
}

impl DuplicatesRequest {
    /// Most groups answered: 1 to 1000, default 100.
    pub fn limit(&self) -> Result<usize, Rejection> {
        check::whole(self.limit, "limit", 1, 1000, 100).map(|n| n as usize)
    }

    /// The similarity a group's members share at least (default 0.95).
    pub fn threshold(&self) -> f32 {
        self.threshold.unwrap_or(0.95) as f32
    }
}
