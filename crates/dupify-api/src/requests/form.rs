//! `multipart/form-data` bodies (docs/API.md, "File uploads"), read into the JSON body
//! they stand for, so one set of request types validates both and errors name the same
//! parameters.
//!
//! - A part named `image` or `images`, or any part with a filename, is a file. `image`
//!   holds one image; `images` may repeat, 1 to 10 times. They become `image_file` /
//!   `images: [{"image_file": i}, ...]`, indices into the body's files in arrival order.
//! - Every other part is a text field. Its text is read by the kind of JSON value the
//!   field takes ([`field_kind`]): strings as given; numbers, booleans and objects as the
//!   JSON they spell (`max_colors=3`, `crop=true`, `filters={"brand":"acme"}`); arrays
//!   from repeated fields (`operations=embed`, `operations=colors`) or one JSON array.
//!   Text that does not parse stays a string, so the request type refuses it with the
//!   same message a JSON body of the wrong type gets (`max_colors must be an integer`).

use serde_json::{Map, Value};

use super::Rejection;
use crate::limits::MAX_IMAGES;

/// Most parts one form may have: ten files and every option with room to spare.
pub const MAX_FORM_PARTS: usize = 64;

/// What kind of JSON value a form field stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// A string: the text as given.
    Text,
    /// A number, boolean or object: the JSON the text spells.
    Json,
    /// An array: one item per repetition of the field, or one JSON array.
    List,
}

/// The kind of value each field of the image and catalog endpoints takes. Fields not
/// listed are strings (ids, names, URLs, model names, enum values).
pub fn field_kind(name: &str) -> FieldKind {
    match name {
        "include_quality" | "foreground_only" | "crop" | "max_colors" | "top_k" | "min_score"
        | "cheaper_than" | "price" | "options" | "filters" | "weights" | "metadata" => {
            FieldKind::Json
        }
        "operations" | "texts" | "exclude_ids" => FieldKind::List,
        _ => FieldKind::Text,
    }
}

/// The names of the file parts.
pub const FILE_FIELDS: [&str; 2] = ["image", "images"];

/// A form being read, part by part.
#[derive(Debug, Default)]
pub struct Form {
    fields: Map<String, Value>,
    /// List fields given as one JSON array (they cannot be repeated too).
    whole_lists: Vec<String>,
    parts: usize,
    image: bool,
    images: usize,
}

impl Form {
    pub fn new() -> Self {
        Self::default()
    }

    fn count_part(&mut self) -> Result<(), Rejection> {
        self.parts += 1;
        if self.parts > MAX_FORM_PARTS {
            return Err(Rejection::invalid(
                "body",
                format!("a multipart body holds at most {MAX_FORM_PARTS} parts"),
            ));
        }
        Ok(())
    }

    /// True when a part of this name (and filename, if any) is a file.
    pub fn is_file(name: &str, has_filename: bool) -> bool {
        has_filename || FILE_FIELDS.contains(&name)
    }

    /// A file part arrived; returns its index among the body's files.
    pub fn file(&mut self, name: &str) -> Result<usize, Rejection> {
        self.count_part()?;
        let index = usize::from(self.image) + self.images;
        if !FILE_FIELDS.contains(&name) {
            return Err(Rejection::invalid(
                name,
                format!(
                    "{name} is a file, but files are only taken as image (one) or images (several)"
                ),
            ));
        }
        if name == "image" && self.image {
            return Err(Rejection::invalid(
                "image",
                "image holds one file; send several as repeated images parts",
            ));
        }
        if (name == "image" && self.images > 0) || (name == "images" && self.image) {
            return Err(Rejection::invalid(
                "images",
                "send exactly one of image (one file) or images (several)",
            ));
        }
        if name == "image" {
            self.image = true;
            return Ok(index);
        }
        if self.images == MAX_IMAGES {
            return Err(Rejection::invalid(
                "images",
                format!("images must contain 1 to {MAX_IMAGES} items"),
            )
            .detail("count", MAX_IMAGES + 1));
        }
        self.images += 1;
        Ok(index)
    }

    /// A text part arrived.
    pub fn text(&mut self, name: &str, text: String) -> Result<(), Rejection> {
        self.count_part()?;
        if name.is_empty() {
            return Err(Rejection::invalid("body", "every form part needs a name"));
        }
        let repeated = || Rejection::invalid(name, format!("{name} is given more than once"));
        match field_kind(name) {
            FieldKind::List => {
                if self.whole_lists.iter().any(|n| n == name) {
                    return Err(repeated());
                }
                if !self.fields.contains_key(name) && text.trim_start().starts_with('[') {
                    if let Ok(v @ Value::Array(_)) = serde_json::from_str::<Value>(&text) {
                        self.whole_lists.push(name.to_owned());
                        self.fields.insert(name.to_owned(), v);
                        return Ok(());
                    }
                }
                match self
                    .fields
                    .entry(name.to_owned())
                    .or_insert_with(|| Value::Array(Vec::new()))
                {
                    Value::Array(items) => items.push(Value::String(text)),
                    _ => return Err(repeated()),
                }
            }
            kind => {
                if self.fields.contains_key(name) {
                    return Err(repeated());
                }
                let value = match kind {
                    FieldKind::Json => json_text(name, text)?,
                    _ => Value::String(text),
                };
                self.fields.insert(name.to_owned(), value);
            }
        }
        Ok(())
    }

    /// The JSON body the form stands for.
    pub fn finish(mut self) -> Value {
        if self.image {
            self.fields.insert("image_file".into(), 0.into());
        }
        if self.images > 0 {
            let items = (0..self.images)
                .map(|i| {
                    let mut m = Map::new();
                    m.insert("image_file".into(), i.into());
                    Value::Object(m)
                })
                .collect();
            self.fields.insert("images".into(), Value::Array(items));
        }
        Value::Object(self.fields)
    }
}

/// A JSON-kind field's text: the value it spells, or the text itself when it spells
/// none (the request type then refuses it as of the wrong type). Objects are read as
/// JSON bodies are: a key given twice is refused, named under the field.
fn json_text(name: &str, text: String) -> Result<Value, Rejection> {
    let trimmed = text.trim();
    if trimmed.starts_with('{') {
        return match super::json_object(trimmed.as_bytes()) {
            Ok(v) => Ok(v),
            Err(r) if r.parameter == "body" => Ok(Value::String(text)),
            Err(r) => Err(r.under(&format!("{name}."))),
        };
    }
    Ok(serde_json::from_str::<Value>(trimmed).unwrap_or(Value::String(text)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn form(parts: &[(&str, &str)]) -> Result<Value, Rejection> {
        let mut f = Form::new();
        for (name, text) in parts {
            if *text == "<file>" {
                f.file(name)?;
            } else {
                f.text(name, (*text).to_owned())?;
            }
        }
        Ok(f.finish())
    }

    #[test]
    fn fields_are_read_by_the_kind_of_value_they_take() {
        let v = form(&[
            ("image", "<file>"),
            ("max_colors", "3"),
            ("crop", "true"),
            ("title", "123"),
            ("filters", r#"{"brand": "acme"}"#),
            ("operations", "embed"),
            ("operations", "colors"),
            ("texts", r#"["a", "b"]"#),
        ])
        .unwrap();
        assert_eq!(
            v,
            json!({"image_file": 0, "max_colors": 3, "crop": true, "title": "123",
                   "filters": {"brand": "acme"}, "operations": ["embed", "colors"],
                   "texts": ["a", "b"]})
        );
    }

    #[test]
    fn text_that_spells_no_value_stays_text_for_the_type_check() {
        let v = form(&[("max_colors", "many"), ("filters", "{broken")]).unwrap();
        assert_eq!(v, json!({"max_colors": "many", "filters": "{broken"}));
    }

    #[test]
    fn files_become_indices_in_arrival_order() {
        let v = form(&[("images", "<file>"), ("images", "<file>")]).unwrap();
        assert_eq!(v, json!({"images": [{"image_file": 0}, {"image_file": 1}]}));
    }

    #[test]
    fn misplaced_files_and_repeats_are_refused_by_name() {
        let r = form(&[("photo", "<file>")]).unwrap_err();
        assert_eq!(r.parameter, "photo");
        let r = form(&[("image", "<file>"), ("image", "<file>")]).unwrap_err();
        assert_eq!(r.parameter, "image");
        let r = form(&[("images", "<file>"), ("image", "<file>")]).unwrap_err();
        assert_eq!(r.parameter, "images");
        let r = form(&[("max_colors", "3"), ("max_colors", "4")]).unwrap_err();
        assert_eq!(r.parameter, "max_colors");
        let r = form(&[("texts", r#"["a"]"#), ("texts", "b")]).unwrap_err();
        assert_eq!(r.parameter, "texts");
        let r = form(&[("options", r#"{"colors": {}, "colors": {}}"#)]).unwrap_err();
        assert_eq!(r.parameter, "options.colors");
        let eleven: Vec<(&str, &str)> = vec![("images", "<file>"); 11];
        assert_eq!(form(&eleven).unwrap_err().parameter, "images");
        let names: Vec<String> = (0..=MAX_FORM_PARTS).map(|i| format!("x{i}")).collect();
        let many: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "1")).collect();
        assert_eq!(form(&many).unwrap_err().parameter, "body");
    }
}
