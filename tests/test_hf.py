"""Hugging Face import: our layers compute what transformers' modules compute (random small
configs, no download): fp32 within 1e-5, fp64 within 1e-10."""
import pytest
import torch

transformers = pytest.importorskip("transformers")

import tucker_lab as tkl  # noqa: E402
from tucker_lab.hf import from_hf  # noqa: E402
from transformers import DeepseekV3Config, LlamaConfig, LlamaForCausalLM  # noqa: E402
from transformers.models.deepseek_v3 import modeling_deepseek_v3 as ds  # noqa: E402
from transformers.models.llama.modeling_llama import LlamaAttention, LlamaRotaryEmbedding  # noqa: E402

T = 11


def rope_cos_sin(T, dim, base, dtype):
    """HF's position embeddings (cat(freqs, freqs)), computed in float64."""
    inv = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
    f = torch.arange(T, dtype=torch.float64)[:, None] * inv
    e = torch.cat((f, f), -1)
    return e.cos()[None].to(dtype), e.sin()[None].to(dtype)


def causal(T, dtype):
    return torch.full((T, T), float("-inf"), dtype=dtype).triu(1)[None, None]


def llama(dtype, impl, **kw):
    cfg = LlamaConfig(hidden_size=64, num_attention_heads=8, num_key_value_heads=2, head_dim=8,
                      attn_implementation=impl, **kw)
    return LlamaAttention(cfg, 0).to(dtype)


def deepseek(dtype, impl, q_lora_rank=24, rope_interleave=True):
    cfg = DeepseekV3Config(hidden_size=64, num_attention_heads=4, num_key_value_heads=4, q_lora_rank=q_lora_rank,
                           kv_lora_rank=16, qk_nope_head_dim=8, qk_rope_head_dim=4, v_head_dim=6,
                           rope_interleave=rope_interleave, attn_implementation=impl)
    m = ds.DeepseekV3Attention(cfg, 0).to(dtype)
    with torch.no_grad():  # non-trivial norm gains
        for n in (m.q_a_layernorm, m.kv_a_layernorm):
            if n is not None:
                n.weight.normal_()
    return m


@pytest.fixture
def fp64_norms(monkeypatch):
    """DeepSeek's RMSNorm computes in float32 whatever its input; for the float64 check it
    runs the same formula in float64."""
    def forward(self, h):
        return self.weight * (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.variance_epsilon))
    monkeypatch.setattr(ds.DeepseekV3RMSNorm, "forward", forward)


@pytest.mark.parametrize("dtype,tol,impl", [(torch.float32, 1e-5, "eager"), (torch.float64, 1e-10, "sdpa")])
def test_llama_attention(dtype, tol, impl):
    m = llama(dtype, impl)
    x = torch.randn(2, T, 64, dtype=dtype)
    if dtype == torch.float32:  # HF's own rotary module, as in a real model
        cos_sin = LlamaRotaryEmbedding(m.config)(x, torch.arange(T)[None])
    else:  # HF's rotary module computes its angles in float32; the same formula in float64
        cos_sin = rope_cos_sin(T, 8, m.config.rope_parameters["rope_theta"], dtype)
    ref = m(x, position_embeddings=cos_sin, attention_mask=causal(T, dtype))[0]
    ours = from_hf(m)
    assert isinstance(ours, tkl.GQAAttention) and ours.cfg.G == 2
    assert (ours(x) - ref).abs().max() <= tol
    t = tkl.to_tucker(ours)  # and its exact Tucker form
    assert (t(x) - ref).abs().max() <= tol


@pytest.mark.parametrize("q_lora_rank", [24, None])
@pytest.mark.parametrize("rope_interleave", [True, False])
@pytest.mark.parametrize("dtype,tol,impl", [(torch.float32, 1e-5, "eager"), (torch.float64, 1e-10, "sdpa")])
def test_deepseek_v3_attention(q_lora_rank, rope_interleave, dtype, tol, impl, fp64_norms):
    m = deepseek(dtype, impl, q_lora_rank, rope_interleave)
    x = torch.randn(2, T, 64, dtype=dtype)
    ref = m(x, position_embeddings=rope_cos_sin(T, 4, 10000.0, dtype), attention_mask=causal(T, dtype))[0]
    ours = from_hf(m)
    assert isinstance(ours, tkl.MLAttention) and ours.cfg.latent_norm
    assert ours.cfg.kv_cache_elements_per_token() == 16 + 4  # the latent and the RoPE key, as HF caches
    for mode in ("naive", "absorbed"):
        ours.mode = mode
        assert (ours(x) - ref).abs().max() <= tol


def test_import_errors():
    with pytest.raises(TypeError, match="module must be a Hugging Face LlamaAttention or DeepseekV3Attention; got Linear"):
        from_hf(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match=r"q_proj has a bias"):
        from_hf(llama(torch.float32, "eager", attention_bias=True))
    m = llama(torch.float32, "eager")
    m.config.rope_parameters = {"rope_type": "yarn", "rope_theta": 1e4, "factor": 2.0}
    with pytest.raises(ValueError, match="scaled RoPE"):
        from_hf(m)


def test_rank_profile_of_a_transformers_model():
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=50, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                      num_attention_heads=8, num_key_value_heads=2, head_dim=8)
    model = LlamaForCausalLM(cfg).double()
    prof = tkl.rank_profile(model, energies=(1.0,))
    assert [p.name for p in prof] == ["model.layers.0.self_attn", "model.layers.1.self_attn"]
    bounds = tkl.GQAConfig(d_model=64, n_heads=8, n_kv_heads=2).max_ranks()
    assert prof[0].ranks["qk"][1.0] == bounds["qk"] and prof[1].ranks["vo"][1.0] == bounds["vo"]
