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

    #[test]
    fn print() {
        let mut c = Components::new();
        let a = c.schema::<crate::Answer<crate::CutoutResult>>();
        let b = c.schema::<crate::Results<crate::Answer<crate::EmbedResult>>>();
        let p = c.schema::<crate::ProductPage>();
        let u = c.schema::<crate::Usage>();
        let d = c.schema::<crate::BatchItem>();
        println!("{a}\n{b}\n{p}\n{u}\n{d}");
        println!(
            "{}",
            serde_json::to_string_pretty(&c.into_schemas()).unwrap()
        );
    }
}
