//! A c10d process group through the C++ shim (Gloo for CPU tensors, NCCL for CUDA tensors when the rank
//! trains on a GPU): rendezvous with a timeout, in-place SUM all-reduce, broadcast and barrier on tch
//! tensors. Failures come back as errors with c10d's
//! message, never as panics or hangs past the timeout.
use std::ffi::{c_char, c_int, c_void, CString};

use tch::Tensor;

use super::env::DistEnv;
use super::work::Work;
use crate::error::{Error, Result};
use crate::shim_error::last_shim_error;

extern "C" {
    fn shim_group_new(
        host: *const c_char,
        port: c_int,
        rank: c_int,
        world: c_int,
        timeout_ms: c_int,
        cuda_device: c_int,
        out: *mut *mut c_void,
    ) -> c_int;
    fn shim_group_free(g: *mut c_void);
    fn shim_allreduce_sum(g: *mut c_void, ts: *mut *mut torch_sys::C_tensor, n: c_int) -> c_int;
    fn shim_broadcast(
        g: *mut c_void,
        ts: *mut *mut torch_sys::C_tensor,
        n: c_int,
        root: c_int,
    ) -> c_int;
    fn shim_barrier(g: *mut c_void) -> c_int;
    fn shim_group_sub(
        g: *mut c_void,
        ranks: *const c_int,
        n: c_int,
        tag: *const c_char,
        out: *mut *mut c_void,
    ) -> c_int;
    fn shim_all_gather_into(
        g: *mut c_void,
        out: *mut torch_sys::C_tensor,
        input: *mut torch_sys::C_tensor,
        work: *mut *mut c_void,
    ) -> c_int;
    fn shim_reduce_scatter(
        g: *mut c_void,
        out: *mut torch_sys::C_tensor,
        input: *mut torch_sys::C_tensor,
        op: c_int,
        work: *mut *mut c_void,
    ) -> c_int;
    fn shim_all_reduce_async(
        g: *mut c_void,
        t: *mut torch_sys::C_tensor,
        op: c_int,
        work: *mut *mut c_void,
    ) -> c_int;
}

/// How a reduction combines the ranks' values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReduceOp {
    Sum = 0,
    Avg = 1,
}

fn handle_of(t: &Tensor) -> *mut torch_sys::C_tensor {
    t.as_ptr() as *mut torch_sys::C_tensor
}

pub struct ProcessGroup {
    pub(super) handle: *mut c_void,
    pub rank: u64,
    pub world_size: u64,
}

// SAFETY: the shim's group is used from one thread at a time (the trainer's); c10d objects are
// thread-safe for that use.
unsafe impl Send for ProcessGroup {}
unsafe impl Sync for ProcessGroup {}

pub(super) fn check(code: c_int, what: &str) -> Result<()> {
    if code == 0 {
        return Ok(());
    }
    let cause = last_shim_error();
    if cause.to_ascii_lowercase().contains("timed out")
        || cause.to_ascii_lowercase().contains("timeout")
    {
        return Err(Error::Distributed(format!(
            "{what} did not complete within dist_timeout (a rank frozen, stopped or gone?): {cause}"
        )));
    }
    Err(Error::Distributed(format!("{what}: {cause}")))
}

impl ProcessGroup {
    /// Rendezvous at `MASTER_ADDR:MASTER_PORT` (rank 0 serves the TCPStore) within `timeout_s`: Gloo for
    /// CPU tensors.
    pub fn new(env: &DistEnv, timeout_s: u64) -> Result<Self> {
        Self::with_cuda(env, timeout_s, None)
    }

    /// The same, plus NCCL for CUDA tensors on `cuda_device` (this rank's GPU).
    pub fn with_cuda(env: &DistEnv, timeout_s: u64, cuda_device: Option<usize>) -> Result<Self> {
        let host = CString::new(env.master_addr.clone()).map_err(|_| Error::Environment {
            name: "MASTER_ADDR".into(),
            reason: "contains a NUL byte".into(),
        })?;
        let mut handle: *mut c_void = std::ptr::null_mut();
        // SAFETY: valid C string and out-pointer; the shim fills `handle` only on success.
        let code = unsafe {
            shim_group_new(
                host.as_ptr(),
                c_int::from(env.master_port),
                env.rank as c_int,
                env.world_size as c_int,
                (timeout_s * 1000) as c_int,
                cuda_device.map_or(-1, |d| d as c_int),
                &mut handle,
            )
        };
        check(
            code,
            &format!(
                "rendezvous of rank {} of {} at {}:{}",
                env.rank, env.world_size, env.master_addr, env.master_port
            ),
        )?;
        Ok(Self {
            handle,
            rank: env.rank,
            world_size: env.world_size,
        })
    }

    pub(super) fn pointers(tensors: &[Tensor]) -> Vec<*mut torch_sys::C_tensor> {
        // The shim mutates the tensors' data in place through their handles, as tch's own in-place ops do.
        tensors
            .iter()
            .map(|t| t.as_ptr() as *mut torch_sys::C_tensor)
            .collect()
    }

    /// In-place sum over ranks of each tensor.
    pub fn all_reduce_sum(&self, tensors: &[Tensor]) -> Result<()> {
        let mut ptrs = Self::pointers(tensors);
        // SAFETY: the pointers are live tch tensors for the duration of the call.
        check(
            unsafe { shim_allreduce_sum(self.handle, ptrs.as_mut_ptr(), ptrs.len() as c_int) },
            "all-reduce",
        )
    }

    /// In-place broadcast of each tensor from `root`.
    pub fn broadcast(&self, tensors: &[Tensor], root: u64) -> Result<()> {
        let mut ptrs = Self::pointers(tensors);
        // SAFETY: as above.
        check(
            unsafe {
                shim_broadcast(
                    self.handle,
                    ptrs.as_mut_ptr(),
                    ptrs.len() as c_int,
                    root as c_int,
                )
            },
            "broadcast",
        )
    }

    pub fn barrier(&self) -> Result<()> {
        // SAFETY: a live group handle.
        check(unsafe { shim_barrier(self.handle) }, "barrier")
    }

    /// The largest of every rank's `value`.
    pub fn max_over_ranks(&self, value: u64) -> Result<u64> {
        let mut slots = vec![0i64; self.world_size as usize];
        slots[self.rank as usize] = value as i64;
        let t = Tensor::from_slice(&slots);
        self.all_reduce_sum(std::slice::from_ref(&t))?;
        let all = crate::device::read_back::<Vec<i64>>(&t)
            .map_err(|e| Error::Distributed(e.to_string()))?;
        Ok(all.into_iter().max().unwrap_or(0).max(0) as u64)
    }

    /// Compares this rank's `values` with rank 0's (broadcast, then one sum of the verdicts, so every
    /// rank learns the same count): the index of this rank's first differing value, if any, and the
    /// number of ranks whose values differ.
    pub fn compare_with_root(&self, values: &[i64]) -> Result<(Option<usize>, i64)> {
        let root = Tensor::from_slice(values);
        self.broadcast(std::slice::from_ref(&root), 0)?;
        let root = crate::device::read_back::<Vec<i64>>(&root)
            .map_err(|e| Error::Distributed(e.to_string()))?;
        let first_difference = values.iter().zip(&root).position(|(a, b)| a != b);
        let count = Tensor::from_slice(&[i64::from(first_difference.is_some())]);
        self.all_reduce_sum(std::slice::from_ref(&count))?;
        Ok((
            first_difference,
            crate::device::read_scalar(&count.get(0)) as i64,
        ))
    }
}

impl ProcessGroup {
    /// The sub-group of the global `ranks` (this rank among them, in group-rank order), its own Gloo
    /// (and NCCL) backends under `tag` on the same store: torch's `new_group`. Only members call it,
    /// every member with the same `ranks` and `tag`.
    pub fn sub_group(&self, ranks: &[u64], tag: &str) -> Result<Self> {
        let rank = ranks.iter().position(|&r| r == self.rank).ok_or_else(|| {
            Error::Internal(format!("rank {} is not in sub-group {tag}", self.rank))
        })?;
        let c_ranks: Vec<c_int> = ranks.iter().map(|&r| r as c_int).collect();
        let c_tag = CString::new(tag)
            .map_err(|_| Error::Internal(format!("sub-group tag {tag:?} has a NUL byte")))?;
        let mut handle: *mut c_void = std::ptr::null_mut();
        // SAFETY: a live group, `n` ranks, a C string and an out-pointer filled only on success.
        let code = unsafe {
            shim_group_sub(
                self.handle,
                c_ranks.as_ptr(),
                c_ranks.len() as c_int,
                c_tag.as_ptr(),
                &mut handle,
            )
        };
        check(
            code,
            &format!("creating sub-group {tag} of ranks {ranks:?}"),
        )?;
        Ok(Self {
            handle,
            rank: rank as u64,
            world_size: ranks.len() as u64,
        })
    }

    /// `all_gather_into_tensor(out, input)`: `out` (world x input's elements) gets every rank's
    /// `input` in rank order. `input` may be this rank's slice of `out`.
    pub fn all_gather_into(&self, out: &Tensor, input: &Tensor) -> Result<Work> {
        let mut work: *mut c_void = std::ptr::null_mut();
        // SAFETY: live tensors and group; the caller keeps the tensors until the wait.
        let code = unsafe {
            shim_all_gather_into(self.handle, handle_of(out), handle_of(input), &mut work)
        };
        check(code, "all-gather")?;
        Ok(Work::new(work, "all-gather"))
    }

    /// `reduce_scatter_tensor(out, input, op)`: `out` gets this rank's chunk of the reduction.
    pub fn reduce_scatter(&self, out: &Tensor, input: &Tensor, op: ReduceOp) -> Result<Work> {
        let mut work: *mut c_void = std::ptr::null_mut();
        // SAFETY: as above.
        let code = unsafe {
            shim_reduce_scatter(
                self.handle,
                handle_of(out),
                handle_of(input),
                op as c_int,
                &mut work,
            )
        };
        check(code, "reduce-scatter")?;
        Ok(Work::new(work, "reduce-scatter"))
    }

    /// In-place all-reduce of `t`, asynchronously.
    pub fn all_reduce(&self, t: &Tensor, op: ReduceOp) -> Result<Work> {
        let mut work: *mut c_void = std::ptr::null_mut();
        // SAFETY: as above.
        let code =
            unsafe { shim_all_reduce_async(self.handle, handle_of(t), op as c_int, &mut work) };
        check(code, "all-reduce")?;
        Ok(Work::new(work, "all-reduce"))
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // SAFETY: the handle came from shim_group_new and is freed once.
        unsafe { shim_group_free(self.handle) }
    }
}
