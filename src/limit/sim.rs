//! A server for the pacer's tests: it answers 429 to requests over a limit per sliding
//! second (with Retry-After, as the sandbox does) and to a share of the rest at random
//! (without), on any clock; and workers that send to it through a pacer on tokio's paused
//! clock.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::time::Instant;

use super::Pacer;

const WINDOW: Duration = Duration::from_secs(1);

/// The simulated server.
pub struct Server {
    /// Requests admitted per sliding second, and from when on (the limit may change).
    limits: Vec<(Duration, u32)>,
    /// Whether 429s for the limit carry Retry-After.
    retry_after: bool,
    /// The share answered 429 at random.
    stray: f64,
    rng: StdRng,
    admitted: VecDeque<Duration>,
}

impl Server {
    /// Answers 429 to a share `stray` of requests at random, dice seeded from `seed`.
    pub fn new(stray: f64, seed: u64) -> Server {
        Server {
            limits: Vec::new(),
            retry_after: true,
            stray,
            rng: StdRng::seed_from_u64(seed),
            admitted: VecDeque::new(),
        }
    }

    /// Admits `limit` requests per sliding second from `from` on.
    pub fn limit(mut self, from: Duration, limit: u32) -> Server {
        self.limits.push((from, limit));
        self
    }

    /// 429s for the limit carry no Retry-After.
    pub fn without_retry_after(mut self) -> Server {
        self.retry_after = false;
        self
    }

    /// The answer to a request arriving at `now` (since the server started): accepted, or
    /// 429 with the Retry-After it carries.
    pub fn answer(&mut self, now: Duration) -> Result<(), Option<Duration>> {
        if self.rng.random::<f64>() < self.stray {
            return Err(None);
        }
        while self
            .admitted
            .front()
            .is_some_and(|t| now.saturating_sub(*t) >= WINDOW)
        {
            self.admitted.pop_front();
        }
        let limit = self.limits.iter().rev().find(|(from, _)| now >= *from);
        if let Some(&(_, limit)) = limit
            && self.admitted.len() >= limit as usize
        {
            // Whole seconds until the oldest admitted request leaves the window, at least one.
            let frees = (self.admitted[0] + WINDOW).saturating_sub(now);
            let wait = Duration::from_secs(frees.as_secs_f64().ceil().max(1.0) as u64);
            return Err(self.retry_after.then_some(wait));
        }
        self.admitted.push_back(now);
        Ok(())
    }

    /// `workers` send to it as fast as `pacer` allows for `run` of tokio's (paused) clock,
    /// each answer `latency` after its turn.
    pub async fn serve(
        self,
        pacer: Arc<dyn Pacer>,
        workers: usize,
        latency: Duration,
        run: Duration,
    ) -> Seen {
        let start = Instant::now();
        let server = Arc::new(Mutex::new((self, Seen::default())));
        let workers: Vec<_> = (0..workers)
            .map(|_| {
                let (pacer, server) = (pacer.clone(), server.clone());
                tokio::spawn(async move {
                    while start.elapsed() < run {
                        let permit = pacer.acquire().await;
                        let answer = server.lock().unwrap().0.answer(start.elapsed());
                        tokio::time::sleep(latency).await;
                        {
                            let seen = &mut server.lock().unwrap().1;
                            match answer {
                                Ok(()) => seen.accepted += 1,
                                Err(_) => seen.limited += 1,
                            }
                        }
                        match answer {
                            Ok(()) => pacer.on_accepted(),
                            Err(retry_after) => pacer.on_rate_limited(permit, retry_after),
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.await.unwrap();
        }
        let seen = server.lock().unwrap().1;
        Seen {
            took: start.elapsed(),
            ..seen
        }
    }
}

/// What the server answered over a run.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Seen {
    pub accepted: u64,
    pub limited: u64,
    pub took: Duration,
}

impl Seen {
    /// Requests accepted a second.
    pub fn goodput(&self) -> f64 {
        self.accepted as f64 / self.took.as_secs_f64()
    }

    /// The share of requests answered 429.
    pub fn limited_share(&self) -> f64 {
        self.limited as f64 / (self.accepted + self.limited).max(1) as f64
    }
}
