//! Sizes checked before they are allocated: a request for more memory than this process may
//! have (the machine's free memory, its cgroup's limit, its address-space limit) is a one-line
//! error naming what asked, not an abort.

use crate::{DataError, Result};

/// Bytes of memory available now (Linux's `MemAvailable`), if the system says.
pub fn available_bytes() -> Option<u128> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|line| line.starts_with("MemAvailable:"))?;
    let kib: u128 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// What this process may still allocate: the least of the machine's free memory, what its
/// cgroup (a container's or a scheduler's limit) leaves, and what `ulimit -v` leaves of its
/// address space; `None` where none of them is known.
pub fn allowance_bytes() -> Option<u128> {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let cgroup = read("/sys/fs/cgroup/memory.max")
        .zip(read("/sys/fs/cgroup/memory.current"))
        .and_then(|(max, current)| cgroup_room(&max, &current));
    let address_space = read("/proc/self/limits")
        .zip(read("/proc/self/status"))
        .and_then(|(limits, status)| address_space_room(&limits, &status));
    [available_bytes(), cgroup, address_space].into_iter().flatten().min()
}

/// What a cgroup v2 limit leaves: `memory.max` ("max" when unlimited) less `memory.current`.
pub fn cgroup_room(max: &str, current: &str) -> Option<u128> {
    let max: u128 = max.trim().parse().ok()?;
    let current: u128 = current.trim().parse().ok()?;
    Some(max.saturating_sub(current))
}

/// What `ulimit -v` (RLIMIT_AS, in `/proc/self/limits`) leaves of the address space, less what
/// the process has mapped already (`VmSize` in `/proc/self/status`).
pub fn address_space_room(limits: &str, status: &str) -> Option<u128> {
    let line = limits.lines().find(|line| line.starts_with("Max address space"))?;
    // "Max address space   <soft>   <hard>   bytes": the soft limit is the one enforced.
    let soft: u128 = line.trim_start_matches("Max address space").split_whitespace().next()?.parse().ok()?;
    let mapped_kib: u128 =
        status.lines().find(|line| line.starts_with("VmSize:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(soft.saturating_sub(mapped_kib * 1024))
}

/// Checks that `count` items of `item_bytes` bytes each, for `what` (e.g. "a
/// batch of 10000 points"), fit in what this process may allocate
/// ([`allowance_bytes`]), or at least in an address space where that is unknown.
pub fn check_allocation(what: &str, count: u128, item_bytes: u128) -> Result<()> {
    let needed = count.saturating_mul(item_bytes);
    let limit = allowance_bytes().unwrap_or(u128::MAX).min(isize::MAX as u128);
    if needed > limit {
        return Err(DataError::TooLarge {
            what: what.to_owned(),
            needed: human(needed),
            available: human(limit),
        });
    }
    Ok(())
}

/// A byte count for messages: "3.5 GB", "12 TB".
pub fn human(bytes: u128) -> String {
    let units = ["bytes", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < units.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} bytes") } else { format!("{value:.1} {}", units[unit]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human(999), "999 bytes");
        assert_eq!(human(3_500_000_000), "3.5 GB");
        assert_eq!(human(4_000_000_000_000), "4.0 TB");
    }

    #[test]
    fn what_does_not_fit_is_refused() {
        assert!(check_allocation("a little", 1000, 4).is_ok());
        let error = check_allocation("a batch of 10^18 points", 1_000_000_000_000_000_000, 12).unwrap_err();
        let message = error.to_string();
        assert!(message.starts_with("a batch of 10^18 points needs 12.0 EB"), "{message}");
        assert!(check_allocation("overflow", u128::MAX, 2).is_err());
    }

    #[test]
    fn process_limits_are_read_from_their_files() {
        assert_eq!(cgroup_room("max\n", "123\n"), None);
        assert_eq!(cgroup_room("1000\n", "300\n"), Some(700));
        assert_eq!(cgroup_room("1000\n", "3000\n"), Some(0));
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max cpu time              unlimited            unlimited            seconds   \n\
                      Max address space         3072000000           unlimited            bytes     \n";
        let status = "Name:\tflowmatch\nVmPeak:\t 2000000 kB\nVmSize:\t 1000000 kB\n";
        assert_eq!(address_space_room(limits, status), Some(3_072_000_000 - 1_024_000_000));
        let unlimited = limits.replace("3072000000          ", "unlimited           ");
        assert_eq!(address_space_room(&unlimited, status), None);
    }

    #[test]
    fn the_limit_is_the_memory_free_now_not_the_address_space() {
        let available = available_bytes().expect("Linux reports MemAvailable");
        assert!(available > 1 << 26, "{available} bytes available");
        // Far below the address-space bound: only the free memory refuses it.
        assert!(check_allocation("twice what is free", available * 2, 1).is_err());
        assert!(check_allocation("a tenth of what is free", available / 10, 1).is_ok());
    }
}
