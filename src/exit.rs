//! Exit codes: the one list of what the process can end with.

/// How a run ends. The numbers are part of the interface: scripts branch on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Every record was accepted (or, with `--dry-run`, every record is valid).
    Success,
    /// A fatal problem: setup, I/O, credentials, an input broken as a whole, or a dead endpoint.
    Fatal,
    /// The command line is wrong (clap uses this code too).
    Usage,
    /// The run finished, but some records failed or were invalid: see the failures file.
    Partial,
    /// The `--shared-limit` Redis stayed unreachable past `--shared-limit-timeout`: nothing
    /// was sent unpaced, the checkpoint is kept.
    SharedLimitLost,
    /// Interrupted by Ctrl-C or SIGTERM; `--resume` carries on.
    Interrupted,
}

impl Exit {
    pub const fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Fatal => 1,
            Exit::Usage => 2,
            Exit::Partial => 3,
            Exit::SharedLimitLost => 4,
            Exit::Interrupted => 130,
        }
    }

    pub const ALL: [Exit; 6] = [
        Exit::Success,
        Exit::Fatal,
        Exit::Usage,
        Exit::Partial,
        Exit::SharedLimitLost,
        Exit::Interrupted,
    ];

    pub const fn meaning(self) -> &'static str {
        match self {
            Exit::Success => "every record accepted (with --dry-run: every record valid)",
            Exit::Fatal => "fatal: setup, I/O, credentials, broken input, dead endpoint",
            Exit::Usage => "usage: a flag or argument is wrong",
            Exit::Partial => {
                "finished, but some records failed or were invalid (see the failures file)"
            }
            Exit::SharedLimitLost => {
                "the --shared-limit Redis stayed unreachable; run again with --resume"
            }
            Exit::Interrupted => "interrupted (Ctrl-C or SIGTERM); run again with --resume",
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
        assert_eq!(codes, [0, 1, 2, 3, 4, 130]);
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
