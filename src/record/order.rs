//! Order: what an operation touches (a person, an object, or two of them), and whether it must
//! keep its place in the file among the other operations that touch the same.
//!
//! Customer.io may apply calls out of order, so the sender keeps the order where it changes
//! the outcome: a change (identify, delete, suppress, a device, a merge, a relationship) goes
//! after every earlier record of what it touches and before every later one. Events, page and
//! screen views change nothing that a later one of them reads: they need no order among
//! themselves, only after the earlier changes of their person (and before the later ones).

/// What an operation touches, by key, and how it is ordered among the records that touch the
/// same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Order {
    keys: [u64; 2],
    len: u8,
    /// A change: it waits for every earlier record of its keys, and every later one waits
    /// for it. Else a view (an event): it waits only for earlier changes.
    pub change: bool,
}

impl Order {
    /// A change of what `key` names.
    pub fn change(key: u64) -> Order {
        Order {
            keys: [key, key],
            len: 1,
            change: true,
        }
    }

    /// A change of two things at once (a merge's two people, a person and an object).
    pub fn change_both(a: u64, b: u64) -> Order {
        Order {
            keys: [a, b],
            len: if a == b { 1 } else { 2 },
            change: true,
        }
    }

    /// An event of what `key` names.
    pub fn view(key: u64) -> Order {
        Order {
            change: false,
            ..Order::change(key)
        }
    }

    /// The keys of what it touches: one or two, distinct.
    pub fn keys(&self) -> &[u64] {
        &self.keys[..usize::from(self.len)]
    }
}
