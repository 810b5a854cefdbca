//! Variable-length flash attention through libtorch's `_flash_attention_forward`/backward
//! (cpp/flash_shim.cpp): OLMo-core's path for intra-document masking and sliding windows. It runs only
//! where those kernels do (CUDA, sm80 or newer, bf16/fp16 inputs, head dims up to 256 in multiples of
//! 8) and where a mask is needed at all; otherwise attention takes SDPA with the explicit mask, which is
//! also the reference the GPU script compares this path against.
use std::ffi::c_int;

use tch::Tensor;

use super::context::Varlen;
use crate::shim_error::take_tensor;

extern "C" {
    fn shim_flash_varlen(
        q: *mut torch_sys::C_tensor,
        k: *mut torch_sys::C_tensor,
        v: *mut torch_sys::C_tensor,
        cu_seqlens: *mut torch_sys::C_tensor,
        max_len: i64,
        window_left: i64,
        out: *mut *mut torch_sys::C_tensor,
    ) -> c_int;
}

/// What decides between variable-length flash attention and SDPA with an explicit mask.
#[derive(Debug, Clone, Copy)]
pub struct AttentionCase<'a> {
    /// `block.attention.backend`: `torch` keeps SDPA; unset or a flash/TE name lets flash run.
    pub backend: Option<&'a str>,
    /// Documents or a sliding window shorter than the sequence: plain causal attention is not enough.
    pub needs_mask: bool,
    /// The GPU's compute capability (major), `None` off CUDA.
    pub sm_major: Option<i32>,
    /// The inputs are (or autocast makes them) bf16/fp16.
    pub half: bool,
    pub head_dim: i64,
    pub n_heads: i64,
    pub n_kv_heads: i64,
}

/// Whether `case` runs variable-length flash attention.
pub fn use_varlen_flash(case: &AttentionCase) -> bool {
    case.backend != Some("torch")
        && case.needs_mask
        && case.sm_major.is_some_and(|m| m >= 8)
        && case.half
        && case.head_dim % 8 == 0
        && case.head_dim <= 256
        && case.n_kv_heads > 0
        && case.n_heads % case.n_kv_heads == 0
}

/// Causal attention of `q` `[tokens, heads, head_dim]` over `k`, `v` `[tokens, kv_heads, head_dim]`
/// within each sequence of `varlen`, and within `window_left` keys back when given.
pub fn varlen_flash(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    varlen: &Varlen,
    window_left: Option<i64>,
) -> Result<Tensor, String> {
    let ptr = |t: &Tensor| t.as_ptr() as *mut torch_sys::C_tensor;
    let mut out: *mut torch_sys::C_tensor = std::ptr::null_mut();
    // SAFETY: four live tensor handles for the call; on success the shim hands over a new tensor.
    let code = unsafe {
        shim_flash_varlen(
            ptr(q),
            ptr(k),
            ptr(v),
            ptr(&varlen.cu_seqlens),
            varlen.max_len,
            window_left.unwrap_or(-1),
            &mut out,
        )
    };
    take_tensor(code, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h100() -> AttentionCase<'static> {
        AttentionCase {
            backend: None,
            needs_mask: true,
            sm_major: Some(9),
            half: true,
            head_dim: 128,
            n_heads: 32,
            n_kv_heads: 8,
        }
    }

    #[test]
    fn flash_runs_for_masked_half_precision_attention_on_recent_gpus() {
        assert!(use_varlen_flash(&h100()));
        assert!(use_varlen_flash(&AttentionCase {
            sm_major: Some(8),
            head_dim: 64,
            n_kv_heads: 32,
            ..h100()
        }));
        for backend in ["flash_2", "flash_3", "te"] {
            assert!(use_varlen_flash(&AttentionCase {
                backend: Some(backend),
                ..h100()
            }));
        }
    }

    #[test]
    fn everything_else_keeps_sdpa_with_the_explicit_mask() {
        let cases = [
            AttentionCase {
                backend: Some("torch"),
                ..h100()
            },
            AttentionCase {
                needs_mask: false,
                ..h100()
            },
            AttentionCase {
                sm_major: None,
                ..h100()
            },
            AttentionCase {
                sm_major: Some(7),
                ..h100()
            },
            AttentionCase {
                half: false,
                ..h100()
            },
            AttentionCase {
                head_dim: 100,
                ..h100()
            },
            AttentionCase {
                head_dim: 512,
                ..h100()
            },
            AttentionCase {
                n_kv_heads: 5,
                ..h100()
            },
        ];
        for c in cases {
            assert!(!use_varlen_flash(&c), "{c:?}");
        }
    }
}
