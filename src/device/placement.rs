//! Which device a rank runs on, as OLMo-core decides it: `trainer.device` (`cpu`, `cuda`, `cuda:N`)
//! or, when unset, the rank's GPU when there is one and the CPU otherwise. `cuda` is the rank's own GPU,
//! `cuda:LOCAL_RANK` (OLMo-core sets the current device to it and `torch.device("cuda")` follows).
use tch::Device;

use super::cuda::Gpus;
use crate::error::{Error, Result};

/// A device setting as written: unset, `cpu`, `cuda` or `cuda:N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceRequest {
    Auto,
    Cpu,
    Cuda(Option<usize>),
}

impl DeviceRequest {
    /// Parses the setting at config key `key`.
    pub fn parse(key: &str, value: Option<&str>) -> Result<Self> {
        let Some(s) = value else {
            return Ok(Self::Auto);
        };
        let bad = || Error::InvalidValue {
            path: key.into(),
            reason: format!("'{s}': expected cpu, cuda or cuda:N"),
        };
        match s.trim() {
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(None)),
            t => match t.strip_prefix("cuda:") {
                Some(i) => i.parse().map(|i| Self::Cuda(Some(i))).map_err(|_| bad()),
                None => Err(bad()),
            },
        }
    }
}

/// This rank's place on its node: its `LOCAL_RANK` among `local_world_size` ranks.
#[derive(Debug, Clone, Copy)]
pub struct RankSlot {
    pub local_rank: u64,
    pub local_world_size: u64,
}

impl RankSlot {
    pub const SINGLE: Self = Self {
        local_rank: 0,
        local_world_size: 1,
    };
}

/// The device for `request` on a node with `gpus`, and why, in words for the start of the run.
pub fn place(
    key: &str,
    request: DeviceRequest,
    gpus: &Gpus,
    slot: RankSlot,
) -> Result<(Device, String)> {
    let err = |reason: String| Error::InvalidValue {
        path: key.into(),
        reason,
    };
    let unusable = || gpus.unusable.clone().unwrap_or_else(|| "no GPU".into());
    let too_few = |what: &str| {
        err(format!(
            "{what}: this node runs {} rank(s) (one GPU each) but has {} GPU(s)",
            slot.local_world_size, gpus.count
        ))
    };
    match request {
        DeviceRequest::Cpu => Ok((Device::Cpu, format!("{key} is 'cpu'"))),
        DeviceRequest::Auto if gpus.count == 0 => Ok((
            Device::Cpu,
            format!(
                "{key} is unset and CUDA is unusable ({}); set {key}=cuda to make that an error",
                unusable()
            ),
        )),
        DeviceRequest::Auto | DeviceRequest::Cuda(None) => {
            if gpus.count == 0 {
                return Err(err(format!(
                    "'cuda' requested, but CUDA is unusable: {}",
                    unusable()
                )));
            }
            if slot.local_world_size > gpus.count as u64 {
                return Err(too_few(if request == DeviceRequest::Auto {
                    "unset (GPU found)"
                } else {
                    "'cuda'"
                }));
            }
            let d = slot.local_rank as usize;
            let why = match request {
                DeviceRequest::Auto => format!(
                    "{key} is unset and this node has {} GPU(s): LOCAL_RANK {d} takes cuda:{d}",
                    gpus.count
                ),
                _ => format!("{key} is 'cuda': LOCAL_RANK {d} takes cuda:{d}"),
            };
            Ok((Device::Cuda(d), why))
        }
        DeviceRequest::Cuda(Some(i)) => {
            if gpus.count == 0 {
                return Err(err(format!(
                    "'cuda:{i}' requested, but CUDA is unusable: {}",
                    unusable()
                )));
            }
            if i >= gpus.count {
                return Err(err(format!(
                    "'cuda:{i}' requested, but this node has {} GPU(s)",
                    gpus.count
                )));
            }
            if slot.local_world_size > 1 {
                return Err(err(format!(
                    "'cuda:{i}' would put all {} ranks of this node on one GPU (NCCL refuses that): use 'cuda', which gives each rank cuda:LOCAL_RANK",
                    slot.local_world_size
                )));
            }
            Ok((Device::Cuda(i), format!("{key} is 'cuda:{i}'")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "trainer.device";

    fn gpus(n: usize) -> Gpus {
        match n {
            0 => Gpus::none("Found no NVIDIA driver on your system.".into()),
            n => Gpus {
                count: n,
                unusable: None,
            },
        }
    }

    fn slot(local_rank: u64, local_world_size: u64) -> RankSlot {
        RankSlot {
            local_rank,
            local_world_size,
        }
    }

    fn placed(s: Option<&str>, n: usize, sl: RankSlot) -> Result<Device> {
        place(KEY, DeviceRequest::parse(KEY, s)?, &gpus(n), sl).map(|(d, _)| d)
    }

    #[test]
    fn every_form_olmo_core_accepts_parses_and_others_are_named() {
        use DeviceRequest::*;
        for (s, want) in [
            (None, Auto),
            (Some("cpu"), Cpu),
            (Some("cuda"), Cuda(None)),
            (Some("cuda:0"), Cuda(Some(0))),
            (Some("cuda:7"), Cuda(Some(7))),
        ] {
            assert_eq!(DeviceRequest::parse(KEY, s).unwrap(), want, "{s:?}");
        }
        for s in ["gpu", "cuda:", "cuda:x", "cuda:-1", "mps", ""] {
            let e = DeviceRequest::parse(KEY, Some(s)).unwrap_err().to_string();
            assert!(
                e.contains(KEY) && e.contains("expected cpu, cuda or cuda:N"),
                "{s}: {e}"
            );
        }
    }

    #[test]
    fn cuda_is_each_rank_own_gpu() {
        for r in 0..4 {
            assert_eq!(
                placed(Some("cuda"), 4, slot(r, 4)).unwrap(),
                Device::Cuda(r as usize)
            );
            assert_eq!(
                placed(None, 4, slot(r, 4)).unwrap(),
                Device::Cuda(r as usize)
            );
        }
        assert_eq!(
            placed(Some("cuda"), 1, RankSlot::SINGLE).unwrap(),
            Device::Cuda(0)
        );
        assert_eq!(placed(Some("cpu"), 8, slot(3, 4)).unwrap(), Device::Cpu);
    }

    #[test]
    fn more_ranks_than_gpus_is_an_error_naming_both_numbers() {
        for s in [None, Some("cuda")] {
            let e = placed(s, 2, slot(0, 4)).unwrap_err().to_string();
            assert!(
                e.contains("runs 4 rank(s)") && e.contains("has 2 GPU(s)"),
                "{e}"
            );
        }
    }

    #[test]
    fn an_explicit_index_is_for_one_process_per_node() {
        assert_eq!(
            placed(Some("cuda:3"), 4, RankSlot::SINGLE).unwrap(),
            Device::Cuda(3)
        );
        // One rank per node (multi-node) may pick its GPU too.
        assert_eq!(
            placed(Some("cuda:1"), 2, slot(0, 1)).unwrap(),
            Device::Cuda(1)
        );
        let e = placed(Some("cuda:0"), 8, slot(1, 2))
            .unwrap_err()
            .to_string();
        assert!(e.contains("all 2 ranks") && e.contains("use 'cuda'"), "{e}");
        let e = placed(Some("cuda:4"), 4, RankSlot::SINGLE)
            .unwrap_err()
            .to_string();
        assert!(e.contains("'cuda:4'") && e.contains("has 4 GPU(s)"), "{e}");
    }

    #[test]
    fn unusable_cuda_is_an_error_when_asked_for_and_the_cpu_with_a_reason_otherwise() {
        for s in ["cuda", "cuda:0"] {
            let e = placed(Some(s), 0, RankSlot::SINGLE)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("CUDA is unusable: Found no NVIDIA driver"),
                "{e}"
            );
        }
        let (d, why) = place(KEY, DeviceRequest::Auto, &gpus(0), slot(1, 2)).unwrap();
        assert_eq!(d, Device::Cpu);
        assert!(
            why.contains("Found no NVIDIA driver") && why.contains("trainer.device=cuda"),
            "{why}"
        );
    }
}
