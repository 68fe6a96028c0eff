//! flowmatch: the command-line tool as a library, behind a thin `main`.
//!
//! - [`cli`]: the command line, parsed once into the library crates' types.
//! - [`commands`]: `data`, `train`, `reflow`, `sample`, `eval`, `plot`: each
//!   wires library calls together and reports.
//! - [`experiments`]: commands that run a whole study and write a report
//!   (`reproduce`, `reproduce --experiment c2ot|c2ot-conditional`, `bench`, `gpu-bench`); their
//!   renderers take plain data.
//! - [`error`]: one line and an exit status for every failure.
//! - [`signals`]: Ctrl-C and friends: training stops at a checkpoint, other commands leave no
//!   half-written file.

pub mod cli;
pub mod commands;
pub mod error;
pub mod experiments;
pub mod signals;

use crate::cli::Command;

/// Runs one parsed command.
pub fn run(command: Command) -> error::Result<()> {
    match command {
        Command::Data(args) => commands::data(args),
        Command::Train(args) => commands::train(args),
        Command::Reflow(args) => commands::reflow(args),
        Command::Sample(args) => commands::sample(args),
        Command::Eval(args) => commands::eval(args),
        Command::Logprob(args) => commands::logprob(args),
        Command::Plot(args) => commands::plot(args),
        Command::Reproduce(args) => match args.experiment {
            cli::Experiment::Post => experiments::reproduce::run(args),
            cli::Experiment::C2ot => experiments::c2ot::run(args),
            cli::Experiment::C2otConditional => experiments::c2ot::conditional::run(args),
            cli::Experiment::Torchcfm2d => experiments::torchcfm::run(args),
        },
        Command::Bench(args) => experiments::bench::run(args),
        Command::Devices(args) => experiments::gpu_bench::devices(args),
        Command::GpuBench(args) => experiments::gpu_bench::run(args),
    }
}
