//! The progress display as a person sees it: the binary on a pseudo-terminal, importing into
//! its sandbox, and what the terminal received.
#![cfg(unix)]

use crate::common;

use std::collections::BTreeSet;
use std::io::Read;
use std::time::{Duration, Instant};

use portable_pty::{CommandBuilder, PtySize, native_pty_system};

/// Runs the binary on a 100-column pseudo-terminal in `dir`, importing 40 people into the
/// sandbox at 20 requests/s (about 2 s); returns what it wrote and whether it succeeded.
fn run_on_a_terminal(extra: &[&str], no_color: bool) -> (String, bool) {
    let dir = tempfile::tempdir().unwrap();
    let rows: String = (0..40).map(|i| format!("{i},pro\n")).collect();
    common::write(dir.path(), "people.csv", &format!("id,plan\n{rows}"));
    let pty = native_pty_system()
        .openpty(PtySize {
            rows: 24,
            cols: 100,
            pixel_width: 0,
            pixel_height: 0,
        })
        .unwrap();
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_cio-import"));
    cmd.args(["people.csv", "--sandbox", "--sandbox-latency", "20"]);
    cmd.args(["--rate", "20", "--batch", "1"]);
    cmd.args(extra);
    cmd.cwd(dir.path());
    cmd.env("TERM", "xterm-256color");
    if no_color {
        cmd.env("NO_COLOR", "1");
    } else {
        cmd.env_remove("NO_COLOR");
    }
    let mut child = pty.slave.spawn_command(cmd).unwrap();
    // Only the child holds the terminal now, so reading ends when it exits.
    drop(pty.slave);
    let mut reader = pty.master.try_clone_reader().unwrap();
    let reading = std::thread::spawn(move || {
        let mut out = Vec::new();
        // Linux answers EIO once the child has gone; what was read is kept.
        let _ = reader.read_to_end(&mut out);
        out
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the import did not finish in 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(pty.master);
    let out = reading.join().unwrap();
    (String::from_utf8_lossy(&out).into_owned(), status.success())
}

/// Every distinct N of "N done:" the terminal was sent.
fn done_counts(text: &str) -> BTreeSet<u64> {
    text.match_indices(" done:")
        .filter_map(|(at, _)| {
            let digits: String = text[..at]
                .chars()
                .rev()
                .take_while(|c| c.is_ascii_digit() || *c == ',')
                .filter(char::is_ascii_digit)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            digits.parse().ok()
        })
        .collect()
}

#[test]
fn the_bar_redraws_with_the_counts_moving() {
    let (text, ok) = run_on_a_terminal(&[], true);
    assert!(ok, "{text}");
    let counts = done_counts(&text);
    assert!(
        counts.len() >= 2 && counts.iter().any(|&n| n > 0 && n < 40),
        "the bar should have shown the count moving: {counts:?}\n{text}"
    );
    for part in [
        " accepted, ",
        " failed, ",
        " invalid",
        " retries, ",
        " 429",
        " req/s",
    ] {
        assert!(text.contains(part), "{part:?} missing:\n{text}");
    }
    assert!(text.contains("40 records in"), "{text}");
    // NO_COLOR: no colour escapes (cursor movement and line clearing remain).
    assert!(!text.contains("\x1b[36m"), "{text:?}");
}

#[test]
fn the_bar_is_coloured_unless_no_color_and_absent_with_quiet() {
    let (text, ok) = run_on_a_terminal(&[], false);
    assert!(ok, "{text}");
    assert!(
        text.contains("\x1b[36m"),
        "the spinner should be cyan: {text:?}"
    );

    let (text, ok) = run_on_a_terminal(&["--quiet"], true);
    assert!(ok, "{text}");
    assert!(
        done_counts(&text).is_empty(),
        "--quiet drew progress: {text}"
    );
    assert!(text.contains("40 records in"), "{text}");
}

#[test]
fn progress_always_draws_when_stderr_is_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let rows: String = (0..10).map(|i| format!("{i},pro\n")).collect();
    let input = common::write(dir.path(), "people.csv", &format!("id,plan\n{rows}"));
    // Piped stderr: 10 people at 10 requests/s, about 1 s of bar.
    let out = common::bin(dir.path())
        .arg(&input)
        .args([
            "--sandbox",
            "--rate",
            "10",
            "--batch",
            "1",
            "--progress",
            "always",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !done_counts(&stderr).is_empty(),
        "--progress always drew nothing on a pipe:\n{stderr}"
    );
}
