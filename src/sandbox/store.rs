//! The sandbox's state: stored people and events, the rate-limit and burst
//! windows, counters, and the optional request log.

use std::{
    collections::{BTreeMap, HashMap, HashSet, VecDeque},
    time::{Duration, Instant},
};

use axum::http::StatusCode;
use rand::{RngExt, SeedableRng, rngs::StdRng};
use serde_json::{Map, Value};

use super::validate::{Event, Invalid, MAX_ATTRIBUTES, ObjectKey, Op, Who};

const WINDOW: Duration = Duration::from_secs(1);

/// Counters since the sandbox started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Every request that arrived, whatever became of it.
    pub requests: u64,
    /// Answered 200 or 207.
    pub accepted: u64,
    /// Of `accepted`, answered 207 (some operations of a batch refused).
    pub partial: u64,
    /// Operations refused inside 207 answers.
    pub invalid_ops: u64,
    /// Answered 429: over the limit, or at random (`stray_429_rate`).
    pub rejected_429: u64,
    /// Other 4xx answers, by status (400, 401, 404, 405).
    pub rejected_4xx: BTreeMap<u16, u64>,
    /// 503s from `fail_rate`.
    pub failed_5xx: u64,
    /// Connections cut without an answer (`drop_rate`).
    pub dropped: u64,
    /// Requests held for `stall_for` before their answer (`stall_rate`).
    pub stalled: u64,
    /// People stored now.
    pub people: u64,
    /// Events stored (duplicates excluded), page and screen views apart.
    pub events: u64,
    /// Page views stored (duplicates excluded).
    pub page_views: u64,
    /// Screen views stored (duplicates excluded).
    pub screen_views: u64,
    /// Events dropped because their ULID was seen before.
    pub duplicate_events: u64,
    /// Delete operations applied (whether or not the person existed).
    pub deleted: u64,
    /// Identifiers suppressed now.
    pub suppressed: u64,
    /// Identifies and events ignored because their person is suppressed.
    pub ignored_suppressed: u64,
    /// Devices stored now, over all people.
    pub devices: u64,
    /// Objects stored now.
    pub objects: u64,
    /// Relationships of people to objects stored now.
    pub relationships: u64,
    /// Merges applied.
    pub merges: u64,
    /// The most requests that arrived within any sliding one-second window.
    pub max_in_any_window: u64,
}

/// An event as stored; exactly one of `person` and `anonymous_id` is set.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// `event`, `page` or `screen`.
    pub kind: &'static str,
    /// The person's store key (emails lowercased).
    pub person: Option<String>,
    pub anonymous_id: Option<String>,
    pub name: String,
    /// The ULID, in canonical upper case.
    pub id: Option<String>,
    pub timestamp: Option<u64>,
    pub data: Map<String, Value>,
}

/// One request as received (kept only with `keep_requests`).
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub method: String,
    /// The path exactly as sent, still percent-encoded.
    pub path: String,
    /// The percent-decoded identifier of a `/api/v1/customers/{identifier}` path.
    pub identifier: Option<String>,
    /// The body, when it was JSON.
    pub body: Option<Value>,
    /// The status answered; `None` when the connection was dropped.
    pub status: Option<u16>,
    /// Arrival, since the sandbox started.
    pub at: Duration,
}

/// What the misbehaviour dice decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fate {
    Normal,
    Drop,
    Fail,
    /// A 429 whatever the limit.
    Limited,
    Stall,
}

/// Misbehaviour shares, each clamped into 0..=1.
#[derive(Debug, Clone, Copy)]
pub(super) struct Rates {
    pub(super) drop: f64,
    pub(super) fail: f64,
    pub(super) limited: f64,
    pub(super) stall: f64,
}

pub(super) struct State {
    started: Instant,
    rng: StdRng,
    /// Arrival times of admitted requests in the last second (the limiter).
    admitted: VecDeque<Instant>,
    /// Arrival times of all requests in the last second (burst measurement).
    arrivals: VecDeque<Instant>,
    stats: Stats,
    people: HashMap<String, Map<String, Value>>,
    suppressed: HashSet<String>,
    event_ids: HashSet<u128>,
    events: Vec<StoredEvent>,
    /// Each person's devices, by token.
    devices: HashMap<String, BTreeMap<String, Map<String, Value>>>,
    objects: HashMap<ObjectKey, Map<String, Value>>,
    /// A person's relationship to an object, and its attributes.
    relationships: HashMap<(String, ObjectKey), Map<String, Value>>,
    requests: Option<Vec<Received>>,
}

impl State {
    pub(super) fn new(seed: Option<u64>, keep_requests: bool) -> State {
        State {
            started: Instant::now(),
            rng: StdRng::seed_from_u64(seed.unwrap_or_else(rand::random)),
            admitted: VecDeque::new(),
            arrivals: VecDeque::new(),
            stats: Stats::default(),
            people: HashMap::new(),
            suppressed: HashSet::new(),
            event_ids: HashSet::new(),
            events: Vec::new(),
            devices: HashMap::new(),
            objects: HashMap::new(),
            relationships: HashMap::new(),
            requests: keep_requests.then(Vec::new),
        }
    }

    pub(super) fn since_start(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.started)
    }

    /// Counts an arrival and updates the burst high-water mark.
    pub(super) fn arrive(&mut self, now: Instant) {
        self.stats.requests += 1;
        expire(&mut self.arrivals, now);
        self.arrivals.push_back(now);
        let in_window = self.arrivals.len() as u64;
        self.stats.max_in_any_window = self.stats.max_in_any_window.max(in_window);
    }

    /// One draw decides drop, fail, a 429 or stall, so the shares never overlap.
    pub(super) fn fate(&mut self, rates: Rates) -> Fate {
        if rates.drop + rates.fail + rates.limited + rates.stall <= 0.0 {
            return Fate::Normal;
        }
        let r: f64 = self.rng.random();
        let fates = [
            (rates.drop, Fate::Drop),
            (rates.fail, Fate::Fail),
            (rates.limited, Fate::Limited),
            (rates.stall, Fate::Stall),
        ];
        let mut below = 0.0;
        for (share, fate) in fates {
            below += share;
            if r < below {
                if fate == Fate::Stall {
                    self.stats.stalled += 1;
                }
                return fate;
            }
        }
        Fate::Normal
    }

    /// Admits a request into the sliding window, or says how many whole seconds
    /// until the oldest admitted request leaves it. Refusals don't use up room.
    pub(super) fn admit(&mut self, now: Instant, limit: Option<u32>) -> Result<(), u64> {
        let Some(limit) = limit else {
            return Ok(());
        };
        expire(&mut self.admitted, now);
        if self.admitted.len() < limit as usize {
            self.admitted.push_back(now);
            return Ok(());
        }
        let wait = self.admitted.front().map_or(WINDOW, |oldest| {
            (*oldest + WINDOW).saturating_duration_since(now)
        });
        Err(wait.as_secs_f64().ceil().max(1.0) as u64)
    }

    /// Applies one valid operation; fails only on the per-person attribute cap,
    /// which depends on what is stored.
    pub(super) fn apply(&mut self, op: Op) -> Result<(), Invalid> {
        match op {
            Op::Identify {
                person,
                attributes,
                update_only,
            } => self.identify(person, attributes, update_only),
            Op::Event(event) => {
                self.event(event);
                Ok(())
            }
            Op::Delete(person) => {
                self.forget(&person);
                self.stats.deleted += 1;
                Ok(())
            }
            // Like Customer.io: suppressing deletes the profile and ignores the
            // identifier from then on; unsuppressing doesn't bring it back.
            Op::Suppress(person) => {
                self.forget(&person);
                self.suppressed.insert(person);
                Ok(())
            }
            Op::Unsuppress(person) => {
                self.suppressed.remove(&person);
                Ok(())
            }
            Op::AddDevice {
                person,
                token,
                device,
            } => {
                if self.suppressed.contains(&person) {
                    self.stats.ignored_suppressed += 1;
                } else {
                    self.devices
                        .entry(person)
                        .or_default()
                        .insert(token, device);
                }
                Ok(())
            }
            Op::DeleteDevice { person, token } => {
                if let Some(devices) = self.devices.get_mut(&person) {
                    devices.remove(&token);
                }
                Ok(())
            }
            Op::Merge { primary, secondary } => self.merge(primary, &secondary),
            Op::IdentifyObject { object, attributes } => {
                update(self.objects.entry(object).or_default(), attributes);
                Ok(())
            }
            Op::DeleteObject(object) => {
                self.objects.remove(&object);
                self.relationships.retain(|(_, o), _| *o != object);
                Ok(())
            }
            Op::Relate { person, objects } => {
                for (object, attributes) in objects {
                    self.relationships
                        .insert((person.clone(), object), attributes);
                }
                Ok(())
            }
            Op::Unrelate { person, objects } => {
                for object in objects {
                    self.relationships.remove(&(person.clone(), object));
                }
                Ok(())
            }
        }
    }

    /// A person gone: their profile, devices and relationships.
    fn forget(&mut self, person: &str) {
        self.people.remove(person);
        self.devices.remove(person);
        self.relationships.retain(|(p, _), _| p != person);
    }

    /// Like Customer.io: the primary must exist; it keeps its own attributes and takes the
    /// secondary's others, and its devices and relationships; the secondary is gone.
    fn merge(&mut self, primary: String, secondary: &str) -> Result<(), Invalid> {
        if !self.people.contains_key(&primary) {
            return Err(Invalid::new(
                "not_found",
                "primary",
                format!("the primary person {primary:?} does not exist"),
            ));
        }
        let taken = self.people.remove(secondary).unwrap_or_default();
        let devices = self.devices.remove(secondary).unwrap_or_default();
        let kept = self.people.entry(primary.clone()).or_default();
        for (name, value) in taken {
            kept.entry(name).or_insert(value);
        }
        self.devices
            .entry(primary.clone())
            .or_default()
            .extend(devices);
        let moved: Vec<(ObjectKey, Map<String, Value>)> = self
            .relationships
            .extract_if(|(p, _), _| p == secondary)
            .map(|((_, o), a)| (o, a))
            .collect();
        for (object, attributes) in moved {
            self.relationships
                .insert((primary.clone(), object), attributes);
        }
        self.stats.merges += 1;
        Ok(())
    }

    fn identify(
        &mut self,
        person: String,
        attributes: Map<String, Value>,
        update_only: bool,
    ) -> Result<(), Invalid> {
        if self.suppressed.contains(&person) {
            self.stats.ignored_suppressed += 1;
            return Ok(());
        }
        let stored = self.people.get(&person);
        if update_only && stored.is_none() {
            return Ok(());
        }
        let has = |name: &str| stored.is_some_and(|s| s.contains_key(name));
        let mut count = stored.map_or(0, Map::len);
        for (name, value) in &attributes {
            match (has(name), value.as_str() == Some("")) {
                (false, false) => count += 1,
                (true, true) => count -= 1,
                _ => {}
            }
        }
        if count > MAX_ATTRIBUTES {
            return Err(Invalid::new(
                "too_many",
                "attributes",
                format!("the person would have {count} attributes, more than {MAX_ATTRIBUTES}"),
            ));
        }
        update(self.people.entry(person).or_default(), attributes);
        Ok(())
    }

    fn event(&mut self, event: Event) {
        let (person, anonymous_id) = match event.who {
            Who::Person(p) => (Some(p), None),
            Who::Anonymous(a) => (None, Some(a)),
        };
        if person.as_ref().is_some_and(|p| self.suppressed.contains(p)) {
            self.stats.ignored_suppressed += 1;
            return;
        }
        // Customer.io answers 200 to a repeated id and silently drops the event.
        if let Some(id) = event.id
            && !self.event_ids.insert(id.0)
        {
            self.stats.duplicate_events += 1;
            return;
        }
        self.events.push(StoredEvent {
            kind: event.kind,
            person,
            anonymous_id,
            name: event.name,
            id: event.id.map(|id| id.to_string()),
            timestamp: event.timestamp,
            data: event.data,
        });
    }

    /// Counts the answer and logs the request when asked to.
    pub(super) fn finish(
        &mut self,
        status: Option<StatusCode>,
        invalid_ops: usize,
        log: Option<Received>,
    ) {
        match status.map(|s| s.as_u16()) {
            None => self.stats.dropped += 1,
            Some(200) => self.stats.accepted += 1,
            Some(207) => {
                self.stats.accepted += 1;
                self.stats.partial += 1;
                self.stats.invalid_ops += invalid_ops as u64;
            }
            Some(429) => self.stats.rejected_429 += 1,
            Some(s @ 400..=499) => *self.stats.rejected_4xx.entry(s).or_default() += 1,
            Some(_) => self.stats.failed_5xx += 1,
        }
        if let (Some(requests), Some(log)) = (self.requests.as_mut(), log) {
            requests.push(log);
        }
    }

    pub(super) fn keeps_requests(&self) -> bool {
        self.requests.is_some()
    }

    pub(super) fn stats(&self) -> Stats {
        Stats {
            people: self.people.len() as u64,
            devices: self.devices.values().map(|d| d.len() as u64).sum(),
            objects: self.objects.len() as u64,
            relationships: self.relationships.len() as u64,
            events: self.count_events("event"),
            page_views: self.count_events("page"),
            screen_views: self.count_events("screen"),
            suppressed: self.suppressed.len() as u64,
            ..self.stats.clone()
        }
    }

    fn count_events(&self, kind: &str) -> u64 {
        self.events.iter().filter(|e| e.kind == kind).count() as u64
    }

    pub(super) fn person(&self, key: &str) -> Option<Map<String, Value>> {
        self.people.get(key).cloned()
    }

    pub(super) fn devices_of(&self, key: &str) -> Vec<(String, Map<String, Value>)> {
        let devices = self.devices.get(key).into_iter().flatten();
        devices.map(|(t, d)| (t.clone(), d.clone())).collect()
    }

    pub(super) fn object(&self, key: &ObjectKey) -> Option<Map<String, Value>> {
        self.objects.get(key).cloned()
    }

    pub(super) fn relationship(
        &self,
        person: &str,
        object: &ObjectKey,
    ) -> Option<Map<String, Value>> {
        self.relationships
            .get(&(person.to_owned(), object.clone()))
            .cloned()
    }

    pub(super) fn people_count(&self) -> usize {
        self.people.len()
    }

    pub(super) fn is_suppressed(&self, key: &str) -> bool {
        self.suppressed.contains(key)
    }

    pub(super) fn events(&self) -> Vec<StoredEvent> {
        self.events.clone()
    }

    pub(super) fn requests(&self) -> Vec<Received> {
        self.requests.clone().unwrap_or_default()
    }
}

/// Applies an identify's attributes to what is stored; an empty string clears one.
fn update(stored: &mut Map<String, Value>, attributes: Map<String, Value>) {
    for (name, value) in attributes {
        if value.as_str() == Some("") {
            stored.remove(&name);
        } else {
            stored.insert(name, value);
        }
    }
}

/// Forgets times that are a full window old.
fn expire(window: &mut VecDeque<Instant>, now: Instant) {
    while window
        .front()
        .is_some_and(|t| now.saturating_duration_since(*t) >= WINDOW)
    {
        window.pop_front();
    }
}
