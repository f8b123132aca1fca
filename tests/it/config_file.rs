//! `--config FILE`, `--print-config` and `--resume=auto`, through the binary: what a file
//! gives, what the command line and the environment give instead, the mistakes a file can
//! hold (each named by its line), a printed configuration giving the same run, and a job
//! that says `--resume=auto` every time.

use crate::common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{API_KEY, SITE_ID, Server, bin, stderr, write};

const PEOPLE: &str = "email,age,vip\nana@example.com,42,true\nbo@example.com,7,false\n";

/// The requests the sandbox received after the first `from`, sorted: what a run sent,
/// whatever the order.
fn bodies(server: &Server, from: usize) -> Vec<String> {
    let sent = server.sent().into_iter().skip(from);
    let mut sent: Vec<String> = sent
        .map(|r| format!("{} {} {}", r.method, r.path, r.body.unwrap_or_default()))
        .collect();
    sent.sort();
    sent
}

/// The binary with credentials in its environment, run in `dir`.
fn credentialed(dir: &Path) -> assert_cmd::Command {
    let mut c = bin(dir);
    c.env("CUSTOMERIO_SITE_ID", SITE_ID)
        .env("CUSTOMERIO_TRACK_API_KEY", API_KEY);
    c
}

/// Runs `command`, which must end with `code` and say `says`; what it said.
fn ends(mut command: assert_cmd::Command, code: i32, says: &str) -> String {
    let out = command.output().unwrap();
    let said = stderr(&out);
    assert_eq!(out.status.code(), Some(code), "{said}");
    assert!(said.contains(says), "{said}");
    said
}

/// A folder holding job/people.csv and job/job.toml (`toml`).
fn job(toml: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("job");
    std::fs::create_dir(&job).unwrap();
    write(&job, "people.csv", PEOPLE);
    write(&job, "job.toml", toml);
    dir
}

#[test]
fn the_file_gives_flags_and_inputs_relative_to_its_folder_and_the_command_line_wins() {
    let dir = job("inputs = [\"people.csv\"]\nid-column = \"email\"\n\
         type = [\"age=number\", \"vip=bool\"]\nempty = \"clear\"\n");

    // From the folder above the file's: its paths are its folder's.
    let server = Server::plain();
    let out = server
        .cmd(dir.path())
        .args(["--config", "job/job.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let ana = server.sandbox.person("ana@example.com").unwrap();
    assert_eq!(ana["age"], 42, "{ana:?}");
    assert_eq!(ana["vip"], true, "{ana:?}");

    // A repeatable flag on the command line replaces the file's list: vip is a string now.
    let server = Server::plain();
    let out = server
        .cmd(dir.path())
        .args(["--config", "job/job.toml", "--type", "age=string"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let ana = server.sandbox.person("ana@example.com").unwrap();
    assert_eq!(ana["age"], "42", "{ana:?}");
    assert_eq!(ana["vip"], "true", "{ana:?}");
}

#[test]
fn the_environment_wins_over_the_file_and_the_file_over_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "people.csv", PEOPLE);
    let server = Server::plain();
    let endpoint = server.sandbox.base_url();
    write(
        dir.path(),
        "job.toml",
        &format!(
            "inputs = [\"people.csv\"]\nsite-id = \"{SITE_ID}\"\nendpoint = \"{endpoint}\"\n\
             batch = 1\nprogress = \"never\"\n"
        ),
    );
    // The site id from the file alone.
    let out = bin(dir.path())
        .env("CUSTOMERIO_TRACK_API_KEY", API_KEY)
        .args(["--config", "job.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // `batch = 1`: one v1 request a person.
    assert_eq!(server.sent().len(), 2, "{:?}", server.sent());

    // The environment's site id wins: the sandbox refuses it.
    let mut command = bin(dir.path());
    command
        .env("CUSTOMERIO_TRACK_API_KEY", API_KEY)
        .env("CUSTOMERIO_SITE_ID", "another-site")
        .args(["--config", "job.toml"]);
    ends(command, 1, "credentials were refused");
}

#[test]
fn a_file_mistake_is_refused_naming_its_line_and_the_fix_before_anything_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "people.csv", PEOPLE);
    // `file` as job.toml, with `args`: exit code 2, saying `says`, and nothing written.
    let refused = |file: &str, args: &[&str], says: &str| {
        write(dir.path(), "job.toml", file);
        let mut command = bin(dir.path());
        command
            .args(["people.csv", "--config", "job.toml"])
            .args(args);
        let said = ends(command, 2, says);
        assert!(!dir.path().join("people.failures.ndjson").exists());
        said
    };
    let sandbox = ["--sandbox"];
    refused(
        "rate = 20\n\nid_column = \"email\"\n",
        &sandbox,
        "job.toml line 3: unknown key id_column: did you mean id-column?",
    );
    refused(
        "# pacing\nrate = \"fast\"\n",
        &sandbox,
        "job.toml line 2: rate = \"fast\": invalid value 'fast' for '--rate <N>'",
    );
    refused(
        "dry-run = \"yes\"\n",
        &sandbox,
        "job.toml line 1: dry-run = \"yes\": give true or false",
    );
    let said = refused(
        "rate = 20\napi-key = \"sk-in-a-file\"\n",
        &sandbox,
        "job.toml line 2: api-key: the API key never goes in a config file",
    );
    assert!(said.contains("CUSTOMERIO_TRACK_API_KEY") && !said.contains("sk-in-a-file"));
    let said = refused(
        "shared-limit = \"redis://:hunter2@127.0.0.1:6379\"\n",
        &sandbox,
        "through CIO_IMPORT_SHARED_LIMIT",
    );
    assert!(!said.contains("hunter2"), "{said}");
    refused(
        "print-config = true\n",
        &sandbox,
        "job.toml line 1: print-config cannot be set in a config file",
    );
    // What clap finds wrong once the file's flags are in is the file's doing. (With
    // --dry-run on the command line, which excludes --sandbox, the file's sandbox-limit would
    // be set aside.)
    refused(
        "sandbox-limit = 5\n",
        &["--rate", "20"],
        "job.toml: the following required arguments were not provided: --sandbox",
    );
}

#[test]
fn a_nightly_job_from_another_folder_writes_its_files_where_the_file_says() {
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("job");
    std::fs::create_dir_all(job.join("out")).unwrap();
    write(&job, "people.csv", "email,age\nana@example.com,forty\n");
    write(
        &job,
        "job.toml",
        "inputs = [\"people.csv\"]\ntype = [\"age=number\"]\nsandbox = true\n\
         failures = \"out/people.failures.ndjson\"\nsummary = \"out/summary.json\"\n",
    );
    let elsewhere = tempfile::tempdir().unwrap();
    let out = bin(elsewhere.path())
        .args(["--config", job.join("job.toml").to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let failures = std::fs::read_to_string(job.join("out/people.failures.ndjson")).unwrap();
    assert!(
        failures.contains("is not a number (--type age=number)"),
        "{failures}"
    );
    assert!(job.join("out/summary.json").exists());
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);
}

#[test]
fn the_printed_configuration_given_back_makes_the_same_run() {
    let dir = job(
        "inputs = [\"people.csv\"]\ntype = [\"age=number\"]\nid-column = \"email\"\n\
         rate = 30\nverbose = 1\nresume = \"auto\"\n",
    );
    let server = Server::plain();
    let given = [
        "--config",
        "job/job.toml",
        "--type",
        "vip=bool",
        "--batch",
        "2",
    ];
    let printing = |mut command: assert_cmd::Command| {
        let out = command.arg("--print-config").output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    let mut command = server.cmd(dir.path());
    command.args(given);
    let printed = printing(command);
    assert!(printed.contains("\ntype = [\"vip=bool\"]\n"), "{printed}");
    assert!(printed.contains("\nid-column = \"email\"\n"), "{printed}");
    assert!(printed.contains("\nbatch = 2\n"), "{printed}");
    assert!(printed.contains("\nverbose = 1\n"), "{printed}");
    assert!(printed.contains("\n# burst = 1\n"), "{printed}");
    // From the environment: named, not written (the key never is).
    assert!(
        printed.contains("# site-id: from $CUSTOMERIO_SITE_ID"),
        "{printed}"
    );
    assert!(
        !printed.contains(SITE_ID) && !printed.contains(API_KEY),
        "{printed}"
    );
    // Printing reads no input and writes nothing.
    assert!(!dir.path().join("people.failures.ndjson").exists());

    // Saved elsewhere (its paths are absolute), then given back: the same configuration...
    let elsewhere = tempfile::tempdir().unwrap();
    let saved = write(elsewhere.path(), "printed.toml", &printed);
    let saved = ["--config", saved.to_str().unwrap()];
    let mut command = credentialed(elsewhere.path());
    command.args(saved);
    let again = printing(command);
    let body = |text: &str| text.lines().skip(1).collect::<Vec<_>>().join("\n");
    assert_eq!(body(&again), body(&printed));

    // ...and the same requests.
    let out = server.cmd(dir.path()).args(given).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let first = bodies(&server, 0);
    let out = credentialed(elsewhere.path()).args(saved).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(bodies(&server, first.len()), first);
    // The command line's --type replaced the file's: age is a string, vip a boolean.
    assert!(first[0].contains(r#""age":"42","vip":true"#), "{first:?}");
}

#[test]
fn a_password_in_a_shared_limit_url_is_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin(dir.path())
        .args(["users.csv", "--sandbox", "--print-config"])
        .args(["--shared-limit", "redis://:hunter2@127.0.0.1:6379"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let printed = String::from_utf8(out.stdout).unwrap();
    assert!(!printed.contains("hunter2"), "{printed}");
    assert!(
        printed.contains("# shared-limit = \"redis://:***@127.0.0.1:6379\": holds a password"),
        "{printed}"
    );
}

const N: usize = 300;

/// The binary importing users.csv with `--resume=auto` against `server`, in the background.
fn auto(server: &Server, dir: &Path, extra: &[&str]) -> Child {
    common::killable(dir, &server.sandbox.base_url())
        .args(["users.csv", "--rate", "100", "--batch", "1"])
        .arg("--resume=auto")
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finished(child: Child) -> String {
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    stderr(&out)
}

/// Identifies the sandbox accepted.
fn accepted(server: &Server) -> usize {
    let sent = server.sandbox.requests();
    sent.iter()
        .filter(|r| r.method == "PUT" && r.status == Some(200))
        .count()
}

fn users(dir: &Path) {
    let mut text = String::from("id,plan\n");
    for i in 0..N {
        text.push_str(&format!("{i},p{i}\n"));
    }
    write(dir, "users.csv", &text);
}

/// Runs [`auto`] against a slow sandbox and kills it once 100 people are in: it leaves a
/// checkpoint, as a crash does. The sandbox, with what it received.
fn killed_part_way(dir: &Path, extra: &[&str]) -> Server {
    let server = Server::slow();
    let mut child = auto(&server, dir, extra);
    let deadline = Instant::now() + Duration::from_secs(60);
    while accepted(&server) < 100 {
        assert!(Instant::now() < deadline, "the import made no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(dir.join("users.checkpoint.json").exists());
    server
}

#[test]
fn resume_auto_starts_fresh_without_a_checkpoint_and_carries_on_from_one() {
    let dir = tempfile::tempdir().unwrap();
    users(dir.path());

    // No checkpoint: a fresh run, which says so.
    let server = Server::plain();
    let said = finished(auto(&server, dir.path(), &["--rate", "1000"]));
    assert!(
        said.contains("--resume=auto: no checkpoint at users.checkpoint.json"),
        "{said}"
    );
    assert_eq!(accepted(&server), N);

    // A run killed part-way leaves a checkpoint, which the next one carries on from.
    let server = killed_part_way(dir.path(), &[]);
    let before = accepted(&server);
    let said = finished(auto(&server, dir.path(), &["--rate", "1000"]));
    assert!(
        said.contains("carrying on from the checkpoint users.checkpoint.json"),
        "{said}"
    );
    assert_eq!(server.sandbox.people_count(), N);
    // Sent again at most: what was in flight or queued at the kill.
    let resent = accepted(&server) - N;
    assert!(resent <= 60, "{resent} sent twice");
    assert!(accepted(&server) - before < N);
}

#[test]
fn resume_auto_starts_over_when_the_checkpoint_is_of_another_run() {
    let dir = tempfile::tempdir().unwrap();
    users(dir.path());
    killed_part_way(dir.path(), &["--id-type", "id", "--id-column", "id"]);
    // Other mapping flags: this run cannot carry that one on, so it sends everything.
    let server = Server::plain();
    let said = finished(auto(&server, dir.path(), &["--rate", "1000"]));
    assert!(
        said.contains("--resume=auto: the checkpoint users.checkpoint.json is of another run"),
        "{said}"
    );
    assert!(said.contains("starting over, and replacing it"), "{said}");
    assert_eq!(accepted(&server), N);
}

#[test]
fn a_bare_resume_still_takes_the_next_word_as_an_input() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "users.csv", "id\n1\n");
    let mut command = bin(dir.path());
    command.args(["--resume", "users.csv", "--sandbox"]);
    ends(
        command,
        1,
        "--resume: there is no checkpoint at users.checkpoint.json",
    );
    let mut command = bin(dir.path());
    command.args(["users.csv", "--sandbox", "--resume", "auto"]);
    ends(command, 2, "write --resume=auto");
}

#[test]
fn the_readme_shows_the_config_fixture_as_it_is() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let fixture = std::fs::read_to_string(root.join("fixtures/nightly.toml")).unwrap();
    assert!(
        readme.contains(&format!("```toml\n{fixture}```\n")),
        "README.md's example config file differs from fixtures/nightly.toml"
    );
}

/// Each export shape of fixtures/ imports through its config file as the README says: what
/// the sandbox received holds Customer.io's names and the values read as the export wrote
/// them.
#[test]
fn each_export_fixture_imports_through_its_config_file() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let cases: [(&str, usize, &[&str], &[&str]); 6] = [
        (
            "hubspot-contacts",
            3,
            // 2024-03-05 14:03:00 in New York (EST) is 19:03 UTC.
            &[
                r#""id":"1001""#,
                r#""created_at":1709665380"#,
                r#""email":"ann.lee@example.com""#,
                r#""lifecycle_stage":"lead""#,
            ],
            &["Contact owner", "Record ID", "Sam Smith"],
        ),
        (
            "mailchimp-members",
            2,
            &[
                r#""email":"ann.lee@example.com""#,
                r#""OPTIN_TIME":1709647380"#,
                r#""MEMBER_RATING":2"#,
            ],
            &["LEID", "EUID", "NOTES", "met at the fair"],
        ),
        (
            "segment-tracks",
            3,
            &[
                r#""name":"Order Completed""#,
                r#""id":"u-1001""#,
                r#""revenue":42.5"#,
                r#""anonymous_id":"9c8b7a6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d""#,
                // Its messageId, made a ULID: the same one every night.
                r#""id":"0T5R2S0TEZXG8R4J05426YAT0P""#,
            ],
            &["messageId", "analytics.js", "properties"],
        ),
        (
            "excel-export",
            2,
            &[r#""city":"Zürich""#, r#""city":"São Paulo""#],
            &["sep="],
        ),
        (
            "shopify-customers",
            3,
            &[
                r#""id":"7012345678""#,
                r#""phone":"+44 20 7946 0958""#,
                r#""Tags":["vip","wholesale"]"#,
                r#""Total Spent":1853.93"#,
                r#""first_name":"Ada""#,
            ],
            &["'7012345678", "First Name"],
        ),
        (
            "stripe-payments",
            3,
            &[
                r#""name":"payment""#,
                r#""timestamp":1681308180"#,
                r#""Amount":1853.93"#,
                r#""captured_ms":1681308180"#,
            ],
            &[],
        ),
    ];
    for (name, records, has, lacks) in cases {
        let server = Server::plain();
        let dir = tempfile::tempdir().unwrap();
        let config = fixtures.join(format!("{name}.toml"));
        let out = server
            .cmd(dir.path())
            .arg("--config")
            .arg(&config)
            // In batches: every kind's body names its identifiers the same way.
            .args(["--batch", "100"])
            .output()
            .unwrap();
        let said = stderr(&out);
        assert_eq!(out.status.code(), Some(0), "{name}: {said}");
        assert!(
            said.contains(&format!("{records} records")),
            "{name}: {said}"
        );
        let sent = bodies(&server, 0).join("\n");
        for text in has {
            assert!(sent.contains(text), "{name}: no {text} in {sent}");
        }
        for text in lacks {
            assert!(!sent.contains(text), "{name}: {text} in {sent}");
        }
    }
}

#[test]
fn a_password_in_an_endpoint_is_masked_and_told_to_stay_on_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin(dir.path())
        .args(["users.csv", "--print-config"])
        .args(["--endpoint", "https://user:hunter2@proxy.example.com"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let printed = String::from_utf8(out.stdout).unwrap();
    assert!(!printed.contains("hunter2"), "{printed}");
    assert!(!printed.contains("through $"), "{printed}");
    assert!(
        printed.contains("holds a password, so give it on the command line"),
        "{printed}"
    );
}

#[test]
fn the_command_line_sets_aside_a_file_flag_it_excludes_and_a_file_value_is_named_by_its_line() {
    // The file's --dry-run gives way to --sandbox, and its --sandbox to --dry-run.
    let dir = job("inputs = [\"people.csv\"]\ndry-run = true\n");
    let mut sandbox = bin(dir.path());
    sandbox.args(["--config", "job/job.toml", "--sandbox"]);
    ends(sandbox, 0, "cio-import: sandbox: 2 people stored");
    // So does its --show, which goes only with --dry-run.
    let dir = job("inputs = [\"people.csv\"]\ndry-run = true\nshow = 1\n");
    let mut sandbox = bin(dir.path());
    sandbox.args(["--config", "job/job.toml", "--sandbox"]);
    ends(sandbox, 0, "cio-import: sandbox: 2 people stored");
    let dir = job("inputs = [\"people.csv\"]\nsandbox = true\n");
    let mut dry = bin(dir.path());
    dry.args(["--config", "job/job.toml", "--dry-run"]);
    ends(dry, 0, "2 records in");

    // A value the file gave, refused by a later check, is named by the file's line.
    let dir = job("inputs = [\"people.csv\"]\nid-column = \"email\"\nrate = 1e-20\n");
    let mut rate = bin(dir.path());
    rate.args(["--config", "job/job.toml", "--dry-run"]);
    let toml = Path::new("job").join("job.toml");
    let toml = toml.display();
    ends(
        rate,
        2,
        &format!("error: {toml} line 3: --rate must be from 0.01 to 100000"),
    );
    let dir = job("inputs = [\"people.csv\"]\ntype = [\"vip=bool\", \"agee=number\"]\n");
    let mut typed = bin(dir.path());
    typed.args(["--config", "job/job.toml", "--dry-run"]);
    ends(
        typed,
        2,
        &format!("error: {toml} line 2: --type agee=number: no input has a column \"agee\""),
    );
}
