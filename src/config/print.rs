//! `--print-config`: the configuration an invocation would run with, as a `--config` file
//! that gives the same run: the flags the file and the command line set, the defaults as
//! comments, what the environment gives named but not written, no secret.

use std::ffi::OsStr;
use std::fmt::Write as _;

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, CommandFactory, ValueHint};
use toml::Value;

use super::file::{Args, COMMAND_LINE_ONLY};
use crate::cli::Cli;

impl Args {
    /// The configuration as TOML, for `--config`.
    pub fn to_toml(&self) -> String {
        let mut command = Cli::command();
        command.build();
        let m = &self.matches;
        let from = match &self.file {
            Some(file) => format!("{} and the command line", file.display()),
            None => "the command line".to_owned(),
        };
        let mut out = format!(
            "# The configuration of this cio-import command ({from}), for --config FILE.\n\
             # Paths are absolute; defaults are commented out; the API key is never written.\n"
        );
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            if COMMAND_LINE_ONLY.contains(&id) {
                continue;
            }
            let key = arg.get_long().unwrap_or(id);
            let env = arg
                .get_env()
                .map(OsStr::to_string_lossy)
                .unwrap_or_default();
            let _ = match m.value_source(id) {
                Some(ValueSource::EnvVariable) => writeln!(
                    out,
                    "# {key}: from ${env}, which gives it again (the environment wins over \
                     the file)"
                ),
                Some(ValueSource::CommandLine) => {
                    let value = given(m, arg);
                    match value.as_str().and_then(super::masked_password) {
                        // A flag with no variable (--endpoint) is given on the command line.
                        Some(shown) if env.is_empty() => writeln!(
                            out,
                            "# {key} = {shown:?}: holds a password, so give it on the command \
                             line, not in the file"
                        ),
                        Some(shown) => writeln!(
                            out,
                            "# {key} = {:?}: holds a password, so give it through ${env}",
                            shown
                        ),
                        None => writeln!(out, "{key} = {value}"),
                    }
                }
                _ => match default(m, arg) {
                    Some(value) => writeln!(out, "# {key} = {value}"),
                    None => Ok(()),
                },
            };
        }
        out
    }
}

/// The value the file or the command line gave `arg`.
fn given(m: &ArgMatches, arg: &Arg) -> Value {
    let id = arg.get_id().as_str();
    match arg.get_action() {
        ArgAction::SetTrue | ArgAction::SetFalse => Value::Boolean(m.get_flag(id)),
        ArgAction::Count => Value::Integer(m.get_count(id).into()),
        action => {
            let raw = m.get_raw(id).into_iter().flatten();
            let mut values: Vec<Value> = raw.map(|text| typed(m, arg, text)).collect();
            match action {
                ArgAction::Append => Value::Array(values),
                _ => values.pop().unwrap_or(Value::String(String::new())),
            }
        }
    }
}

/// `arg`'s default, if it has one.
fn default(m: &ArgMatches, arg: &Arg) -> Option<Value> {
    let text = arg.get_default_values().first()?;
    Some(match arg.get_action() {
        ArgAction::SetTrue | ArgAction::SetFalse => Value::Boolean(text == "true"),
        ArgAction::Count => Value::Integer(0),
        _ => typed(m, arg, text),
    })
}

/// One value as TOML: a number for a number flag, an absolute path for a path (so the
/// file may be put anywhere), else a string.
fn typed(m: &ArgMatches, arg: &Arg, text: &OsStr) -> Value {
    let id = arg.get_id().as_str();
    let path = matches!(
        arg.get_value_hint(),
        ValueHint::AnyPath | ValueHint::FilePath | ValueHint::DirPath
    );
    if path && text != "-" {
        let path = std::path::Path::new(text);
        let absolute = path.canonicalize().or_else(|_| std::path::absolute(path));
        let absolute = absolute.unwrap_or_else(|_| path.into());
        return Value::String(absolute.to_string_lossy().into_owned());
    }
    let text = text.to_string_lossy();
    let number = m.try_get_one::<f64>(id).is_ok()
        || m.try_get_one::<u64>(id).is_ok()
        || m.try_get_one::<u32>(id).is_ok()
        || m.try_get_one::<usize>(id).is_ok();
    match (text.parse::<i64>(), text.parse::<f64>()) {
        (Ok(i), _) if number => Value::Integer(i),
        (_, Ok(f)) if number => Value::Float(f),
        _ => Value::String(text.into_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Args {
        let args = std::iter::once("cio-import").chain(args.iter().copied());
        Args::parse(args.map(Into::into)).unwrap()
    }

    /// The parsed command line without the flags that only say how it was given.
    fn run_of(args: &Args) -> String {
        let mut cli = format!("{:?}", args.cli);
        for given in [
            format!("config: {:?}", args.cli.config),
            "print_config: true".into(),
        ] {
            cli = cli.replace(&given, "");
        }
        cli
    }

    #[test]
    fn every_kind_of_flag_printed_and_read_back_gives_the_same_command_line() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().to_str().unwrap();
        let (users, summary) = (format!("{folder}/users.csv"), format!("{folder}/s.json"));
        let given = parse(&[
            &users,
            "-",
            "--sandbox",
            "--type",
            "age=number",
            "--type",
            "vip=bool",
            "--event-name",
            "1e5",
            "--rate",
            "0.5",
            "--burst",
            "3",
            "--delimiter",
            ";",
            "--summary",
            &summary,
            "-vv",
            "--quiet",
            "--resume=auto",
            "--sandbox-latency",
            "20",
            "--print-config",
        ]);
        let printed = given.to_toml();
        assert!(printed.contains("\nrate = 0.5\n"), "{printed}");
        assert!(printed.contains("\nevent-name = \"1e5\"\n"), "{printed}");
        assert!(printed.contains("\nverbose = 2\n"), "{printed}");
        assert!(printed.contains(&format!("\ninputs = [\"{users}\", \"-\"]\n")));
        let file = dir.path().join("printed.toml");
        std::fs::write(&file, &printed).unwrap();
        let back = parse(&["--config", file.to_str().unwrap(), "--print-config"]);
        assert_eq!(run_of(&back), run_of(&given));
        assert_eq!(back.to_toml().lines().skip(1).collect::<Vec<_>>(), {
            printed.lines().skip(1).collect::<Vec<_>>()
        });

        // Inputs on the command line replace the file's, as a repeatable flag does.
        let other = parse(&["--config", file.to_str().unwrap(), "other.csv"]);
        assert_eq!(other.cli.inputs, [std::path::PathBuf::from("other.csv")]);
        assert_eq!(other.cli.types.len(), 2);
    }
}
