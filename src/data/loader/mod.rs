//! OLMo-core's `NumpyFSLDataLoader`: global batches in tokens, a per-epoch permutation that is NumPy's
//! `PCG64(seed + epoch)` shuffle bit for bit (cached in the work dir under OLMo-core's file name), the
//! tail dropped to whole batches, each rank taking the strided columns `[:, rank::world]` of every
//! batch, background prefetch that keeps order, and a state that resumes at the exact batch.
mod state;

pub use state::LoaderState;

use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;

use super::batch::{collate, Batch};
use super::cache_file::write_atomically;
use super::dataset::FslDataset;
use super::numpy_rng::Pcg64;
use crate::error::{Error, Result};

/// How a loader splits and reads its dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct LoaderOptions {
    /// Tokens per global batch (all ranks).
    pub global_batch_size: u64,
    pub seed: u64,
    pub work_dir: PathBuf,
    pub dp_rank: u64,
    pub dp_world_size: u64,
    /// Background batch producers (OLMo-core's `num_workers`); batch `b` comes from producer `b % n`.
    pub num_workers: usize,
    /// Threads reading a batch's instances inside each producer (OLMo-core's `num_threads`).
    pub num_threads: usize,
    /// Batches each producer may hold ready (OLMo-core's `prefetch_factor`).
    pub prefetch_factor: usize,
    pub ignore_fingerprint_mismatch: bool,
    /// OLMo-core shuffles training data; evaluation reads it in order with the same machinery.
    pub shuffle: bool,
}

pub struct DataLoader {
    dataset: Arc<FslDataset>,
    opts: LoaderOptions,
    /// Consecutive instances shuffled together (`max_target_sequence_length / sequence_length`).
    chunk_size: u64,
    epoch: Option<u64>,
    batches_processed: u64,
    tokens_processed: u64,
    global_indices: Option<Arc<Vec<u32>>>,
    pipeline: Option<Pipeline>,
}

impl DataLoader {
    pub fn new(dataset: Arc<FslDataset>, opts: LoaderOptions) -> Result<Self> {
        let seq = dataset.sequence_length();
        let world = opts.dp_world_size.max(1);
        let gbs = opts.global_batch_size;
        if gbs == 0 || gbs % world != 0 || (gbs / world) % seq != 0 {
            return Err(Error::InvalidValue {
                path: "data_loader.global_batch_size".into(),
                reason: format!(
                    "{gbs} tokens over {world} rank(s) must give each rank a whole number of {seq}-token instances"
                ),
            });
        }
        if opts.dp_rank >= world {
            return Err(Error::Internal(format!(
                "rank {} is not below world size {world}",
                opts.dp_rank
            )));
        }
        let chunk_size = dataset.max_target_sequence_length().map_or(1, |m| m / seq);
        let loader = Self {
            dataset,
            opts,
            chunk_size,
            epoch: None,
            batches_processed: 0,
            tokens_processed: 0,
            global_indices: None,
            pipeline: None,
        };
        if loader.total_batches() == 0 {
            return Err(Error::InvalidValue {
                path: "data_loader.global_batch_size".into(),
                reason: format!(
                    "the dataset has {} instances of {seq} tokens, fewer than one global batch of {} instances",
                    loader.dataset.len(),
                    loader.instances_per_batch()
                ),
            });
        }
        Ok(loader)
    }

    pub fn dataset(&self) -> &Arc<FslDataset> {
        &self.dataset
    }

    pub fn global_batch_size(&self) -> u64 {
        self.opts.global_batch_size
    }

    /// Tokens each rank receives per batch.
    pub fn rank_batch_size(&self) -> u64 {
        self.opts.global_batch_size / self.opts.dp_world_size.max(1)
    }

    pub fn instances_per_batch(&self) -> u64 {
        self.opts.global_batch_size / self.dataset.sequence_length()
    }

    /// Instances used per epoch: the dataset cut down to whole batches.
    pub fn total_size(&self) -> u64 {
        let ipb = self.instances_per_batch();
        ipb * (self.dataset.len() / ipb)
    }

    pub fn total_batches(&self) -> u64 {
        self.total_size() / self.instances_per_batch()
    }

    pub fn epoch(&self) -> Option<u64> {
        self.epoch
    }

    pub fn batches_processed(&self) -> u64 {
        self.batches_processed
    }

    pub fn tokens_processed(&self) -> u64 {
        self.tokens_processed
    }

    /// OLMo-core's cache file name for this epoch's permutation.
    pub fn global_indices_path(&self, epoch: u64) -> PathBuf {
        let mut parts = vec!["global_indices".to_string()];
        if self.chunk_size > 1 {
            parts.push(format!("chunk{}", self.chunk_size));
        }
        parts.push(format!("dataset_size{}", self.dataset.len()));
        if self.opts.shuffle {
            parts.push(format!("epoch{epoch}"));
            parts.push(format!("seed{}", self.opts.seed));
        }
        parts.push("v1".into());
        self.opts.work_dir.join(format!("{}.npy", parts.join("_")))
    }

    /// Starts epoch `epoch` (1-based; the next one when `None`): builds or reuses its permutation.
    pub fn reshuffle(&mut self, epoch: Option<u64>) -> Result<()> {
        let epoch = epoch.unwrap_or_else(|| self.epoch.map_or(1, |e| e + 1));
        if epoch == 0 {
            return Err(Error::Internal("data loader epochs start at 1".into()));
        }
        self.pipeline = None;
        self.epoch = Some(epoch);
        let path = self.global_indices_path(epoch);
        let n = self.dataset.len();
        let cached = std::fs::read(&path)
            .ok()
            .filter(|b| b.len() as u64 == 4 * n);
        let indices = match cached {
            Some(bytes) => bytes
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            None => {
                let indices = self.build_global_indices(epoch)?;
                let bytes: Vec<u8> = indices.iter().flat_map(|i| i.to_le_bytes()).collect();
                write_atomically(&path, &bytes)?;
                indices
            }
        };
        self.global_indices = Some(Arc::new(indices));
        Ok(())
    }

    fn build_global_indices(&self, epoch: u64) -> Result<Vec<u32>> {
        let n = u32::try_from(self.dataset.len()).map_err(|_| Error::InvalidValue {
            path: "dataset".into(),
            reason: "more than 2^32 instances: OLMo-core's uint32 indices cannot hold them".into(),
        })?;
        let chunk = self.chunk_size as u32;
        let mut rng = self
            .opts
            .shuffle
            .then(|| Pcg64::new(self.opts.seed + epoch));
        if chunk == 1 {
            let mut v: Vec<u32> = (0..n).collect();
            if let Some(r) = rng.as_mut() {
                r.shuffle(&mut v);
            }
            return Ok(v);
        }
        let mut chunks: Vec<u32> = (0..n / chunk).collect();
        if let Some(r) = rng.as_mut() {
            r.shuffle(&mut chunks);
        }
        Ok(chunks
            .iter()
            .flat_map(|c| (0..chunk).map(move |k| c * chunk + k))
            .collect())
    }

    /// The global instance indices of this rank's share of batch `batch` (strided columns).
    pub fn rank_batch_indices(&self, batch: u64) -> Result<Vec<u64>> {
        let indices = self.indices()?;
        Ok(rank_columns(
            &indices,
            batch,
            self.instances_per_batch(),
            self.opts.dp_rank,
            self.opts.dp_world_size,
        ))
    }

    /// The instances of the epoch's permutation that no whole batch holds, in order (all ranks').
    pub fn left_out_indices(&self) -> Result<Vec<u64>> {
        let indices = self.indices()?;
        Ok(indices[self.total_size() as usize..]
            .iter()
            .map(|&i| u64::from(i))
            .collect())
    }

    fn indices(&self) -> Result<Arc<Vec<u32>>> {
        self.global_indices
            .clone()
            .ok_or_else(|| Error::Internal("the data loader was not reshuffled before use".into()))
    }

    /// The next batch of this rank, or `None` at the end of the epoch.
    pub fn next_batch(&mut self) -> Option<Result<Batch>> {
        if self.batches_processed >= self.total_batches() {
            return None;
        }
        if self.pipeline.is_none() {
            match self.indices() {
                Ok(indices) => self.pipeline = Some(Pipeline::start(self, indices)),
                Err(e) => return Some(Err(e)),
            }
        }
        let batch = self.pipeline.as_mut()?.next()?;
        if batch.is_ok() {
            self.batches_processed += 1;
            self.tokens_processed += self.opts.global_batch_size;
        }
        Some(batch)
    }

    /// End-of-epoch bookkeeping (OLMo-core's `reset`).
    pub fn reset(&mut self) {
        self.pipeline = None;
        self.batches_processed = 0;
        self.tokens_processed = 0;
    }
}

/// Batch `batch` of the permutation, reshaped to `(batches, per_batch)`, columns `rank::world`.
pub fn rank_columns(
    indices: &[u32],
    batch: u64,
    per_batch: u64,
    rank: u64,
    world: u64,
) -> Vec<u64> {
    let row = &indices[(batch * per_batch) as usize..((batch + 1) * per_batch) as usize];
    row.iter()
        .skip(rank as usize)
        .step_by(world.max(1) as usize)
        .map(|&i| u64::from(i))
        .collect()
}

/// Producers of upcoming batches, read round-robin so their order is the batch order.
struct Pipeline {
    receivers: Vec<Receiver<Result<Batch>>>,
    next: usize,
}

impl Pipeline {
    fn start(loader: &DataLoader, indices: Arc<Vec<u32>>) -> Self {
        // More producers than cores only adds contention (OLMo-core's example asks for 4 workers).
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let workers = loader.opts.num_workers.clamp(1, cores);
        let first = loader.batches_processed;
        let total = loader.total_batches();
        let per_batch = loader.instances_per_batch();
        let (rank, world) = (loader.opts.dp_rank, loader.opts.dp_world_size);
        let threads = loader.opts.num_threads.max(1);
        let mut receivers = Vec::with_capacity(workers);
        for w in 0..workers as u64 {
            let (tx, rx) = sync_channel(loader.opts.prefetch_factor.max(1));
            let dataset = loader.dataset.clone();
            let indices = indices.clone();
            std::thread::spawn(move || {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .ok();
                let mut b = first + w;
                while b < total {
                    let ids = rank_columns(&indices, b, per_batch, rank, world);
                    let batch = match &pool {
                        Some(p) if threads > 1 => p.install(|| collate(&dataset, &ids)),
                        _ => collate(&dataset, &ids),
                    };
                    let failed = batch.is_err();
                    if tx.send(batch).is_err() || failed {
                        return;
                    }
                    b += workers as u64;
                }
            });
            receivers.push(rx);
        }
        Self { receivers, next: 0 }
    }

    fn next(&mut self) -> Option<Result<Batch>> {
        let n = self.receivers.len();
        let item = self.receivers[self.next].recv().ok();
        self.next = (self.next + 1) % n;
        item
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_columns_are_strided() {
        let idx: Vec<u32> = (0..16).collect();
        assert_eq!(rank_columns(&idx, 1, 8, 0, 2), vec![8, 10, 12, 14]);
        assert_eq!(rank_columns(&idx, 1, 8, 1, 2), vec![9, 11, 13, 15]);
        assert_eq!(rank_columns(&idx, 0, 8, 3, 4), vec![3, 7]);
    }
}
