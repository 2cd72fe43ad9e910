//! The lockgate crate's one integration-test binary: `load` end to end on all three
//! engines (each test in a fresh database), every kind of bad input, and `migrate`
//! (with `status` and `rollback`) from oe-migration `db/` folders and zips, process
//! scripts (their environment, a relative folder, refused bundles), and transfers
//! between engines.

mod bad_input;
mod dump;
mod load;
mod migrate;
mod review;
mod scripts;
mod support;
mod transfer;
