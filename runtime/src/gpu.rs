//! Which GPU this rank drives.
//!
//! The choice only depends on the node layout, so it is a pure function ([`choose_device`]) that
//! tests cover for many layouts; [`GpuBinding::probe`] feeds it with what the driver reports,
//! and [`GpuBinding::probe_node`] counts the ranks that really share a device by its UUID.

use mpi::topology::SimpleCommunicator;
use mpi::traits::*;

/// This rank's GPU, as decided at start-up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GpuBinding {
    /// No usable GPU: no CUDA driver, no device, or `CUDA_VISIBLE_DEVICES` hides them all.
    None { reason: String },
    /// Device `ordinal` among the visible ones (what CUDA calls device `ordinal`);
    /// `physical` is its id in `CUDA_VISIBLE_DEVICES` when that is set; `shared_with` is how
    /// many ranks of this node drive the same device (1 when it is exclusive): the same UUID
    /// after [`GpuBinding::probe_node`], estimated from the counts after [`GpuBinding::probe`].
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

    /// Collective over `node`, the ranks of this node (`split_shared`). [`GpuBinding::probe`]
    /// for this rank, then `shared_with` counted by device UUID across the node: where each
    /// rank sees only its own GPU through `CUDA_VISIBLE_DEVICES` (Slurm `--gpus-per-task`),
    /// every rank drives "device 0", but no two the same one.
    pub fn probe_node(node: &SimpleCommunicator) -> GpuBinding {
        let mut binding = Self::probe(node.rank() as usize, node.size() as usize);
        let mine = binding.ordinal().and_then(|o| rankwise_kernels::cuda::device_uuid(o).ok());
        let mut flat = vec![0u8; 17 * node.size() as usize];
        node.all_gather_into(&uuid_word(mine)[..], &mut flat[..]);
        let all: Vec<[u8; 17]> = flat.chunks_exact(17).map(|w| w.try_into().expect("17 bytes")).collect();
        if let (GpuBinding::Device { shared_with, .. }, Some(n)) = (&mut binding, same_device(mine, &all)) {
            *shared_with = n;
        }
        binding
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

/// A rank's device UUID as it travels: a flag byte (known or not), then the 16 bytes.
fn uuid_word(uuid: Option<[u8; 16]>) -> [u8; 17] {
    let mut w = [0u8; 17];
    if let Some(u) = uuid {
        w[0] = 1;
        w[1..].copy_from_slice(&u);
    }
    w
}

/// How many of the node's ranks (`all`, from [`uuid_word`]) drive the device with UUID `mine`;
/// `None` when this rank could not say which one it drives.
fn same_device(mine: Option<[u8; 16]>, all: &[[u8; 17]]) -> Option<usize> {
    let word = uuid_word(Some(mine?));
    Some(all.iter().filter(|w| **w == word).count())
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
    fn ranks_share_a_gpu_only_when_its_uuid_is_the_same() {
        let gpu = |k: u8| Some([k; 16]);
        // Slurm --gpus-per-task: every rank sees one device 0, each a different one.
        let own: Vec<_> = (1..=4).map(|k| uuid_word(gpu(k))).collect();
        assert!((1..=4).all(|k| same_device(gpu(k), &own) == Some(1)));
        // 8 ranks round robin on 4 GPUs: two each.
        let shared: Vec<_> = (0..8).map(|r| uuid_word(gpu(1 + r % 4))).collect();
        assert_eq!(same_device(gpu(3), &shared), Some(2));
        // A rank with no GPU shares nothing; one whose UUID is unknown leaves the estimate.
        let some_none = [uuid_word(gpu(1)), uuid_word(None), uuid_word(gpu(1))];
        assert_eq!(same_device(gpu(1), &some_none), Some(2));
        assert_eq!(same_device(None, &some_none), None);
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
