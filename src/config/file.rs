//! `--config FILE`: a TOML table of flags under their long names, read into the command
//! line as clap defines it (so a flag added to `cli` is taken here with no change), below
//! the command line and the environment.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command, CommandFactory, FromArgMatches, ValueHint};
use toml::{Spanned, Value};

use crate::cli::Cli;
use crate::error::Fatal;

/// Flags that only the command line can give: they say how to read or print the rest.
pub(super) const COMMAND_LINE_ONLY: [&str; 6] = [
    "config",
    "print_config",
    "completions",
    "man",
    "help",
    "version",
];

/// The command line parsed, with a `--config` file's flags under it.
pub struct Args {
    pub cli: Cli,
    /// What clap made of the command line and the file's flags together.
    pub(super) matches: ArgMatches,
    /// The `--config` file, if one was given.
    pub(super) file: Option<PathBuf>,
    /// The flags the file gave, each with its line.
    pub from_file: FromFile,
}

/// The flags a `--config` file gave (those the command line did not set aside), each by its
/// long name, with `FILE line N`: so that a later check of a value the file gave names the
/// file's line, not only the flag.
#[derive(Debug, Clone, Default)]
pub struct FromFile(Vec<(String, String)>);

impl FromFile {
    /// `e`, naming the file's line when its message is about a flag the file gave (such a
    /// message starts with the flag: `--rate must be ...`, `--type age=number: ...`).
    pub fn place(&self, e: Fatal) -> Fatal {
        let about = |message: &str| {
            self.0.iter().find_map(|(long, line)| {
                let rest = message.strip_prefix("--")?.strip_prefix(long.as_str())?;
                matches!(rest.chars().next(), None | Some(' ' | '=' | ':')).then_some(line)
            })
        };
        match e {
            Fatal::Usage(m) => match about(&m) {
                Some(line) => Fatal::Usage(format!("{line}: {m}")),
                None => Fatal::Usage(m),
            },
            Fatal::Setup(m) => match about(&m) {
                Some(line) => Fatal::Setup(format!("{line}: {m}")),
                None => Fatal::Setup(m),
            },
            e => e,
        }
    }
}

/// Why the command line cannot be taken.
#[derive(Debug)]
pub enum ArgsError {
    /// clap's own: a wrong flag, or `--help` and `--version` (which exit 0).
    Clap(clap::Error),
    /// The `--config` file, or what it says.
    Fatal(Fatal),
}

impl From<Fatal> for ArgsError {
    fn from(e: Fatal) -> ArgsError {
        ArgsError::Fatal(e)
    }
}

/// One entry of the file: where it is, for the messages, and the words it adds.
struct Entry {
    /// `FILE line N`.
    line: String,
    /// `FILE line N: key = value`.
    at: String,
    long: String,
    words: Vec<OsString>,
}

impl Args {
    /// Parses `args` (the program's name first). With `--config FILE`, the file's flags come
    /// first and every flag the command line (or the environment) gives replaces the file's.
    pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Args, ArgsError> {
        let args: Vec<OsString> = args.into_iter().collect();
        let mut command = Cli::command();
        command.build();
        let (first, missing) = match command.clone().try_get_matches_from(&args) {
            Ok(first) => (first, false),
            // A requirement the file may meet (the inputs, or `sandbox = true` for
            // --sandbox-limit on the command line): checked again with the file's flags.
            Err(e) if e.kind() == ErrorKind::MissingRequiredArgument => {
                let lenient = command.clone().ignore_errors(true);
                match lenient.try_get_matches_from(&args) {
                    Ok(first) if first.contains_id("config") => (first, true),
                    _ => return Err(ArgsError::Clap(e)),
                }
            }
            Err(e) => return Err(ArgsError::Clap(e)),
        };
        let Some(path) = first.get_one::<PathBuf>("config").cloned() else {
            return Args::from_matches(first, None);
        };
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Fatal::Setup(format!("--config {}: cannot read it: {e}", path.display()))
        })?;
        let entries = entries(&command, &first, &path, &text)?;
        let (positional, flags): (Vec<&Entry>, Vec<&Entry>) =
            entries.iter().partition(|e| e.long.is_empty());
        let mut merged = args[..1].to_vec();
        for entry in positional.iter().chain(&flags) {
            merged.extend(entry.words.iter().cloned());
        }
        merged.extend(args[1..].iter().cloned());
        // The command line alone passed (but for a requirement the file did not meet, which
        // is the command line's): what fails now is the file's doing.
        let matches = command.try_get_matches_from(merged).map_err(|e| {
            let at = match entries.iter().find(|entry| names(&e, entry)) {
                Some(entry) => entry.at.clone(),
                None if missing && e.kind() == ErrorKind::MissingRequiredArgument => {
                    return ArgsError::Clap(e);
                }
                None => path.display().to_string(),
            };
            Fatal::Usage(format!("{at}: {}", message(&e))).into()
        })?;
        let mut args = Args::from_matches(matches, Some(path))?;
        let given = flags.iter().map(|e| (e.long.clone(), e.line.clone()));
        args.from_file = FromFile(given.collect());
        Ok(args)
    }

    fn from_matches(matches: ArgMatches, file: Option<PathBuf>) -> Result<Args, ArgsError> {
        let cli = Cli::from_arg_matches(&matches).map_err(ArgsError::Clap)?;
        Ok(Args {
            cli,
            matches,
            file,
            from_file: FromFile::default(),
        })
    }
}

/// The file's entries, in its order, as command-line words; those the command line or the
/// environment gives instead are left out.
fn entries(
    command: &Command,
    given: &ArgMatches,
    path: &Path,
    text: &str,
) -> Result<Vec<Entry>, Fatal> {
    let file = path.display();
    let table: BTreeMap<Spanned<String>, Spanned<Value>> = toml::from_str(text)
        .map_err(|e| Fatal::Usage(format!("--config {file}: {}", e.to_string().trim_end())))?;
    let mut table: Vec<_> = table.into_iter().collect();
    table.sort_by_key(|(key, _)| key.span().start);
    // Relative paths are the file's: a job run from cron starts in another folder.
    let folder = path.parent().unwrap_or(Path::new(""));
    let on_command_line: Vec<&Arg> = command
        .get_arguments()
        .filter(|a| given.value_source(a.get_id().as_str()) == Some(ValueSource::CommandLine))
        .collect();
    let mut entries = Vec::new();
    for (key, value) in table {
        let line = text[..key.span().start].matches('\n').count() + 1;
        let (key, value) = (key.into_inner(), value.into_inner());
        let at = format!("{file} line {line}");
        let arg = find(command, &key).ok_or_else(|| unknown(command, &at, &key))?;
        let id = arg.get_id().as_str();
        if COMMAND_LINE_ONLY.contains(&id) {
            return Err(Fatal::Usage(format!(
                "{at}: {key} cannot be set in a config file: give it on the command line"
            )));
        }
        if let Some(holding) = with_password(&value) {
            let via = arg.get_env().map_or_else(
                || "the command line".to_owned(),
                |v| v.to_string_lossy().into_owned(),
            );
            return Err(Fatal::Usage(format!(
                "{at}: {key} = {holding:?} holds a password, which a config file must not: \
                 give it through {via}"
            )));
        }
        let line = at;
        let at = format!("{line}: {key} = {value}");
        let words =
            words(arg, &value, folder).map_err(|why| Fatal::Usage(format!("{at}: {why}")))?;
        // The command line wins, and so does the environment (clap's `env`); a flag on the
        // command line also sets aside the file's flags it cannot go with (--dry-run, the
        // file's --endpoint).
        let source = given.value_source(id);
        let set_aside = matches!(
            source,
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        ) || on_command_line
            .iter()
            .any(|other| conflict(command, arg, other));
        if !set_aside {
            let long = arg.get_long().unwrap_or_default().to_owned();
            entries.push(Entry {
                line,
                at,
                long,
                words,
            });
        }
    }
    Ok(entries)
}

/// The flag named `key`: a long name, or a positional's id (`inputs`).
fn find<'a>(command: &'a Command, key: &str) -> Option<&'a Arg> {
    command.get_arguments().find(|a| match a.get_long() {
        Some(long) => long == key,
        None => a.is_positional() && a.get_id() == key,
    })
}

/// Whether `a` and `b` exclude each other, as either one's definition says.
fn conflict(command: &Command, a: &Arg, b: &Arg) -> bool {
    let of = |x: &Arg, y: &Arg| {
        command
            .get_arg_conflicts_with(x)
            .iter()
            .any(|c| c.get_id() == y.get_id())
    };
    of(a, b) || of(b, a)
}

/// An unknown key: the API key refused, else the nearest flag's name suggested.
fn unknown(command: &Command, at: &str, key: &str) -> Fatal {
    let lower = key.to_ascii_lowercase();
    if ["key", "token", "secret", "password"]
        .iter()
        .any(|w| lower.contains(w))
    {
        return Fatal::Usage(format!(
            "{at}: {key}: the API key never goes in a config file (anyone who reads the file, \
             or its repository, would have it): set CUSTOMERIO_TRACK_API_KEY, or name a file \
             holding it with api-key-file = \"PATH\""
        ));
    }
    let names = command
        .get_arguments()
        .filter(|a| !COMMAND_LINE_ONLY.contains(&a.get_id().as_str()))
        .filter_map(|a| {
            a.get_long()
                .or(a.is_positional().then(|| a.get_id().as_str()))
        });
    let nearest = names
        .map(|name| (strsim::jaro_winkler(&lower.replace('_', "-"), name), name))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    let hint = nearest.map_or(String::new(), |(_, name)| format!(": did you mean {name}?"));
    Fatal::Usage(format!(
        "{at}: unknown key {key}{hint} (a config file takes the long names of the flags in \
         --help, and inputs)"
    ))
}

/// The command-line words an entry stands for, by the flag's kind: a switch takes true or
/// false, a counted flag a number, a repeatable one a list (or one value), the others one
/// value.
fn words(arg: &Arg, value: &Value, folder: &Path) -> Result<Vec<OsString>, String> {
    let long = arg.get_long().unwrap_or_default();
    let path = matches!(
        arg.get_value_hint(),
        ValueHint::AnyPath | ValueHint::FilePath | ValueHint::DirPath
    );
    let one = |v: &Value| -> Result<OsString, String> {
        let text = scalar(v)?;
        let text = match path {
            true => resolve(folder, &text),
            false => text.into(),
        };
        Ok(match long {
            "" => text,
            // `--flag=value`: a value starting with '-' stays a value, and a flag whose value
            // is optional (`--resume=auto`) takes it.
            _ => {
                let mut word = OsString::from(format!("--{long}="));
                word.push(text);
                word
            }
        })
    };
    let flag = || OsString::from(format!("--{long}"));
    let optional = arg.get_num_args().is_some_and(|n| n.min_values() == 0);
    match (arg.get_action(), value) {
        (ArgAction::SetTrue, Value::Boolean(on)) => Ok(on.then(flag).into_iter().collect()),
        (ArgAction::SetTrue | ArgAction::SetFalse, _) => Err("give true or false".into()),
        (ArgAction::Count, Value::Integer(n)) if (0..=255).contains(n) => {
            Ok((0..*n).map(|_| flag()).collect())
        }
        (ArgAction::Count, _) => Err("give a count: a whole number from 0 to 255".into()),
        (ArgAction::Append, Value::Array(items)) => items.iter().map(one).collect(),
        (_, Value::Boolean(on)) if optional => Ok(on.then(flag).into_iter().collect()),
        (_, Value::Array(_)) => Err(format!("--{long} takes one value, not a list")),
        (_, v) => Ok(vec![one(v)?]),
    }
}

/// A value as the command line would give it.
fn scalar(value: &Value) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Integer(i) => Ok(i.to_string()),
        Value::Float(f) => Ok(f.to_string()),
        Value::Datetime(d) => Ok(d.to_string()),
        Value::Boolean(_) => Err("give a value, as on the command line, not true or false".into()),
        Value::Array(_) | Value::Table(_) => Err("give one value, as on the command line".into()),
    }
}

/// A path of the file, relative to its folder; `-` (stdin, stdout) as it is.
fn resolve(folder: &Path, path: &str) -> OsString {
    let p = Path::new(path);
    if path == "-" || p.is_absolute() {
        return path.into();
    }
    match folder.as_os_str().is_empty() {
        // `./-x`, not `-x`, for a file named like a flag.
        true if path.starts_with('-') => Path::new(".").join(p).into_os_string(),
        true => path.into(),
        false => folder.join(p).into_os_string(),
    }
}

/// A URL in `value` that holds a password, as it may be shown (without it).
fn with_password(value: &Value) -> Option<String> {
    super::masked_password(value.as_str()?)
}

/// Whether clap's error `e` is about the flag `entry` gave.
fn names(e: &clap::Error, entry: &Entry) -> bool {
    let line = message(e);
    let name = match entry.long.as_str() {
        "" => "'[INPUT]".to_owned(),
        long => format!("'--{long}"),
    };
    line.match_indices(&name).any(|(i, _)| {
        let next = line[i + name.len()..].chars().next();
        matches!(next, Some(' ' | '\'' | '=' | '[' | '.'))
    })
}

/// clap's message on one line, without its `error: ` and its usage.
fn message(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let lines = text.lines().take_while(|l| !l.is_empty()).map(str::trim);
    let line = lines.collect::<Vec<_>>().join(" ");
    line.trim_start_matches("error: ").to_owned()
}
