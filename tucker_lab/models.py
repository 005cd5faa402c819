"""Small models with a pluggable attention config.

TinyLM is LLaMA-style: token embeddings, pre-norm blocks (RMSNorm, attention,
RMSNorm, SwiGLU MLP), a final RMSNorm and an output head tied to the embeddings.
Positions come from RoPE inside the attention (no position embeddings). Any
causal config from ``tucker_lab.config`` plugs in, so two models that differ
only in their attention are directly comparable.

See: book/09_decoding, book/12_training.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention import build_attention
from .attention.base import linear
from .cache import FactorCache
from .config import AttentionConfig, check_int, check_tensor

__all__ = ["LMConfig", "TinyLM", "generate", "ViTConfig", "TinyViT"]


def _check_eps(owner: str, eps) -> None:
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < 1:
        raise ValueError(f"{owner}.norm_eps must be a number in (0, 1); got {eps!r}")


@dataclass(frozen=True, kw_only=True)
class LMConfig:
    """A TinyLM.

    Attributes:
        vocab_size: tokens in the vocabulary.
        n_layers: transformer blocks.
        attention: the attention config of every block (must be causal).
        max_seq_len: the longest sequence the model is used on (caches are sized by it).
        mlp_hidden: SwiGLU hidden width; ``None`` means 8C/3 rounded up to a multiple of 8.
        norm_eps: RMSNorm epsilon.
        tie_embeddings: share the output head with the token embedding.
    """

    vocab_size: int
    n_layers: int
    attention: AttentionConfig
    max_seq_len: int = 256
    mlp_hidden: int | None = None
    norm_eps: float = 1e-6
    tie_embeddings: bool = True

    def __post_init__(self):
        for name in ("vocab_size", "n_layers", "max_seq_len") + (("mlp_hidden",) if self.mlp_hidden is not None else ()):
            check_int("LMConfig", name, getattr(self, name), 1)
        _check_eps("LMConfig", self.norm_eps)
        if not isinstance(self.tie_embeddings, bool):
            raise ValueError(f"LMConfig.tie_embeddings must be a bool; got {self.tie_embeddings!r}")
        if not isinstance(self.attention, AttentionConfig):
            raise ValueError(f"LMConfig.attention must be an attention config (MHAConfig, GQAConfig, "
                             f"MLAConfig, TPAConfig, TuckerConfig); got {type(self.attention).__name__}")
        if not self.attention.causal:
            raise ValueError("LMConfig.attention must be causal (causal=True) for a language model")

    @property
    def d_model(self) -> int:
        return self.attention.d_model

    @property
    def hidden(self) -> int:
        return self.mlp_hidden or -(-8 * self.d_model // 3 // 8) * 8

    def block_param_count(self) -> int:
        """One Block: attention, SwiGLU (3 C hidden) and two RMSNorm weights."""
        return self.attention.param_count() + 3 * self.d_model * self.hidden + 2 * self.d_model

    def param_count(self) -> int:
        C, V = self.d_model, self.vocab_size
        return V * C + self.n_layers * self.block_param_count() + C + (0 if self.tie_embeddings else V * C)


class SwiGLU(nn.Module):
    """down(silu(x W_gate) * x W_up) (Shazeer 2020)."""

    def __init__(self, d_model: int, hidden: int):
        super().__init__()
        self.w_gate, self.w_up, self.w_down = linear(d_model, hidden), linear(d_model, hidden), linear(hidden, d_model)

    def forward(self, x: Tensor) -> Tensor:
        return self.w_down(F.silu(self.w_gate(x)) * self.w_up(x))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, cfg: "LMConfig | ViTConfig"):
        super().__init__()
        C = cfg.d_model
        self.norm_attn = nn.RMSNorm(C, eps=cfg.norm_eps)
        self.attn = build_attention(cfg.attention)
        self.norm_mlp = nn.RMSNorm(C, eps=cfg.norm_eps)
        self.mlp = SwiGLU(C, cfg.hidden)

    def forward(self, x: Tensor, cache: FactorCache | None = None, start_pos: int | None = None) -> Tensor:
        x = x + self.attn(self.norm_attn(x), cache=cache, start_pos=start_pos)
        return x + self.mlp(self.norm_mlp(x))


class TinyLM(nn.Module):
    """LLaMA-style decoder: ``logits = model(idx)``, idx (B, T) token ids -> (B, T, vocab).

    With ``caches = model.new_caches(B, S_max)`` (one FactorCache per layer),
    ``model(idx, caches=caches)`` continues where the caches end.
    """

    def __init__(self, cfg: LMConfig):
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        nn.init.normal_(self.tok_emb.weight, std=0.02)  # GPT-2's embedding init
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm_f = nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.tok_emb.weight

    @classmethod
    def from_hf(cls, model: nn.Module, tokenizer=None, *, max_seq_len: int | None = None) -> "TinyLM":
        """The same model as a transformers ``LlamaForCausalLM``, with tucker_lab layers
        (see ``tucker_lab.hf.lm_from_hf``); ``tokenizer`` is kept as ``.tokenizer``."""
        from .hf import lm_from_hf
        return lm_from_hf(model, tokenizer, max_seq_len=max_seq_len)

    def new_caches(self, batch_size: int, max_seq_len: int | None = None, *, dtype=None, device=None) -> list[FactorCache]:
        """One cache per layer (each owned by its layer), ``max_seq_len`` defaulting to the
        config's and at most it. Caches are for inference: decode under torch.no_grad()."""
        n = self.cfg.max_seq_len if max_seq_len is None else max_seq_len
        check_int("TinyLM.new_caches", "max_seq_len", n, 1, self.cfg.max_seq_len)
        return [b.attn.new_cache(batch_size, n, dtype=dtype, device=device) for b in self.blocks]

    def forward(self, idx: Tensor, *, caches: list[FactorCache] | None = None, start_pos: int | None = None) -> Tensor:
        """idx (B, T) -> logits (B, T, vocab). With ``caches`` (``new_caches``), positions
        start at ``start_pos``, by default where the caches end."""
        check_tensor("TinyLM", "idx", idx)
        if idx.ndim != 2 or idx.dtype not in (torch.int32, torch.int64):
            raise ValueError(f"TinyLM: idx must be integer token ids of shape (B, T); got {idx.dtype} {tuple(idx.shape)}")
        if idx.numel() == 0:
            raise ValueError(f"TinyLM: idx must hold at least one token; got shape {tuple(idx.shape)}")
        V = self.cfg.vocab_size
        # checked where it costs no device sync (on a GPU nn.Embedding asserts on the device)
        if idx.device.type == "cpu" and not torch.compiler.is_compiling() and bool(((idx < 0) | (idx >= V)).any()):
            raise ValueError(f"TinyLM: idx must be token ids in [0, vocab_size={V}); got values in "
                             f"[{idx.min().item()}, {idx.max().item()}]")
        if caches is not None:
            if not isinstance(caches, (list, tuple)) or not all(isinstance(c, FactorCache) for c in caches):
                raise TypeError("TinyLM: caches must be None or the list of FactorCaches from model.new_caches(...); "
                                f"got {type(caches).__name__}")
            if len(caches) != len(self.blocks):
                raise ValueError(f"TinyLM: need one cache per layer ({len(self.blocks)}); got {len(caches)}")
            # every check before the first write, so a refused call leaves all caches as they were
            for block, cache in zip(self.blocks, caches):
                cache.own(block.attn, claim=False)
            if len({c.seq_len for c in caches}) > 1:
                raise ValueError(f"TinyLM: the caches hold different numbers of tokens "
                                 f"{[c.seq_len for c in caches]}; reset them all (cache.reset()) or make new ones")
        if start_pos is not None and (not isinstance(start_pos, int) or isinstance(start_pos, bool) or start_pos < 0):
            raise ValueError(f"TinyLM: start_pos must be None or an integer >= 0; got {start_pos!r}")
        end = (start_pos if start_pos is not None else (caches[0].seq_len if caches else 0)) + idx.shape[1]
        if end > self.cfg.max_seq_len:
            raise ValueError(f"TinyLM: positions up to {end - 1} but max_seq_len={self.cfg.max_seq_len}")
        x = self.tok_emb(idx)
        for i, block in enumerate(self.blocks):
            x = block(x, caches[i] if caches is not None else None, start_pos)
        return self.lm_head(self.norm_f(x))


def _sample(logits: Tensor, temperature: float, top_k: int | None, generator) -> Tensor:
    """logits (B, V) -> next ids (B,): greedy at temperature 0, else top-k sampling."""
    if temperature == 0:
        return logits.argmax(-1)
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, -1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return torch.multinomial(torch.softmax(logits.float(), -1), 1, generator=generator)[:, 0]


@torch.no_grad()
def generate(model: TinyLM, prompt_ids: Tensor, max_new_tokens: int, *, temperature: float = 1.0,
             top_k: int | None = None, use_cache: bool = True, generator: torch.Generator | None = None) -> Tensor:
    """Continue ``prompt_ids`` ((T0,) or (B, T0)) by ``max_new_tokens`` tokens.

    temperature 0 is greedy; otherwise softmax(logits / temperature) over the
    ``top_k`` most likely tokens is sampled (with ``generator`` for reproducibility).
    With ``use_cache`` the prompt is prefilled once and each new token is one
    decode step over per-layer factor caches; without, every step re-runs the
    whole sequence (the reference the cached path must match).
    Returns the prompt followed by the new tokens, shaped like ``prompt_ids``.
    """
    if not isinstance(model, TinyLM):
        raise TypeError(f"generate: model must be a TinyLM (for another model, loop over its logits); "
                        f"got {type(model).__name__}")
    check_tensor("generate", "prompt_ids", prompt_ids, ndim=(1, 2), dtype=(torch.int32, torch.int64))
    if prompt_ids.shape[-1] == 0 or prompt_ids.numel() == 0:
        raise ValueError(f"generate: prompt_ids must hold at least one token; got shape {tuple(prompt_ids.shape)}")
    check_int("generate", "max_new_tokens", max_new_tokens, 0)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature >= 0:
        raise ValueError(f"temperature must be >= 0 (a number; 0 is greedy); got {temperature!r}")
    if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1):
        raise ValueError(f"top_k must be None or an integer >= 1; got {top_k!r}")
    if not isinstance(use_cache, bool):
        raise TypeError(f"generate: use_cache must be a bool; got {use_cache!r}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generate: generator must be None or a torch.Generator; got {type(generator).__name__}")
    V = model.cfg.vocab_size
    if prompt_ids.device.type != "meta" and (prompt_ids.min() < 0 or prompt_ids.max() >= V):
        raise ValueError(f"generate: prompt_ids must be token ids in [0, vocab_size={V}); got values in "
                         f"[{prompt_ids.min().item()}, {prompt_ids.max().item()}]")
    squeeze = prompt_ids.ndim == 1
    idx = prompt_ids[None] if squeeze else prompt_ids
    total = idx.shape[1] + max_new_tokens
    if total > model.cfg.max_seq_len:
        raise ValueError(f"prompt ({idx.shape[1]}) + max_new_tokens ({max_new_tokens}) = {total} exceeds "
                         f"max_seq_len={model.cfg.max_seq_len}")
    caches = model.new_caches(idx.shape[0], total) if use_cache else None
    logits = model(idx, caches=caches)[:, -1]
    for i in range(max_new_tokens):
        nxt = _sample(logits, temperature, top_k, generator)
        idx = torch.cat((idx, nxt[:, None]), 1)
        if i + 1 < max_new_tokens:
            logits = model(nxt[:, None], caches=caches)[:, -1] if use_cache else model(idx)[:, -1]
    return idx[0] if squeeze else idx


@dataclass(frozen=True, kw_only=True)
class ViTConfig:
    """A TinyViT (Dosovitskiy et al. 2021, arXiv 2010.11929) for small images.

    Attributes:
        attention: the attention config of every block (must be bidirectional,
            causal=False; RoPE off is usual, positions come from a learned embedding).
        n_layers: transformer blocks.
        image_size, patch_size, channels: square images cut into non-overlapping patches.
        n_classes: outputs of the classification head (on the class token).
        mlp_hidden, norm_eps: as in LMConfig.
    """

    attention: AttentionConfig
    n_layers: int = 2
    image_size: int = 8
    patch_size: int = 2
    channels: int = 1
    n_classes: int = 10
    mlp_hidden: int | None = None
    norm_eps: float = 1e-6

    def __post_init__(self):
        for name in ("n_layers", "image_size", "patch_size", "channels", "n_classes") + (
                ("mlp_hidden",) if self.mlp_hidden is not None else ()):
            check_int("ViTConfig", name, getattr(self, name), 1)
        _check_eps("ViTConfig", self.norm_eps)
        if self.image_size % self.patch_size:
            raise ValueError(f"ViTConfig.patch_size must divide image_size={self.image_size}; got {self.patch_size}")
        if not isinstance(self.attention, AttentionConfig):
            raise ValueError(f"ViTConfig.attention must be an attention config; got {type(self.attention).__name__}")
        if self.attention.causal:
            raise ValueError("ViTConfig.attention must be bidirectional (causal=False) for a ViT")

    d_model = LMConfig.d_model
    hidden = LMConfig.hidden
    block_param_count = LMConfig.block_param_count

    @property
    def n_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    def param_count(self) -> int:
        C, P = self.d_model, self.channels * self.patch_size ** 2
        embed = P * C + C + C + (self.n_patches + 1) * C  # patch projection (with bias), class token, positions
        return embed + self.n_layers * self.block_param_count() + C + C * self.n_classes + self.n_classes


class TinyViT(nn.Module):
    """``logits = model(images)``: images (B, H, W) or (B, channels, H, W) -> (B, n_classes).

    Patches are flattened and projected, a class token is prepended, learned position
    embeddings are added, and the class token's final state is classified.
    """

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.cfg = cfg
        C, p = cfg.d_model, cfg.patch_size
        self.patch_embed = nn.Linear(cfg.channels * p * p, C)
        self.cls_token = nn.Parameter(torch.zeros(C))
        self.pos_emb = nn.Parameter(0.02 * torch.randn(cfg.n_patches + 1, C))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm_f = nn.RMSNorm(C, eps=cfg.norm_eps)
        self.head = nn.Linear(C, cfg.n_classes)

    def patchify(self, images: Tensor) -> Tensor:
        """(B, [ch,] H, W) -> (B, n_patches, ch * p * p), row-major over patches."""
        cfg = self.cfg
        check_tensor("TinyViT", "images", images, ndim=(3, 4))
        x = images[:, None] if images.ndim == 3 else images
        if x.shape[1:] != (cfg.channels, cfg.image_size, cfg.image_size):
            raise ValueError(f"TinyViT: images must be (B, {cfg.channels}, {cfg.image_size}, {cfg.image_size})"
                             f"{' or (B, H, W)' if cfg.channels == 1 else ''}; got {tuple(images.shape)}")
        p = cfg.patch_size
        x = x.unfold(2, p, p).unfold(3, p, p)  # (B, ch, H/p, W/p, p, p)
        return x.permute(0, 2, 3, 1, 4, 5).flatten(3).flatten(1, 2)

    def forward(self, images: Tensor) -> Tensor:
        x = self.patch_embed(self.patchify(images).to(self.patch_embed.weight.dtype))  # (B, N, C)
        cls = self.cls_token.expand(x.shape[0], 1, -1)
        x = torch.cat((cls, x), 1) + self.pos_emb
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm_f(x[:, 0]))
