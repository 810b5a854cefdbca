//! `zero_grad(set_to_none=True)` for tch tensors (cpp/optim_shim.cpp): tch can zero a gradient but not
//! drop it. Dropping also saves two passes over every gradient a step: no zero fill, and the next
//! backward's AccumulateGrad adopts the incoming gradient instead of adding it into zeros.
use tch::Tensor;

extern "C" {
    fn shim_grad_reset(param: *mut torch_sys::C_tensor);
}

/// `param.grad = None`.
pub fn drop_grad(param: &Tensor) {
    // SAFETY: `param` is a live tensor handle; resetting its grad slot is what `p.grad = None` does in
    // Python and cannot fail.
    unsafe { shim_grad_reset(param.as_ptr() as *mut torch_sys::C_tensor) }
}

extern "C" {
    fn shim_set_grad(param: *mut torch_sys::C_tensor, grad: *mut torch_sys::C_tensor) -> i32;
}

/// `param.grad = grad` (the tensor itself, so writes into `grad` are the gradient): sharded training
/// makes each optimizer parameter's gradient a view of the unit's gradient shard.
pub fn set_grad(param: &Tensor, grad: &Tensor) {
    // SAFETY: live tensor handles; assigning the grad slot cannot fail for same-device tensors of the
    // same shape, which the caller passes.
    unsafe {
        shim_set_grad(
            param.as_ptr() as *mut torch_sys::C_tensor,
            grad.as_ptr() as *mut torch_sys::C_tensor,
        );
    }
}
