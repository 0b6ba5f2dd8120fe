//! JSON Schemas of the wire types (feature `schema`), for the server's OpenAPI document:
//! the answers are documented from the very types the server serialises, so the two
//! cannot drift. Doc comments on the types become the schemas' descriptions.

use schemars::generate::{Contract, SchemaSettings};
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value};

/// Collects schemas as OpenAPI components (`#/components/schemas/…`).
pub struct Components {
    generator: SchemaGenerator,
}

impl Default for Components {
    fn default() -> Self {
        Self::new()
    }
}

impl Components {
    pub fn new() -> Self {
        let settings = SchemaSettings::draft2020_12().with(|s| {
            s.definitions_path = "/components/schemas".into();
            // What the server writes: fields it always writes are required.
            s.contract = Contract::Serialize;
            s.meta_schema = None;
        });
        Components {
            generator: settings.into_generator(),
        }
    }

    /// The schema of `T` where it is used: a `$ref` to its component, or inline for
    /// wrappers (`Vec<T>`, `Option<T>`).
    pub fn schema<T: JsonSchema>(&mut self) -> Value {
        self.generator.subschema_for::<T>().to_value()
    }

    /// Every component met so far, by name.
    pub fn into_schemas(mut self) -> Map<String, Value> {
        self.generator.take_definitions(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Answer, CutoutResult, EmbedResult, ProductPage};

    fn names(v: &Value) -> Vec<&str> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect()
    }

    #[test]
    fn answers_are_components_with_what_the_server_always_writes_required() {
        let mut c = Components::new();
        assert_eq!(
            c.schema::<Answer<EmbedResult>>(),
            serde_json::json!({"$ref": "#/components/schemas/EmbedResultAnswer"})
        );
        let page = c.schema::<Vec<ProductPage>>();
        assert_eq!(page["items"]["$ref"], "#/components/schemas/ProductPage");
        c.schema::<Answer<CutoutResult>>();
        let all = c.into_schemas();

        let embed = &all["EmbedResultAnswer"];
        let required = names(&embed["required"]);
        for f in ["dimensions", "embedding", "model", "cached"] {
            assert!(required.contains(&f), "{f} required: {embed}");
        }
        // Written only when asked for, or only on single answers.
        for f in ["quality", "processing_time_ms"] {
            assert!(
                !required.contains(&f) && embed["properties"][f].is_object(),
                "{f}"
            );
        }
        // Fields serialised as null when unset are required and nullable.
        let product = &all["Product"];
        assert!(names(&product["required"]).contains(&"price"));
        assert_eq!(
            names(&product["properties"]["price"]["type"]),
            ["number", "null"]
        );

        let cutout = &all["CutoutResultAnswer"];
        assert_eq!(cutout["properties"]["format"]["const"], "png");
        assert_eq!(
            cutout["properties"]["image_base64"]["contentEncoding"],
            "base64"
        );
    }

    #[test]
    fn enums_list_only_what_a_server_sends() {
        let mut c = Components::new();
        c.schema::<ProductPage>();
        c.schema::<crate::SilhouetteResult>();
        let all = c.into_schemas();
        for (name, expected) in [
            ("EmbeddingStatus", vec!["processing", "ready", "failed"]),
            (
                "ForegroundMethod",
                vec!["alpha", "border_color", "model", "none"],
            ),
        ] {
            let values: Vec<&str> = all[name]["oneOf"]
                .as_array()
                .unwrap_or_else(|| panic!("{name}: {}", all[name]))
                .iter()
                .flat_map(|v| v["const"].as_str().into_iter().chain(names(&v["enum"])))
                .collect();
            assert_eq!(values, expected, "{name}: {}", all[name]);
        }
    }
}
