//! `flowmatch`: thin argument handling over the library crates.
//!
//! Every failure is one line on stderr and an exit status: 2 for usage
//! mistakes (bad flags, names, numbers), 1 for problems met while running
//! (files, checkpoints, devices). No panics reach the user.

mod bench;
mod cli;
mod commands;
mod error;
mod gpu_bench;
mod reproduce;

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;

use crate::cli::{Cli, Command};
use crate::error::CliError;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) if matches!(error.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = error.print();
            return ExitCode::SUCCESS;
        }
        Err(error) if error.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = error.print();
            return ExitCode::from(2);
        }
        Err(error) => return fail(&CliError::usage(first_line_of(&error))),
    };
    init_logging(cli.verbose);
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error),
    }
}

fn run(command: Command) -> error::Result<()> {
    match command {
        Command::Data(args) => commands::data(args),
        Command::Train(args) => commands::train(args),
        Command::Reflow(args) => commands::reflow(args),
        Command::Sample(args) => commands::sample(args),
        Command::Eval(args) => commands::eval(args),
        Command::Plot(args) => commands::plot(args),
        Command::Reproduce(args) => reproduce::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Devices(args) => gpu_bench::devices(args),
        Command::GpuBench(args) => gpu_bench::run(args),
    }
}

fn fail(error: &CliError) -> ExitCode {
    eprintln!("flowmatch: {}", error.message());
    ExitCode::from(error.exit_code())
}

/// clap's message without its "error: " prefix and help footer.
fn first_line_of(error: &clap::Error) -> String {
    let text = error.render().to_string();
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("invalid arguments");
    line.trim_start_matches("error: ").to_owned()
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info,flow_train=debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}
