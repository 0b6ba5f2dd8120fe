//! Account tiers and their limits (docs/API.md, "Keys, scopes and tiers").

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    Free,
    Starter,
    Pro,
    Unlimited,
}

/// The effective limits of an account: its tier's, possibly overridden per account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// Calls per billing period; `None` = no limit.
    pub monthly_calls: Option<u64>,
    /// Requests per minute.
    pub rate_per_minute: u32,
    /// Products in the catalog; `None` = no limit.
    pub catalog_products: Option<u64>,
    /// Products in one upload request.
    pub products_per_upload: u32,
}

impl Tier {
    pub const ALL: [Tier; 4] = [Tier::Free, Tier::Starter, Tier::Pro, Tier::Unlimited];

    pub const fn as_str(self) -> &'static str {
        match self {
            Tier::Free => "free",
            Tier::Starter => "starter",
            Tier::Pro => "pro",
            Tier::Unlimited => "unlimited",
        }
    }

    pub fn parse(s: &str) -> Option<Tier> {
        Tier::ALL.into_iter().find(|t| t.as_str() == s)
    }

    pub const fn limits(self) -> Limits {
        match self {
            Tier::Free => Limits {
                monthly_calls: Some(50),
                rate_per_minute: 10,
                catalog_products: Some(1_000),
                products_per_upload: 10,
            },
            Tier::Starter => Limits {
                monthly_calls: Some(1_000),
                rate_per_minute: 60,
                catalog_products: Some(10_000),
                products_per_upload: 100,
            },
            Tier::Pro => Limits {
                monthly_calls: Some(10_000),
                rate_per_minute: 200,
                catalog_products: Some(100_000),
                products_per_upload: 500,
            },
            Tier::Unlimited => Limits {
                monthly_calls: None,
                rate_per_minute: 1_000,
                catalog_products: None,
                products_per_upload: 1_000,
            },
        }
    }

    /// The tier's limits with per-account overrides applied (custom plans).
    pub fn limits_with(self, monthly: Option<u64>, rate: Option<u32>) -> Limits {
        let mut l = self.limits();
        if let Some(m) = monthly {
            l.monthly_calls = Some(m);
        }
        if let Some(r) = rate {
            l.rate_per_minute = r.max(1);
        }
        l
    }
}

impl std::fmt::Display for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
