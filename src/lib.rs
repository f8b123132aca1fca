//! cio-import: a bulk importer for Customer.io's Track API.
//!
//! The stages, in the order a record meets them: [`source`] reads rows, [`record`] maps
//! and validates them into operations, [`limit`] paces them, [`send`] delivers them, and
//! [`report`] settles each one. [`run`] wires them together; [`sandbox`] is the local
//! stand-in of the Track API.

pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod error;
pub mod exit;
pub mod limit;
pub mod lock;
pub mod record;
pub mod report;
pub mod run;
pub mod sandbox;
pub mod send;
pub mod settle;
pub mod source;
pub mod track;
