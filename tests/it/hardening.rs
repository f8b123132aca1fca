//! Nothing lost, even when attacked: a disk that fills up while a failures line is written,
//! links planted where the run writes, a pipe or device given where it keeps a file.

use crate::common;

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::Command;

use common::{Server, read_ndjson, write};

/// `n` people whose `age` is not a number, each with about a kilobyte of attributes: every
/// row is invalid and makes a failures line of more than a kilobyte.
fn invalid_people(dir: &Path, n: usize) {
    let pad = "x".repeat(900);
    let mut text = String::from("id,age,note\n");
    for i in 0..n {
        text.push_str(&format!("p{i},not-{i},{pad}\n"));
    }
    write(dir, "users.csv", &text);
}

/// The binary importing users.csv into `server`, as a plain std Command.
fn import(server: &Server, dir: &Path) -> Command {
    import_from(server, dir, "users.csv".as_ref())
}

/// The binary importing `input` into `server`.
fn import_from(server: &Server, dir: &Path, input: &std::ffi::OsStr) -> Command {
    let mut c = common::killable(dir, &server.sandbox.base_url());
    c.arg(input);
    c
}

#[test]
fn a_disk_that_fills_up_mid_line_leaves_whole_lines_and_the_resume_writes_each_row_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let rows = 40;
    invalid_people(d, rows);
    let server = Server::plain();
    // A file size limit stands in for a full disk: the write that crosses it stops
    // part-way through a line.
    let mut full = import(&server, d);
    full.args(["--type", "age=number"]);
    // SAFETY: between fork and exec only async-signal-safe calls (setrlimit, signal).
    unsafe {
        full.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 10_000,
                rlim_max: 10_000,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    let out = full.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot write the failures file"),
        "{stderr}"
    );
    let failures = d.join("users.failures.ndjson");
    let text = std::fs::read_to_string(&failures).unwrap();
    assert!(
        text.ends_with('\n'),
        "a torn line was left: ...{}",
        &text[text.len() - 80..]
    );
    let written = read_ndjson(&failures).len();
    assert!(written > 0 && written < rows, "{written} lines");

    let out = import(&server, d)
        .args(["--type", "age=number", "--resume"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let mut lines: Vec<u64> = read_ndjson(&failures)
        .iter()
        .map(|l| l["_error"]["line"].as_u64().unwrap())
        .collect();
    lines.sort_unstable();
    assert_eq!(lines, (2..2 + rows as u64).collect::<Vec<_>>());
}

#[test]
fn a_link_planted_at_the_checkpoints_temporary_file_does_not_overwrite_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let text = people(2_000);
    write(d, "users.csv", &text);
    std::os::unix::fs::symlink("users.csv", d.join("users.checkpoint.json.tmp")).unwrap();
    let server = Server::plain();
    let mut c = import(&server, d);
    // One a request, for a run long enough to save the checkpoint many times.
    c.args(["--rate", "1000", "--batch", "1"]);
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(d.join("users.csv")).unwrap(), text);
    assert_eq!(server.sandbox.stats().people, 2_000);
}

#[test]
fn a_resume_without_the_runs_action_is_refused_before_sending() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "users.csv", &people(200));
    let server = Server::plain();
    let first = import(&server, d)
        .args([
            "--action", "delete", "--yes", "--rate", "20", "--batch", "1",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    interrupt_after(first, std::time::Duration::from_secs(1));
    let sent = server.sandbox.requests().len();

    let out = import(&server, d).arg("--resume").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("is of a run with --action delete"),
        "{stderr}"
    );
    assert_eq!(
        server.sandbox.requests().len(),
        sent,
        "nothing more was sent"
    );

    let out = import(&server, d)
        .args([
            "--action", "delete", "--yes", "--rate", "1000", "--batch", "1", "--resume",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Besides the preflight's GETs, deletes only: every person's.
    let requests = server.sandbox.requests();
    assert!(
        requests
            .iter()
            .all(|r| r.method == "DELETE" || r.method == "GET")
    );
    let deleted: std::collections::HashSet<&str> = requests
        .iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| r.path.as_str())
        .collect();
    assert_eq!(deleted.len(), 200);
}

/// Ctrl-C for `child` after `wait`; it must stop with exit code 130.
fn interrupt_after(mut child: std::process::Child, wait: std::time::Duration) {
    std::thread::sleep(wait);
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    assert_eq!(child.wait().unwrap().code(), Some(130));
}

/// `n` people as CSV, about 40 bytes a row.
fn people(n: usize) -> String {
    let mut text = String::from("id,plan,city\n");
    for i in 0..n {
        text.push_str(&format!("person-{i:06},premium,Somewhere-{i}\n"));
    }
    text
}

#[test]
fn a_pipe_given_by_path_loses_no_row() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let rows = 20_000;
    let server = Server::plain();

    // `cat users.csv | cio-import /dev/stdin --format csv`
    let mut child = import_from(&server, d, "/dev/stdin".as_ref())
        .args(["--rate", "1000", "--format", "csv"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let text = people(rows);
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, text.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(server.sandbox.stats().people, rows as u64);

    // `cio-import <(zcat users.csv.gz) --format csv` reads a FIFO.
    let fifo = d.join("fifo");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) with a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let second = Server::plain();
    let (path, text) = (fifo.clone(), people(rows));
    let writer = std::thread::spawn(move || std::fs::write(path, text));
    let out = import_from(&second, d, fifo.as_os_str())
        .args(["--rate", "1000", "--format", "csv"])
        .output()
        .unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(second.sandbox.stats().people, rows as u64);

    // And a stream cannot be resumed.
    let out = import_from(&second, d, fifo.as_os_str())
        .args(["--resume", "--format", "csv"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("it is a stream"), "{stderr}");
}

#[test]
fn a_second_run_over_the_same_files_is_refused_at_once_and_the_first_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "users.csv", &people(60));
    let server = Server::plain();
    let first = import(&server, d)
        .args(["--rate", "30", "--batch", "1"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    let second = import(&server, d)
        .args(["--rate", "1000"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "another cio-import (process {}) is running",
            first.id()
        )),
        "{stderr}"
    );
    let out = first.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(server.sandbox.stats().people, 60);
    assert!(
        !d.join("users.failures.lock").exists(),
        "the lock is removed at the end"
    );
}

#[test]
fn a_resume_cuts_a_torn_failures_line_before_appending() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let rows = 100;
    invalid_people(d, rows);
    let server = Server::plain();
    // users.csv's rows are all invalid and written to the failures file at once; the run is
    // stopped while it still sends valid.csv's people.
    let mut valid = String::from("id,age,note\n");
    for i in 0..200 {
        valid.push_str(&format!("v{i},{i},ok\n"));
    }
    write(d, "valid.csv", &valid);
    let args = ["valid.csv", "--type", "age=number", "--batch", "1"];
    let first = import(&server, d)
        .args(args)
        .args(["--rate", "20"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    interrupt_after(first, std::time::Duration::from_secs(1));
    let failures = d.join("users.failures.ndjson");
    assert_eq!(read_ndjson(&failures).len(), rows);
    // What kill -9 in the middle of writing a line leaves.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&failures)
        .unwrap();
    std::io::Write::write_all(&mut f, b"{\"_error\":{\"line\":7,\"mess").unwrap();

    let out = import(&server, d)
        .args(args)
        .args(["--rate", "1000", "--resume", "--summary", "-"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("cut back to the lines the checkpoint counts"),
        "{stderr}"
    );
    // The summary is the whole run's, as an uninterrupted run's would be.
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["records"], 300, "{summary}");
    assert_eq!(summary["accepted"], 200, "{summary}");
    assert_eq!(summary["invalid"], 100, "{summary}");
    assert_eq!(
        summary["failures_path"], "users.failures.ndjson",
        "{summary}"
    );
    assert_eq!(summary["exit_code"], 3, "{summary}");
    assert_eq!(
        read_ndjson(&failures).len(),
        rows,
        "every line whole, none twice"
    );
    assert_eq!(server.sandbox.stats().people, 200);
}

#[test]
fn a_checkpoint_that_can_no_longer_be_saved_stops_the_sending() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "users.csv", &people(300));
    std::fs::create_dir(d.join("state")).unwrap();
    let server = Server::plain();
    let run = import(&server, d)
        .args(["--rate", "50", "--batch", "1"])
        .args(["--checkpoint", "state/users.checkpoint.json"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(800));
    // Root passes any permission check; a folder that is gone stops every save.
    std::fs::remove_dir_all(d.join("state")).unwrap();
    let out = run.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot write the checkpoint state/users.checkpoint.json"),
        "{stderr}"
    );
    let sent = server.sandbox.stats().people;
    assert!(sent < 150, "{sent} of 300 sent after the checkpoint failed");
}

#[test]
fn a_pipe_link_or_folder_given_as_a_file_the_run_replaces_is_refused_and_left_as_it_is() {
    use std::os::unix::fs::FileTypeExt as _;
    let server = Server::plain();
    let fifo = |p: &Path| {
        let made = Command::new("mkfifo").arg(p).status().unwrap();
        assert!(made.success());
    };
    let link = |p: &Path| std::os::unix::fs::symlink("elsewhere.json", p).unwrap();
    let folder = |p: &Path| std::fs::create_dir(p).unwrap();
    type Make = fn(&Path);
    let cases: [(&str, &str, Make, &str); 3] = [
        // As /dev/null is: run as root, the run deleted it and wrote a file in its place.
        ("--failures", "sink.ndjson", fifo, "a named pipe"),
        ("--checkpoint", "c.json", link, "a symbolic link"),
        ("--state", "state", folder, "a folder"),
    ];
    for (flag, name, make, kind) in cases {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(d, "users.csv", "id,age\n1,30\n2,old\n");
        let path = d.join(name);
        make(&path);
        let before = std::fs::symlink_metadata(&path).unwrap().file_type();
        let mut c = import(&server, d);
        c.args([flag, name]);
        let out = assert_cmd::Command::from_std(c)
            .timeout(std::time::Duration::from_secs(60))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag}: {stderr}");
        assert!(
            stderr.contains(&format!("{flag} {name} is {kind}, not a regular file")),
            "{stderr}"
        );
        let after = std::fs::symlink_metadata(&path).unwrap().file_type();
        assert_eq!(
            (after.is_fifo(), after.is_symlink(), after.is_dir()),
            (before.is_fifo(), before.is_symlink(), before.is_dir()),
            "{flag}: {name} changed"
        );
    }
    assert_eq!(server.sandbox.stats().people, 0, "refused before sending");
}
