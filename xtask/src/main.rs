//! Project automation: `cargo xtask <task>`.
//!
//! Every task first makes sure libtorch is available (see `libtorch.rs`), then
//! runs cargo with `LIBTORCH` pointing at it. xtask holds no algorithms: it
//! provisions, builds and delegates to the `flowmatch` binary.

mod libtorch;
mod mutants;
mod tasks;
mod tidy;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <task> [args]

tasks:
  test                 cargo fmt --check, clippy -D warnings, tidy (opening //! lines, no unused
                       dependencies), every test
  reproduce [args]     train what the post trained and write every figure into runs/figures
                       (--out assets/figures --online-reflow: the committed ones)
                       (args go to `flowmatch reproduce`: --quick, --retrain, --device, --out, --seed)
  bench [args]         speed against the PyTorch version of the post, then criterion benches
  gpu-check [args]     on a machine whose libtorch sees a GPU: every test with the CUDA runs
                       required, then CUDA against this CPU into assets/figures/gpu.md
                       (args go to `flowmatch gpu-bench`); elsewhere one line and exit 0
  test-aarch64         the NEON kernel's tests: flow-native's suite built for aarch64 and run under
                       qemu (needs the aarch64-unknown-linux-gnu target, gcc-aarch64-linux-gnu
                       and qemu-user; says which is missing)
  mutants [args]       cargo-mutants over flow-ode, flow-data, flow-metrics and flow-native into
                       assets/mutants.md (not in CI: hours for all four); --crate NAME narrows it,
                       --shard k/n, --in-diff FILE and other cargo-mutants flags pass through
  libtorch             only provision libtorch and print the LIBTORCH path
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((task, rest)) = args.split_first() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    let outcome = match task.as_str() {
        "test" => tasks::test(rest),
        "reproduce" => tasks::reproduce(rest),
        "bench" => tasks::bench(rest),
        "gpu-check" => tasks::gpu_check(rest),
        "test-aarch64" => tasks::test_aarch64(rest),
        "mutants" => mutants::run(rest),
        "libtorch" => libtorch::provision().map(|torch| println!("{}", torch.display())),
        "-h" | "--help" | "help" => {
            print!("{USAGE}");
            Ok(())
        }
        other => {
            eprintln!("xtask: unknown task `{other}`\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}
