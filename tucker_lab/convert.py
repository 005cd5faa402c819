"""Exact conversions between the variants.

``attention_tensors(layer)`` forms the two weight tensors (W_qk, W_vo), each
(H, C, C). ``to_tucker(layer)`` returns a TuckerAttention with the same outputs
(the constructions behind Theorems B.2-B.4 of the Tucker paper: MHA, MQA, GQA
and MLA are Tucker points), RoPE included: per-head RoPE becomes block latent
RoPE, DeepSeek's decoupled key a trailing slice, coupled-RoPE MLA the paper's
own latent RoPE. ``to_tpa(layer)`` writes MHA/MQA/GQA as TPA with constant head
factors (TPA paper sec. 4).

The constructions use U_head = I_H and, where a layer has no down-projection,
the identity as the query/output basis; the weights then sit in the core.

See: book/05_attention_tensor, book/07_special_cases.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .attention import GQAAttention, MLAttention, TPAttention, TuckerAttention
from .attention.base import AttentionModule, per_head, per_head_out
from .config import TPAConfig, TuckerConfig

__all__ = ["attention_tensors", "to_tucker", "to_tpa"]


def attention_tensors(layer: AttentionModule) -> tuple[Tensor, Tensor]:
    """W_qk[i] = W_q[i] W_k[i]^T and W_vo[i] = (W_v[i] W_o[i])^T, each (H, C, C).

    Positional rotations are taken at relative offset 0 (RoPE = identity).
    Raises ValueError for layers that are not linear in x (contextual TPA,
    MLA with latent norms).
    """
    if not isinstance(layer, AttentionModule):
        raise TypeError(f"attention_tensors: layer must be a tucker_lab attention layer (tkl.build_attention(cfg)); "
                        f"got {type(layer).__name__}")
    P = layer.head_projections()
    W_qk = torch.einsum("hce,hde->hcd", P["W_q"], P["W_k"])
    W_vo = torch.einsum("hcf,hfd->hdc", P["W_v"], P["W_o"])
    return W_qk, W_vo


def _blocks(pieces: Tensor, at: list[int], n_blocks: int) -> Tensor:
    """(n, rows, w) pieces -> (n, rows, n_blocks * w), piece i in block at[i], zeros elsewhere."""
    n, rows, w = pieces.shape
    out = pieces.new_zeros(n, rows, n_blocks * w)
    for i, (p, b) in enumerate(zip(pieces, at)):
        out[i, :, b * w:(b + 1) * w] = p
    return out


def _check_latent(name: str, width: int, C: int) -> None:
    if width > C:
        raise ValueError(f"to_tucker: the key/value latent of this layer needs {width} dims "
                         f"({name}) but a Tucker rank is at most d_model = {C}")


def _parts_gqa(layer: GQAAttention) -> dict:
    cfg = layer.cfg
    C, H, G, D = cfg.C, cfg.H, cfg.G, cfg.D
    _check_latent("n_kv_heads * d_head", G * D, C)
    Wq, Wk, Wv = per_head(layer.w_q, H), per_head(layer.w_k, G), per_head(layer.w_v, G)  # (n, C, D)
    Wo = per_head_out(layer.w_o, H)  # (H, D, C)
    group = [i * G // H for i in range(H)]
    I = torch.eye(C, dtype=Wq.dtype, device=Wq.device)
    # key latent = [x W_k[0], ..., x W_k[G-1]]; head i's query fills block g(i)
    return dict(U_q=I, T_qk=_blocks(Wq, group, G), U_k=torch.cat(list(Wk), 1),
                U_v=torch.cat(list(Wv), 1), T_vo=_blocks(Wo.transpose(1, 2), group, G),
                U_o=I, rope_layout="block", rope_dim=D, shared_kv=False)


def _parts_mla(layer: MLAttention) -> dict:
    cfg = layer.cfg
    if cfg.latent_norm:
        raise ValueError("to_tucker: MLA with latent_norm=True is not a Tucker point "
                         "(RMSNorm on the latent is nonlinear); build it with latent_norm=False")
    C, H, dr = cfg.C, cfg.H, cfg.D_rope
    W_dkv = layer.w_dkv.weight.T  # (C, R)
    if cfg.q_rank is not None:
        U_q, W_uq = layer.w_dq.weight.T, per_head(layer.w_uq, H)  # (C, R_q), (H, R_q, D)
    else:
        U_q, W_uq = torch.eye(C, dtype=W_dkv.dtype, device=W_dkv.device), per_head(layer.w_q, H)
    T_qk = W_uq @ per_head(layer.w_uk, H).transpose(1, 2)  # absorbed: W_uq_i W_uk_i^T (H, d_q, R)
    W_o = per_head_out(layer.w_o, H).transpose(1, 2)  # W_o[i]^T: (H, C, D_v)
    T_vo = W_o @ per_head(layer.w_uv, H).transpose(1, 2)  # W_o[i]^T W_uv_i^T (H, C, R)
    U_k, layout = W_dkv, "latent"
    if dr:  # ONE latent [c_kv, k_rope], as MLA caches: the decoupled key is its rotated
        # trailing slice, and the values read it through zero columns of the output core
        T_qk = torch.cat((T_qk, per_head(layer.w_qr, H)), -1)
        T_vo = torch.cat((T_vo, T_vo.new_zeros(H, C, dr)), -1)
        U_k, layout = torch.cat((W_dkv, layer.w_kr.weight.T), 1), "tail"
    _check_latent("kv_rank + rope_dim", U_k.shape[1], C)
    I = torch.eye(C, dtype=W_dkv.dtype, device=W_dkv.device)
    return dict(U_q=U_q, T_qk=T_qk, U_k=U_k, U_v=U_k, T_vo=T_vo, U_o=I, rope_layout=layout,
                rope_dim=dr or None, shared_kv=True)


def _parts_tpa(layer: TPAttention) -> dict:
    cfg = layer.cfg
    if cfg.contextual_a:
        raise ValueError("to_tucker: TPA with contextual_a=True is not a Tucker point (its "
                         "head factors depend on x); use contextual_a=False")
    C, D, Rk, Rv = cfg.C, cfg.D, cfg.k_rank, cfg.v_rank
    _check_latent("k_rank * d_head", Rk * D, C)
    _check_latent("v_rank * d_head", Rv * D, C)
    P = layer.head_projections()  # W_q[i] = (1/R_q) sum_r a_q[r, i] Wb_q[r]
    # head i's query in block s of the key latent is (a_k[s, i] / R_k) x W_q[i]
    T_qk = torch.einsum("sh,hcd->hcsd", layer.a_k / Rk, P["W_q"]).flatten(2)
    T_vo = torch.einsum("uh,hdc->hcud", layer.a_v / Rv, P["W_o"]).flatten(2)
    I = torch.eye(C, dtype=T_qk.dtype, device=T_qk.device)
    return dict(U_q=I, T_qk=T_qk, U_k=torch.cat(list(per_head(layer.w_bk, Rk)), 1),
                U_v=torch.cat(list(per_head(layer.w_bv, Rv)), 1), T_vo=T_vo, U_o=I, rope_layout="block",
                rope_dim=D, shared_kv=False)


def to_tucker(layer: AttentionModule) -> TuckerAttention:
    """The exact Tucker form of an MHA/MQA/GQA, MLA (no latent norms),
    non-contextual TPA or Tucker layer: same outputs for every input.

    Ranks: (H, C or R_q, key latent) and (H, C, value latent), the maxima of
    the Tucker paper's Theorems B.2-B.4 (MLA with a decoupled key: one shared latent [c_kv, k_rope], so
    the Tucker layer caches exactly what MLA caches). RoPE becomes latent RoPE
    with the matching layout.
    """
    if isinstance(layer, TuckerAttention):
        t = TuckerAttention(layer.cfg, impl=layer.impl)
        t.load_state_dict(layer.state_dict())
        return t.to(next(layer.parameters()))
    parts = {GQAAttention: _parts_gqa, MLAttention: _parts_mla, TPAttention: _parts_tpa}
    make = parts.get(type(layer))
    if make is None:
        raise TypeError(f"to_tucker: unsupported layer {type(layer).__name__}; supported: "
                        f"{[c.__name__ for c in parts]} and TuckerAttention")
    src = layer.cfg
    with torch.no_grad():
        p = make(layer)
        H, C = src.H, src.C
        cfg = TuckerConfig(
            d_model=C, n_heads=H, causal=src.causal, rope=src.rope, rope_base=src.rope_base,
            scale=src.softmax_scale, shared_kv=p["shared_kv"],
            ranks_qk=(H, p["U_q"].shape[1], p["U_k"].shape[1]),
            ranks_vo=(H, p["U_o"].shape[1], p["U_v"].shape[1]),
            rope_layout=p["rope_layout"] if src.rope else "latent",
            rope_dim=p["rope_dim"] if src.rope else None)
        ref = p["T_qk"]
        t = TuckerAttention(cfg, impl=layer.impl).to(dtype=ref.dtype, device=ref.device)
        eye = torch.eye(H, dtype=ref.dtype, device=ref.device)
        for name, value in (("core_qk", p["T_qk"]), ("U_head_qk", eye), ("U_q", p["U_q"]),
                            ("U_k", p["U_k"]), ("core_vo", p["T_vo"]), ("U_head_vo", eye),
                            ("U_o", p["U_o"]), ("U_v", None if p["shared_kv"] else p["U_v"])):
            if value is not None:
                getattr(t, name).copy_(value)
    return t


def to_tpa(layer: GQAAttention) -> TPAttention:
    """MHA/MQA/GQA as TPA with constant head factors (TPA paper sec. 4):
    R_q = H with a_q = H e_i; R_k = R_v = G with a_k[g] = G * (indicator of group g)."""
    if not isinstance(layer, GQAAttention):
        raise TypeError(f"to_tpa: takes an MHA/MQA/GQA layer (GQAAttention); got {type(layer).__name__}")
    src = layer.cfg
    H, G = src.H, src.G
    cfg = TPAConfig(d_model=src.C, n_heads=H, d_head=src.D, q_rank=H, k_rank=G, v_rank=G,
                    contextual_a=False, causal=src.causal, rope=src.rope, rope_base=src.rope_base,
                    scale=src.softmax_scale)
    w = layer.w_q.weight
    t = TPAttention(cfg, impl=layer.impl).to(dtype=w.dtype, device=w.device)
    group = torch.arange(H, device=w.device) * G // H
    member = (group[None, :] == torch.arange(G, device=w.device)[:, None]).to(w.dtype)  # (G, H)
    with torch.no_grad():
        t.a_q.copy_(H * torch.eye(H, dtype=w.dtype, device=w.device))
        t.a_k.copy_(G * member)
        t.a_v.copy_(G * member)
        for mine, theirs in ((t.w_bq, layer.w_q), (t.w_bk, layer.w_k), (t.w_bv, layer.w_v),
                             (t.w_o, layer.w_o)):
            mine.weight.copy_(theirs.weight)  # (R*D, C) is the per-head (H*D, C) layout
    return t
