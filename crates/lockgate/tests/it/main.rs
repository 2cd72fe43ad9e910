//! The lockgate crate's one integration-test binary: `load` end to end on all three
//! engines (each test in a fresh database), and every kind of bad input.

mod bad_input;
mod load;
mod support;
