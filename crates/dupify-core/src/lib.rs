//! Domain types and rules of Dupify, with no I/O.
//!
//! Everything a client can send is parsed into a type from here at the edge, and every
//! failure a client can see is an [`ApiError`] whose code comes from the one table in
//! [`error`].

pub mod error;
pub mod key;
pub mod period;
pub mod scope;
pub mod tier;

pub use error::{ApiError, ErrorCode};
pub use key::{ApiKeySecret, KeyHash, KeyMode};
pub use period::BillingPeriod;
pub use scope::{Scope, Scopes};
pub use tier::{Limits, Tier};
