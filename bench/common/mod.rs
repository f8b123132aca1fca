//! Shared bench plumbing: a sandbox in a runtime of its own, generated people files, and the
//! release binary run as a child whose wall time, CPU time and peak RSS are measured.
#![allow(dead_code)] // each bench uses its own share of these helpers

use std::io::{BufWriter, Read, Write};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use cio_import::sandbox::{Sandbox, SandboxOptions};
use serde_json::Value;

pub const SITE_ID: &str = "bench-site";
pub const API_KEY: &str = "sk-bench-0123456789";

/// A running sandbox; it stops when dropped.
pub struct Server {
    pub sandbox: Sandbox,
    // Declared after the sandbox so it outlives it while dropping.
    _rt: tokio::runtime::Runtime,
}

impl Server {
    /// `opts` with the bench credentials. One worker thread: the child gets the other core.
    pub fn start(opts: SandboxOptions) -> Server {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let sandbox = rt
            .block_on(Sandbox::start(SandboxOptions {
                site_id: SITE_ID.into(),
                api_key: API_KEY.into(),
                ..opts
            }))
            .expect("the sandbox starts");
        Server { sandbox, _rt: rt }
    }

    /// The binary, credentials in its environment, aimed at this server.
    pub fn cmd(&self) -> Command {
        let mut c = bin();
        c.env("CUSTOMERIO_SITE_ID", SITE_ID)
            .env("CUSTOMERIO_TRACK_API_KEY", API_KEY)
            .arg("--endpoint")
            .arg(self.sandbox.base_url());
        c
    }
}

/// The release binary with a clean environment, no progress, and the summary on stdout.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cio-import"));
    c.env_remove("CUSTOMERIO_SITE_ID")
        .env_remove("CUSTOMERIO_TRACK_API_KEY")
        .env("NO_COLOR", "1")
        .args(["--progress", "never", "--summary", "-", "--quiet"]);
    c
}

/// How a child process went.
pub struct Measured {
    pub status: ExitStatus,
    pub wall: Duration,
    /// User + system CPU time.
    pub cpu: Duration,
    pub max_rss_kib: u64,
    /// This process's RSS when the child started: the floor under `max_rss_kib`.
    pub parent_rss_mib: f64,
    pub stdout: String,
}

impl Measured {
    /// `--summary -` as JSON.
    pub fn summary(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("no summary on stdout ({e}): {:?}", self.stdout))
    }

    pub fn max_rss_mib(&self) -> f64 {
        self.max_rss_kib as f64 / 1024.0
    }

    /// A peak-RSS figure against the 64 MiB target, naming the floor it is measured above.
    pub fn report_rss(&self, name: &str) {
        report(
            &format!("{name} (floor {:.0} MiB)", self.parent_rss_mib),
            format!("{:.1} MiB", self.max_rss_mib()),
            "<= 64 MiB",
            self.max_rss_mib() <= 64.0,
        );
    }
}

/// Runs `cmd` to its end (stderr passed through) and measures it with wait4, which gives this
/// one child's own rusage: user and system time and peak RSS.
///
/// The child is started with a plain fork, not the vfork-like `posix_spawn` std prefers: a
/// vfork child execs from the parent's own memory, and Linux then counts the parent's peak
/// RSS (the sandbox's store, say) as the child's. After a fork it counts at most the parent's
/// RSS at that moment, which `parent_rss_mib` shows is small.
// The child is reaped by wait4, which std cannot see.
#[allow(clippy::zombie_processes)]
pub fn measure(cmd: &mut Command) -> Measured {
    use std::os::unix::process::CommandExt;
    // SAFETY: the hook does nothing, so it is async-signal-safe; it only makes std fork.
    unsafe { cmd.pre_exec(|| Ok(())) };
    // Hands memory an earlier sandbox freed back to the system, so the floor stays low.
    // SAFETY: malloc_trim only releases free heap memory.
    unsafe { libc::malloc_trim(0) };
    let parent_rss_mib = parent_rss_mib();
    let started = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .expect("the binary starts");
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .expect("piped stdout")
        .read_to_string(&mut stdout)
        .expect("stdout is UTF-8");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain old data, zero is a valid value, and wait4 only writes to it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own unreaped child; both out-pointers are valid for writes.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid, "wait4: {}", std::io::Error::last_os_error());
    let wall = started.elapsed();
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    use std::os::unix::process::ExitStatusExt;
    Measured {
        status: ExitStatus::from_raw(status),
        wall,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        max_rss_kib: usage.ru_maxrss as u64,
        parent_rss_mib,
        stdout,
    }
}

/// This process's resident set now, from /proc: the floor under a child's measured peak.
pub fn parent_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// Writes `rows` people as CSV, streaming: id,email,first_name,last_name,plan,city,created_at,score
/// (about 75 bytes a row). Returns the file's size in bytes.
pub fn write_people(path: &Path, rows: u64) -> u64 {
    const FIRST: [&str; 8] = [
        "Alice", "Bruno", "Chiara", "Dmitri", "Eve", "Farah", "Gustav", "Hana",
    ];
    const LAST: [&str; 8] = [
        "Smith", "Okafor", "Rossi", "Ivanova", "Martin", "Haddad", "Berg", "Tanaka",
    ];
    const PLAN: [&str; 4] = ["free", "starter", "pro", "enterprise"];
    const CITY: [&str; 6] = ["Berlin", "Lagos", "Lisbon", "Osaka", "Quito", "Toronto"];
    let file = std::fs::File::create(path).expect("create the input");
    let mut w = BufWriter::with_capacity(1 << 20, file);
    writeln!(
        w,
        "id,email,first_name,last_name,plan,city,created_at,score"
    )
    .unwrap();
    // A cheap deterministic mix (splitmix64), so rows differ without a random crate.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    for id in 1..=rows {
        let r = next();
        let pick = |n: usize, shift: u32| (r >> shift) as usize % n;
        let day = 1 + (r >> 20) % 28;
        let month = 1 + (r >> 28) % 12;
        let secs = (r >> 36) % 86_400;
        writeln!(
            w,
            "{id},user{id}@example.com,{},{},{},{},2023-{month:02}-{day:02}T{:02}:{:02}:{:02}Z,{}.{}",
            FIRST[pick(8, 0)],
            LAST[pick(8, 3)],
            PLAN[pick(4, 6)],
            CITY[pick(6, 8)],
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
            (r >> 44) % 100,
            (r >> 52) % 10,
        )
        .unwrap();
    }
    w.flush().unwrap();
    std::fs::metadata(path).expect("the input exists").len()
}

/// A figure beside its target, with a verdict.
pub fn report(name: &str, figure: String, target: &str, met: bool) {
    println!(
        "  {name:<40} {figure:>16}   target {target:<14} {}",
        if met { "met" } else { "MISSED" }
    );
}

/// The `u64` at `key` of a summary.
pub fn field(summary: &Value, key: &str) -> u64 {
    summary[key]
        .as_u64()
        .unwrap_or_else(|| panic!("summary has no {key}: {summary}"))
}
