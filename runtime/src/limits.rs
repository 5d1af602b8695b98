//! Host-memory checks made before large allocations: a request that cannot fit is an error
//! naming what asked for it, not an abort of the process.

use crate::error::{Error, Result};

/// `MemAvailable` of `/proc/meminfo` in bytes, or `None` where that is unknown.
pub fn host_memory_available_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Fail when `bytes` exceeds the available host memory (unknown availability passes).
pub fn check_host_allocation(what: &str, bytes: u64) -> Result<()> {
    match host_memory_available_bytes() {
        Some(avail) if bytes > avail => Err(Error::Limit(format!(
            "{what} needs {:.2} GiB but only {:.2} GiB of host memory is available",
            bytes as f64 / (1u64 << 30) as f64,
            avail as f64 / (1u64 << 30) as f64
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_request_is_an_error() {
        let err = check_host_allocation("a test buffer", u64::MAX)
            .unwrap_err()
            .to_string();
        if host_memory_available_bytes().is_some() {
            assert!(
                err.contains("a test buffer") && err.contains("GiB"),
                "{err}"
            );
        }
        assert!(check_host_allocation("a byte", 1).is_ok());
    }
}
