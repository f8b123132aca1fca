//! Every command in README.md, and every example at the end of `--help`, runs here against
//! the sandbox (or as a dry run), so neither can drift from what the binary does. The rules
//! are spelt out in README.md, "How this README is tested"; they are all in this file.
#![cfg(unix)]

use crate::common;

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use cio_import::sandbox::SandboxOptions;
use cio_import::track::Region;
use common::{API_KEY, SITE_ID, Server, read_ndjson};
use serde_json::Value;

/// A command to run, and the exit code it must end with.
#[derive(Debug)]
struct Line {
    command: String,
    code: i32,
}

/// The lines of the README's `sh` blocks, rewritten by the rules.
fn readme_lines() -> Vec<Line> {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let mut lines = Vec::new();
    let mut in_sh = false;
    for text in readme.lines() {
        match text.trim() {
            "```sh" => in_sh = true,
            "```" => in_sh = false,
            _ if in_sh => lines.extend(parse(text)),
            _ => {}
        }
    }
    lines
}

/// `command  # exit code N: why` → the command and N (0 when not given); None for a line
/// that is not run.
fn parse(text: &str) -> Option<Line> {
    let (command, comment) = text.split_once("  #").unwrap_or((text, ""));
    let command = command.trim();
    // `cargo test` is what runs this; `export` lines set credentials the test sets itself.
    if command.is_empty() || command == "cargo test" || command.starts_with("export ") {
        return None;
    }
    let command = match command.strip_prefix("cargo run --release -- ") {
        Some(args) => format!("cio-import {args}"),
        None => command.to_owned(),
    };
    let code = comment
        .trim()
        .strip_prefix("exit code ")
        .map(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().unwrap()
        })
        .unwrap_or(0);
    Some(Line { command, code })
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A temporary directory laid out as the README assumes, with `cio-import` on PATH, and the
/// two sandboxes a sending command is aimed at.
struct Bench {
    dir: tempfile::TempDir,
    us: Server,
    eu: Server,
}

impl Bench {
    fn new() -> Bench {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for sub in ["fixtures", "completions", ".bin"] {
            std::fs::create_dir(root.join(sub)).unwrap();
        }
        for entry in std::fs::read_dir(repo().join("fixtures")).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap();
            std::fs::copy(&path, root.join("fixtures").join(name)).unwrap();
            std::fs::copy(&path, root.join(name)).unwrap();
        }
        for entry in std::fs::read_dir(repo().join("completions")).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(
                &path,
                root.join("completions").join(path.file_name().unwrap()),
            )
            .unwrap();
        }
        // `cio-import` runs the binary under test, plus the arguments the test adds to aim
        // a line at a sandbox.
        let wrapper = root.join(".bin/cio-import");
        std::fs::write(
            &wrapper,
            "#!/bin/sh\nexec \"$CIO_IMPORT_BIN\" \"$@\" $CIO_IMPORT_EXTRA\n",
        )
        .unwrap();
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let unlimited = |region| SandboxOptions {
            limit: None,
            region,
            ..SandboxOptions::default()
        };
        Bench {
            dir,
            us: Server::start(unlimited(Region::Us)),
            eu: Server::start(unlimited(Region::Eu)),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The arguments that aim `command` at a sandbox: a line that would send to Customer.io
    /// goes to the US sandbox, or the EU one with `--region eu`.
    fn extra(&self, command: &str) -> String {
        let local = ["--sandbox", "--dry-run", "--completions", "--man", "--help"];
        if !command.contains("cio-import") || local.iter().any(|f| command.contains(f)) {
            return String::new();
        }
        let server = if command.contains("--region eu") {
            &self.eu
        } else {
            &self.us
        };
        format!("--endpoint {}", server.sandbox.base_url())
    }

    fn bash(&self, command: &str, extra: &str) -> Command {
        let path = format!(
            "{}:{}",
            self.path().join(".bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut c = Command::new("bash");
        c.args(["-c", command])
            .current_dir(self.path())
            .env("PATH", path)
            .env("HOME", self.path())
            .env("NO_COLOR", "1")
            .env("CIO_IMPORT_BIN", env!("CARGO_BIN_EXE_cio-import"))
            .env("CIO_IMPORT_EXTRA", extra)
            .env("CUSTOMERIO_SITE_ID", SITE_ID)
            .env("CUSTOMERIO_TRACK_API_KEY", API_KEY);
        c
    }

    /// Runs one line (after the interrupted run a `--resume` line needs) and checks its exit
    /// code.
    fn run(&self, line: &Line) {
        if line.command.contains("--resume") {
            self.interrupt(&line.command.replace(" --resume", ""));
        }
        let out = self
            .bash(&line.command, &self.extra(&line.command))
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(line.code),
            "`{}` should exit {}\n{}",
            line.command,
            line.code,
            show(&out)
        );
    }

    /// Runs `command` slowly and stops it with SIGINT part-way, as Ctrl-C would, leaving a
    /// checkpoint for `--resume`.
    fn interrupt(&self, command: &str) {
        let extra = format!("{} --rate 2 --batch 1", self.extra(command));
        let mut child = self
            .bash(command, &extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        // The whole group: bash, and the binary it runs.
        let group = -i32::try_from(child.id()).unwrap();
        assert_eq!(unsafe { libc::kill(group, libc::SIGINT) }, 0);
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "`{command}` ignored SIGINT");
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert_eq!(
            status.code(),
            Some(130),
            "`{command}` interrupted:\n{stderr}"
        );
        let checkpoints = std::fs::read_dir(self.path())
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                name.to_string_lossy().ends_with(".checkpoint.json")
            })
            .count();
        assert!(checkpoints > 0, "`{command}` left no checkpoint");
    }
}

fn show(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn every_readme_command_runs_as_documented() {
    let lines = readme_lines();
    // The blocks above hold this many commands; a parsing slip would silently run fewer.
    assert!(lines.len() >= 20, "{lines:#?}");
    let bench = Bench::new();
    let dir = bench.path();
    // Each failures file as it last was: a later line may move it aside (a run without
    // --resume renames the one an earlier run of the same input left).
    let mut failures: HashMap<String, Vec<Value>> = HashMap::new();
    for line in &lines {
        bench.run(line);
        for entry in std::fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            if name.contains(".failures") {
                failures.insert(name.clone(), read_ndjson(&dir.join(&name)));
            }
        }
    }

    // What "The failures file" says of the files those commands wrote.
    let invalid = &failures["signups.failures.ndjson"];
    assert_eq!(invalid.len(), 3, "{invalid:#?}");
    for line in invalid {
        let error = &line["_error"];
        assert_eq!(error["stage"], "invalid");
        assert_eq!(error["source"], "signups.csv");
        assert!(error["line"].is_u64() && error["message"].is_string());
        assert!(error["column"].is_string(), "{line}");
        // The raw columns, as strings.
        assert!(line["first_name"].is_string() && line["age"].is_string());
    }
    assert_eq!(failures["signups.failures-2.ndjson"].len(), 3);
    let sent = &failures["users.failures.ndjson"];
    assert_eq!(sent.len(), 8);
    for line in sent {
        let error = &line["_error"];
        assert_eq!(error["stage"], "send");
        assert_eq!(error["status"], 503);
        assert_eq!(error["attempts"], 1);
        assert_eq!(line["type"], "person");
        assert_eq!(line["action"], "identify");
        assert!(line["identifiers"]["id"].is_string(), "{line}");
    }
    // The lines that send reached the sandboxes.
    assert!(bench.us.sandbox.is_suppressed("1008"));
    // Each kind's example reached the sandbox, none of its operations refused.
    let stats = bench.us.sandbox.stats();
    assert_eq!(stats.invalid_ops, 0, "{}", bench.us.sandbox.summary_line());
    assert!(stats.page_views > 0 && stats.screen_views > 0, "{stats:?}");
    assert_eq!((stats.objects, stats.merges), (2, 2), "{stats:?}");
    // Devices and relationships were the suppressed people's, and went with them.
    let actions: std::collections::HashSet<String> = bench
        .us
        .sandbox
        .requests()
        .iter()
        .filter_map(|r| r.body.as_ref()?.get("batch")?.as_array().cloned())
        .flatten()
        .filter_map(|op| op["action"].as_str().map(str::to_owned))
        .collect();
    for action in ["add_device", "add_relationships", "merge", "page", "screen"] {
        assert!(actions.contains(action), "{action}: {actions:?}");
    }
    assert!(bench.us.sandbox.person("+14155552671").is_some());
    assert!(bench.us.sandbox.person("ada@example.com").is_some());
    assert!(bench.eu.sandbox.person("1001").is_some());
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["exit_code"], 0);
}

#[test]
fn every_help_example_runs() {
    let bench = Bench::new();
    // What the examples assume is there: a gzipped copy of users.csv, and a failures file
    // (made just before the replay: a run of users.csv renames the one before).
    bench.run(&Line {
        command: "gzip -k users.csv".into(),
        code: 0,
    });
    for (command, _) in cio_import::cli::EXAMPLES {
        let replay = command.contains("failures.ndjson");
        if replay {
            bench.run(&Line {
                command: "cio-import signups.csv --dry-run --failures users.failures.ndjson".into(),
                code: 3,
            });
        }
        // The replayed failures are invalid rows (no identifier), still invalid: exit 3.
        let code = if replay { 3 } else { 0 };
        bench.run(&Line {
            command: command.to_owned(),
            code,
        });
    }
    assert!(bench.us.sandbox.person("1001").is_some());
    assert!(bench.eu.sandbox.person("1001").is_some());
}
