//! `flowmatch`: parses the command line and hands it to the library; prints one line and an exit status on failure.
//!
//! Every failure is one line on stderr and an exit status: 2 for usage
//! mistakes (bad flags, names, numbers), 1 for problems met while running
//! (files, checkpoints, devices). No panics reach the user.

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;
use flowmatch::cli::Cli;
use flowmatch::error::CliError;

fn main() -> ExitCode {
    flowmatch::signals::install();
    // clap's `help` subcommand takes subcommand names only: `help --help` asks for help on help.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() == 2 && args[0] == "help" && (args[1] == "--help" || args[1] == "-h") {
        use clap::CommandFactory;
        let help = format!("{}\n", Cli::command().render_long_help());
        return match flowmatch::commands::print_out(&help) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => fail(&error),
        };
    }
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
    match flowmatch::run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error),
    }
}

fn fail(error: &CliError) -> ExitCode {
    eprintln!("flowmatch: {}", escape_controls(error.message()));
    ExitCode::from(error.exit_code())
}

/// File names and cells quoted in a message may hold newlines or terminal escapes: written as
/// `\n`, `\u{1b}`, … the message stays one line and cannot drive the terminal.
fn escape_controls(message: &str) -> String {
    message
        .chars()
        .map(|c| match c {
            '\n' => "\\n".to_owned(),
            '\r' => "\\r".to_owned(),
            '\t' => "\\t".to_owned(),
            c if c.is_control() => format!("\\u{{{:x}}}", c as u32),
            c => c.to_string(),
        })
        .collect()
}

/// clap's message without its "error: " prefix and help footer, on one line: a
/// first line that ends in a colon gets the indented lines it introduces
/// ("required arguments were not provided: --condition <CONDITION>").
fn first_line_of(error: &clap::Error) -> String {
    let text = error.render().to_string();
    let mut lines = text.lines().skip_while(|l| l.trim().is_empty());
    let line = lines.next().unwrap_or("invalid arguments").trim_start_matches("error: ").to_owned();
    if !line.ends_with(':') {
        return line;
    }
    let listed: Vec<&str> = lines.take_while(|l| l.starts_with("  ")).map(str::trim).collect();
    format!("{line} {}", listed.join(", "))
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
