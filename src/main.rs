//! The command: parses the command line (and a `--config` file), runs the import on its runtime, and ends with the
//! exit code, telling the error that ended it, if one did.

use std::process::ExitCode;

use cio_import::cli;
use cio_import::config::{Args, ArgsError, Config};
use cio_import::error::Fatal;
use cio_import::exit::Exit;
use cio_import::report::say;
use cio_import::run::{self, Shutdown};

fn main() -> ExitCode {
    match import() {
        Ok(exit) => exit.into(),
        Err(e) => {
            say::error(&e);
            e.exit().into()
        }
    }
}

fn import() -> Result<Exit, Fatal> {
    let args = match Args::parse(std::env::args_os()) {
        Ok(args) => args,
        // clap prints its own errors, and --help, with their exit codes.
        Err(ArgsError::Clap(e)) => e.exit(),
        Err(ArgsError::Fatal(e)) => return Err(e),
    };
    if args.cli.print_config {
        let text = args.to_toml();
        say::print(|out| out.write_all(text.as_bytes())).map_err(Fatal::Output)?;
        return Ok(Exit::Success);
    }
    let from_file = args.from_file;
    let cli = args.cli;
    if let Some(shell) = cli.completions {
        say::print(|out| cli::write_completions(shell, out)).map_err(Fatal::Output)?;
        return Ok(Exit::Success);
    }
    if cli.man {
        say::print(cli::write_man_page).map_err(Fatal::Output)?;
        return Ok(Exit::Success);
    }
    if let Some(path) = &cli.show_state {
        let shown = cio_import::state::describe(path).map_err(Fatal::State)?;
        say::print(|out| out.write_all(shown.as_bytes())).map_err(Fatal::Output)?;
        return Ok(Exit::Success);
    }
    // A check of a value the --config file gave names the file's line too.
    let config = Config::from_cli(cli, std::env::var("CUSTOMERIO_TRACK_API_KEY").ok())
        .map_err(|e| from_file.place(e.into()))?;
    // One thread for all the network work: thousands of requests a second, far above any
    // Track API limit, for about a quarter less CPU per request than a work-stealing pool
    // (measured by bench/scale.rs). Reading and mapping have a thread of their own.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| Fatal::Start {
            what: "async runtime",
            error,
        })?;
    let shutdown = Shutdown::default();
    let ended = runtime.block_on(async {
        run::watch_signals(shutdown.clone());
        run::run(config, shutdown).await
    });
    // Everything the run waited for is done; what may still run is a read of stdin the run
    // stopped waiting for, which the exit ends.
    runtime.shutdown_background();
    ended.map_err(|e| from_file.place(e))
}
