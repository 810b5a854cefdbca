"""Hugging Face fixtures for `olmo-train convert` (transformers 5.x on CPU, fp32).

    scripts/reference/setup-ref.sh
    scripts/reference/pinned.sh .venv-ref/bin/python scripts/reference/hf_fixtures.py            # writes tests/fixtures/hf/*
    scripts/reference/pinned.sh .venv-ref/bin/python scripts/reference/hf_fixtures.py check DIR   # loads an olmo-train export

For the two tiny parity models (tests/fixtures/train/{olmo2,llama2}-init.safetensors, OLMo-core's own
initialization) it builds the Hugging Face model (Olmo2ForCausalLM / LlamaForCausalLM) with OLMo-core's
weight-name mapping (OLMo-core's src/olmo_core/nn/hf/convert.py), saves it with `save_pretrained`
(safetensors) and records its logits for fixed ids. A tiny OlmoeForCausalLM (4 experts, top-2, random
weights from a fixed seed, the router's scaled up so that no token's top-2 is a near tie) is made and
recorded the same way, once with `norm_topk_prob` off (OLMoE's setting) as `olmoe`, once on as
`olmoe-norm`. `check DIR` loads a folder written by
`olmo-train convert to-hf` with transformers' AutoModelForCausalLM and prints the max relative logit
difference to the recorded logits (exit 1 above 1e-5).
"""
import json
import sys

import torch
from safetensors.torch import load_file, save_file
from transformers import (AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, Olmo2Config, Olmo2ForCausalLM,
                          OlmoeConfig, OlmoeForCausalLM)

import pinned

OUT = "tests/fixtures/hf"
IDS = torch.tensor([[(i * 37 + 11) % 500 for i in range(24)], [(i * 13 + 5) % 500 for i in range(24)]])


def mapping(name, n_layers, olmo):
    m = {"embeddings.weight": "model.embed_tokens.weight", "lm_head.norm.weight": "model.norm.weight", "lm_head.w_out.weight": "lm_head.weight"}
    for i in range(n_layers):
        p, q = f"blocks.{i}.", f"model.layers.{i}."
        for a, b in [("w_q", "q_proj"), ("w_k", "k_proj"), ("w_v", "v_proj"), ("w_out", "o_proj"), ("q_norm", "q_norm"), ("k_norm", "k_norm")]:
            m[f"{p}attention.{a}.weight"] = f"{q}self_attn.{b}.weight"
        for a, b in [("w1", "gate_proj"), ("w2", "down_proj"), ("w3", "up_proj")]:
            m[f"{p}feed_forward.{a}.weight"] = f"{q}mlp.{b}.weight"
        if olmo:
            m[f"{p}attention_norm.weight"] = f"{q}post_attention_layernorm.weight"
            m[f"{p}feed_forward_norm.weight"] = f"{q}post_feedforward_layernorm.weight"
        else:
            m[f"{p}attention_norm.weight"] = f"{q}input_layernorm.weight"
            m[f"{p}feed_forward_norm.weight"] = f"{q}post_attention_layernorm.weight"
    return m[name]


def build(name):
    w = load_file(f"tests/fixtures/train/{name}-init.safetensors")
    vocab, d = w["embeddings.weight"].shape
    n_layers = 1 + max(int(k.split(".")[1]) for k in w if k.startswith("blocks."))
    hidden = w["blocks.0.feed_forward.w1.weight"].shape[0]
    if name == "olmo2":
        cfg = Olmo2Config(vocab_size=vocab, hidden_size=d, intermediate_size=hidden, num_hidden_layers=n_layers,
                          num_attention_heads=4, num_key_value_heads=4, rms_norm_eps=1e-6, rope_theta=500000,
                          attention_bias=False, tie_word_embeddings=False, pad_token_id=None, bos_token_id=None, eos_token_id=None,
                          max_position_embeddings=4096, head_dim=4)
        model = Olmo2ForCausalLM(cfg)
    else:
        cfg = LlamaConfig(vocab_size=vocab, hidden_size=d, intermediate_size=hidden, num_hidden_layers=n_layers,
                          num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-5, rope_theta=10000,
                          attention_bias=False, mlp_bias=False, tie_word_embeddings=False, pad_token_id=None, bos_token_id=None,
                          eos_token_id=None, max_position_embeddings=4096)
        model = LlamaForCausalLM(cfg)
    state = {mapping(k, n_layers, name == "olmo2"): v for k, v in w.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not [m for m in missing if "rotary" not in m] and not unexpected, (missing, unexpected)
    return model.eval()


def build_olmoe(norm_topk_prob):
    torch.manual_seed(7)
    cfg = OlmoeConfig(vocab_size=512, hidden_size=16, intermediate_size=8, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=4, num_experts=4, num_experts_per_tok=2, norm_topk_prob=norm_topk_prob,
                      rms_norm_eps=1e-5, rope_theta=10000, attention_bias=False, tie_word_embeddings=False,
                      pad_token_id=None, bos_token_id=None, eos_token_id=None, max_position_embeddings=4096)
    model = OlmoeForCausalLM(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            elif name.endswith("mlp.gate.weight"):
                p.copy_(torch.randn_like(p))
            else:
                p.copy_(0.2 * torch.randn_like(p))
    return model.eval()


def main():
    pinned.require()
    if sys.argv[1:2] == ["check"]:
        folder = sys.argv[2]
        cfg = json.load(open(f"{folder}/config.json"))
        name = {"olmo2": "olmo2", "llama": "llama2"}.get(cfg["model_type"])
        if cfg["model_type"] == "olmoe":
            name = "olmoe-norm" if cfg["norm_topk_prob"] else "olmoe"
        want = load_file(f"{OUT}/{name}-logits.safetensors")["logits"]
        model = AutoModelForCausalLM.from_pretrained(folder, torch_dtype=torch.float32).eval()
        with torch.no_grad():
            got = model(IDS).logits
        rel = ((got - want).abs() / (want.abs() + 1e-6)).max().item()
        ok = torch.allclose(got, want, rtol=1e-5, atol=1e-6)
        print(f"{folder}: {type(model).__name__} max relative logit difference {rel:.2e}")
        sys.exit(0 if ok else 1)
    for name in ("olmo2", "llama2", "olmoe", "olmoe-norm"):
        model = build_olmoe(name == "olmoe-norm") if name.startswith("olmoe") else build(name)
        model.save_pretrained(f"{OUT}/{name}", safe_serialization=True)
        with torch.no_grad():
            logits = model(IDS).logits
        save_file({"input_ids": IDS.contiguous(), "logits": logits.contiguous()}, f"{OUT}/{name}-logits.safetensors")
        print(name, tuple(logits.shape))


if __name__ == "__main__":
    main()
