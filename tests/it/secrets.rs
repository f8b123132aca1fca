//! The API key stays secret: at the most verbose, on refused credentials and on runs that
//! leave failures, a checkpoint and a summary, neither the key nor the Authorization value
//! appears in the output or in any file written.

use crate::common;

use std::path::Path;

use base64::Engine as _;
use common::{API_KEY, SITE_ID, Server, write};

/// What must never be shown: the key, and the Basic credentials carrying it.
fn secrets(key: &str) -> [String; 2] {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{SITE_ID}:{key}"));
    [key.to_owned(), token]
}

/// Panics if a secret is in the process's output or in any file under `dir`.
fn assert_nothing_leaks(out: &std::process::Output, dir: &Path, key: &str) {
    let mut places = vec![
        ("stdout".to_owned(), out.stdout.clone()),
        ("stderr".to_owned(), out.stderr.clone()),
    ];
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                places.push((path.display().to_string(), std::fs::read(&path).unwrap()));
            }
        }
    }
    for (place, bytes) in &places {
        let text = String::from_utf8_lossy(bytes);
        for secret in secrets(key) {
            assert!(!text.contains(&secret), "{place} holds {secret:?}:\n{text}");
        }
    }
}

const WRONG_KEY: &str = "sk-wrong-0a1b2c3d4e5f";

#[test]
fn refused_credentials_at_the_most_verbose_show_neither_key_nor_authorization() {
    let server = Server::plain();
    for extra in [&[][..], &["--no-preflight"][..]] {
        let dir = tempfile::tempdir().unwrap();
        let input = write(dir.path(), "users.csv", "id,plan\n1,pro\n2,free\n");
        let out = server
            .cmd(dir.path())
            .env("CUSTOMERIO_TRACK_API_KEY", WRONG_KEY)
            .arg(&input)
            .args(["-vv", "--summary", "summary.json"])
            .args(extra)
            .assert()
            .code(1);
        let out = out.get_output();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("401"), "{stderr}");
        assert_nothing_leaks(out, dir.path(), WRONG_KEY);
    }
    // The key did go out: the server saw it and refused it.
    assert!(server.sandbox.stats().rejected_4xx[&401] >= 2);
}

#[test]
fn failures_checkpoint_and_summary_of_a_verbose_run_hold_no_secret() {
    let server = Server::refusing();
    let dir = tempfile::tempdir().unwrap();
    // An invalid row, then records that fail until the endpoint is declared dead: the run
    // leaves a failures file, a checkpoint and a summary.
    let input = write(dir.path(), "users.csv", "id,plan\n,none\n1,a\n2,b\n3,c\n");
    let out = server
        .cmd(dir.path())
        .arg(&input)
        .args(["-vv", "--no-preflight", "--concurrency", "1"])
        .args(["--max-retries", "1", "--max-consecutive-failures", "3"])
        .args(["--summary", "summary.json"])
        .assert()
        .code(1);
    let out = out.get_output();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The verbose log is there, and so is every file: the check below has something to read.
    assert!(stderr.contains("attempt 1"), "{stderr}");
    assert!(stderr.contains("before retry"), "{stderr}");
    for file in [
        "users.failures.ndjson",
        "users.checkpoint.json",
        "summary.json",
    ] {
        assert!(dir.path().join(file).exists(), "{file}");
    }
    assert_eq!(
        common::read_ndjson(&dir.path().join("users.failures.ndjson")).len(),
        2
    );
    assert_nothing_leaks(out, dir.path(), API_KEY);
}

#[test]
fn a_key_from_a_key_file_stays_out_of_the_output_too() {
    let server = Server::plain();
    let keys = tempfile::tempdir().unwrap();
    let key_file = write(keys.path(), "key", &format!("{WRONG_KEY}\n"));
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "users.csv", "id\n1\n");
    let out = server
        .cmd(dir.path())
        .env_remove("CUSTOMERIO_TRACK_API_KEY")
        .arg(&input)
        .arg("--api-key-file")
        .arg(&key_file)
        .args(["-vv", "--no-preflight", "--summary", "-"])
        .assert()
        .code(1);
    assert_nothing_leaks(out.get_output(), dir.path(), WRONG_KEY);
}
