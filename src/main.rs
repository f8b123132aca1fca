use std::process::ExitCode;

use clap::Parser;

use cio_import::cli::{self, Cli};
use cio_import::config::{Config, ConfigError};
use cio_import::exit::Exit;
use cio_import::run::{self, Shutdown};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(shell) = cli.completions {
        return finish(cli::write_completions(shell, &mut std::io::stdout()));
    }
    if cli.man {
        return finish(cli::write_man_page(&mut std::io::stdout()));
    }
    let config = match Config::from_cli(cli, std::env::var("CUSTOMERIO_TRACK_API_KEY").ok()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cio-import: error: {e}");
            return match e {
                ConfigError::Usage(_) => Exit::Usage,
                ConfigError::Setup(_) => Exit::Fatal,
            }
            .into();
        }
    };
    // One thread for all the network work: thousands of requests a second, far above any
    // Track API limit, for about a quarter less CPU per request than a work-stealing pool
    // (measured by bench/scale.rs). Reading and mapping have a thread of their own.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cio-import: error: cannot start the async runtime: {e}");
            return Exit::Fatal.into();
        }
    };
    let shutdown = Shutdown::default();
    let result = runtime.block_on(async {
        run::watch_signals(shutdown.clone());
        run::run(config, shutdown).await
    });
    // Everything the run waited for is done; what may still run is a read of stdin the run
    // stopped waiting for, which the exit ends.
    runtime.shutdown_background();
    match result {
        Ok(outcome) => {
            if let Some(err) = outcome.error {
                eprintln!("cio-import: error: {err:#}");
            }
            outcome.exit.into()
        }
        Err(err) => {
            eprintln!("cio-import: error: {err:#}");
            Exit::Fatal.into()
        }
    }
}

fn finish(written: std::io::Result<()>) -> ExitCode {
    match written {
        Ok(()) => Exit::Success.into(),
        Err(e) => {
            eprintln!("cio-import: error: {e}");
            Exit::Fatal.into()
        }
    }
}
