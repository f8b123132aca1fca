//! cio-import: a bulk importer for Customer.io's Track API.

pub mod exit;
pub mod record;
pub mod sandbox;
pub mod source;
