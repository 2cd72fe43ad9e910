//! The one integration-test binary of lockgate-store: the same scenarios (`support.rs`)
//! run on a folder store and on moto's S3, plus what is particular to each and the checks
//! of keys, URLs and configuration.

mod folder;
mod input;
mod s3;
mod support;
