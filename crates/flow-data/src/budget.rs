//! Sizes checked before they are allocated: a request for more memory than
//! this machine has free is a one-line error naming what asked, not an abort.

use crate::{DataError, Result};

/// Bytes of memory available now (Linux's `MemAvailable`), if the system says.
pub fn available_bytes() -> Option<u128> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|line| line.starts_with("MemAvailable:"))?;
    let kib: u128 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Checks that `count` items of `item_bytes` bytes each, for `what` (e.g. "a
/// batch of 10000 points"), fit in the memory available, or at least in an
/// address space where that is unknown.
pub fn check_allocation(what: &str, count: u128, item_bytes: u128) -> Result<()> {
    let needed = count.saturating_mul(item_bytes);
    let limit = available_bytes().unwrap_or(u128::MAX).min(isize::MAX as u128);
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
    fn the_limit_is_the_memory_free_now_not_the_address_space() {
        let available = available_bytes().expect("Linux reports MemAvailable");
        assert!(available > 1 << 26, "{available} bytes available");
        // Far below the address-space bound: only the free memory refuses it.
        assert!(check_allocation("twice what is free", available * 2, 1).is_err());
        assert!(check_allocation("a tenth of what is free", available / 10, 1).is_ok());
    }
}
