//! Exit codes: the one list of what the process can end with.

/// How a run ends. The numbers are part of the interface: scripts branch on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Every record was accepted (or, with `--dry-run`, every record is valid).
    Success,
    /// A fatal problem: setup, I/O, credentials, an input broken as a whole, or a dead endpoint.
    Fatal,
    /// The command line is wrong, found by clap or against the inputs (a file, or a column a
    /// flag names, that is not there).
    Usage,
    /// The run finished, but some records failed or were invalid: see the failures file.
    Partial,
    /// The `--shared-limit` Redis stayed unreachable past `--shared-limit-timeout`: nothing
    /// was sent unpaced, the checkpoint is kept.
    SharedLimitLost,
    /// Stopped by a signal; `--resume` carries on. The code is the shell's for a process the
    /// signal killed: 128 + its number.
    Stopped(Signal),
}

/// A signal that stops a run: the first one drains it, a second kills the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGHUP: the terminal or the ssh session went away.
    HangUp,
    /// SIGINT: Ctrl-C.
    Interrupt,
    /// SIGTERM: `kill`, a service manager, a CI timeout.
    Terminate,
}

impl Signal {
    pub const ALL: [Signal; 3] = [Signal::HangUp, Signal::Interrupt, Signal::Terminate];

    /// Its number, the same on every POSIX system (`kill -1`, `-2`, `-15`).
    pub const fn number(self) -> u8 {
        match self {
            Signal::HangUp => 1,
            Signal::Interrupt => 2,
            Signal::Terminate => 15,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Signal::HangUp => "SIGHUP",
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
        }
    }
}

impl Exit {
    pub const fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Fatal => 1,
            Exit::Usage => 2,
            Exit::Partial => 3,
            Exit::SharedLimitLost => 4,
            Exit::Stopped(signal) => 128 + signal.number(),
        }
    }

    pub const ALL: [Exit; 8] = [
        Exit::Success,
        Exit::Fatal,
        Exit::Usage,
        Exit::Partial,
        Exit::SharedLimitLost,
        Exit::Stopped(Signal::HangUp),
        Exit::Stopped(Signal::Interrupt),
        Exit::Stopped(Signal::Terminate),
    ];

    pub const fn meaning(self) -> &'static str {
        match self {
            Exit::Success => "every record accepted (with --dry-run: every record valid)",
            Exit::Fatal => "fatal: setup, I/O, credentials, broken input, dead endpoint",
            Exit::Usage => {
                "usage: a flag or argument is wrong, or names a file or column that is not there"
            }
            Exit::Partial => {
                "finished, but some records failed or were invalid (see the failures file)"
            }
            Exit::SharedLimitLost => {
                "the --shared-limit Redis stayed unreachable; run again with --resume"
            }
            Exit::Stopped(Signal::HangUp) => {
                "stopped by SIGHUP (the terminal or ssh session closed); run again with --resume"
            }
            Exit::Stopped(Signal::Interrupt) => {
                "interrupted by Ctrl-C (SIGINT); run again with --resume"
            }
            Exit::Stopped(Signal::Terminate) => "stopped by SIGTERM; run again with --resume",
        }
    }

    /// The table printed at the end of `--help`.
    pub fn help_table() -> String {
        let mut s = String::from("Exit codes:\n");
        for e in Exit::ALL {
            s.push_str(&format!("  {:>3}  {}\n", e.code(), e.meaning()));
        }
        s
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_and_distinct() {
        let codes: Vec<u8> = Exit::ALL.iter().map(|e| e.code()).collect();
        assert_eq!(codes, [0, 1, 2, 3, 4, 129, 130, 143]);
        for signal in Signal::ALL {
            assert!(Exit::ALL.contains(&Exit::Stopped(signal)));
        }
    }

    #[cfg(unix)]
    #[test]
    fn signal_numbers_are_the_systems() {
        for (signal, number) in
            Signal::ALL
                .into_iter()
                .zip([libc::SIGHUP, libc::SIGINT, libc::SIGTERM])
        {
            assert_eq!(i32::from(signal.number()), number, "{}", signal.name());
        }
    }

    #[test]
    fn help_table_lists_every_code() {
        let t = Exit::help_table();
        for e in Exit::ALL {
            assert!(
                t.contains(&format!("{:>3}  {}", e.code(), e.meaning())),
                "{t}"
            );
        }
    }
}
