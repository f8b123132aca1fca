//! The confirmation a run that cannot be undone (delete, suppress, merge) needs before it
//! starts: `--yes`, or the action's name typed on the terminal. A dry run and the sandbox
//! destroy nothing, and need none.

use std::io::IsTerminal as _;

use crate::config::{Config, Target};
use crate::error::Fatal;
use crate::record::{Action, Entity};
use crate::report::say;
use crate::source::Input;

/// Asks for the confirmation when the run needs one: on the terminal when there is one to ask
/// on, else it refuses the run. Nothing has been sent yet either way.
pub(super) fn confirm(config: &Config) -> Result<(), Fatal> {
    let Some(what) = needed(config) else {
        return Ok(());
    };
    let word = config.map.action.flag_name();
    let terminal = std::io::stdin().is_terminal()
        && std::io::stderr().is_terminal()
        && !config.inputs.iter().any(Input::is_stdin);
    if !terminal {
        return Err(Fatal::Usage(format!(
            "{what}, and cannot be undone: pass --yes to go on (there is no terminal to ask \
             on), or try --dry-run first"
        )));
    }
    say::say(format_args!(
        "{what}, and cannot be undone. Type {word} and Enter to go on; anything else stops"
    ));
    let mut answer = String::new();
    // A read that fails is no answer.
    let _ = std::io::stdin().read_line(&mut answer);
    if answer.trim() == word {
        Ok(())
    } else {
        Err(Fatal::Usage(format!(
            "not confirmed ({word} was not typed): nothing was sent"
        )))
    }
}

/// What the run would do, when it needs a confirmation.
fn needed(config: &Config) -> Option<String> {
    let map = &config.map;
    if config.yes || !map.action.destroys() {
        return None;
    }
    let Target::Remote {
        site_id, region, ..
    } = &config.target
    else {
        return None;
    };
    let inputs = config
        .inputs
        .iter()
        .map(Input::name)
        .collect::<Vec<_>>()
        .join(", ");
    let workspace = format!("workspace {site_id} ({})", region.as_str());
    let flag = format!("--action {}", map.action.flag_name());
    Some(match (map.action, map.entity) {
        (Action::Delete, Entity::Object) => {
            format!("{flag} --entity object deletes each object in {inputs} from {workspace}")
        }
        (Action::Delete, Entity::Person) => {
            format!("{flag} deletes each person in {inputs} from {workspace}")
        }
        (Action::Suppress, _) => {
            format!("{flag} suppresses each person in {inputs} in {workspace}, deleting their data")
        }
        _ => format!(
            "{flag} merges each secondary person in {inputs} into its primary in {workspace}"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn config(dir: &std::path::Path, extra: &[&str]) -> Config {
        let input = dir.join("users.csv");
        std::fs::write(&input, "id\n1\n").unwrap();
        let mut args = vec!["cio-import", input.to_str().unwrap(), "--site-id", "s"];
        args.extend(extra);
        let cli = crate::cli::Cli::try_parse_from(args).unwrap();
        Config::from_cli(cli, Some("key".into())).unwrap()
    }

    #[test]
    fn only_a_run_that_destroys_in_a_real_workspace_needs_confirming() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let what = needed(&config(d, &["--action", "delete"])).unwrap();
        assert!(
            what.starts_with("--action delete deletes each person in ")
                && what.ends_with("users.csv from workspace s (us)"),
            "{what}"
        );
        let what = needed(&config(d, &["--action", "merge", "--region", "eu"])).unwrap();
        assert!(
            what.ends_with("into its primary in workspace s (eu)"),
            "{what}"
        );
        let object = [
            "--action",
            "delete",
            "--entity",
            "object",
            "--object-type",
            "1",
        ];
        assert!(
            needed(&config(d, &object))
                .unwrap()
                .contains("deletes each object")
        );
        for fine in [
            &["--action", "delete", "--yes"][..],
            &["--action", "suppress", "--dry-run"],
            &["--action", "suppress", "--sandbox"],
            &["--action", "unsuppress"],
            &["--action", "delete-device"],
            &[],
        ] {
            assert_eq!(needed(&config(d, fine)), None, "{fine:?}");
        }
        // Without a terminal (as under cargo test), the run is refused.
        let e = confirm(&config(d, &["--action", "suppress"])).unwrap_err();
        assert!(e.to_string().contains("pass --yes"), "{e}");
    }
}
