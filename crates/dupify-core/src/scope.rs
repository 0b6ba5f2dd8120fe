//! Key scopes. A key with an empty scope set may call every endpoint.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Embed,
    Colors,
    Silhouette,
    Attributes,
    BackgroundRemove,
    Batch,
    Catalog,
}

impl Scope {
    pub const ALL: [Scope; 7] = [
        Scope::Embed,
        Scope::Colors,
        Scope::Silhouette,
        Scope::Attributes,
        Scope::BackgroundRemove,
        Scope::Batch,
        Scope::Catalog,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Scope::Embed => "embed",
            Scope::Colors => "colors",
            Scope::Silhouette => "silhouette",
            Scope::Attributes => "attributes",
            Scope::BackgroundRemove => "background_remove",
            Scope::Batch => "batch",
            Scope::Catalog => "catalog",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|sc| sc.as_str() == s.trim())
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A key's scope set; empty means unrestricted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes(Vec<Scope>);

impl Scopes {
    pub fn new(mut v: Vec<Scope>) -> Self {
        v.sort();
        v.dedup();
        Scopes(v)
    }

    pub fn all() -> Self {
        Scopes(Vec::new())
    }

    pub fn allows(&self, s: Scope) -> bool {
        self.0.is_empty() || self.0.contains(&s)
    }

    pub fn is_unrestricted(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = Scope> + '_ {
        self.0.iter().copied()
    }

    /// Parses a comma-separated list (`embed,colors`); empty string = unrestricted.
    pub fn parse_list(s: &str) -> Result<Scopes, String> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            out.push(Scope::parse(part).ok_or_else(|| {
                format!(
                    "unknown scope '{part}' (known: {})",
                    Scope::ALL.map(|s| s.as_str()).join(", ")
                )
            })?);
        }
        Ok(Scopes::new(out))
    }

    /// Comma-separated form, as stored.
    pub fn to_list(&self) -> String {
        self.0
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_allow() {
        let s = Scopes::parse_list("colors, embed,colors").unwrap();
        assert_eq!(s.to_list(), "embed,colors");
        assert!(s.allows(Scope::Colors));
        assert!(!s.allows(Scope::Catalog));
        assert!(Scopes::parse_list("").unwrap().allows(Scope::Catalog));
        assert!(Scopes::parse_list("nope").is_err());
    }
}
