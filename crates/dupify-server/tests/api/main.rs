//! The server over HTTP, black-box: one test binary (linking the server once), one
//! module per concern. Every test starts its own server through `dupify_testkit`.

mod catalog;
mod colors;
mod connections;
mod dashboard;
mod errors;
mod fetch;
mod metering;
mod openapi;
mod uploads;
mod vision;
mod webhooks;
