//! The image operations by name.

use serde::{Deserialize, Deserializer, Serialize};

/// An image operation by name, in the order `/v1/batch` documents them (serialised as
/// its wire name, e.g. `background_remove`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationKind {
    Embed,
    Colors,
    Silhouette,
    Attributes,
    Quality,
    BackgroundRemove,
}

impl OperationKind {
    pub const ALL: [OperationKind; 6] = [
        OperationKind::Embed,
        OperationKind::Colors,
        OperationKind::Silhouette,
        OperationKind::Attributes,
        OperationKind::Quality,
        OperationKind::BackgroundRemove,
    ];

    /// The wire name (a `/v1/batch` operation, a result key, part of cache keys).
    pub const fn name(self) -> &'static str {
        match self {
            OperationKind::Embed => "embed",
            OperationKind::Colors => "colors",
            OperationKind::Silhouette => "silhouette",
            OperationKind::Attributes => "attributes",
            OperationKind::Quality => "quality",
            OperationKind::BackgroundRemove => "background_remove",
        }
    }

    pub fn parse(name: &str) -> Option<OperationKind> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The names, comma-separated (for error messages).
    pub fn names() -> String {
        Self::ALL.map(OperationKind::name).join(", ")
    }
}

/// By wire name; an unknown name is refused with the list of known ones.
impl<'de> Deserialize<'de> for OperationKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = OperationKind;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "an operation name ({})", OperationKind::names())
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<OperationKind, E> {
                OperationKind::parse(v).ok_or_else(|| {
                    E::custom(format!(
                        "unknown operation {v:?}; choose from {}",
                        OperationKind::names()
                    ))
                })
            }
        }
        d.deserialize_str(V)
    }
}
