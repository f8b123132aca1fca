//! The one place output reaches stderr and stdout: messages, each with the program's prefix,
//! the `--summary -` JSON, the completions and the man page. Output that cannot be written
//! (stderr closed, a pipe whose reader left) never panics or stops the run: the message is
//! dropped and the import goes on to its true exit code.

use std::io::Write as _;

/// The prefix of every message.
pub const PROGRAM: &str = "cio-import";

/// `cio-import: {text}`.
pub fn say(text: impl std::fmt::Display) {
    line(format_args!("{PROGRAM}: {text}"));
}

/// `cio-import: warning: {text}`.
pub fn warning(text: impl std::fmt::Display) {
    line(format_args!("{PROGRAM}: warning: {text}"));
}

/// `cio-import: error: {text}`.
pub fn error(text: impl std::fmt::Display) {
    line(format_args!("{PROGRAM}: error: {text}"));
}

fn line(args: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "{args}");
}

/// Writes `text` and a newline to stdout (`--summary -`), dropping it if stdout is closed.
pub fn to_stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}").and_then(|()| out.flush());
}

/// Writes what `write` makes to stdout (`--completions`, `--man`). A reader that left early
/// (`| head`) wanted no more, which is no error; any other failure is.
pub fn print(
    write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match write(&mut out).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        written => written,
    }
}
