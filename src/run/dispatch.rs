//! The dispatcher: turns the reader's records into requests — up to `--batch` records and
//! [`MAX_BATCH_BYTES`] a request, at most `--concurrency` requests in flight — keeping the
//! order of records where their kind needs it (see [`Order`]), and hands each request to a
//! [`Deliver`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::Fatal;
use crate::record::Order;
use crate::send::batch_body_len;
use crate::track::MAX_BATCH_BYTES;

/// How long a batch waits to fill before it goes anyway: short beside the pace, so a slow
/// input (stdin) never holds records back for long.
const BATCH_LINGER: Duration = Duration::from_millis(50);

/// Records waiting for their turn, at most: beyond it the reading pauses.
const MAX_PARKED: usize = 1024;

/// A record as the dispatcher sees it.
pub(super) trait Parcel: Send + 'static {
    /// What it touches, and whether it keeps its place among the records that touch the
    /// same: a change is never in flight, nor in one batch, with another record of its keys.
    fn order(&self) -> Order;
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
    /// Once the run stops, how long requests in flight may take to finish (`--stop-timeout`).
    pub stop_timeout: Duration,
}

/// The records of one key that are filling a batch or in flight.
#[derive(Debug, Default)]
struct Held {
    views: u32,
    change: bool,
}

/// Whose turn it is: what each key's records hold, and the records waiting for their turn in
/// file order. A record goes when what it touches allows it (a change needs its keys free, a
/// view needs them free of changes) and no earlier record of its keys is still waiting.
struct Turns<P> {
    held: HashMap<u64, Held>,
    waiting: VecDeque<P>,
    /// How many waiting records touch each key.
    waiting_keys: HashMap<u64, u32>,
}

impl<P: Parcel> Turns<P> {
    fn new() -> Turns<P> {
        Turns {
            held: HashMap::new(),
            waiting: VecDeque::new(),
            waiting_keys: HashMap::new(),
        }
    }

    fn free(&self, order: &Order) -> bool {
        order.keys().iter().all(|key| {
            self.held
                .get(key)
                .is_none_or(|held| !held.change && !order.change)
        })
    }

    fn take(&mut self, order: &Order) {
        for &key in order.keys() {
            let held = self.held.entry(key).or_default();
            if order.change {
                held.change = true;
            } else {
                held.views += 1;
            }
        }
    }

    fn give_back(&mut self, order: &Order) {
        for key in order.keys() {
            if let Some(held) = self.held.get_mut(key) {
                if order.change {
                    held.change = false;
                } else {
                    held.views = held.views.saturating_sub(1);
                }
                if !held.change && held.views == 0 {
                    self.held.remove(key);
                }
            }
        }
    }

    /// A record read: it comes back when it may go now, else it waits its turn.
    fn arrive(&mut self, parcel: P) -> Option<P> {
        let order = parcel.order();
        let behind = order
            .keys()
            .iter()
            .any(|key| self.waiting_keys.contains_key(key));
        if !behind && self.free(&order) {
            self.take(&order);
            return Some(parcel);
        }
        for &key in order.keys() {
            *self.waiting_keys.entry(key).or_default() += 1;
        }
        self.waiting.push_back(parcel);
        None
    }

    /// The records of a request were settled: the waiting records whose turn came go to
    /// `ready`, in file order.
    fn settled(&mut self, orders: &[Order], ready: &mut VecDeque<P>) {
        for order in orders {
            self.give_back(order);
        }
        // Only a waiting record of a key given back can have got its turn.
        let freed = orders.iter().flat_map(Order::keys);
        if !freed.clone().any(|key| self.waiting_keys.contains_key(key)) {
            return;
        }
        // A key of a record that stays waits for it: no later record of that key overtakes.
        let mut blocked: HashSet<u64> = HashSet::new();
        let mut still = VecDeque::with_capacity(self.waiting.len());
        while let Some(parcel) = self.waiting.pop_front() {
            let order = parcel.order();
            let clear = !order.keys().iter().any(|key| blocked.contains(key));
            if clear && self.free(&order) {
                self.take(&order);
                for key in order.keys() {
                    if let Some(n) = self.waiting_keys.get_mut(key) {
                        *n -= 1;
                        if *n == 0 {
                            self.waiting_keys.remove(key);
                        }
                    }
                }
                ready.push_back(parcel);
            } else {
                blocked.extend(order.keys());
                still.push_back(parcel);
            }
        }
        self.waiting = still;
    }

    /// Nothing filling, in flight or waiting.
    fn idle(&self) -> bool {
        self.held.is_empty() && self.waiting.is_empty()
    }
}

/// Hands the records from `rx` to `delivery` within `limits`, keeping their order where
/// their kind needs it: a record waits while an earlier record it must follow is in a
/// request under way, in the batch being filled, or waiting itself. Ends when `rx` is
/// drained and everything is settled, or at the stop (records not yet in a request stay
/// unsettled: a resume sends them), once the requests in flight end or `stop_timeout` has
/// passed; returns how many requests it left unanswered then (their records unsettled too),
/// or the first delivery error.
pub(super) async fn dispatch<D: Deliver>(
    mut rx: mpsc::Receiver<D::Parcel>,
    delivery: Arc<D>,
    stop: CancellationToken,
    limits: Limits,
) -> Result<usize, Fatal> {
    let mut turns = Turns::new();
    // Records free to go (their turn came) that the batch being filled had no room for yet.
    let mut ready: VecDeque<D::Parcel> = VecDeque::new();
    let mut filling: Vec<D::Parcel> = Vec::new();
    let mut filling_since = Instant::now();
    let mut reading = true;
    // Each request in flight, ending with the orders of its records.
    let mut requests: JoinSet<(Vec<Order>, Result<(), Fatal>)> = JoinSet::new();
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
        if filling.is_empty() && ready.is_empty() && !reading && turns.idle() {
            break;
        }
        tokio::select! {
            biased;
            _ = stop.cancelled() => {}
            Some(ended) = requests.join_next() => match settled(ended) {
                Ok(orders) => turns.settled(&orders, &mut ready),
                Err(e) => {
                    stop.cancel();
                    result = result.and(Err(e));
                }
            },
            () = std::future::ready(()), if launchable && requests.len() < limits.concurrency => {
                let batch = std::mem::take(&mut filling);
                let delivery = delivery.clone();
                requests.spawn(async move {
                    let orders = batch.iter().map(Parcel::order).collect();
                    (orders, delivery.deliver(batch).await)
                });
            }
            parcel = rx.recv(), if reading && ready.is_empty() && turns.waiting.len() < MAX_PARKED => match parcel {
                Some(parcel) => ready.extend(turns.arrive(parcel)),
                None => reading = false,
            },
            () = tokio::time::sleep_until(linger_over), if !filling.is_empty() && !launchable => {}
        }
    }
    // Dropping the receiver unblocks the reader if it waits on a full queue.
    drop(rx);
    let drained = tokio::time::timeout(limits.stop_timeout, async {
        while let Some(ended) = requests.join_next().await {
            result = std::mem::replace(&mut result, Ok(())).and(settled(ended).map(drop));
        }
    })
    .await;
    // Dropping the set aborts what is left: a request with no answer settles nothing.
    let abandoned = if drained.is_err() { requests.len() } else { 0 };
    result.map(|()| abandoned)
}

/// The orders of a request's records, once they were settled.
fn settled(
    ended: Result<(Vec<Order>, Result<(), Fatal>), tokio::task::JoinError>,
) -> Result<Vec<Order>, Fatal> {
    let (orders, settled) = ended?;
    settled.map(|()| orders)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A record of the fake: its number, what it touches, its size in a batch body.
    #[derive(Debug)]
    struct Rec {
        id: u64,
        order: Order,
        len: usize,
        alone: bool,
    }

    impl Parcel for Rec {
        fn order(&self) -> Order {
            self.order
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
        /// The records of each request in flight, by number and order.
        in_flight: Mutex<Vec<Vec<(u64, Order)>>>,
        most_in_flight: Mutex<usize>,
        /// Keys of a change found in flight, or in one batch, with another record of theirs.
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
            let mine: Vec<(u64, Order)> = batch.iter().map(|r| (r.id, r.order)).collect();
            {
                let mut overlaps = self.overlaps.lock().unwrap();
                let mut in_flight = self.in_flight.lock().unwrap();
                let others = in_flight.iter().flatten().chain(&mine);
                for (id, order) in &mine {
                    for (_, other) in others.clone().filter(|(o, _)| o != id) {
                        if order.change || other.change {
                            overlaps
                                .extend(order.keys().iter().filter(|k| other.keys().contains(k)));
                        }
                    }
                }
                in_flight.push(mine.clone());
                let mut most = self.most_in_flight.lock().unwrap();
                *most = (*most).max(in_flight.len());
            }
            self.requests.lock().unwrap().push(Request {
                ids: batch.iter().map(|r| r.id).collect(),
                at: Instant::now() - self.t0,
            });
            tokio::time::sleep(self.latency).await;
            self.in_flight.lock().unwrap().retain(|p| *p != mine);
            match self.fail {
                Some(id) if batch.iter().any(|r| r.id == id) => {
                    Err(Fatal::Remote(format!("record {id} failed")))
                }
                _ => Ok(()),
            }
        }
    }

    /// Records numbered from 0, of the orders given, each 100 bytes.
    fn of(orders: &[Order]) -> Vec<Rec> {
        (0..)
            .zip(orders)
            .map(|(id, &order)| Rec {
                id,
                order,
                len: 100,
                alone: false,
            })
            .collect()
    }

    /// Records numbered from 0, each a change of the person given, each 100 bytes.
    fn recs(people: &[u64]) -> Vec<Rec> {
        of(&people.iter().map(|&p| Order::change(p)).collect::<Vec<_>>())
    }

    /// Dispatches `records`, all read at once, to `fake`.
    async fn dispatch_all(
        fake: Fake,
        records: Vec<Rec>,
        concurrency: usize,
        batch: usize,
    ) -> (Arc<Fake>, Result<usize, Fatal>) {
        let (tx, rx) = mpsc::channel(records.len().max(1));
        for r in records {
            tx.try_send(r).unwrap();
        }
        drop(tx);
        let fake = Arc::new(fake);
        let limits = Limits {
            concurrency,
            batch,
            stop_timeout: Duration::from_secs(5),
        };
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
    async fn views_of_one_person_go_together_in_flight_and_in_one_batch() {
        let views = [1, 1, 1, 2].map(Order::view);
        let (fake, result) = dispatch_all(Fake::new(1000), of(&views), 8, 10).await;
        result.unwrap();
        assert_eq!(fake.batches(), [vec![0, 1, 2, 3]]);
        let (fake, result) = dispatch_all(Fake::new(1000), of(&views), 8, 1).await;
        result.unwrap();
        assert!((0..4).all(|id| fake.began(id) == 0));
        assert!(fake.overlaps.lock().unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_view_waits_for_an_earlier_change_and_a_change_for_earlier_views() {
        let orders = [
            Order::change(1),
            Order::view(1),
            Order::view(1),
            Order::change(1),
            Order::view(1),
            Order::view(2),
        ];
        let (fake, result) = dispatch_all(Fake::new(1000), of(&orders), 8, 1).await;
        result.unwrap();
        let began: Vec<u128> = (0..6).map(|id| fake.began(id)).collect();
        assert_eq!(began, [0, 1000, 1000, 2000, 3000, 0]);
        assert!(fake.overlaps.lock().unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_of_two_waits_for_both_and_nothing_of_either_overtakes_it() {
        let orders = [
            Order::change(1),
            Order::change(2),
            Order::change_both(1, 2),
            Order::view(2),
            Order::change(3),
            Order::change(1),
        ];
        let (fake, result) = dispatch_all(Fake::new(1000), of(&orders), 8, 1).await;
        result.unwrap();
        let began: Vec<u128> = (0..6).map(|id| fake.began(id)).collect();
        assert_eq!(began, [0, 0, 1000, 2000, 0, 2000]);
        assert!(fake.overlaps.lock().unwrap().is_empty());
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
                order: Order::change(id),
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
            stop_timeout: Duration::from_secs(5),
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
            order: Order::change(3),
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
            stop_timeout: Duration::from_secs(5),
        };
        let dispatching = tokio::spawn(dispatch(rx, fake.clone(), stop.clone(), limits));
        tokio::time::sleep(Duration::from_millis(10)).await;
        stop.cancel();
        assert_eq!(dispatching.await.unwrap().unwrap(), 0);
        // The request in flight finished; the dispatcher ended with the input still open.
        assert_eq!(fake.batches(), [vec![0]]);
        assert!(fake.in_flight.lock().unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_waits_for_requests_in_flight_at_most_the_stop_timeout() {
        let (tx, rx) = mpsc::channel(8);
        for r in recs(&[1, 2, 3]) {
            tx.try_send(r).unwrap();
        }
        // Answers in an hour: the stop must not wait for it.
        let fake = Arc::new(Fake::new(3_600_000));
        let stop = CancellationToken::new();
        let limits = Limits {
            concurrency: 2,
            batch: 1,
            stop_timeout: Duration::from_secs(5),
        };
        let dispatching = tokio::spawn(dispatch(rx, fake.clone(), stop.clone(), limits));
        tokio::time::sleep(Duration::from_millis(10)).await;
        let stopped = Instant::now();
        stop.cancel();
        assert_eq!(dispatching.await.unwrap().unwrap(), 2);
        assert_eq!(stopped.elapsed(), Duration::from_secs(5));
        // Two went out, and neither ended: their deliveries were dropped unsettled.
        assert_eq!(fake.batches(), [vec![0], vec![1]]);
        assert_eq!(fake.in_flight.lock().unwrap().len(), 2);
    }
}
