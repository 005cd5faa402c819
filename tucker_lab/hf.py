"""Import Hugging Face attention modules as tucker_lab layers (optional extra ``hf``).

``from_hf(module)`` turns a transformers ``LlamaAttention`` (GQA with RoPE) into a
GQAAttention and a ``DeepseekV3Attention`` (MLA with decoupled RoPE and latent
RMSNorms) into an MLAttention with the same weights, scale and RoPE base; then
``to_tucker`` gives their exact Tucker form. Both libraries use the half-split
RoPE convention inside the attention; DeepSeek's checkpoints store the RoPE
dims interleaved (``config.rope_interleave``), so those weight rows are permuted
on import. Biases and scaled RoPE variants (YaRN, ...) are refused with a clear error.

``lm_from_hf(llama_model)`` (also ``TinyLM.from_hf``) imports a whole transformers
``LlamaForCausalLM``: embeddings, every block (attention, RMSNorms, SwiGLU MLP), the
final norm and the head, tied or untied.

See: book/13_compression, book/14_pretrained.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .attention import GQAAttention, MLAttention
from .attention.base import per_head
from .config import GQAConfig, MLAConfig

__all__ = ["SUPPORTED", "from_hf", "lm_from_hf"]

SUPPORTED = ("LlamaAttention", "DeepseekV3Attention")


def _rope_base(config) -> float:
    params = getattr(config, "rope_parameters", None) or {"rope_theta": getattr(config, "rope_theta", 10000.0)}
    if params.get("rope_type", "default") != "default":
        raise ValueError(f"from_hf: RoPE type {params['rope_type']!r} (scaled RoPE) is not supported; "
                         "tucker_lab implements standard RoPE")
    return float(params["rope_theta"])


def _no_bias(module: nn.Module, *names: str) -> None:
    for n in names:
        lin = getattr(module, n, None)
        if lin is not None and lin.bias is not None:
            raise ValueError(f"from_hf: {type(module).__name__}.{n} has a bias; tucker_lab's layers have none")


def _interleaved_to_half(n: int, device) -> Tensor:
    """Row order taking interleaved RoPE pairs (0,1), (2,3), ... to half-split (0, 2, ..., 1, 3, ...)."""
    return torch.cat((torch.arange(0, n, 2, device=device), torch.arange(1, n, 2, device=device)))


def _llama(m: nn.Module) -> GQAAttention:
    c = m.config
    _no_bias(m, "q_proj", "k_proj", "v_proj", "o_proj")
    cfg = GQAConfig(d_model=c.hidden_size, n_heads=c.num_attention_heads, n_kv_heads=c.num_key_value_heads,
                    d_head=m.head_dim, rope_base=_rope_base(c), scale=float(m.scaling))
    w = m.q_proj.weight
    layer = GQAAttention(cfg).to(dtype=w.dtype, device=w.device)
    with torch.no_grad():  # same layout: nn.Linear rows are heads x head dims
        for mine, theirs in ((layer.w_q, m.q_proj), (layer.w_k, m.k_proj), (layer.w_v, m.v_proj),
                             (layer.w_o, m.o_proj)):
            mine.weight.copy_(theirs.weight)
    return layer


def _deepseek(m: nn.Module) -> MLAttention:
    c = m.config
    _no_bias(m, "q_proj", "q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj", "o_proj")
    H, D, dr, Dv, R, Rq = (m.num_heads, m.qk_nope_head_dim, m.qk_rope_head_dim, m.v_head_dim, m.kv_lora_rank,
                           m.q_lora_rank)
    cfg = MLAConfig(d_model=m.hidden_size, n_heads=H, d_head=D, kv_rank=R, q_rank=Rq, rope_dim=dr, v_head_dim=Dv,
                    latent_norm=True, rope_base=_rope_base(c), scale=float(m.scaling))
    w = m.kv_b_proj.weight
    layer = MLAttention(cfg).to(dtype=w.dtype, device=w.device)
    perm = (_interleaved_to_half(dr, w.device) if getattr(c, "rope_interleave", False)
            else torch.arange(dr, device=w.device))
    with torch.no_grad():
        q_up = per_head(m.q_proj if Rq is None else m.q_b_proj, H)  # (H, C or R_q, D + D_rope): [nope | rope]
        per_head(layer.w_q if Rq is None else layer.w_uq, H).copy_(q_up[..., :D])
        per_head(layer.w_qr, H).copy_(q_up[..., D:][..., perm])
        if Rq is not None:
            layer.w_dq.weight.copy_(m.q_a_proj.weight)
            layer.q_norm.weight.copy_(m.q_a_layernorm.weight)
            layer.q_norm.eps = m.q_a_layernorm.variance_epsilon
        kv_a = m.kv_a_proj_with_mqa.weight  # rows [c_kv (R) | k_rope (D_rope)]
        layer.w_dkv.weight.copy_(kv_a[:R])
        layer.w_kr.weight.copy_(kv_a[R:][perm])
        layer.kv_norm.weight.copy_(m.kv_a_layernorm.weight)
        layer.kv_norm.eps = m.kv_a_layernorm.variance_epsilon
        kv_b = per_head(m.kv_b_proj, H)  # (H, R_kv, D + D_v): [k_nope | v]
        per_head(layer.w_uk, H).copy_(kv_b[..., :D])
        per_head(layer.w_uv, H).copy_(kv_b[..., D:])
        layer.w_o.weight.copy_(m.o_proj.weight)
    return layer


def from_hf(module: nn.Module):
    """A tucker_lab layer computing what a Hugging Face attention module computes.

    Supported: LlamaAttention -> GQAAttention; DeepseekV3Attention -> MLAttention
    (latent_norm=True). Raises TypeError for other modules, ValueError for biases or
    scaled RoPE."""
    kind = type(module).__name__
    if kind == "LlamaAttention":
        return _llama(module)
    if kind == "DeepseekV3Attention":
        return _deepseek(module)
    raise TypeError(f"from_hf: module must be a Hugging Face {' or '.join(SUPPORTED)}; got {kind}")


def lm_from_hf(model: nn.Module, tokenizer=None, *, max_seq_len: int | None = None):
    """A TinyLM with the weights of a transformers ``LlamaForCausalLM`` (same logits).

    ``tokenizer`` is kept alongside as ``lm.tokenizer``; ``max_seq_len`` defaults to the
    model's ``max_position_embeddings``. Raises TypeError for other architectures and
    ValueError for what TinyLM does not compute (biases, scaled RoPE, other activations)."""
    from .models import LMConfig, TinyLM
    if type(model).__name__ != "LlamaForCausalLM":
        raise TypeError(f"TinyLM.from_hf: takes a transformers LlamaForCausalLM; got {type(model).__name__}")
    c = model.config
    if c.hidden_act != "silu":
        raise ValueError(f"TinyLM.from_hf: hidden_act {c.hidden_act!r}; TinyLM's MLP is SwiGLU ('silu')")
    if getattr(c, "mlp_bias", False):
        raise ValueError("TinyLM.from_hf: mlp_bias=True; TinyLM's MLP has no biases")
    body = model.model
    layers = [from_hf(block.self_attn) for block in body.layers]
    w = body.embed_tokens.weight
    cfg = LMConfig(vocab_size=c.vocab_size, n_layers=c.num_hidden_layers, attention=layers[0].cfg,
                   max_seq_len=max_seq_len or c.max_position_embeddings, mlp_hidden=c.intermediate_size,
                   norm_eps=float(c.rms_norm_eps),
                   tie_embeddings=model.lm_head.weight.data_ptr() == w.data_ptr())
    lm = TinyLM(cfg).to(dtype=w.dtype, device=w.device)
    with torch.no_grad():
        lm.tok_emb.weight.copy_(w)
        if not cfg.tie_embeddings:
            lm.lm_head.weight.copy_(model.lm_head.weight)
        lm.norm_f.weight.copy_(body.norm.weight)
        for mine, theirs, attn in zip(lm.blocks, body.layers, layers):
            mine.attn = attn  # already the imported layer, same config as cfg.attention
            mine.norm_attn.weight.copy_(theirs.input_layernorm.weight)
            mine.norm_mlp.weight.copy_(theirs.post_attention_layernorm.weight)
            for a, b in (("w_gate", "gate_proj"), ("w_up", "up_proj"), ("w_down", "down_proj")):
                getattr(mine.mlp, a).weight.copy_(getattr(theirs.mlp, b).weight)
    lm.tokenizer = tokenizer
    return lm.eval()
