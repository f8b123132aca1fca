//! STUB: being written on branch `record`.

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ValueType {
    String,
    Number,
    Bool,
    Timestamp,
    Json,
}
