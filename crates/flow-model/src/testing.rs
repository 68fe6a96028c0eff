//! Tests on every device present: candle's `test_device!` idea for the tests
//! of the crates that run networks.

use tch::Device;

/// Set (by `cargo xtask gpu-check`) to make a missing GPU fail the CUDA runs
/// instead of skipping them.
pub const REQUIRE_CUDA_VARIABLE: &str = "FLOWMATCH_REQUIRE_CUDA";

/// A file (set by `cargo xtask test`) each skipped CUDA run appends its name to, so that the
/// summary can say what was skipped: libtest counts a skipped run as passed.
pub const SKIPPED_LOG_VARIABLE: &str = "FLOWMATCH_SKIPPED_LOG";

/// The first GPU when libtorch sees one; `None` (with a note on stderr) when it
/// does not, and a panic then if [`REQUIRE_CUDA_VARIABLE`] is set.
pub fn cuda_device() -> Option<Device> {
    cuda_device_for("a test")
}

/// [`cuda_device`] for the test `name`, which a skip names in the log of
/// [`SKIPPED_LOG_VARIABLE`].
pub fn cuda_device_for(name: &str) -> Option<Device> {
    if tch::Cuda::is_available() {
        return Some(Device::Cuda(0));
    }
    assert!(
        std::env::var_os(REQUIRE_CUDA_VARIABLE).is_none(),
        "{REQUIRE_CUDA_VARIABLE} is set but libtorch sees no CUDA device"
    );
    eprintln!("no CUDA device: the CUDA run of {name} is skipped");
    if let Some(log) = std::env::var_os(SKIPPED_LOG_VARIABLE) {
        use std::io::Write;
        // One short line per skip, appended whole: runs in parallel threads do not interleave.
        if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(log) {
            let _ = file.write_all(format!("{name}\n").as_bytes());
        }
    }
    None
}

/// `test_device!(check)` turns `fn check(device: tch::Device)` into the tests
/// `check::cpu` (always run) and `check::cuda` (run when libtorch sees a GPU;
/// see [`cuda_device`]).
#[macro_export]
macro_rules! test_device {
    ($body:ident) => {
        mod $body {
            #[test]
            fn cpu() {
                super::$body(tch::Device::Cpu)
            }

            #[test]
            fn cuda() {
                if let Some(device) = $crate::testing::cuda_device_for(concat!(module_path!(), "::cuda")) {
                    super::$body(device)
                }
            }
        }
    };
}
