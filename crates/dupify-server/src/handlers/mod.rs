//! Route handlers, one module per resource.

pub mod catalog;
pub mod ops;
pub mod usage;
pub mod vision;
pub mod webhooks;
