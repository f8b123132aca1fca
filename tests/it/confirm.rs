//! The confirmation of a run that cannot be undone, as a person meets it: the binary on a
//! pseudo-terminal asks, and goes on only when the action's name is typed.
#![cfg(unix)]

use crate::common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::{API_KEY, SITE_ID, Server};
use portable_pty::{CommandBuilder, PtySize, native_pty_system};

/// Runs `--action delete` of two people on a terminal against `server`, typing `answer` once
/// asked; returns what the terminal showed and the exit code.
fn delete_answering(server: &Server, answer: &str) -> (String, u32) {
    let dir = tempfile::tempdir().unwrap();
    common::write(dir.path(), "gone.csv", "id\n1\n2\n");
    let pty = native_pty_system()
        .openpty(PtySize {
            rows: 24,
            cols: 200,
            pixel_width: 0,
            pixel_height: 0,
        })
        .unwrap();
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_cio-import"));
    cmd.args(["gone.csv", "--action", "delete", "--progress", "never"]);
    cmd.args(["--endpoint", &server.sandbox.base_url()]);
    cmd.env("CUSTOMERIO_SITE_ID", SITE_ID);
    cmd.env("CUSTOMERIO_TRACK_API_KEY", API_KEY);
    cmd.env("NO_COLOR", "1");
    cmd.cwd(dir.path());
    let mut child = pty.slave.spawn_command(cmd).unwrap();
    drop(pty.slave);
    let mut reader = pty.master.try_clone_reader().unwrap();
    let mut writer = pty.master.take_writer().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut chunk = [0u8; 1024];
        // Linux answers EIO once the child has gone.
        while let Ok(n @ 1..) = reader.read(&mut chunk) {
            let _ = tx.send(chunk[..n].to_vec());
        }
    });
    let mut shown = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut answered = false;
    let status = loop {
        while let Ok(chunk) = rx.try_recv() {
            shown.extend(chunk);
        }
        if !answered && String::from_utf8_lossy(&shown).contains("anything else stops") {
            writer.write_all(format!("{answer}\r").as_bytes()).unwrap();
            answered = true;
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "no end: {}",
            String::from_utf8_lossy(&shown)
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    std::thread::sleep(Duration::from_millis(100));
    while let Ok(chunk) = rx.try_recv() {
        shown.extend(chunk);
    }
    (
        String::from_utf8_lossy(&shown).into_owned(),
        status.exit_code(),
    )
}

#[test]
fn a_delete_goes_only_once_its_name_is_typed() {
    let server = Server::plain();
    let (shown, code) = delete_answering(&server, "yes");
    assert!(
        shown.contains("--action delete deletes each person in gone.csv from workspace")
            && shown.contains("cannot be undone. Type delete and Enter to go on"),
        "{shown}"
    );
    assert_eq!(code, 2, "{shown}");
    assert!(
        shown.contains("not confirmed (delete was not typed): nothing was sent"),
        "{shown}"
    );
    assert!(server.sandbox.requests().is_empty());

    let (shown, code) = delete_answering(&server, "delete");
    assert_eq!(code, 0, "{shown}");
    assert_eq!(server.sandbox.stats().deleted, 2);
}
