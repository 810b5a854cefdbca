//! OLMo-core's `DataCollator` for fixed-length instances: a rank batch as int64 tensors ready to move
//! to the device, with the optional label mask and instance mask, and the document lengths on the host.
use rayon::prelude::*;
use tch::{Device, Kind, Tensor};

use super::dataset::{FslDataset, Instance};
use crate::error::Result;

/// One rank's batch.
#[derive(Debug)]
pub struct Batch {
    /// `[instances, sequence_length]`, int64.
    pub input_ids: Tensor,
    /// `[instances, sequence_length]`, bool: false where the loss must ignore the token.
    pub label_mask: Option<Tensor>,
    /// `[instances]`, bool: false for instances masked by the repetition filter.
    pub instance_mask: Option<Tensor>,
    /// Each instance's document lengths, on the host (the model derives positions and masks from them
    /// there, before anything goes to the device).
    pub doc_lens: Option<Vec<Vec<i64>>>,
    pub max_doc_lens: Option<Vec<i64>>,
    /// Global instance indices, in batch order.
    pub index: Vec<u64>,
    /// Which dataset path each instance came from.
    pub files: Vec<usize>,
}

impl Batch {
    pub fn num_instances(&self) -> usize {
        self.index.len()
    }
}

/// Reads `indices` straight into the batch tensor (in parallel when called inside a rayon pool of
/// more than one thread) and collates the rest.
pub fn collate(dataset: &FslDataset, indices: &[u64]) -> Result<Batch> {
    dataset.check_files_unchanged(indices)?;
    let n = indices.len();
    let seq = dataset.sequence_length() as usize;
    let input_ids = Tensor::empty([n as i64, seq as i64], (Kind::Int64, Device::Cpu));
    // SAFETY: `input_ids` was just allocated as a contiguous CPU int64 tensor of exactly n*seq
    // elements, nothing else refers to it, and the slice does not outlive this function.
    let flat: &mut [i64] =
        unsafe { std::slice::from_raw_parts_mut(input_ids.data_ptr() as *mut i64, n * seq) };
    let parallel = rayon::current_num_threads() > 1 && rayon::current_thread_index().is_some();
    let instances: Vec<Instance> = if parallel {
        flat.par_chunks_mut(seq)
            .zip(indices.par_iter())
            .map(|(out, &i)| dataset.read_into(i, out))
            .collect::<Result<_>>()?
    } else {
        flat.chunks_mut(seq)
            .zip(indices)
            .map(|(out, &i)| dataset.read_into(i, out))
            .collect::<Result<_>>()?
    };
    let n = n as i64;
    let seq = seq as i64;
    let label_mask = instances.iter().all(|x| x.label_mask.is_some()).then(|| {
        let m: Vec<bool> = instances
            .iter()
            .flat_map(|x| x.label_mask.iter().flatten().copied())
            .collect();
        Tensor::from_slice(&m).view([n, seq])
    });
    let instance_mask = instances
        .iter()
        .all(|x| x.instance_mask.is_some())
        .then(|| {
            let m: Vec<bool> = instances.iter().filter_map(|x| x.instance_mask).collect();
            Tensor::from_slice(&m)
        });
    let (doc_lens, max_doc_lens) = if instances.iter().all(|x| x.doc_lens.is_some()) && n > 0 {
        let lens: Vec<Vec<i64>> = instances
            .iter()
            .filter_map(|x| x.doc_lens.clone())
            .collect();
        let max: Vec<i64> = lens
            .iter()
            .map(|l| l.iter().copied().max().unwrap_or(0))
            .collect();
        (Some(lens), Some(max))
    } else {
        (None, None)
    };
    Ok(Batch {
        input_ids,
        label_mask,
        instance_mask,
        doc_lens,
        max_doc_lens,
        index: indices.to_vec(),
        files: instances.iter().map(|x| x.file).collect(),
    })
}
