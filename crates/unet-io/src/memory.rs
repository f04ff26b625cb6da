//! How much memory this process may still allocate: `MemAvailable` of `/proc/meminfo`,
//! lowered to the room left under the process's cgroup memory limit (v2 `memory.max`, v1
//! `memory.limit_in_bytes`) when one is set. Decoders check what a file declares against it
//! before allocating, so a small file that declares a huge image is an error, not an abort.

use std::path::Path;

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// `MemAvailable` in bytes.
fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

/// Room left under a cgroup limit: `limit - usage` (an unlimited cgroup reads "max" or a
/// huge number, which the `min` below makes irrelevant).
fn cgroup_room() -> Option<u64> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mut room: Option<u64> = None;
    let mut consider = |limit: Option<u64>, usage: Option<u64>| {
        if let (Some(limit), Some(usage)) = (limit, usage) {
            let r = limit.saturating_sub(usage);
            room = Some(room.map_or(r, |old| old.min(r)));
        }
    };
    // cgroup v2: "0::/path".
    if let Some(rel) = cgroups.lines().find_map(|l| l.strip_prefix("0::")) {
        for dir in [Path::new("/sys/fs/cgroup").join(rel.trim_start_matches('/')), "/sys/fs/cgroup".into()] {
            consider(read_u64(&dir.join("memory.max")), read_u64(&dir.join("memory.current")));
        }
    }
    // cgroup v1 (inside a container the process's own group is mounted at the root).
    let v1 = Path::new("/sys/fs/cgroup/memory");
    consider(read_u64(&v1.join("memory.limit_in_bytes")), read_u64(&v1.join("memory.usage_in_bytes")));
    room
}

/// Bytes of memory this process can still allocate, or `None` where the system does not
/// say (no `/proc/meminfo`, e.g. on macOS or Windows).
pub fn available_memory_bytes() -> Option<u64> {
    let avail = mem_available()?;
    Some(cgroup_room().map_or(avail, |room| avail.min(room)))
}

/// Bytes as whole MiB, for messages.
pub(crate) fn mib(bytes: u128) -> u128 {
    bytes.div_ceil(1 << 20)
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(target_os = "linux")]
    fn linux_reports_some_available_memory() {
        let bytes = super::available_memory_bytes().expect("/proc/meminfo has MemAvailable");
        assert!(bytes > 16 << 20, "{bytes}");
    }
}
