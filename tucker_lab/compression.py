"""Ranks of trained layers and post-hoc compression into Tucker form.

``rank_profile(layer_or_model)``: for every attention layer, the singular values of
the three unfoldings of W_qk and W_vo and the ranks that keep given fractions of
their energy. ``compress(layer, ranks_qk, ranks_vo)``: a Tucker layer from a
truncated Tucker decomposition (HOSVD or HOOI, tensorly) of the layer's two
weight tensors, as the Tucker paper converts pretrained ViTs (App. C.1.4).
Baselines for the same budget: ``to_gqa`` (mean-pooled or SVD-projected key/value
groups; Ainslie et al. 2023, sec. 2.1) and ``to_mla`` (SVD of the stacked key and
value projections).

RoPE: a rotation acts on the key latent, so the key mode of a layer with RoPE is
kept as its exact Tucker form has it (``to_tucker``: block, tail or latent RoPE)
and only the head and query modes of W_qk are truncated; W_vo carries no position
and is truncated in every mode.

See: book/13_compression.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from .attention import GQAAttention, MLAttention, TuckerAttention
from .attention.base import AttentionModule, per_head, per_head_out
from .config import GQAConfig, MLAConfig, TuckerConfig, _is_int, check_int
from .convert import attention_tensors, to_tucker
from .tensor import energy_rank, factored_singular_values, factored_tucker, relative_error

__all__ = ["LayerRanks", "rank_profile", "compress", "compress_model", "attention_layers", "to_gqa", "to_mla",
           "compression_error"]

MODES = {"qk": ("head", "query", "key"), "vo": ("head", "output", "value")}


def _check_layer(owner: str, layer) -> None:
    if not isinstance(layer, AttentionModule):
        raise TypeError(f"{owner}: layer must be a tucker_lab attention layer (tkl.build_attention(cfg), or "
                        f"tkl.from_hf(module) for a Hugging Face one); got {type(layer).__name__}")


def _check_method(owner: str, method, allowed: tuple[str, ...]) -> None:
    if not isinstance(method, str) or method not in allowed:
        raise ValueError(f"{owner}: method must be one of {allowed}; got {method!r}")


def _check_ranks(owner: str, name: str, ranks, dims: tuple[int, ...], labels: tuple[str, ...]) -> tuple[int, ...]:
    """ranks: a tuple of len(dims) integers, rank n in [1, min(dims[n], product of the others)]
    (the most singular vectors mode n's unfolding has)."""
    n = len(dims)
    if not isinstance(ranks, (tuple, list)) or len(ranks) != n:
        raise ValueError(f"{owner}: {name} must be a tuple of {n} integers ({', '.join(labels)}); got {ranks!r}")
    for i, r in enumerate(ranks):
        others = 1
        for j, d in enumerate(dims):
            others *= d if j != i else 1
        hi = min(dims[i], others)
        if not _is_int(r) or not 1 <= r <= hi:
            raise ValueError(f"{owner}: {name}[{i}] ({labels[i]}) must be an integer in [1, {hi}]; got {r!r}")
    return tuple(ranks)


def attention_layers(model: nn.Module) -> dict[str, AttentionModule]:
    """The attention layers of a model, by module name: tucker_lab layers, and Hugging Face
    LlamaAttention / DeepseekV3Attention modules converted with ``from_hf``."""
    from .hf import SUPPORTED, from_hf
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected an attention layer or a model (an nn.Module); got {type(model).__name__}")
    if isinstance(model, AttentionModule):
        return {"": model}
    found = {}
    for name, mod in model.named_modules():
        if isinstance(mod, AttentionModule):
            found[name] = mod
        elif type(mod).__name__ in SUPPORTED:
            found[name] = from_hf(mod)
    if not found:
        raise ValueError(f"{type(model).__name__} has no attention layers tucker_lab can read (its own layers, "
                         f"or Hugging Face {', '.join(SUPPORTED)})")
    return found


@dataclass
class LayerRanks:
    """Singular values and energy ranks of one layer's two tensors, per mode."""

    name: str
    spectra: dict[str, list[Tensor]]  # "qk"/"vo" -> three spectra (head, query/output, key/value)
    energies: tuple[float, ...]
    ranks: dict[str, dict[float, tuple[int, int, int]]] = field(init=False)

    def __post_init__(self):
        self.ranks = {t: {e: tuple(energy_rank(s, e) for s in sv) for e in self.energies}
                      for t, sv in self.spectra.items()}

    def rows(self) -> list[dict]:
        return [{"layer": self.name, "tensor": t, "mode": MODES[t][m], "dim": len(self.spectra[t][m]),
                 **{f"rank@{e:g}": self.ranks[t][e][m] for e in self.energies}}
                for t in ("qk", "vo") for m in range(3)]


def rank_profile(layer_or_model: nn.Module, energies=(0.9, 0.99, 0.999)) -> list[LayerRanks]:
    """Per attention layer: the mode spectra of W_qk and W_vo and their energy ranks.

    The spectra come from Gram matrices of the per-head projections
    (``tensor.factored_singular_values``): a 30-layer model of C = 576 takes seconds.

    ``rows()`` of each entry (or ``[r for p in profile for r in p.rows()]``) is a table;
    ``tucker_lab.plots.plot_spectra`` draws the spectra."""
    if (not isinstance(energies, (tuple, list)) or not energies
            or not all(isinstance(e, (int, float)) and not isinstance(e, bool) and 0 < e <= 1 for e in energies)):
        raise ValueError(f"rank_profile: energies must be a non-empty tuple of numbers in (0, 1]; got {energies!r}")
    out = []
    for name, layer in attention_layers(layer_or_model).items():
        with torch.no_grad():  # W_qk[i] = W_q[i] W_k[i]^T, W_vo[i] = W_o[i]^T W_v[i]^T, never formed
            P = layer.head_projections()
            spectra = {"qk": factored_singular_values(P["W_q"], P["W_k"]),
                       "vo": factored_singular_values(P["W_o"].transpose(1, 2), P["W_v"])}
        out.append(LayerRanks(name or type(layer).__name__, spectra, tuple(energies)))
    return out


def compress(layer: AttentionModule, ranks_qk, ranks_vo, method: str = "hosvd") -> TuckerAttention:
    """A TuckerAttention whose W_qk and W_vo are the truncated Tucker decompositions
    (``method`` "hosvd" or "hooi") of ``layer``'s, with ranks (head, query, key) and
    (head, output, value). At the full multilinear ranks it reproduces the layer
    exactly. With RoPE, ranks_qk[2] must equal the layer's key latent (see module doc).
    The decompositions run on the per-head factors (``tensor.factored_tucker``), never
    on the (H, C, C) tensors, so a 576-wide layer takes a fraction of a second."""
    _check_layer("compress", layer)
    _check_method("compress", method, ("hosvd", "hooi"))
    src = layer.cfg
    H, C = src.H, src.C
    dims = (H, C, C)
    _check_ranks("compress", "ranks_qk", ranks_qk, dims, ("head", "query", "key"))
    _check_ranks("compress", "ranks_vo", ranks_vo, dims, ("head", "output", "value"))
    p = next(layer.parameters())
    with torch.no_grad():
        P = layer.head_projections()
        # W_vo[i] = W_o[i]^T W_v[i]^T: rows are output dims, columns value (input) dims
        core_vo, (Uh_vo, U_o, U_v) = factored_tucker(P["W_o"].transpose(1, 2), P["W_v"], ranks_vo, method=method)
        if not src.rope:
            core_qk, (Uh_qk, U_q, U_k) = factored_tucker(P["W_q"], P["W_k"], ranks_qk, method=method)
            rope = dict(rope=False)
        else:
            exact = layer if isinstance(layer, TuckerAttention) else to_tucker(layer)
            rk = exact.cfg.r_k
            if ranks_qk[2] != rk:
                raise ValueError(f"compress: with RoPE the key mode keeps its latent of {rk} dims (a rotation "
                                 f"does not commute with a change of key basis); ranks_qk[2] must be {rk}, "
                                 f"got {tuple(ranks_qk)}")
            # per-head query maps into the key latent, M[i] (C, r_k) = M[i] I^T: truncate head and query modes
            M = torch.einsum("hs,sqk,cq->hck", exact.U_head_qk, exact.core_qk, exact.U_q)
            _check_ranks("compress", "ranks_qk", ranks_qk, tuple(M.shape), ("head", "query", "key"))
            eye = torch.eye(rk, dtype=M.dtype, device=M.device).expand(H, rk, rk)
            core_qk, (Uh_qk, U_q, _) = factored_tucker(M, eye, tuple(ranks_qk), modes=(0, 1), method=method)
            U_k = exact.U_k
            rope = dict(rope=True, rope_base=src.rope_base, rope_layout=exact.cfg.rope_layout,
                        rope_dim=exact.cfg.rope_dim)
        cfg = TuckerConfig(d_model=C, n_heads=H, ranks_qk=tuple(core_qk.shape), ranks_vo=tuple(core_vo.shape),
                           causal=src.causal, scale=src.softmax_scale, **rope)
        t = TuckerAttention(cfg, impl=layer.impl).to(dtype=p.dtype, device=p.device)
        for name, value in (("core_qk", core_qk), ("U_head_qk", Uh_qk), ("U_q", U_q), ("U_k", U_k),
                            ("core_vo", core_vo), ("U_head_vo", Uh_vo), ("U_o", U_o), ("U_v", U_v)):
            getattr(t, name).copy_(value)
    return t


def compression_error(layer: AttentionModule, compressed: AttentionModule) -> dict[str, float]:
    """Relative Frobenius errors of the two weight tensors."""
    with torch.no_grad():
        a, b = attention_tensors(layer), attention_tensors(compressed)
    return {"qk": relative_error(a[0], b[0]), "vo": relative_error(a[1], b[1])}


def compress_model(model: nn.Module, ranks_qk, ranks_vo, method: str = "hosvd") -> nn.Module:
    """Replace every tucker_lab attention layer of ``model`` by ``compress(layer, ...)``, in place
    (a bare layer is returned compressed)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"compress_model: model must be an nn.Module; got {type(model).__name__}")
    if isinstance(model, AttentionModule):
        return compress(model, ranks_qk, ranks_vo, method)
    layers = {n: m for n, m in model.named_modules() if isinstance(m, AttentionModule)}
    if not layers:
        raise ValueError(f"{type(model).__name__} has no tucker_lab attention layers to compress")
    for name, layer in layers.items():
        parent, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, attr, compress(layer, ranks_qk, ranks_vo, method))
    return model


def _gqa_weights(layer: GQAAttention):
    """W_q, W_k, W_v (H, C, D) per query head (a GQA group's keys repeated) and W_o (H, D, C)."""
    if not isinstance(layer, GQAAttention):
        raise TypeError(f"expected an MHA/GQA/MQA layer (GQAAttention); got {type(layer).__name__}")
    p = layer.head_projections()
    return p["W_q"], p["W_k"], p["W_v"], p["W_o"]


def to_gqa(layer: GQAAttention, n_kv_heads: int, method: str = "svd") -> GQAAttention:
    """MHA or GQA -> GQA with ``n_kv_heads`` groups of consecutive query heads.
    "mean": each group's keys and values are the mean of its heads' (Ainslie et al. 2023,
    sec. 2.1). "svd": each group's key (value) projection is the top-D left singular
    subspace of its heads' stacked keys (values), and every head's query (output) map is
    projected onto it, so W_q[i] W_k[i]^T becomes W_q[i] W_k[i]^T P_g (P_g the projector
    onto the group's key subspace). A new group whose heads already share one key and
    value projection keeps it (so n_kv_heads = the layer's own is exact, RoPE included).
    Without RoPE the projection is exact whenever the stacked keys have rank <= D; with
    RoPE it mixes head dims that rotate differently, an approximation."""
    Wq, Wk, Wv, Wo = _gqa_weights(layer)
    _check_method("to_gqa", method, ("mean", "svd"))
    src = layer.cfg
    check_int("to_gqa", "n_kv_heads", n_kv_heads, 1, src.H)
    cfg = GQAConfig(d_model=src.C, n_heads=src.H, n_kv_heads=n_kv_heads, d_head=src.d_head, causal=src.causal,
                    rope=src.rope, rope_base=src.rope_base, scale=src.scale)
    H, G, D, C = cfg.H, cfg.G, cfg.D, cfg.C
    R = H // G
    out = GQAAttention(cfg, impl=layer.impl).to(Wq)
    with torch.no_grad():
        q, o = Wq.clone(), Wo.clone()
        k, v = Wq.new_empty(G, C, D), Wq.new_empty(G, C, D)
        for g in range(G):
            heads = slice(g * R, (g + 1) * R)
            if all(torch.equal(Wk[i], Wk[g * R]) and torch.equal(Wv[i], Wv[g * R]) for i in range(g * R, (g + 1) * R)):
                k[g], v[g] = Wk[g * R], Wv[g * R]  # one shared projection already
            elif method == "mean":
                k[g], v[g] = Wk[heads].mean(0), Wv[heads].mean(0)
            else:
                k[g] = torch.linalg.svd(torch.cat(list(Wk[heads]), 1), full_matrices=False)[0][:, :D]
                v[g] = torch.linalg.svd(torch.cat(list(Wv[heads]), 1), full_matrices=False)[0][:, :D]
                q[heads] = Wq[heads] @ (Wk[heads].transpose(1, 2) @ k[g])  # x W_q W_k^T U U^T x'
                o[heads] = (v[g].T @ Wv[heads]) @ Wo[heads]  # U U^T W_v W_o
        per_head(out.w_q, H).copy_(q)  # (H, C, D) into the Linear's (H D, C)
        per_head(out.w_k, G).copy_(k)
        per_head(out.w_v, G).copy_(v)
        per_head_out(out.w_o, H).copy_(o)
    return out


def to_mla(layer: GQAAttention, kv_rank: int) -> MLAttention:
    """MHA/GQA -> MLA with a KV latent of ``kv_rank``: W_dkv = the top kv_rank left singular
    vectors of [W_k, W_v] (C x 2HD, per query head), W_uk, W_uv their coordinates (the best
    rank-kv_rank joint approximation of keys and values, Eckart-Young). Without RoPE this
    is exact once kv_rank reaches the rank of [W_k, W_v]. A layer with RoPE becomes MLA with
    the Tucker paper's coupled RoPE (rotations act on the latent, ``coupled_rope=True``,
    kv_rank even): a different positional scheme, so an approximation at any rank that
    needs data-aware recovery (book/14_pretrained)."""
    Wq, Wk, Wv, Wo = _gqa_weights(layer)
    src = layer.cfg
    check_int("to_mla", "kv_rank", kv_rank, 1, min(src.C, 2 * src.H * src.D))
    rope = dict(rope=True, coupled_rope=True, rope_base=src.rope_base) if src.rope else dict(rope=False)
    cfg = MLAConfig(d_model=src.C, n_heads=src.H, d_head=src.d_head, kv_rank=kv_rank, causal=src.causal,
                    scale=src.softmax_scale, **rope)
    out = MLAttention(cfg, impl=layer.impl).to(Wq)
    with torch.no_grad():
        K = torch.cat(list(Wk), 1)  # (C, H D)
        V = torch.cat(list(Wv), 1)
        U = torch.linalg.svd(torch.cat((K, V), 1), full_matrices=False)[0][:, :kv_rank]  # (C, R)
        out.w_q.weight.copy_(layer.w_q.weight)
        out.w_dkv.weight.copy_(U.T)
        out.w_uk.weight.copy_((U.T @ K).T)  # (H D, R): k = c_kv W_uk
        out.w_uv.weight.copy_((U.T @ V).T)
        out.w_o.weight.copy_(layer.w_o.weight)
    return out
