//! Shared test plumbing: a sandbox on 127.0.0.1:0 in a runtime of its own, and the binary
//! pointed at it.
#![allow(dead_code)] // each test crate uses its own share of these helpers

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use cio_import::sandbox::{Sandbox, SandboxOptions};

pub const SITE_ID: &str = "test-site";
pub const API_KEY: &str = "sk-test-9f8e7d6c5b4a";

/// A running sandbox; it stops when dropped.
pub struct Server {
    pub sandbox: Sandbox,
    // Declared after the sandbox so it outlives it while dropping.
    _rt: tokio::runtime::Runtime,
}

impl Server {
    pub fn start(opts: SandboxOptions) -> Server {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let sandbox = rt
            .block_on(Sandbox::start(SandboxOptions {
                site_id: SITE_ID.into(),
                api_key: API_KEY.into(),
                keep_requests: true,
                ..opts
            }))
            .unwrap();
        Server { sandbox, _rt: rt }
    }

    /// A sandbox with no rate limit and no misbehaviour.
    pub fn plain() -> Server {
        Server::start(SandboxOptions {
            limit: None,
            ..SandboxOptions::default()
        })
    }

    /// The binary, credentials in its environment, aimed at this server, run in `dir`.
    pub fn cmd(&self, dir: &Path) -> Command {
        let mut c = bin(dir);
        c.env("CUSTOMERIO_SITE_ID", SITE_ID)
            .env("CUSTOMERIO_TRACK_API_KEY", API_KEY)
            .arg("--endpoint")
            .arg(self.sandbox.base_url())
            .args(["--rate", "1000", "--progress", "never"]);
        c
    }
}

/// The binary with a clean environment, run in `dir`.
pub fn bin(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("cio-import").unwrap();
    c.current_dir(dir)
        .env_remove("CUSTOMERIO_SITE_ID")
        .env_remove("CUSTOMERIO_TRACK_API_KEY")
        .env("NO_COLOR", "1")
        .timeout(std::time::Duration::from_secs(120));
    c
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// The failures file's lines as JSON.
pub fn read_ndjson(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
