// Variable-length flash attention (FlashAttention-2's varlen kernels, which libtorch ships for CUDA) as
// an autograd function: documents packed into one [tokens, heads, head_dim] sequence, delimited by
// cumulative lengths, each attending causally within itself (and within a sliding window when given).
// This is what OLMo-core runs for intra-document masking and sliding windows (flash-attn's varlen and
// window arguments); the dense alternative is an explicit [B, 1, T, T] mask, which keeps SDPA off its
// fastest kernels. GQA comes for free: the kernels take fewer key/value heads.
#include <torch/autograd.h>
#ifdef OLMO_TRAIN_NCCL
#include <ATen/ops/_flash_attention_backward.h>
#include <ATen/ops/_flash_attention_forward.h>
#endif

#include <optional>
#include <stdexcept>

#include "shim_guard.h"

namespace {
#ifdef OLMO_TRAIN_NCCL
std::optional<int64_t> left_of(int64_t window_left) {
  return window_left >= 0 ? std::optional<int64_t>(window_left) : std::nullopt;
}
std::optional<int64_t> right_of(int64_t window_left) {
  return window_left >= 0 ? std::optional<int64_t>(0) : std::nullopt;
}

struct VarlenFlash : public torch::autograd::Function<VarlenFlash> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& q,
                            const at::Tensor& k, const at::Tensor& v, const at::Tensor& cu_seqlens,
                            int64_t max_len, int64_t window_left) {
    auto [out, lse, rng, unused, debug] = at::_flash_attention_forward(
        q, k, v, cu_seqlens, cu_seqlens, max_len, max_len, /*dropout_p=*/0.0, /*is_causal=*/true,
        /*return_debug_mask=*/false, /*scale=*/std::nullopt, left_of(window_left),
        right_of(window_left));
    ctx->save_for_backward({q, k, v, out, lse, cu_seqlens, rng, unused});
    ctx->saved_data["max_len"] = max_len;
    ctx->saved_data["window_left"] = window_left;
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto s = ctx->get_saved_variables();
    const int64_t max_len = ctx->saved_data["max_len"].toInt();
    const int64_t window_left = ctx->saved_data["window_left"].toInt();
    auto [dq, dk, dv] = at::_flash_attention_backward(
        grads[0].contiguous(), s[0], s[1], s[2], s[3], s[4], s[5], s[5], max_len, max_len,
        /*dropout_p=*/0.0, /*is_causal=*/true, s[6], s[7], /*scale=*/std::nullopt,
        left_of(window_left), right_of(window_left));
    return {dq, dk, dv, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};
#endif
}  // namespace

extern "C" {

// q [tokens, heads, head_dim], k and v [tokens, kv_heads, head_dim] (bf16 or fp16, CUDA), cu_seqlens
// int32 [documents + 1]; window_left < 0 for no window. The output, like q, in *out.
int shim_flash_varlen(at::Tensor* q, at::Tensor* k, at::Tensor* v, at::Tensor* cu_seqlens,
                      int64_t max_len, int64_t window_left, at::Tensor** out) {
  return guarded([&] {
#ifdef OLMO_TRAIN_NCCL
    *out = new at::Tensor(VarlenFlash::apply(q->contiguous(), k->contiguous(), v->contiguous(),
                                             *cu_seqlens, max_len, window_left));
#else
    throw std::runtime_error("this olmo-train was built without CUDA headers");
#endif
  });
}
}
