//! The one integration-test binary of lockgate-bundle: one binary links and runs faster than
//! one per file. Most cases are data-driven through `support::check`.

mod base;
mod csv;
mod json;
mod manifest;
mod model;
mod ndjson;
mod open;
mod support;
mod version;
mod zip;
