//! `--shared-limit`: importers pacing on one schedule in a real `redis-server`, started here on
//! a free port of 127.0.0.1 (`.ci/run` installs it when missing).

use crate::common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command as Std, Stdio};
use std::time::{Duration, Instant};

use cio_import::limit::{Ask, Schedule, Scripts, connect};
use common::{Reply, Scripted, Server, aimed, read_ndjson, timed, write};

/// A `redis-server` on a free port with nothing saved; killed when dropped.
struct Redis {
    port: u16,
    child: Child,
}

impl Redis {
    fn start() -> Redis {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Redis::on(port)
    }

    fn on(port: u16) -> Redis {
        let child = Std::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server must be installed: apt-get install -y redis-server");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                let mut buf = [0u8; 7];
                if s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis { port, child }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Redis {
    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
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

#[test]
fn the_lua_schedule_spaces_slots_pauses_and_takes_the_lowest_rate() {
    let redis = Redis::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut conn = connect(&redis.url(), "redis", Duration::from_secs(5))
            .await
            .unwrap();
        let scripts = Scripts::default();
        let ms = Duration::from_millis;
        // A pause of 2 s from 1 s, on one schedule only.
        let paused = Schedule::of("paused");
        scripts
            .pause(&mut conn, &paused, ms(2000), Some(ms(1000)))
            .await
            .unwrap();
        let mut slot = async |on: &str, rate: f64, burst: u32, name: &str, now: u64| {
            let ask = Ask {
                rate,
                max_rate: rate,
                burst,
                name,
                now: Some(ms(now)),
            };
            let slot = scripts.reserve(&mut conn, &Schedule::of(on), ask).await;
            let slot = slot.unwrap();
            (slot.wait, slot.lowest_rate)
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
        // A pause holds every slot back until it ends.
        assert_eq!(slot("paused", 10.0, 1, "a", 1500).await.0, ms(1500));
        // The lowest --rate seen in the last 10 s spaces everyone's slots.
        assert_eq!(slot("mixed", 10.0, 1, "fast", 1000).await, (ms(0), 10.0));
        assert_eq!(slot("mixed", 2.0, 1, "slow", 1000).await, (ms(100), 2.0));
        assert_eq!(slot("mixed", 10.0, 1, "fast", 1000).await, (ms(600), 2.0));
        // Not seen for 10 s, the slow one no longer counts.
        assert_eq!(slot("mixed", 10.0, 1, "fast", 12_000).await.1, 10.0);
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
    // Rate + burst is 61 (measured on a quiet machine); one more for a request that one
    // process, on two loaded cores, sends a whole interval after its slot.
    let most = max_in_window(&times, Duration::from_secs(1));
    assert!(most <= 62, "{most} requests in one second at --rate 60");
    let span = (*times.last().unwrap() - times[0]).as_secs_f64();
    let rate = (times.len() - 1) as f64 / span;
    assert!(rate >= 0.95 * 60.0, "together {rate:.1}/s, not 95% of 60/s");
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
    // Rate + burst, and one more: the first request after the reconnect waits for the
    // connection and the script's reload after Redis gave its slot, so it may arrive that
    // much late, next to the following one (measured: 10 ms late, 62 in that second).
    let most = max_in_window(&times, Duration::from_secs(1));
    assert!(most <= 62, "{most} requests in one second at --rate 60");
    // Nothing went while Redis was down: a gap of about 3 s.
    let gap = times.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    assert!(gap >= Duration::from_millis(2500), "longest gap {gap:?}");
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
