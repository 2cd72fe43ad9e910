//! The lockgate crate's one integration-test binary: `load` end to end on all three
//! engines (each test in a fresh database), every kind of bad input, and `migrate`
//! (with `status` and `rollback`) from oe-migration `db/` folders and zips (drift,
//! forced older versions and `.sql` scripts in their own modules), `char(n)` padding and
//! values recorded with it (`padded`), process scripts
//! (their environment, a relative folder, refused bundles), transfers between engines,
//! and the table lock the commands share.

mod bad_input;
mod baseline;
mod clear_tables;
mod drift;
mod dump;
mod load;
mod loopback;
mod mask;
mod merge;
mod migrate;
mod mysql_forms;
mod padded;
mod precision;
mod review;
mod schemas;
mod scripts;
mod snapshot;
mod sql_script;
mod support;
mod table_lock;
mod transfer;
mod upgrade;
mod verify;
