//! Tests of the pg engine module.
