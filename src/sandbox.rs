//! STUB: being written on branch `sandbox`.
