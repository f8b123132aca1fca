//! `--shared-limit`: importers pacing on one schedule in a real `redis-server`, started here on
//! a free port of 127.0.0.1 (`.ci/run` installs it when missing).

use crate::common;

use std::path::Path;
use std::process::Command as Std;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cio_import::limit::{Accepted, Adaptation, Ask, Commit, Schedule, Scripts, Slot, connect};
use common::redis_server::{Redis, free_port};
use common::{Reply, Scripted, Server, aimed, read_ndjson, timed, write};
use redis::aio::ConnectionManager;

/// A `redis-server` serving TLS only, with a self-signed certificate for 127.0.0.1 made in
/// `dir` (`cert.pem`, which clients must be told to trust).
fn tls_only(dir: &Path) -> Redis {
    let made = Std::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args([
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .current_dir(dir)
        .output()
        .expect("openssl must be installed to make a certificate");
    assert!(made.status.success(), "{made:?}");
    let port = free_port();
    let mut server = Redis::command();
    server
        .args(["--port", "0", "--tls-port", &port.to_string()])
        .args(["--tls-cert-file", "cert.pem", "--tls-key-file", "key.pem"])
        .args(["--tls-ca-cert-file", "cert.pem", "--tls-auth-clients", "no"])
        .current_dir(dir);
    // A plain PING gets no answer from a TLS port: that it takes the connection will do.
    Redis::started(port, server, |_| true)
}

/// `n` people with ids `{prefix}0`, `{prefix}1`, ...
fn people(dir: &Path, name: &str, prefix: &str, n: usize) -> std::path::PathBuf {
    let mut text = String::from("id,email\n");
    for i in 0..n {
        text.push_str(&format!("{prefix}{i},{prefix}{i}@example.com\n"));
    }
    write(dir, name, &text)
}

/// The most of `times` (sorted) in any window of `window` that starts at one of them.
fn max_in_window(times: &[Duration], window: Duration) -> usize {
    (0..times.len())
        .map(|i| {
            times[i..]
                .iter()
                .take_while(|t| **t - times[i] < window)
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// Runs `f` on a connection to `redis`, with the scripts.
fn on_redis<T>(redis: &Redis, f: impl AsyncFnOnce(ConnectionManager, Scripts) -> T) -> T {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let conn = connect(&redis.url(), "redis", Duration::from_secs(5))
            .await
            .unwrap();
        f(conn, Scripts::default()).await
    })
}

#[test]
fn the_lua_schedule_spaces_slots_pauses_and_takes_the_lowest_rate() {
    let redis = Redis::start();
    on_redis(&redis, async |mut conn, scripts| {
        let ms = Duration::from_millis;
        let mut slot = async |on: &str, rate: f64, burst: u32, name: &str, now: u64| {
            let ask = Ask {
                max_rate: rate,
                burst,
                name,
                accepted: Accepted::default(),
                now: Some(ms(now)),
            };
            let slot = scripts.reserve(&mut conn, &Schedule::of(on), ask).await;
            let slot = slot.unwrap();
            assert_eq!(slot.now, ms(now));
            (slot.at - slot.now, slot.lowest_rate)
        };
        // 10/s, smooth: one slot every 100 ms from the first request on.
        assert_eq!(slot("smooth", 10.0, 1, "a", 1000).await, (ms(0), 10.0));
        assert_eq!(slot("smooth", 10.0, 1, "a", 1000).await, (ms(100), 10.0));
        assert_eq!(slot("smooth", 10.0, 1, "b", 1050).await, (ms(150), 10.0));
        // Idle past its slots, the schedule starts again from now.
        assert_eq!(slot("smooth", 10.0, 1, "a", 9000).await, (ms(0), 10.0));
        assert_eq!(slot("smooth", 10.0, 1, "a", 9000).await, (ms(100), 10.0));
        // A burst of 3: three at once, then the even pace.
        for _ in 0..3 {
            assert_eq!(slot("burst", 10.0, 3, "a", 1000).await.0, ms(0));
        }
        assert_eq!(slot("burst", 10.0, 3, "a", 1000).await.0, ms(100));
        assert_eq!(slot("burst", 10.0, 3, "a", 1000).await.0, ms(200));
        // The lowest --rate seen in the last 10 s spaces everyone's slots.
        assert_eq!(slot("mixed", 10.0, 1, "fast", 1000).await, (ms(0), 10.0));
        assert_eq!(slot("mixed", 2.0, 1, "slow", 1000).await, (ms(100), 2.0));
        assert_eq!(slot("mixed", 10.0, 1, "fast", 1000).await, (ms(600), 2.0));
        // Not seen for 10 s, the slow one no longer counts.
        assert_eq!(slot("mixed", 10.0, 1, "fast", 12_000).await.1, 10.0);
    });
}

#[test]
fn the_adaptation_kept_in_redis_paces_the_schedule_and_refuses_stale_writes() {
    let redis = Redis::start();
    on_redis(&redis, async |mut conn, scripts| {
        let ms = Duration::from_millis;
        let on = Schedule::of("adapted");
        assert_eq!(scripts.state(&mut conn, &on).await.unwrap(), (0, None));
        // A 429 at 1 s with Retry-After 2 s, nothing accepted before it: the pace drops to a
        // quarter of 10/s, and the schedule pauses until 3 s.
        let mut state = Adaptation::new(10.0, ms(1000));
        let permit = state.permit();
        state.on_rate_limited(ms(1000), permit, Accepted::default(), Some(ms(2000)));
        assert_eq!(state.rate(), 2.5);
        let commit = |from| Commit {
            from,
            state: &state,
            now: Some(ms(1000)),
        };
        assert_eq!(
            scripts.commit(&mut conn, &on, commit(0)).await.unwrap(),
            Some(1)
        );
        // Written from version 0 again (another importer that had not read it): refused.
        assert_eq!(
            scripts.commit(&mut conn, &on, commit(0)).await.unwrap(),
            None
        );
        assert_eq!(
            scripts.state(&mut conn, &on).await.unwrap(),
            (1, Some(state.clone()))
        );
        let mut slot = async |name: &str, accepted: (u32, u32), now: u64| {
            let ask = Ask {
                max_rate: 10.0,
                burst: 1,
                name,
                accepted: Accepted {
                    last_second: accepted.0,
                    lately: accepted.1,
                },
                now: Some(ms(now)),
            };
            scripts.reserve(&mut conn, &on, ask).await.unwrap()
        };
        // Paused until 3 s, then one slot every 400 ms.
        let first = slot("a", (4, 9), 1500).await;
        assert_eq!((first.at, first.version), (ms(3000), 1));
        assert_eq!(first.others, Accepted::default());
        // Each sees what the others accepted: the last second's counts of those seen
        // within it, and all they accepted lately.
        let second = slot("b", (1, 2), 1600).await;
        assert_eq!(second.at, ms(3400));
        let counts = |s: Slot| (s.others.last_second, s.others.lately);
        assert_eq!(counts(second), (4, 9));
        assert_eq!(counts(slot("a", (5, 10), 2500).await), (1, 2));
        assert_eq!(counts(slot("b", (1, 2), 2700).await), (5, 10));
        assert_eq!(counts(slot("b", (1, 2), 3600).await), (0, 10));
    });
}

/// A Redis, a plain sandbox, and a folder holding `n` people `p0`.. in `p.csv`.
fn setting(n: usize) -> (Redis, Server, tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let input = people(dir.path(), "p.csv", "p", n);
    (Redis::start(), Server::plain(), dir, input)
}

/// Runs `run`, stops `redis` 1.5 s in, and gives what the run ended with and the port
/// Redis was on.
fn redis_lost_during(
    mut redis: Redis,
    mut run: assert_cmd::Command,
) -> (std::process::Output, u16) {
    std::thread::scope(|s| {
        let out = s.spawn(move || run.output().unwrap());
        std::thread::sleep(Duration::from_millis(1500));
        redis.stop();
        (out.join().unwrap(), redis.port)
    })
}

/// Runs `runs` at once; each must succeed.
fn together(runs: Vec<assert_cmd::Command>) {
    std::thread::scope(|s| {
        let handles: Vec<_> = runs
            .into_iter()
            .map(|mut c| s.spawn(move || c.assert().success()))
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
}

#[test]
fn a_429_seen_by_one_importer_pauses_the_others() {
    let _timed = timed();
    let redis = Redis::start();
    // The 40th request answers 429 with Retry-After 2; everything else is accepted.
    let server = Scripted::start(|hit| match hit.n {
        40 => Reply::status(429).retry_after("2"),
        _ => Reply::status(200).body("{}"),
    });
    let dir = tempfile::tempdir().unwrap();
    let runs: Vec<_> = ["a", "b"]
        .map(|p| {
            let input = people(dir.path(), &format!("{p}.csv"), p, 60);
            let mut c = aimed(dir.path(), &server.url(), 20);
            c.arg(&input).arg("--no-preflight");
            c.args(["--shared-limit", &redis.url()]);
            c
        })
        .into_iter()
        .collect();
    together(runs);
    let hits = server.hits();
    assert_eq!(hits.len(), 121);
    let limited = hits[40].at;
    // After the 429, no one sent for its Retry-After (but for requests already given a
    // slot, one an importer).
    let during = hits
        .iter()
        .filter(|h| h.at > limited && h.at < limited + Duration::from_millis(1800))
        .count();
    assert!(during <= 2, "{during} requests during the pause");
}

#[test]
fn three_importers_share_one_rate() {
    let _timed = timed();
    let redis = Redis::start();
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    let per = 200;
    let runs: Vec<_> = ["a", "b", "c"]
        .map(|p| {
            let input = people(dir.path(), &format!("{p}.csv"), p, per);
            let mut c = server.cmd_at(dir.path(), 60);
            c.arg(&input).args(["--shared-limit", &redis.url()]);
            c
        })
        .into_iter()
        .collect();
    together(runs);
    let mut times: Vec<Duration> = server
        .sandbox
        .requests()
        .iter()
        .filter(|r| r.identifier.is_some())
        .map(|r| r.at)
        .collect();
    times.sort();
    assert_eq!(times.len(), 3 * per);
    // Rate + burst is 61, which the importers keep to as they send (the times of their
    // writes, under strace, on cores at load 5-9: 61 in 10 runs of 10). One more for this
    // server's own clock: it runs on the same loaded cores, and when it is not run for a few
    // intervals it stamps the requests that waited together (a receiver beside those
    // strace runs counted 62 or 63 in 2 of them).
    let most = max_in_window(&times, Duration::from_secs(1));
    assert!(most <= 62, "{most} requests in one second at --rate 60");
    let span = (*times.last().unwrap() - times[0]).as_secs_f64();
    let rate = (times.len() - 1) as f64 / span;
    assert!(rate >= 0.95 * 60.0, "together {rate:.1}/s, not 95% of 60/s");
}

/// A server admitting `limit(t)` requests in any sliding second, `t` the time since its first
/// request, and answering 429 with Retry-After 1 to the rest; with the numbers of those.
fn limited_server(
    limit: impl Fn(Duration) -> usize + Send + Sync + 'static,
) -> (Scripted, Arc<Mutex<Vec<usize>>>) {
    let admitted = Mutex::new(std::collections::VecDeque::<Instant>::new());
    let first = std::sync::OnceLock::new();
    let refused = Arc::new(Mutex::new(Vec::new()));
    let told = refused.clone();
    let server = Scripted::start(move |hit| {
        let first = *first.get_or_init(|| hit.at);
        let mut admitted = admitted.lock().unwrap();
        while admitted
            .front()
            .is_some_and(|t| hit.at.duration_since(*t) >= Duration::from_secs(1))
        {
            admitted.pop_front();
        }
        if admitted.len() >= limit(hit.at.duration_since(first)) {
            told.lock().unwrap().push(hit.n);
            return Reply::status(429).retry_after("1");
        }
        admitted.push_back(hit.at);
        Reply::status(200)
    });
    (server, refused)
}

#[test]
fn three_importers_settle_together_under_a_limit_that_drops_and_lower_the_pace_once() {
    let _timed = timed();
    let redis = Redis::start();
    // 60/s for 4 s, then 30/s.
    let (server, refused) = limited_server(|t| if t < Duration::from_secs(4) { 60 } else { 30 });
    let dir = tempfile::tempdir().unwrap();
    // Enough for about 20 s at 30/s after the drop: the climb waits out a 10 s hold after
    // the last slowdown, which on loaded cores can come a few seconds after the first.
    let per = 270;
    let runs: Vec<_> = ["a", "b", "c"]
        .map(|p| {
            let input = people(dir.path(), &format!("{p}.csv"), p, per);
            let mut c = aimed(dir.path(), &server.url(), 60);
            c.arg(&input).arg("--no-preflight");
            c.args(["--shared-limit", &redis.url()]);
            c
        })
        .into_iter()
        .collect();
    // The adaptation's state in Redis, read every 100 ms while they run.
    let done = std::sync::atomic::AtomicBool::new(false);
    let states = std::thread::scope(|s| {
        let watch = s.spawn(|| {
            on_redis(&redis, async |mut conn, scripts| {
                let schedule = Schedule::of(&format!("{}:us", common::SITE_ID));
                let mut states = Vec::new();
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let (_, state) = scripts.state(&mut conn, &schedule).await.unwrap();
                    states.extend(state);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                states
            })
        });
        together(runs);
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        watch.join().unwrap()
    });
    let hits = server.hits();
    let refused = refused.lock().unwrap().clone();
    assert_eq!(hits.len() - refused.len(), 3 * per);
    // Few 429s, in bursts (429s with no acceptance between) when the limit dropped.
    assert!(
        refused.len() <= 60,
        "{} requests answered 429",
        refused.len()
    );
    let bursts = 1 + refused.windows(2).filter(|w| w[1] > w[0] + 1).count();
    // Settled together near 30/s: from 2 s after the drop to the end.
    let start = hits[0].at;
    let settled: Vec<_> = hits
        .iter()
        .filter(|h| h.at.duration_since(start) >= Duration::from_secs(6))
        .collect();
    let span = settled.last().unwrap().at - settled[0].at;
    let rate = (settled.len() - 1) as f64 / span.as_secs_f64();
    assert!((24.0..=31.0).contains(&rate), "together {rate:.1}/s");
    // The shared pace lowered at most once per burst: whichever importer saw it, a 429 for
    // a request sent before the pace was lowered only extends the pause. (The first burst,
    // after a full second at the pace, is a small step; the next finds the limit.)
    let last = states
        .last()
        .expect("the adaptation's state is kept in Redis");
    assert!(
        (1..=bursts.min(2) as u64).contains(&last.slowdowns()),
        "{} slowdowns for {bursts} bursts of 429s: {last:?}",
        last.slowdowns()
    );
    // Down to 95% of what all three had accepted in the last second before a 429 (about
    // 30; each importer alone accepted 10, and would have cut to a quarter of its pace) ...
    let cut = states
        .iter()
        .map(|s| s.rate())
        .fold(f64::INFINITY, f64::min);
    assert!((26.0..=28.5).contains(&cut), "cut to {cut}");
    // ... and climbing back, shared, once the hold is over.
    assert!(last.rate() > cut, "{last:?}");
}

/// The requests for people the sandbox received, by arrival.
fn arrivals(server: &Server) -> Vec<(Duration, String)> {
    let mut got: Vec<_> = server
        .sandbox
        .requests()
        .into_iter()
        .filter_map(|r| Some((r.at, r.identifier?)))
        .collect();
    got.sort();
    got
}

/// Each of `n` ids `{prefix}N` received exactly once.
fn each_once(got: &[(Duration, String)], prefix: &str, n: usize) {
    let mut ids: Vec<&str> = got.iter().map(|(_, id)| id.as_str()).collect();
    ids.sort();
    let mut want: Vec<String> = (0..n).map(|i| format!("{prefix}{i}")).collect();
    want.sort();
    assert_eq!(ids, want);
}

#[test]
fn redis_gone_for_three_seconds_pauses_sending_and_loses_nothing() {
    let _timed = timed();
    let n = 300;
    let (mut redis, server, dir, input) = setting(n);
    let mut c = server.cmd_at(dir.path(), 60);
    c.arg(&input).args(["--shared-limit", &redis.url()]);
    std::thread::scope(|s| {
        let run = s.spawn(move || c.assert().success());
        std::thread::sleep(Duration::from_millis(1500));
        // Stopped for 3 s, then started again on the same port with nothing kept.
        redis.stop();
        std::thread::sleep(Duration::from_secs(3));
        redis = Redis::on(redis.port);
        run.join().unwrap();
    });
    let got = arrivals(&server);
    each_once(&got, "p", n);
    let times: Vec<Duration> = got.iter().map(|(t, _)| *t).collect();
    // Rate + burst, and one more for this server's clock on loaded cores (as above). The
    // reply to the first ask after the reconnect is slow (the script is loaded again), but
    // the slot is placed by Redis's clock as read from quicker replies, and a turn woken
    // late is given up rather than sent beside the next.
    let most = max_in_window(&times, Duration::from_secs(1));
    assert!(most <= 62, "{most} requests in one second at --rate 60");
    // Nothing went while Redis was down: a gap of about 3 s.
    let gap = times.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    assert!(gap >= Duration::from_millis(2500), "longest gap {gap:?}");
}

#[test]
fn the_progress_line_says_while_sending_waits_for_redis() {
    let _timed = timed();
    let n = 300;
    let (mut redis, server, dir, input) = setting(n);
    let mut c = server.cmd_at(dir.path(), 60);
    c.arg(&input).args(["--shared-limit", &redis.url()]);
    // stderr is no terminal: a plain progress line every 5 s.
    c.args(["--progress", "auto", "--shared-limit-timeout", "30"]);
    let out = std::thread::scope(|s| {
        let run = s.spawn(move || c.output().unwrap());
        std::thread::sleep(Duration::from_millis(1500));
        // Away from 1.5 s to 6.5 s: the line at 5 s says so, the one at 10 s no longer.
        redis.stop();
        std::thread::sleep(Duration::from_secs(5));
        redis = Redis::on(redis.port);
        run.join().unwrap()
    });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains(" done: ")).collect();
    let waiting = |l: &&str| l.contains("waiting for Redis (") && l.ends_with(" s of 30)");
    assert!(lines.first().is_some_and(waiting), "{stderr}");
    assert!(
        lines.len() >= 2 && !lines[1..].iter().any(waiting),
        "{stderr}"
    );
    each_once(&arrivals(&server), "p", n);
}

#[test]
fn rediss_paces_through_tls_and_a_plain_redis_for_it_is_a_clear_exit_4() {
    let _timed = timed();
    let n = 30;
    let dir = tempfile::tempdir().unwrap();
    let input = people(dir.path(), "p.csv", "p", n);
    let redis = tls_only(dir.path());
    let server = Server::plain();
    let tls = format!("rediss://127.0.0.1:{}", redis.port);
    let mut c = server.cmd_at(dir.path(), 60);
    c.arg(&input).args(["--shared-limit", &tls]);
    // The certificate is trusted as the system's roots are: from SSL_CERT_FILE here.
    c.env("SSL_CERT_FILE", dir.path().join("cert.pem"));
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    each_once(&arrivals(&server), "p", n);

    // rediss:// to a Redis that speaks no TLS.
    let plain = Redis::start();
    let mut c = server.cmd_at(dir.path(), 60);
    c.arg(&input).args([
        "--shared-limit",
        &format!("rediss://127.0.0.1:{}", plain.port),
    ]);
    c.args(["--shared-limit-timeout", "1", "--failures", "again.ndjson"]);
    let out = c.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("TLS"), "{stderr}");
}

#[test]
fn redis_gone_past_the_timeout_stops_with_the_checkpoint_kept_and_resume_finishes() {
    let _timed = timed();
    let n = 300;
    let (redis, server, dir, input) = setting(n);
    let url = redis.url();
    let run = |resume: bool| {
        let mut c = server.cmd_at(dir.path(), 60);
        c.arg(&input).args(["--shared-limit", &url]);
        c.args(["--shared-limit-timeout", "1"]);
        if resume {
            c.arg("--resume");
        }
        c
    };
    let (out, port) = redis_lost_during(redis, run(false));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("--shared-limit"), "{stderr}");
    assert!(dir.path().join("p.checkpoint.json").exists(), "{stderr}");
    let sent = arrivals(&server).len();
    assert!(0 < sent && sent < n, "{sent} sent before Redis went");

    let _redis = Redis::on(port);
    run(true).assert().success();
    each_once(&arrivals(&server), "p", n);
}

#[test]
fn three_shards_send_every_row_exactly_once_and_a_resume_as_another_shard_is_refused() {
    let _timed = timed();
    let redis = Redis::start();
    let server = Server::plain();
    let dir = tempfile::tempdir().unwrap();
    let n = 150;
    // Two rows a person: a person's records all land in one shard.
    let mut text = String::from("id,email\n");
    for i in 0..n {
        text.push_str(&format!("p{i},p{i}@example.com\np{i},p{i}@example.org\n"));
    }
    let input = write(dir.path(), "p.csv", &text);
    let shard = |k: u32| {
        let mut c = server.cmd_at(dir.path(), 300);
        c.arg(&input).args(["--shard", &format!("{k}/3")]);
        c.args(["--shared-limit", &redis.url()]);
        c
    };
    together((1..=3).map(shard).collect());
    let got = arrivals(&server);
    assert_eq!(got.len(), 2 * n);
    let mut ids: Vec<&str> = got.iter().map(|(_, id)| id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n);
    assert_eq!(server.sandbox.people_count(), n);
    // Each its own files, named for the shard.
    for k in 1..=3 {
        let name = format!("p.shard-{k}-of-3.failures.ndjson");
        assert!(
            !dir.path().join(&name).exists() || read_ndjson(&dir.path().join(&name)).is_empty()
        );
    }
}

#[test]
fn a_shard_resumes_as_itself_only() {
    let _timed = timed();
    let n = 300;
    let (redis, server, dir, input) = setting(n);
    let url = redis.url();
    let shard = |k: u32, resume: bool| {
        let mut c = server.cmd_at(dir.path(), 60);
        c.arg(&input).args(["--shard", &format!("{k}/2")]);
        c.args(["--shared-limit", &url, "--shared-limit-timeout", "1"]);
        // The same files, so only the shard differs.
        c.args(["--failures", "p.shard-1-of-2.failures.ndjson"]);
        if resume {
            c.arg("--resume");
        }
        c
    };
    let (out, port) = redis_lost_during(redis, shard(1, false));
    assert_eq!(out.status.code(), Some(4));
    assert!(dir.path().join("p.shard-1-of-2.checkpoint.json").exists());
    let _redis = Redis::on(port);
    let refused = shard(2, true).assert().failure();
    let stderr = String::from_utf8_lossy(&refused.get_output().stderr).into_owned();
    assert!(stderr.contains("--shard 1/2"), "{stderr}");
    shard(1, true).assert().success();
    let got = arrivals(&server);
    let ids: std::collections::HashSet<&str> = got.iter().map(|(_, id)| id.as_str()).collect();
    // Shard 1's share, each once; about half of all.
    assert_eq!(ids.len(), got.len());
    assert!((n / 4..3 * n / 4).contains(&got.len()), "{}", got.len());
}
