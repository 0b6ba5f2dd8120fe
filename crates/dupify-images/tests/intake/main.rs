//! Image intake, black-box: decoding and its limits, and URL fetching (one test binary;
//! the allocation-counting bomb test has its own, see ../bomb_alloc.rs).

mod decode;
mod fetch;
mod support;
