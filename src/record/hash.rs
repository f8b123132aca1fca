//! The pinned hash: FNV-1a 128, behind derived event ids and person keys.
//!
//! Written out here rather than std's `DefaultHasher`, whose output may change between Rust
//! releases: an event id must stay the same across builds (Customer.io dedups by it), and a
//! person key across machines (it will decide shards).

use std::io;

/// FNV-1a, 128-bit; also counts the bytes written through `io::Write` (serialised data).
pub(super) struct Fnv128 {
    pub hash: u128,
    pub written: usize,
}

impl Default for Fnv128 {
    fn default() -> Fnv128 {
        Fnv128 {
            hash: 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d,
            written: 0,
        }
    }
}

impl Fnv128 {
    fn bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            let x = self.hash ^ u128::from(b);
            // x * (2^88 + 0x13b), the FNV prime, spelt out: a shift and a small multiply are
            // cheaper than a full 128-bit multiply.
            self.hash = (x << 88).wrapping_add(x.wrapping_mul(0x13b));
        }
    }

    /// Length-prefixed, so ("ab", "c") and ("a", "bc") hash differently.
    pub fn field(&mut self, bytes: &[u8]) {
        self.bytes(&(bytes.len() as u64).to_le_bytes());
        self.bytes(bytes);
    }

    /// [`Fnv128::field`] of `bytes` with ASCII letters lower-cased, without a copy.
    pub fn field_ascii_lowercase(&mut self, bytes: &[u8]) {
        self.bytes(&(bytes.len() as u64).to_le_bytes());
        for &b in bytes {
            self.bytes(&[b.to_ascii_lowercase()]);
        }
    }

    /// The top 64 bits, FNV's best mixed.
    pub fn top64(&self) -> u64 {
        (self.hash >> 64) as u64
    }
}

impl io::Write for Fnv128 {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.bytes(buf);
        self.written += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_the_published_algorithm() {
        // Any change here changes every derived event id, and breaks dedup across versions.
        let mut h = Fnv128::default();
        h.bytes(b"a");
        assert_eq!(h.hash, 0xd228_cb69_6f1a_8caf_7891_2b70_4e4a_8964);
        let mut h = Fnv128::default();
        h.bytes(b"foobar");
        assert_eq!(h.hash, 0x343e_1662_793c_64bf_6f0d_3597_ba44_6f18);
        assert_eq!(h.top64(), 0x343e_1662_793c_64bf);
    }
}
