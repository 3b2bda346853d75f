//! Human output: the health table, log lines, status and trace screens.
//! Knows the snapshot types, nothing about how they were collected; numbers
//! are formatted by `crate::units`.
pub mod fleet;
pub mod health;
pub mod log;
pub mod status;
pub mod table;
pub mod top;
pub mod trace;
pub mod which;
