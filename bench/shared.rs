//! The cost of `--shared-limit`: 10,000 people one a request into a sandbox without a limit at
//! `--rate 2000`, alone and then sharing the schedule through a `redis-server` on 127.0.0.1
//! (one round trip a turn). Prints the importer's CPU per request both ways, and Redis's own
//! (from its /proc/PID/stat), beside the targets: sharing adds under 100 µs a request, and
//! Redis spends under 1 ms a turn (so one core of it keeps up with 1,000 requests a second).
//!
//! `SHARED_RECORDS=N` changes the size. Needs `redis-server` (`apt-get install redis-server`).

mod common;
// The tests' own, so that both start Redis one way.
#[path = "../tests/it/common/redis_server.rs"]
mod redis_server;

use std::time::Duration;

use cio_import::sandbox::SandboxOptions;
use common::{Server, field, measure, report, write_people};
use redis_server::Redis;

/// User + system CPU time of process `pid` so far, from /proc.
fn cpu_of(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("redis-server runs");
    // The fields after the command's closing parenthesis; utime and stime are 14th and 15th.
    let after = &stat[stat.rfind(')').expect("a stat line") + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    // SAFETY: sysconf only reads a constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let t = |i: usize| fields[i].parse::<f64>().expect("a number of ticks");
    Duration::from_secs_f64((t(11) + t(12)) / ticks)
}

fn main() {
    let rows: u64 = std::env::var("SHARED_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let dir = tempfile::tempdir().expect("a temp dir");
    let input = dir.path().join("people.csv");
    write_people(&input, rows);

    let redis = Redis::start();

    let per_request = |shared: bool| {
        let server = Server::start(SandboxOptions {
            limit: None,
            keep_requests: false,
            ..SandboxOptions::default()
        });
        let mut cmd = server.cmd();
        cmd.current_dir(dir.path())
            .args(["--rate", "2000", "--batch", "1"])
            .arg(&input);
        if shared {
            cmd.args(["--shared-limit", &redis.url()]);
        }
        let redis_before = cpu_of(redis.child.id());
        let run = measure(&mut cmd);
        let redis_cpu = cpu_of(redis.child.id()) - redis_before;
        let summary = run.summary();
        assert!(run.status.success(), "the import failed: {summary}");
        let requests = field(&summary, "requests");
        assert_eq!(field(&summary, "accepted"), rows, "{summary}");
        let per = |d: Duration| d.as_secs_f64() * 1e6 / requests as f64;
        println!(
            "{} {rows} rows in {requests} requests: {:.1} s ({:.0}/s), child CPU {:.2} s",
            if shared {
                "with --shared-limit:"
            } else {
                "alone:"
            },
            run.wall.as_secs_f64(),
            requests as f64 / run.wall.as_secs_f64(),
            run.cpu.as_secs_f64(),
        );
        (per(run.cpu), per(redis_cpu))
    };
    let (alone, _) = per_request(false);
    let (shared, in_redis) = per_request(true);
    drop(redis);

    println!();
    // The importer's own CPU at this pace is mostly its timer's wake-ups; the figure that
    // matters is what sharing adds, and whether one Redis core keeps up with a workspace's
    // documented 1,000 requests a second.
    println!(
        "  {:<40} {:>16}",
        "child CPU per request, alone",
        format!("{alone:.1} us")
    );
    let added = shared - alone;
    report(
        "child CPU added by --shared-limit",
        format!("{added:.1} us"),
        "< 100 us",
        added < 100.0,
    );
    report(
        "Redis's CPU per turn (its script)",
        format!("{in_redis:.1} us"),
        "< 1000 us",
        in_redis < 1000.0,
    );
}
