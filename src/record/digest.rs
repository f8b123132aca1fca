//! An operation's digest: FNV-1a 128 over its `/api/v2/batch` JSON, what `--state` compares
//! to tell an unchanged record from one to send.
//!
//! Over the v2 shape whatever `--batch` is, so that changing `--batch` between runs sends
//! nothing again; pinned (see `hash.rs`), so that a new build does not send everything again.

use std::io::Write as _;

use super::Operation;
use super::hash::Fnv128;

impl Operation {
    /// The digest of what the operation sends. `encoded` is its batch encoding when the
    /// reader made one (the same bytes), to spare a second serialisation.
    pub fn digest(&self, encoded: &[u8]) -> u128 {
        let mut h = Fnv128::default();
        // No error to keep: writing to a hasher cannot fail, and an operation always serialises.
        if encoded.is_empty() {
            let _ = serde_json::to_writer(&mut h, self);
        } else {
            let _ = h.write_all(encoded);
        }
        h.hash
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, json};

    use super::super::IdKind;
    use super::super::testkit::ident;
    use super::*;

    fn identify(plan: &str) -> Operation {
        let mut attributes = Map::new();
        attributes.insert("plan".into(), json!(plan));
        Operation::Identify {
            person: ident(IdKind::Id, "42"),
            attributes,
        }
    }

    #[test]
    fn the_digest_is_pinned_and_the_same_from_the_batch_encoding() {
        // If this changes, every record a state remembers is sent again once.
        let op = identify("pro");
        assert_eq!(op.digest(&[]), 0x4979_8180_6a6c_56c7_f3c7_08d2_cf74_350c);
        let encoded = op.encode_for_batch().unwrap();
        assert_eq!(op.digest(&encoded), op.digest(&[]));
        assert_ne!(identify("free").digest(&[]), op.digest(&[]));
    }
}
