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
