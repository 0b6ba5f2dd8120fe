//! API key secrets: generation, parsing, hashing. The plaintext key exists only in the
//! client's hands and in memory for the duration of one request; the store keeps its hash.

use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const SECRET_LEN: usize = 32;
/// Characters of the key kept for display (`fe_live_AbCd`).
const DISPLAY_LEN: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyMode {
    Live,
    Test,
}

impl KeyMode {
    pub const fn prefix(self) -> &'static str {
        match self {
            KeyMode::Live => "fe_live_",
            KeyMode::Test => "fe_test_",
        }
    }
    pub const fn as_str(self) -> &'static str {
        match self {
            KeyMode::Live => "live",
            KeyMode::Test => "test",
        }
    }
    pub fn parse(s: &str) -> Option<KeyMode> {
        match s {
            "live" => Some(KeyMode::Live),
            "test" => Some(KeyMode::Test),
            _ => None,
        }
    }
}

/// A well-formed plaintext key. `Debug` never prints the secret.
#[derive(Clone)]
pub struct ApiKeySecret(String);

impl std::fmt::Debug for ApiKeySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeySecret({}…)", self.display_prefix())
    }
}

impl ApiKeySecret {
    /// A fresh key from the OS CSPRNG (`rand::thread_rng` is a CSPRNG seeded from the OS).
    pub fn generate(mode: KeyMode) -> Self {
        let mut rng = rand::thread_rng();
        let mut s = String::with_capacity(mode.prefix().len() + SECRET_LEN);
        s.push_str(mode.prefix());
        for _ in 0..SECRET_LEN {
            s.push(BASE62[rng.gen_range(0..BASE62.len())] as char);
        }
        ApiKeySecret(s)
    }

    /// Accepts only the exact format: prefix + 32 base62 characters.
    pub fn parse(s: &str) -> Option<Self> {
        let rest = s
            .strip_prefix(KeyMode::Live.prefix())
            .or_else(|| s.strip_prefix(KeyMode::Test.prefix()))?;
        if rest.len() == SECRET_LEN && rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
            Some(ApiKeySecret(s.to_owned()))
        } else {
            None
        }
    }

    pub fn mode(&self) -> KeyMode {
        if self.0.starts_with(KeyMode::Test.prefix()) {
            KeyMode::Test
        } else {
            KeyMode::Live
        }
    }

    pub fn hash(&self) -> KeyHash {
        KeyHash(Sha256::digest(self.0.as_bytes()).into())
    }

    pub fn display_prefix(&self) -> String {
        self.0[..DISPLAY_LEN].to_owned()
    }

    /// The plaintext, for showing it once at creation.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// SHA-256 of a whole key. Equality is constant-time.
#[derive(Clone, Copy)]
pub struct KeyHash(pub [u8; 32]);

impl KeyHash {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
    pub fn from_hex(s: &str) -> Option<Self> {
        let v = hex::decode(s).ok()?;
        Some(KeyHash(v.try_into().ok()?))
    }
}

impl PartialEq for KeyHash {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}
impl Eq for KeyHash {}

impl std::fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyHash({}…)", &self.to_hex()[..8])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_parse_roundtrip() {
        let k = ApiKeySecret::generate(KeyMode::Test);
        assert_eq!(k.expose().len(), 40);
        let p = ApiKeySecret::parse(k.expose()).unwrap();
        assert_eq!(p.mode(), KeyMode::Test);
        assert_eq!(p.hash(), k.hash());
        assert!(!format!("{k:?}").contains(&k.expose()[12..]));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "fe_live_",
            "fe_live_short",
            "fe_prod_0123456789abcdef0123456789abcdef",
            "fe_live_0123456789abcdef0123456789abcde!",
            "fe_live_0123456789abcdef0123456789abcdef0",
        ] {
            assert!(ApiKeySecret::parse(bad).is_none(), "{bad}");
        }
    }
}
