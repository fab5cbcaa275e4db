//! Storage for large blocks, on transparent huge pages.
//!
//! A sweep over a block of 4 KiB pages takes a TLB miss every 512 doubles, and under a hypervisor
//! each miss walks two page tables: on this project's KVM machine a 5-point sweep over 4096^2 runs
//! 17% faster, and a read into fresh memory 40% faster, on 2 MiB pages (as Cray's `craype-hugepages`
//! gives its users). So a block of 2 MiB or more asks the kernel for huge pages before its first
//! touch. That first touch costs more (2 MiB zeroed at once, and here, where the host takes back
//! the guest's free memory, 512 host page faults behind each: a 28 MiB buffer filled in 66-84 ms
//! against 13-18 ms), so memory first touched inside a time-critical loop stays on small pages.
//! `RANKWISE_HUGE_PAGES=0` turns this off, for a kernel whose compaction stalls cost more.

use ndarray::{ArrayD, IxDyn};

const HUGE: usize = 2 << 20;

/// A block of `T::default()` (zero) of `shape`. Large blocks come from `calloc` as untouched
/// zero pages, marked for huge pages before anything touches them (NUMA first touch unchanged).
pub fn zeroed<T: Clone + Default>(shape: IxDyn) -> ArrayD<T> {
    let a = ArrayD::from_elem(shape, T::default());
    let bytes = a.len() * std::mem::size_of::<T>();
    if bytes >= HUGE && enabled() {
        let (start, end) = (a.as_ptr() as usize, a.as_ptr() as usize + bytes);
        let (start, end) = (start.next_multiple_of(4096), end / 4096 * 4096);
        // SAFETY: whole pages inside one live allocation; the advice does not change contents.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
    }
    a
}

fn enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("RANKWISE_HUGE_PAGES").map_or(true, |v| v != "0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroed_blocks_are_zero_at_every_size() {
        for n in [0, 1, 1000, (HUGE / 8) + 3, 3 * HUGE / 8] {
            let a = zeroed::<f64>(IxDyn(&[n]));
            assert_eq!(a.len(), n);
            assert!(a.iter().all(|&x| x == 0.0));
        }
        let b = zeroed::<f32>(IxDyn(&[3, 1 << 10, 1 << 9]));
        assert_eq!(b.shape(), &[3, 1 << 10, 1 << 9]);
        assert!(b.iter().all(|&x| x == 0.0));
    }

    /// The kernel's own account (`/proc/self/smaps`): the mapping of a large block may take huge
    /// pages where the machine gives them to all (`always`) or to those who ask (`madvise`, unless
    /// RANKWISE_HUGE_PAGES=0), and not where it has none (`never`).
    #[test]
    fn large_blocks_may_take_huge_pages() {
        // No such file: a kernel without transparent huge pages, which gives none.
        let mode = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
        let expected = if mode.contains("[always]") || (mode.contains("[madvise]") && enabled()) { "1" } else { "0" };
        let a = zeroed::<f64>(IxDyn(&[4 << 20]));
        let at = a.as_ptr() as usize + (16 << 20);
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut lines = smaps.lines().skip_while(|l| {
            let range = l.split(' ').next().and_then(|r| r.split_once('-'));
            !range.and_then(|(lo, hi)| Some((usize::from_str_radix(lo, 16).ok()?, usize::from_str_radix(hi, 16).ok()?))).is_some_and(|(lo, hi)| lo <= at && at < hi)
        });
        assert!(lines.next().is_some(), "the block's mapping is in /proc/self/smaps");
        let eligible = lines.take_while(|l| l.contains(':')).find_map(|l| l.strip_prefix("THPeligible:")).map(str::trim);
        assert_eq!(eligible, Some(expected), "THP mode {}", mode.trim());
    }
}
