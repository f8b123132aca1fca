//! `--shard K/N`: which records one of N importers takes, by the pinned person key.

/// `--shard K/N`: this run takes the records whose person key falls in the K-th of N equal
/// ranges. The key is
/// pinned ([`super::Operation::person_key`]), so a row lands in the same shard on
/// every machine and release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// K, from 1.
    k: u64,
    n: u64,
}

impl Shard {
    /// Whether a record with this person key is this shard's.
    pub fn takes(&self, person_key: u64) -> bool {
        // The key's high bits pick the shard (multiply-shift): the low bits of FNV's top
        // half barely vary between similar keys, so a modulo would put them all in one.
        let index = (u128::from(person_key) * u128::from(self.n)) >> 64;
        index == u128::from(self.k - 1)
    }

    /// How default file names carry the shard: `shard-K-of-N`.
    pub fn file_tag(&self) -> String {
        format!("shard-{}-of-{}", self.k, self.n)
    }

    /// Shard 1 also takes what has no person key: the rows that do not map.
    pub fn is_first(&self) -> bool {
        self.k == 1
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.k, self.n)
    }
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Shard, String> {
        let parsed = s.split_once('/').and_then(|(k, n)| {
            Some((k.trim().parse::<u64>().ok()?, n.trim().parse::<u64>().ok()?))
        });
        match parsed {
            Some((k, n)) if (1..=n).contains(&k) => Ok(Shard { k, n }),
            _ => Err(format!(
                "want K/N with 1 <= K <= N (e.g. 2/3 for the second of three shards), got {s}"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shard_is_k_of_n_and_every_key_has_exactly_one() {
        let shards: Vec<Shard> = (1..=3).map(|k| format!("{k}/3").parse().unwrap()).collect();
        for key in [0u64, 1, 2, 0x6049_b89b_11cb_affa, u64::MAX] {
            assert_eq!(shards.iter().filter(|s| s.takes(key)).count(), 1, "{key}");
        }
        // Pinned: a row must land in the same shard in every release.
        let of = |key: u64| shards.iter().position(|s| s.takes(key)).unwrap();
        assert_eq!([0, u64::MAX / 2, u64::MAX].map(of), [0, 1, 2]);
        assert_eq!(shards[1].to_string(), "2/3");
        assert_eq!(shards[1].file_tag(), "shard-2-of-3");
        for bad in ["0/3", "4/3", "1/0", "3", "a/b", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }
}
