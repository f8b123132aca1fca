//! The committed completion scripts and man page in completions/ match what the binary
//! generates. When the command line changes, regenerate them with:
//!
//!     UPDATE_GENERATED=1 cargo test --test it generated::

use std::path::{Path, PathBuf};

use cio_import::cli;
use clap_complete::Shell;

/// Each committed file, and how the binary writes it.
fn generated() -> Vec<(&'static str, Vec<u8>)> {
    let completion = |shell| {
        let mut out = Vec::new();
        cli::write_completions(shell, &mut out).unwrap();
        out
    };
    let mut man = Vec::new();
    cli::write_man_page(&mut man).unwrap();
    vec![
        ("cio-import.bash", completion(Shell::Bash)),
        ("_cio-import", completion(Shell::Zsh)),
        ("cio-import.fish", completion(Shell::Fish)),
        ("_cio-import.ps1", completion(Shell::PowerShell)),
        ("cio-import.elv", completion(Shell::Elvish)),
        ("cio-import.1", man),
    ]
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("completions")
}

#[test]
fn committed_completions_and_man_page_are_up_to_date() {
    let update = std::env::var_os("UPDATE_GENERATED").is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    for (name, fresh) in generated() {
        let path = dir().join(name);
        if std::fs::read(&path).ok().as_deref() == Some(fresh.as_slice()) {
            continue;
        }
        if update {
            std::fs::write(&path, &fresh).unwrap();
        } else {
            stale.push(name);
        }
    }
    assert!(
        stale.is_empty(),
        "completions/{{{}}} differ from what the command line generates; regenerate them with\n\n    \
         UPDATE_GENERATED=1 cargo test --test it generated::\n\nand commit the result",
        stale.join(",")
    );
}

#[test]
fn the_binary_prints_the_same_files() {
    // The flags users run (`--completions SHELL`, `--man`) print exactly what is committed.
    for (name, arg) in [
        ("cio-import.bash", ["--completions", "bash"].as_slice()),
        ("_cio-import", &["--completions", "zsh"]),
        ("cio-import.fish", &["--completions", "fish"]),
        ("_cio-import.ps1", &["--completions", "powershell"]),
        ("cio-import.elv", &["--completions", "elvish"]),
        ("cio-import.1", &["--man"]),
    ] {
        // With the site id in the environment, as users of the tool have it.
        let out = assert_cmd::Command::cargo_bin("cio-import")
            .unwrap()
            .env("CUSTOMERIO_SITE_ID", "site")
            .args(arg)
            .output()
            .unwrap();
        assert!(out.status.success(), "{arg:?}: {out:?}");
        let expected = generated().into_iter().find(|(n, _)| *n == name).unwrap().1;
        assert!(
            out.stdout == expected,
            "{arg:?} prints something else than completions/{name}"
        );
    }
}
