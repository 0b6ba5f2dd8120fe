//! The one test harness of the workspace: every integration test and benchmark starts
//! the real server through [`TestServer`] (ephemeral port, temporary data dir, optional
//! real models shared per process) and talks to it over HTTP with the helpers in
//! [`http`]. The CLI's tests start the real binary with [`BinaryServer`].

pub mod binary;
pub mod http;
pub mod server;

pub use binary::BinaryServer;
pub use http::*;
pub use server::{project_models_dir, uuid_like, ModelSet, TestServer};
