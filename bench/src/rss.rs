//! A process's peak resident memory, from Linux's `/proc/<pid>/status`.

/// The peak resident memory of process `pid`, in KiB (`VmHWM`); `None` if
/// the process is gone or the line is missing.
pub(crate) fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
