//! The lockgate crate's one integration-test binary: `load` end to end on all three
//! engines (each test in a fresh database), every kind of bad input, and `migrate`
//! (with `status` and `rollback`) from oe-migration `db/` folders and zips (drift,
//! forced older versions and `.sql` scripts in their own modules), and transfers
//! between engines.

mod bad_input;
mod drift;
mod dump;
mod load;
mod loopback;
mod migrate;
mod mysql_forms;
mod precision;
mod review;
mod schemas;
mod sql_script;
mod support;
mod transfer;
