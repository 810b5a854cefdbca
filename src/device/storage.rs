//! Resizing a tensor's storage in place (cpp/fsdp_shim.cpp): every view of it, and every tensor
//! autograd saved from it, follows. Sharded training frees a unit's gathered weights this way between
//! uses and brings the memory back before the next all-gather fills it.
use std::ffi::c_int;

use tch::Tensor;

use crate::shim_error::last_shim_error;

extern "C" {
    fn shim_storage_resize(t: *mut torch_sys::C_tensor, nbytes: i64) -> c_int;
}

/// Frees the memory under `t` (its shape stays; reading it before `allocate` is a bug).
pub fn free(t: &Tensor) -> Result<(), String> {
    resize(t, 0)
}

/// Gives `t`'s storage room for `t`'s elements again (uninitialized).
pub fn allocate(t: &Tensor) -> Result<(), String> {
    resize(t, t.numel() as i64 * t.kind().elt_size_in_bytes() as i64)
}

/// Whether `t`'s storage currently holds memory.
pub fn is_allocated(t: &Tensor) -> bool {
    t.numel() == 0 || !t.data_ptr().is_null()
}

fn resize(t: &Tensor, nbytes: i64) -> Result<(), String> {
    // SAFETY: a live tensor handle; the shim resizes its storage in place and reports failures.
    match unsafe { shim_storage_resize(t.as_ptr() as *mut torch_sys::C_tensor, nbytes) } {
        0 => Ok(()),
        _ => Err(last_shim_error()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    /// A view taken before the storage was freed sees what is written after it comes back, and a
    /// tensor autograd saved still unpacks in backward: what sharded training relies on.
    #[test]
    fn views_and_saved_tensors_follow_the_storage() {
        let flat = Tensor::zeros([6], (Kind::Float, Device::Cpu));
        let mut w = Tensor::zeros([2, 3], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        w.set_data(&flat.view([2, 3]));
        let x = Tensor::ones([4, 3], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let y = x.matmul(&w.tr()).sum(Kind::Float);
        free(&flat).unwrap();
        assert!(!is_allocated(&flat) && !is_allocated(&w));
        allocate(&flat).unwrap();
        flat.shallow_clone()
            .copy_(&Tensor::arange(6, (Kind::Float, Device::Cpu)));
        assert_eq!(w.double_value(&[1, 2]), 5.0);
        y.backward();
        // d(sum x w^T)/dx = column sums of w.
        let want = Tensor::from_slice(&[3.0f32, 5.0, 7.0]).expand([4, 3], false);
        assert!(x.grad().equal(&want));
    }
}
