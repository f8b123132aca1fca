//! `--shard K/N`: which records one of N importers takes, by the pinned person key.

/// `--shard K/N`: this run takes the records whose person key falls in the K-th of N equal
/// ranges. The key is pinned (`operation::person_key`), so a row lands in the same shard on
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
        // FNV-1a's top half follows the value's length more than its content (ids 1..400
        // went 99 to one shard and 301 to the other): mixed first (splitmix64's finaliser,
        // pinned), then its high bits pick the shard (multiply-shift).
        let index = (u128::from(mix(person_key)) * u128::from(self.n)) >> 64;
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

/// splitmix64's finaliser: every bit of the key moves every bit of the result.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
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
        assert_eq!([0, 1, 2, u64::MAX / 2, u64::MAX].map(of), PINNED);
        assert_eq!(shards[1].to_string(), "2/3");
        assert_eq!(shards[1].file_tag(), "shard-2-of-3");
        for bad in ["0/3", "4/3", "1/0", "3", "a/b", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    const PINNED: [usize; 5] = [0, 1, 2, 1, 2];

    #[test]
    fn sequential_ids_split_evenly() {
        use super::super::operation::person_key;
        use super::super::{IdKind, Identifier, Who};
        let keys: Vec<u64> = (1..=400)
            .map(|i| {
                person_key(&Who::Person(Identifier {
                    kind: IdKind::Id,
                    value: i.to_string(),
                }))
            })
            .collect();
        for n in [2u64, 3] {
            for k in 1..=n {
                let shard: Shard = format!("{k}/{n}").parse().unwrap();
                let took = keys.iter().filter(|key| shard.takes(**key)).count() as f64;
                let even = 400.0 / n as f64;
                assert!((took - even).abs() <= even * 0.15, "{k}/{n} took {took}");
            }
        }
    }
}
