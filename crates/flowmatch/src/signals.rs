//! Signals: Ctrl-C, SIGTERM and SIGHUP stop training at a checkpoint and end other commands without a half-written file; a file-size limit is an error, not a kill.
//!
//! One handler serves the whole process (the `ctrlc` crate takes one). Training loops poll
//! [`interrupt_flag`] and stop cleanly, or at once on a second signal; any other command is
//! ended by the handler itself, after it has removed the temporary files being written (the
//! outputs stay as they were).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

/// Set by the handler; training polls it.
static STOP: OnceLock<Arc<AtomicBool>> = OnceLock::new();
/// Whether something polls [`STOP`]: then the handler only sets it.
static POLLED: AtomicBool = AtomicBool::new(false);

fn stop() -> &'static Arc<AtomicBool> {
    STOP.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

/// Installs the process's one handler; call once, first thing in `main`.
pub fn install() {
    let flag = stop().clone();
    let _ = ctrlc::set_handler(move || {
        let again = flag.swap(true, Ordering::SeqCst);
        if !POLLED.load(Ordering::SeqCst) {
            flow_data::files::remove_files_being_written();
            eprintln!("flowmatch: interrupted by a signal; no output was written");
            std::process::exit(1);
        }
        // A second signal does not wait for the step in progress (a transport plan of many
        // thousand points can take minutes): the last checkpoint is what the run keeps.
        if again {
            flow_data::files::remove_files_being_written();
            eprintln!("flowmatch: stopped by a second signal; the run keeps its last checkpoint");
            std::process::exit(1);
        }
    });
    ignore_file_size_signal();
}

/// The flag a signal sets, for a loop that stops by itself at a safe point (training saves a
/// checkpoint there); from now on a signal only sets it.
pub fn interrupt_flag() -> Arc<AtomicBool> {
    POLLED.store(true, Ordering::SeqCst);
    stop().clone()
}

/// With SIGXFSZ ignored, a write past `ulimit -f` fails with EFBIG like a full disk: the writer
/// removes its temporary file and the command ends with one line, instead of being killed.
fn ignore_file_size_signal() {
    #[cfg(unix)]
    // SAFETY: SIG_IGN is a valid disposition for SIGXFSZ, installed before any other thread
    // that could depend on the default exists; nothing else in the process handles SIGXFSZ.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}
