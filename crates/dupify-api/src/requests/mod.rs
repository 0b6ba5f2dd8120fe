//! Request bodies as types (docs/API.md, "Conventions" and each endpoint's section).
//!
//! A body is read in two steps: serde turns the JSON into the request type (a value
//! of the wrong JSON type is refused here, naming the field by its path, e.g.
//! `images[2].image_url`), then [`Request::validate`] checks ranges and the rules
//! between fields, normalising in place (trimmed strings, upper-case currency codes).
//! Both steps answer with a [`Rejection`], which the server turns into its
//! `missing_parameter` / `invalid_parameter` errors.
//!
//! Absent and `null` mean the same: not given. Unknown fields are ignored by the image
//! endpoints and refused by the catalog ones, whose fields are easy to misspell into
//! silence (`categroy`).

mod catalog;
mod check;
pub mod form;
mod images;
mod vision;
mod webhooks;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

pub use catalog::{
    DuplicatesRequest, Filters, ProductUpload, ProductsUpload, SearchQuery, SearchRequest,
    SearchWeights,
};
pub use images::{ImageInput, ImageItem, ImageRef, ImageSources, SourceRef};
pub use vision::{
    BatchRequest, ColorsOptions, CutoutOptions, EmbedOptions, ModelOptions, ResponseFormat,
    ResponseOptions, SegmenterOptions, TextInput,
};
pub use webhooks::{WebhookCreate, WEBHOOK_EVENT_TYPES};

/// What a request got wrong, naming the parameter at fault.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub kind: RejectionKind,
    /// The field's path in the body, e.g. `options.colors.max_colors`.
    pub parameter: String,
    pub message: String,
    /// Context beyond the parameter (the offending `value`, `alternatives`, a `count`).
    /// Boxed: rejections travel in every `Result` of request parsing, so they stay small.
    pub details: Option<Box<Map<String, Value>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectionKind {
    /// A required field is absent (`missing_parameter`).
    Missing,
    /// A value is of the wrong type, out of range, or conflicts with another (`invalid_parameter`).
    Invalid,
}

impl Rejection {
    pub fn missing(parameter: impl Into<String>) -> Self {
        let parameter = parameter.into();
        Rejection {
            kind: RejectionKind::Missing,
            message: format!("{parameter} is required"),
            parameter,
            details: None,
        }
    }

    pub fn invalid(parameter: impl Into<String>, message: impl Into<String>) -> Self {
        Rejection {
            kind: RejectionKind::Invalid,
            parameter: parameter.into(),
            message: message.into(),
            details: None,
        }
    }

    pub fn detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details
            .get_or_insert_with(Default::default)
            .insert(key.to_owned(), value.into());
        self
    }

    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    /// The same rejection for a body found at `prefix` (e.g. `products[3].`): the
    /// parameter and any alternatives named are prefixed.
    pub fn under(mut self, prefix: &str) -> Self {
        if prefix.is_empty() {
            return self;
        }
        self.parameter = if self.parameter.is_empty() {
            prefix.trim_end_matches('.').to_owned()
        } else {
            format!("{prefix}{}", self.parameter)
        };
        if let Some(Value::Array(alts)) = self
            .details
            .as_mut()
            .and_then(|d| d.get_mut("alternatives"))
        {
            for a in alts.iter_mut() {
                if let Value::String(s) = a {
                    *s = format!("{prefix}{s}");
                }
            }
        }
        self
    }
}

/// Reads a request body's JSON: it must be valid JSON, an object, and name no key twice
/// at any depth. (Parsers differ on which of two equal keys wins: a body that a proxy and
/// this server could read differently is refused instead.)
///
/// A body of more than [`MAX_JSON_VALUES`] values is refused as it is read: 16 MiB of
/// `[0,0,0,…]` would otherwise become ~8 million values and over half a gigabyte.
pub fn json_object(bytes: &[u8]) -> Result<Value, Rejection> {
    use serde::de::DeserializeSeed as _;
    let walk = Walk::default();
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = Unique(&walk).deserialize(&mut de).and_then(|v| {
        de.end()?;
        Ok(v)
    });
    match parsed {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(Rejection::invalid("body", "the body must be a JSON object")),
        Err(_) if walk.values.get() > MAX_JSON_VALUES => Err(Rejection::invalid(
            "body",
            format!("the body holds more than {MAX_JSON_VALUES} JSON values"),
        )),
        Err(e) => match walk.duplicate.take() {
            Some(path) => Err(Rejection::invalid(
                path.clone(),
                format!("{path} is given more than once"),
            )),
            None => Err(Rejection::invalid(
                "body",
                format!("the body is not valid JSON: {e}"),
            )),
        },
    }
}

/// Most JSON values (objects, arrays, scalars) one body may hold: room for the largest
/// valid request (1,000 products, each with 8 KB of the smallest metadata entries, about
/// 1.4 million values), while 16 MiB of `[0,0,…]` (8 million) is refused, which bounds
/// the memory a body can take as it is read to about a quarter of what it was.
pub const MAX_JSON_VALUES: usize = 1_500_000;

/// Where the reader is in the document, and the first repeated key's path.
#[derive(Default)]
struct Walk {
    path: std::cell::RefCell<Vec<Step>>,
    duplicate: std::cell::RefCell<Option<String>>,
    values: std::cell::Cell<usize>,
}

enum Step {
    Key(String),
    Index(usize),
}

impl Walk {
    fn render(&self, last: &str) -> String {
        let mut out = String::new();
        for step in self.path.borrow().iter() {
            match step {
                Step::Key(k) => push_key(&mut out, k),
                Step::Index(i) => push_index(&mut out, *i),
            }
        }
        push_key(&mut out, last);
        out
    }
}

/// Reads one JSON value, refusing objects with a repeated key.
#[derive(Clone, Copy)]
struct Unique<'a>(&'a Walk);

impl<'de> serde::de::DeserializeSeed<'de> for Unique<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        let n = self.0.values.get() + 1;
        self.0.values.set(n);
        if n > MAX_JSON_VALUES {
            return Err(serde::de::Error::custom("too many values"));
        }
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Unique<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            self.0.path.borrow_mut().push(Step::Index(items.len()));
            let item = seq.next_element_seed(self);
            self.0.path.borrow_mut().pop();
            match item? {
                Some(v) => items.push(v),
                None => return Ok(Value::Array(items)),
            }
        }
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut m = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if m.contains_key(&key) {
                *self.0.duplicate.borrow_mut() = Some(self.0.render(&key));
                return Err(serde::de::Error::custom("repeated key"));
            }
            self.0.path.borrow_mut().push(Step::Key(key.clone()));
            let v = map.next_value_seed(self);
            self.0.path.borrow_mut().pop();
            m.insert(key, v?);
        }
        Ok(Value::Object(m))
    }
}

/// A request body: deserialised by serde, then checked by [`Request::validate`].
pub trait Request: DeserializeOwned {
    /// Ranges and cross-field rules; may normalise fields in place.
    fn validate(&mut self) -> Result<(), Rejection> {
        Ok(())
    }
}

/// Reads a request from a JSON value (a whole body).
pub fn parse<T: Request>(body: &Value) -> Result<T, Rejection> {
    parse_under(body, "")
}

/// Reads a request found at `prefix` of a larger body (a batch item, an operation's
/// options), so rejections name the field as the client spelled its path.
pub fn parse_under<T: Request>(value: &Value, prefix: &str) -> Result<T, Rejection> {
    // Every request body is an object; serde would also read a struct from an array,
    // by position, which no client means.
    if !value.is_object() {
        let name = match prefix.trim_end_matches('.') {
            "" => "body",
            p => p,
        };
        return Err(Rejection::invalid(
            name,
            format!("{name} must be a JSON object"),
        ));
    }
    let mut t: T = match serde_path_to_error::deserialize(value) {
        Ok(t) => t,
        Err(e) => return Err(type_rejection(value, &e).under(prefix)),
    };
    t.validate().map_err(|r| r.under(prefix))?;
    Ok(t)
}

/// A serde failure as a rejection: the path names the parameter; the value found there
/// is echoed when it is short.
fn type_rejection(root: &Value, e: &serde_path_to_error::Error<serde_json::Error>) -> Rejection {
    use serde_path_to_error::Segment;
    let mut parameter = String::new();
    let mut at = Some(root);
    for seg in e.path().iter() {
        match seg {
            Segment::Map { key } => {
                push_key(&mut parameter, key);
                at = at.and_then(|v| v.get(key.as_str()));
            }
            Segment::Seq { index } => {
                push_index(&mut parameter, *index);
                at = at.and_then(|v| v.get(*index));
            }
            Segment::Enum { .. } | Segment::Unknown => at = None,
        }
    }
    let inner = e.inner().to_string();
    let name = if parameter.is_empty() {
        "the body"
    } else {
        parameter.as_str()
    };
    // serde says "invalid type: string \"x\", expected a boolean"; say it the API's way.
    let message = match inner
        .strip_prefix("invalid type: ")
        .and_then(|r| r.split_once(", expected "))
    {
        Some((found, expected)) => format!("{name} must be {}, not {found}", plain(expected)),
        None => format!("{name}: {inner}"),
    };
    let mut r = Rejection::invalid(
        if parameter.is_empty() {
            "body"
        } else {
            &parameter
        },
        message,
    );
    if let Some(v) = at.filter(|v| !v.is_object() && !v.is_array() && v.to_string().len() <= 200) {
        r = r.detail("value", v.clone());
    }
    r
}

/// Appends a field to a parameter path as the API names it: `images[2].image_url`.
fn push_key(path: &mut String, key: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(key);
}

/// Appends an array index to a parameter path.
fn push_index(path: &mut String, index: usize) {
    path.push_str(&format!("[{index}]"));
}

/// serde's names for JSON types, as the API's documentation says them.
fn plain(expected: &str) -> &str {
    match expected {
        "f32" | "f64" => "a number",
        "i8" | "i16" | "i32" | "i64" | "u8" | "u16" | "u32" | "u64" | "usize" => "an integer",
        "a sequence" => "an array",
        "a map" => "a JSON object",
        other => other,
    }
}

/// An integer, also when written with a zero fraction (`3.0`): JSON has one number type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Whole(pub i64);

impl<'de> Deserialize<'de> for Whole {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Whole;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an integer")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Whole, E> {
                Ok(Whole(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Whole, E> {
                i64::try_from(v)
                    .map(Whole)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(v), &self))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Whole, E> {
                if v.fract() == 0.0 && v.abs() < 1e15 {
                    Ok(Whole(v as i64))
                } else {
                    Err(E::invalid_value(serde::de::Unexpected::Float(v), &self))
                }
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests;
