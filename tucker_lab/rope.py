"""Rotary position embedding (Su et al. 2021), one convention everywhere.

Convention: **half-split** ("rotate-half", as in GPT-NeoX, Llama and Hugging
Face). Over n rotated dims, dim j pairs with dim j + n/2 and turns by the angle
p * theta_j at position p, with theta_j = base^(-2j/n), j < n/2. As a complex
number, z_j = x_j + i x_{j+n/2} is multiplied by exp(i p theta_j), so
<R(m) q, R(n) k> depends on m - n only.

Angles are computed in float32 (float64 for float64 inputs), never in half
precision: at position 10^5 a bfloat16 angle is off by hundreds of radians.
For an int start position the cos/sin come from a table per (n, base, dtype,
device), computed once by the same formula and grown as positions grow, so a
decode step slices two rows instead of recomputing frequencies and cos/sin for
q and again for k (same numbers, bit for bit).

Layouts (where in the last dim the rotation acts)::

    "full"  all n dims form one RoPE (MHA heads; Tucker's "latent" RoPE),
    "block" each block of ``rope_dim`` dims is its own RoPE (per-head RoPE seen
            from a concatenated latent: MHA/GQA as Tucker points),
    "tail"  only the last ``rope_dim`` dims rotate (DeepSeek's decoupled key
            seen from the latent [c_kv, k_rope]).

See: book/08_rope; Tucker Attention (arXiv 2603.30033) Definition 3.1.
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["rope_angles", "rotate", "apply_rope", "positions", "rope_frequencies", "rope_cos_sin"]

_TABLES: dict[tuple, tuple[Tensor, Tensor]] = {}  # (n, base, dtype, device) -> cos, sin (L, n/2)


def positions(start_pos: int, length: int, device=None) -> Tensor:
    """Absolute positions start_pos, ..., start_pos + length - 1, shape (T,)."""
    return torch.arange(start_pos, start_pos + length, device=device)


def _angle_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def rope_angles(pos: Tensor, n: int, base: float = 10000.0, dtype=torch.float32) -> Tensor:
    """Angles p * theta_j for positions ``pos`` (T,) over n dims: shape (T, n/2)."""
    if n % 2:
        raise ValueError(f"RoPE needs an even number of dims; got {n}")
    theta = base ** (-torch.arange(0, n, 2, device=pos.device, dtype=dtype) / n)  # (n/2,)
    return pos.to(dtype)[:, None] * theta[None, :]


def rope_cos_sin(start: int, length: int, n: int, base: float = 10000.0,
                 dtype=torch.float32, device=None) -> tuple[Tensor, Tensor]:
    """cos and sin of ``rope_angles`` for positions start..start+length-1, each
    (length, n/2), sliced from a cached table (no copy); the table is built once per
    (n, base, dtype, device) and doubled when a position beyond it is asked for."""
    key = (n, float(base), dtype, torch.device(device if device is not None else "cpu"))
    table = _TABLES.get(key)
    end = start + length
    if table is None or table[0].shape[0] < end:
        size = max(end, 2 * (table[0].shape[0] if table is not None else 0), 256)
        ang = rope_angles(torch.arange(size, device=key[3]), n, base, dtype)
        table = _TABLES[key] = (ang.cos(), ang.sin())
    return table[0][start:end], table[1][start:end]


def rotate(x: Tensor, angles: Tensor | tuple[Tensor, Tensor]) -> Tensor:
    """Rotate the last dim of x (B, T, ..., n) by angles (T, n/2), or by their
    (cos, sin), half-split pairs."""
    ndim_mid = x.ndim - 3  # axes between T and the feature axis, e.g. heads
    cos, sin = angles if isinstance(angles, tuple) else (angles.cos(), angles.sin())
    cos, sin = (c.view(c.shape[0], *([1] * ndim_mid), c.shape[1]) for c in (cos, sin))
    xf = x.to(cos.dtype)
    x1, x2 = xf.chunk(2, dim=-1)
    # (x1 + i x2) * (cos + i sin)
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).to(x.dtype)


def apply_rope(x: Tensor, pos: Tensor | int, *, base: float = 10000.0, layout: str = "full",
               rope_dim: int | None = None) -> Tensor:
    """Apply RoPE to a sequence-major tensor.

    Args:
        x: (B, T, ..., n), positions along dim 1.
        pos: (T,) absolute positions, or an int start position.
        base: frequency base.
        layout: "full", "block" or "tail" (module docstring).
        rope_dim: block size ("block") or rotated slice size ("tail"); unused by "full".
    Returns:
        Tensor like x.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"apply_rope: x must be a torch.Tensor; got {type(x).__name__}")
    if x.ndim < 3 or not x.is_floating_point():
        raise ValueError(f"apply_rope: x must be a floating tensor (B, T, ..., n); got {x.dtype} {tuple(x.shape)}")
    if isinstance(base, bool) or not isinstance(base, (int, float)) or not base > 0:
        raise ValueError(f"apply_rope: base must be a positive number; got {base!r}")
    n = x.shape[-1]
    if layout == "full" and n % 2:
        raise ValueError(f"RoPE needs an even number of dims; got {n}")
    _check_layout(n, layout, rope_dim)
    if isinstance(pos, bool) or not isinstance(pos, (int, Tensor)):
        raise TypeError(f"apply_rope: pos must be an int start position or a (T,) tensor; got {type(pos).__name__}")
    if isinstance(pos, Tensor) and (pos.shape != (x.shape[1],) or pos.is_complex() or pos.device != x.device):
        raise ValueError(f"apply_rope: pos must be real positions of shape (T,) = ({x.shape[1]},) on {x.device}; "
                         f"got {pos.dtype} {tuple(pos.shape)} on {pos.device}")
    dt = _angle_dtype(x.dtype)
    if isinstance(pos, int) and torch.compiler.is_compiling():  # keep the table out of graphs
        pos = positions(pos, x.shape[1], device=x.device)

    def angles(m):  # (T, m/2) angles, or their cached (cos, sin) for an int start
        if isinstance(pos, int):
            return rope_cos_sin(pos, x.shape[1], m, base, dt, x.device)
        return rope_angles(pos, m, base, dt)
    if layout == "full":
        return rotate(x, angles(n))
    if layout == "block":
        xb = x.unflatten(-1, (n // rope_dim, rope_dim))  # (B, T, ..., n/rope_dim, rope_dim)
        return rotate(xb, angles(rope_dim)).flatten(-2)
    if layout == "tail":
        keep, rot = x.split((n - rope_dim, rope_dim), dim=-1)
        return torch.cat((keep, rotate(rot, angles(rope_dim))), dim=-1)
    raise ValueError(f"layout must be 'full', 'block' or 'tail'; got {layout!r}")


def rope_frequencies(n: int, *, base: float = 10000.0, layout: str = "full",
                     rope_dim: int | None = None) -> Tensor:
    """Angular frequency (radians per position) of each of n dims under a layout:
    theta_j for both dims of pair j of each rotated block, 0 for unrotated dims. (n,)"""
    _check_layout(n, layout, rope_dim)

    def block(m):
        theta = base ** (-torch.arange(0, m, 2, dtype=torch.float64) / m)
        return torch.cat((theta, theta))  # dims j and j + m/2 turn together
    if layout == "full":
        return block(n)
    if layout == "block":
        return block(rope_dim).repeat(n // rope_dim)
    return torch.cat((torch.zeros(n - rope_dim, dtype=torch.float64), block(rope_dim)))


def _check_layout(n: int, layout: str, rope_dim: int | None) -> None:
    """ValueError unless a RoPE ``layout`` can act on n dims with ``rope_dim``."""
    if not isinstance(layout, str) or layout not in ("full", "block", "tail"):
        raise ValueError(f"layout must be 'full', 'block' or 'tail'; got {layout!r}")
    if layout == "full" and n % 2:
        raise ValueError(f"RoPE needs an even number of dims; got n={n}")
    if layout in ("block", "tail"):
        if not isinstance(rope_dim, int) or isinstance(rope_dim, bool) or rope_dim < 2 or rope_dim % 2:
            raise ValueError(f"rope_dim must be an even integer >= 2 for the {layout} layout; got {rope_dim!r}")
        if layout == "block" and n % rope_dim:
            raise ValueError(f"rope_dim={rope_dim} must divide n={n} for the block layout")
        if layout == "tail" and rope_dim > n:
            raise ValueError(f"rope_dim={rope_dim} must be at most n={n} for the tail layout")
