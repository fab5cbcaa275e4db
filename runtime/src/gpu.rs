//! Which GPU this rank drives.
//!
//! The choice only depends on the node layout, so it is a pure function ([`choose_device`]) that
//! tests cover for many layouts; [`GpuBinding::probe`] feeds it with what the driver reports.

/// This rank's GPU, as decided at start-up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GpuBinding {
    /// No usable GPU: no CUDA driver, no device, or `CUDA_VISIBLE_DEVICES` hides them all.
    None { reason: String },
    /// Device `ordinal` among the visible ones (what CUDA calls device `ordinal`);
    /// `physical` is its id in `CUDA_VISIBLE_DEVICES` when that is set; `shared_with` is how
    /// many ranks of this node drive the same device (1 when it is exclusive).
    Device { ordinal: usize, physical: Option<String>, visible: usize, shared_with: usize },
}

impl GpuBinding {
    /// Probe the driver (never panics without one) and choose for this node-local rank.
    pub fn probe(local_rank: usize, local_size: usize) -> GpuBinding {
        let visible_env = std::env::var("CUDA_VISIBLE_DEVICES").ok();
        let ids = visible_devices(visible_env.as_deref());
        if let Some(ids) = &ids {
            if ids.is_empty() {
                return GpuBinding::None { reason: "CUDA_VISIBLE_DEVICES hides every device".into() };
            }
        }
        let count = match rankwise_kernels::cuda::device_count() {
            Ok(n) => n,
            Err(e) => return GpuBinding::None { reason: e.to_string() },
        };
        match choose_device(local_rank, local_size, count) {
            None => GpuBinding::None { reason: "the driver reports no device".into() },
            Some((ordinal, shared_with)) => GpuBinding::Device {
                ordinal,
                physical: ids.and_then(|ids| ids.get(ordinal).cloned()),
                visible: count,
                shared_with,
            },
        }
    }

    /// The CUDA ordinal to open, if any.
    pub fn ordinal(&self) -> Option<usize> {
        match self {
            GpuBinding::Device { ordinal, .. } => Some(*ordinal),
            GpuBinding::None { .. } => None,
        }
    }
}

impl std::fmt::Display for GpuBinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GpuBinding::None { reason } => write!(f, "no GPU ({reason})"),
            GpuBinding::Device { ordinal, physical, visible, shared_with } => {
                write!(f, "GPU {ordinal} of {visible}")?;
                if let Some(p) = physical {
                    write!(f, " (CUDA_VISIBLE_DEVICES id {p})")?;
                }
                if *shared_with > 1 {
                    write!(f, ", shared by {shared_with} ranks")?;
                }
                Ok(())
            }
        }
    }
}

/// Device for node-local rank `local_rank` of `local_size` when the node shows `devices` GPUs,
/// with the number of local ranks that share it. One rank per GPU when the counts match (or
/// there are more GPUs than ranks); otherwise round robin, local rank modulo GPUs.
pub fn choose_device(local_rank: usize, local_size: usize, devices: usize) -> Option<(usize, usize)> {
    if devices == 0 {
        return None;
    }
    let ordinal = local_rank % devices;
    // Ranks r with r % devices == ordinal, r < local_size.
    let shared_with = (local_size + devices - 1 - ordinal) / devices;
    Some((ordinal, shared_with.max(1)))
}

/// Parse `CUDA_VISIBLE_DEVICES`: `None` when unset (all devices visible), otherwise the listed ids
/// up to the first invalid entry, as CUDA does (`""`, `"-1"` and `"NoDevFiles"` hide everything).
pub fn visible_devices(var: Option<&str>) -> Option<Vec<String>> {
    let var = var?;
    let mut ids = Vec::new();
    for id in var.split(',').map(str::trim) {
        let valid = !id.is_empty()
            && (id.chars().all(|c| c.is_ascii_digit()) || id.starts_with("GPU-") || id.starts_with("MIG-"));
        if !valid {
            break;
        }
        ids.push(id.to_string());
    }
    Some(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rank_per_gpu() {
        for r in 0..4 {
            assert_eq!(choose_device(r, 4, 4), Some((r, 1)));
        }
    }

    #[test]
    fn more_ranks_than_gpus_share_round_robin() {
        // 8 ranks on 4 GPUs: two ranks each.
        let got: Vec<_> = (0..8).map(|r| choose_device(r, 8, 4).unwrap()).collect();
        assert_eq!(got, vec![(0, 2), (1, 2), (2, 2), (3, 2), (0, 2), (1, 2), (2, 2), (3, 2)]);
        // 3 ranks on 2 GPUs: GPU 0 has ranks 0 and 2, GPU 1 has rank 1.
        assert_eq!(choose_device(0, 3, 2), Some((0, 2)));
        assert_eq!(choose_device(1, 3, 2), Some((1, 1)));
        assert_eq!(choose_device(2, 3, 2), Some((0, 2)));
    }

    #[test]
    fn fewer_ranks_than_gpus_take_their_own() {
        assert_eq!(choose_device(0, 2, 8), Some((0, 1)));
        assert_eq!(choose_device(1, 2, 8), Some((1, 1)));
    }

    #[test]
    fn no_devices_means_no_gpu() {
        assert_eq!(choose_device(0, 1, 0), None);
    }

    #[test]
    fn cuda_visible_devices() {
        assert_eq!(visible_devices(None), None);
        assert_eq!(visible_devices(Some("")), Some(vec![]));
        assert_eq!(visible_devices(Some("-1")), Some(vec![]));
        assert_eq!(visible_devices(Some("NoDevFiles")), Some(vec![]));
        assert_eq!(visible_devices(Some("2,3")), Some(vec!["2".into(), "3".into()]));
        assert_eq!(visible_devices(Some("1,x,2")), Some(vec!["1".into()]));
        assert_eq!(visible_devices(Some("GPU-abc")), Some(vec!["GPU-abc".into()]));
    }

    #[test]
    fn probe_without_driver_reports_no_gpu() {
        // This machine has no CUDA driver; on one with a GPU this just binds a device.
        let b = GpuBinding::probe(0, 1);
        if rankwise_kernels::cuda::device_count().is_err() {
            assert!(matches!(b, GpuBinding::None { .. }), "{b}");
            assert!(b.to_string().starts_with("no GPU"));
        }
    }
}
