//! The dispatcher: turns the reader's records into requests — up to `--batch` records and
//! [`MAX_BATCH_BYTES`] a request, at most `--concurrency` requests in flight — keeping each
//! person's records in file order, and hands each request to a [`Deliver`].

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::Fatal;
use crate::send::batch_body_len;
use crate::track::MAX_BATCH_BYTES;

/// How long a batch waits to fill before it goes anyway: short beside the pace, so a slow
/// input (stdin) never holds records back for long.
const BATCH_LINGER: Duration = Duration::from_millis(50);

/// Records parked behind an earlier record for the same person, at most.
const MAX_PARKED: usize = 1024;

/// A record as the dispatcher sees it.
pub(super) trait Parcel: Send + 'static {
    /// Whose record it is: two records of one person are never in flight, nor in one
    /// batch, at once.
    fn person(&self) -> u64;
    /// Its share of a batch body.
    fn encoded_len(&self) -> usize;
    /// It goes in a request of its own, through its own endpoint (no batch carries it).
    fn alone(&self) -> bool;
}

/// What the dispatcher hands each request to.
pub(super) trait Deliver: Send + Sync + 'static {
    type Parcel: Parcel;
    /// Sends `batch` as one request (one record, or a batch of them) and settles each of
    /// its records. An error is fatal: the dispatcher stops.
    fn deliver(&self, batch: Vec<Self::Parcel>) -> impl Future<Output = Result<(), Fatal>> + Send;
}

/// How much goes at once.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// Requests in flight, at most.
    pub concurrency: usize,
    /// Records a request, at most.
    pub batch: usize,
}

/// Hands the records from `rx` to `delivery` within `limits`, keeping each person's records
/// in file order: a record whose person has one in a request under way (or in the batch
/// being filled) waits until that one is settled. Ends when `rx` is drained and everything
/// is settled, or at the stop (records not yet in a request stay unsettled: a resume sends
/// them); returns the first delivery error.
pub(super) async fn dispatch<D: Deliver>(
    mut rx: mpsc::Receiver<D::Parcel>,
    delivery: Arc<D>,
    stop: CancellationToken,
    limits: Limits,
) -> Result<(), Fatal> {
    // A person's key is here while one of their records is filling or in flight; the queue
    // holds their later records.
    let mut busy: HashMap<u64, VecDeque<D::Parcel>> = HashMap::new();
    let mut parked = 0usize;
    // Records free to go (their person was not busy, or their turn came) that the batch
    // being filled had no room for yet.
    let mut ready: VecDeque<D::Parcel> = VecDeque::new();
    let mut filling: Vec<D::Parcel> = Vec::new();
    let mut filling_since = Instant::now();
    let mut reading = true;
    // Each request in flight, ending with the people it held.
    let mut requests: JoinSet<(Vec<u64>, Result<(), Fatal>)> = JoinSet::new();
    let mut result = Ok(());

    loop {
        if stop.is_cancelled() {
            break;
        }
        // Fill the batch from the ready records while they fit.
        while let Some(next) = ready.front() {
            let alone = next.alone() || filling.first().is_some_and(Parcel::alone);
            let fits = filling.len() < limits.batch
                && (filling.is_empty()
                    || (!alone
                        && batch_body_len(
                            filling
                                .iter()
                                .chain(std::iter::once(next))
                                .map(Parcel::encoded_len),
                        ) < MAX_BATCH_BYTES));
            if !fits {
                break;
            }
            if filling.is_empty() {
                filling_since = Instant::now();
            }
            filling.extend(ready.pop_front());
        }
        let full = filling.len() >= limits.batch
            || !ready.is_empty()
            || filling.first().is_some_and(Parcel::alone);
        let linger_over = filling_since + BATCH_LINGER;
        let launchable = !filling.is_empty() && (full || !reading || Instant::now() >= linger_over);
        if filling.is_empty() && ready.is_empty() && !reading && busy.is_empty() {
            break;
        }
        tokio::select! {
            biased;
            _ = stop.cancelled() => {}
            Some(ended) = requests.join_next() => match settled(ended) {
                Ok(people) => {
                    for person in people {
                        match busy.get_mut(&person).and_then(VecDeque::pop_front) {
                            Some(next) => {
                                parked -= 1;
                                ready.push_back(next);
                            }
                            None => {
                                busy.remove(&person);
                            }
                        }
                    }
                }
                Err(e) => {
                    stop.cancel();
                    result = result.and(Err(e));
                }
            },
            () = std::future::ready(()), if launchable && requests.len() < limits.concurrency => {
                let batch = std::mem::take(&mut filling);
                let delivery = delivery.clone();
                requests.spawn(async move {
                    let people = batch.iter().map(Parcel::person).collect();
                    (people, delivery.deliver(batch).await)
                });
            }
            parcel = rx.recv(), if reading && ready.is_empty() && parked < MAX_PARKED => match parcel {
                Some(parcel) => {
                    let person = parcel.person();
                    if let Some(queue) = busy.get_mut(&person) {
                        queue.push_back(parcel);
                        parked += 1;
                    } else {
                        busy.insert(person, VecDeque::new());
                        ready.push_back(parcel);
                    }
                }
                None => reading = false,
            },
            () = tokio::time::sleep_until(linger_over), if !filling.is_empty() && !launchable => {}
        }
    }
    // Dropping the receiver unblocks the reader if it waits on a full queue.
    drop(rx);
    while let Some(ended) = requests.join_next().await {
        result = result.and(settled(ended).map(drop));
    }
    result
}

/// The people of a request that ended with its records settled.
fn settled(
    ended: Result<(Vec<u64>, Result<(), Fatal>), tokio::task::JoinError>,
) -> Result<Vec<u64>, Fatal> {
    let (people, settled) = ended?;
    settled.map(|()| people)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Mutex;

    use super::*;

    /// A record of the fake: its number, its person, its size in a batch body.
    #[derive(Debug)]
    struct Rec {
        id: u64,
        person: u64,
        len: usize,
        alone: bool,
    }

    impl Parcel for Rec {
        fn person(&self) -> u64 {
            self.person
        }
        fn encoded_len(&self) -> usize {
            self.len
        }
        fn alone(&self) -> bool {
            self.alone
        }
    }

    /// One request the fake took: which records, and when it began after the test did.
    #[derive(Debug, PartialEq)]
    struct Request {
        ids: Vec<u64>,
        at: Duration,
    }

    /// Takes every request `latency` long, and notes what it takes and what overlaps.
    struct Fake {
        t0: Instant,
        latency: Duration,
        /// A request holding this record fails.
        fail: Option<u64>,
        requests: Mutex<Vec<Request>>,
        in_flight: Mutex<Vec<HashSet<u64>>>,
        most_in_flight: Mutex<usize>,
        /// People found in two requests at once, or twice in one.
        overlaps: Mutex<Vec<u64>>,
    }

    impl Fake {
        fn new(latency_ms: u64) -> Fake {
            Fake {
                t0: Instant::now(),
                latency: Duration::from_millis(latency_ms),
                fail: None,
                requests: Mutex::default(),
                in_flight: Mutex::default(),
                most_in_flight: Mutex::default(),
                overlaps: Mutex::default(),
            }
        }

        /// The records of each request, in the order they began.
        fn batches(&self) -> Vec<Vec<u64>> {
            let requests = self.requests.lock().unwrap();
            requests.iter().map(|r| r.ids.clone()).collect()
        }

        /// When the request holding record `id` began, in ms after the test did.
        fn began(&self, id: u64) -> u128 {
            let requests = self.requests.lock().unwrap();
            let request = requests.iter().find(|r| r.ids.contains(&id)).unwrap();
            request.at.as_millis()
        }
    }

    impl Deliver for Fake {
        type Parcel = Rec;

        async fn deliver(&self, batch: Vec<Rec>) -> Result<(), Fatal> {
            let people: HashSet<u64> = batch.iter().map(|r| r.person).collect();
            {
                let mut overlaps = self.overlaps.lock().unwrap();
                let mut in_flight = self.in_flight.lock().unwrap();
                if people.len() < batch.len() {
                    overlaps.extend(batch.iter().map(|r| r.person));
                }
                for other in in_flight.iter() {
                    overlaps.extend(other.intersection(&people));
                }
                in_flight.push(people.clone());
                let mut most = self.most_in_flight.lock().unwrap();
                *most = (*most).max(in_flight.len());
            }
            self.requests.lock().unwrap().push(Request {
                ids: batch.iter().map(|r| r.id).collect(),
                at: Instant::now() - self.t0,
            });
            tokio::time::sleep(self.latency).await;
            self.in_flight.lock().unwrap().retain(|p| *p != people);
            match self.fail {
                Some(id) if batch.iter().any(|r| r.id == id) => {
                    Err(Fatal::Remote(format!("record {id} failed")))
                }
                _ => Ok(()),
            }
        }
    }

    /// Records numbered from 0, one a person of `people`, each 100 bytes.
    fn recs(people: &[u64]) -> Vec<Rec> {
        (0..)
            .zip(people)
            .map(|(id, &person)| Rec {
                id,
                person,
                len: 100,
                alone: false,
            })
            .collect()
    }

    /// Dispatches `records`, all read at once, to `fake`.
    async fn dispatch_all(
        fake: Fake,
        records: Vec<Rec>,
        concurrency: usize,
        batch: usize,
    ) -> (Arc<Fake>, Result<(), Fatal>) {
        let (tx, rx) = mpsc::channel(records.len().max(1));
        for r in records {
            tx.try_send(r).unwrap();
        }
        drop(tx);
        let fake = Arc::new(fake);
        let limits = Limits { concurrency, batch };
        let result = dispatch(rx, fake.clone(), CancellationToken::new(), limits).await;
        (fake, result)
    }

    #[tokio::test(start_paused = true)]
    async fn a_persons_later_record_waits_until_the_earlier_one_is_settled() {
        let (fake, result) = dispatch_all(Fake::new(1000), recs(&[1, 1, 2, 1]), 8, 1).await;
        result.unwrap();
        let began: Vec<u128> = (0..4).map(|id| fake.began(id)).collect();
        assert_eq!(began, [0, 1000, 0, 2000]);
        assert!(fake.overlaps.lock().unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_never_holds_two_records_of_one_person() {
        let (fake, result) = dispatch_all(Fake::new(1000), recs(&[1, 1, 2, 3, 2]), 8, 10).await;
        result.unwrap();
        assert_eq!(fake.batches(), [vec![0, 2, 3], vec![1, 4]]);
        assert_eq!(fake.began(1), 1000);
        assert!(fake.overlaps.lock().unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_goes_once_it_holds_batch_records() {
        let (fake, result) = dispatch_all(Fake::new(10), recs(&[1, 2, 3, 4, 5, 6, 7]), 8, 3).await;
        result.unwrap();
        assert_eq!(fake.batches(), [vec![0, 1, 2], vec![3, 4, 5], vec![6]]);
        assert!((0..7).all(|id| fake.began(id) == 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_holds_at_most_batch_records_when_more_are_ready() {
        // The two first requests end at once, and free four parked records together.
        let (fake, result) =
            dispatch_all(Fake::new(1000), recs(&[1, 2, 3, 4, 1, 2, 3, 4]), 8, 2).await;
        result.unwrap();
        let mut batches = fake.batches();
        batches.sort();
        assert_eq!(batches, [[0, 1], [2, 3], [4, 5], [6, 7]]);
        assert!((4..8).all(|id| fake.began(id) == 1000));
    }

    #[tokio::test(start_paused = true)]
    async fn a_record_that_goes_alone_shares_no_request() {
        let mut records = recs(&[1, 2, 3, 4, 5]);
        records[1].alone = true;
        records[3].alone = true;
        let (fake, result) = dispatch_all(Fake::new(10), records, 8, 10).await;
        result.unwrap();
        assert_eq!(
            fake.batches(),
            [vec![0], vec![1], vec![2], vec![3], vec![4]]
        );
        assert!((0..5).all(|id| fake.began(id) == 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_goes_before_its_body_would_reach_max_batch_bytes() {
        // Two records whose batch body is one byte under the limit; a third, however small,
        // would bring it to the limit.
        let first = 1000;
        let second = MAX_BATCH_BYTES - 1 - batch_body_len([first, 0].into_iter());
        assert_eq!(
            batch_body_len([first, second].into_iter()),
            MAX_BATCH_BYTES - 1
        );
        assert_eq!(
            batch_body_len([first, second, 0].into_iter()),
            MAX_BATCH_BYTES
        );
        let records = [first, second, 0, MAX_BATCH_BYTES * 2]
            .into_iter()
            .zip(0..)
            .map(|(len, id)| Rec {
                id,
                person: id,
                len,
                alone: false,
            })
            .collect();
        let (fake, result) = dispatch_all(Fake::new(10), records, 8, 100).await;
        result.unwrap();
        // A record over the limit by itself still goes, alone.
        assert_eq!(fake.batches(), [vec![0, 1], vec![2], vec![3]]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_that_does_not_fill_goes_when_the_linger_ends() {
        let (tx, rx) = mpsc::channel(8);
        let fake = Arc::new(Fake::new(10));
        let limits = Limits {
            concurrency: 8,
            batch: 10,
        };
        let dispatching =
            tokio::spawn(dispatch(rx, fake.clone(), CancellationToken::new(), limits));
        for r in recs(&[1, 2]) {
            tx.send(r).await.unwrap();
        }
        tokio::time::sleep(BATCH_LINGER - Duration::from_millis(1)).await;
        assert!(fake.batches().is_empty(), "went before the linger ended");
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(fake.batches(), [vec![0, 1]]);
        let began = fake.began(0);
        assert!((50..=51).contains(&began), "went after {began} ms");
        // The input ends: what is filling goes at once.
        let ended = fake.t0.elapsed().as_millis();
        tx.send(Rec {
            id: 2,
            person: 3,
            len: 100,
            alone: false,
        })
        .await
        .unwrap();
        drop(tx);
        dispatching.await.unwrap().unwrap();
        assert_eq!(fake.began(2), ended);
    }

    #[tokio::test(start_paused = true)]
    async fn records_parked_behind_a_busy_person_stop_the_reading_at_the_cap() {
        // Person 1 has one record in flight and the rest parked; person 2's record comes
        // after them.
        let waits_for = |parked: usize| async move {
            let mut people = vec![1; 1 + parked];
            people.push(2);
            let records = recs(&people);
            let last = records.len() as u64 - 1;
            let (fake, result) = dispatch_all(Fake::new(1000), records, 8, 1).await;
            result.unwrap();
            fake.began(last)
        };
        assert_eq!(waits_for(MAX_PARKED - 1).await, 0);
        assert_eq!(waits_for(MAX_PARKED).await, 1000);
    }

    #[tokio::test(start_paused = true)]
    async fn requests_in_flight_stay_within_concurrency() {
        let (fake, result) = dispatch_all(Fake::new(1000), recs(&[1, 2, 3, 4, 5]), 2, 1).await;
        result.unwrap();
        assert_eq!(*fake.most_in_flight.lock().unwrap(), 2);
        let began: Vec<u128> = (0..5).map(|id| fake.began(id)).collect();
        assert_eq!(began, [0, 0, 1000, 1000, 2000]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_delivery_stops_the_dispatcher_and_comes_back() {
        let fake = Fake {
            fail: Some(1),
            ..Fake::new(1000)
        };
        let (fake, result) = dispatch_all(fake, recs(&[1, 2, 3, 4, 5]), 2, 1).await;
        assert_eq!(result.unwrap_err().to_string(), "record 1 failed");
        // The two in flight finished; nothing after them started.
        assert_eq!(fake.batches(), [vec![0], vec![1]]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_leaves_what_is_not_in_a_request_unsent() {
        let (tx, rx) = mpsc::channel(8);
        for r in recs(&[1, 1, 2]) {
            tx.try_send(r).unwrap();
        }
        let fake = Arc::new(Fake::new(1000));
        let stop = CancellationToken::new();
        let limits = Limits {
            concurrency: 1,
            batch: 1,
        };
        let dispatching = tokio::spawn(dispatch(rx, fake.clone(), stop.clone(), limits));
        tokio::time::sleep(Duration::from_millis(10)).await;
        stop.cancel();
        dispatching.await.unwrap().unwrap();
        // The request in flight finished; the dispatcher ended with the input still open.
        assert_eq!(fake.batches(), [vec![0]]);
        assert!(fake.in_flight.lock().unwrap().is_empty());
    }
}
