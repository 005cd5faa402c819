"""Triton decode kernels against the references: interpreter mode (fp32, fp16) on CPU,
compiled (bf16) on a GPU. One tolerance rule, ``reference.tolerance``: a kernel's error
against the float64 truth is at most twice that of the plain reference computed in the
kernel's dtype (plus the rounding of the truth to that dtype)."""
import pytest
import torch

triton = pytest.importorskip("triton")

import tucker_lab as tkl  # noqa: E402
from tucker_lab.attention.tpa import factored_attention  # noqa: E402
from tucker_lab.notebook import max_err as err  # noqa: E402
from tucker_lab.reference import tolerance  # noqa: E402
from tucker_lab.kernels import available, latent_mqa_decode, tpa_decode  # noqa: E402

DEV = "cuda" if torch.cuda.is_available() else "cpu"
# the interpreter mishandles bf16 (triton-lang/triton #4972); compiled kernels take it
DTYPES = [torch.float32, torch.float16] + ([torch.bfloat16] if DEV == "cuda" else [])


def test_kernels_can_run_here():
    assert available()


@pytest.mark.parametrize("B,H,E,F,S", [(2, 4, 6, 5, 37), (1, 12, 64, 64, 300), (3, 3, 20, 9, 1), (2, 70, 32, 16, 129),
                                     (1, 4, 576, 512, 40)])  # the last: absorbed MLA at DeepSeek-V2 dims
@pytest.mark.parametrize("dtype", DTYPES)
def test_latent_mqa_decode(B, H, E, F, S, dtype):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(*s, generator=g).to(DEV, dtype) for s in ((B, H, E), (B, S, E), (B, S, F)))

    def plain(q, k, v):  # the einsum reference: H queries of one step against one K/V stream
        return tkl.attend(q[:, None], k[:, :, None], v[:, :, None], scale=0.3, causal=False, impl="einsum")[:, 0]
    exact = plain(q.double(), k.double(), v.double())
    tol = tolerance(exact, plain(q, k, v))
    out = latent_mqa_decode(q, k, v, scale=0.3)
    assert out.dtype == dtype and out.shape == (B, H, F)
    assert err(out, exact) <= tol
    # the split count changes the schedule, not the accuracy
    assert err(latent_mqa_decode(q, k, v, scale=0.3, splits=1), exact) <= tol


@pytest.mark.parametrize("RQ,RK,RV,contextual,kv_only", [(3, 2, 2, True, False), (1, 1, 1, True, False),
                                                          (2, 3, 1, False, False), (None, 2, 2, True, True),
                                                          (None, 1, 3, False, True), (6, 2, 2, True, False)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_tpa_decode(RQ, RK, RV, contextual, kv_only, dtype):
    g = torch.Generator().manual_seed(1)
    B, S, H, D = 2, 45, 5, 6
    r = lambda *s: torch.randn(*s, generator=g).to(DEV, dtype)
    a = lambda R: r(B, S, R, H) if contextual else r(R, H)
    a_k, a_v, b_k, b_v = a(RK), a(RV), r(B, S, RK, D), r(B, S, RV, D)
    if kv_only:
        q = r(B, 1, H, D)
        q1 = q[:, 0]
    else:
        a_q = r(B, 1, RQ, H) if contextual else r(RQ, H)
        q = (a_q, r(B, 1, RQ, D))
        q1 = (a_q[:, 0] if contextual else a_q, q[1][:, 0])
    dbl = lambda t: tuple(x.double() for x in t) if isinstance(t, tuple) else t.double()
    exact = factored_attention(dbl(q), a_k.double(), b_k.double(), a_v.double(), b_v.double(),
                               scale=0.4, causal=False)[:, 0]
    low = factored_attention(q, a_k, b_k, a_v, b_v, scale=0.4, causal=False)[:, 0]  # the reference in dtype
    out = tpa_decode(q1, a_k, b_k, a_v, b_v, scale=0.4)
    assert out.dtype == dtype and out.shape == (B, H, D)
    assert err(out, exact) <= tolerance(exact, low)


@pytest.mark.parametrize("name", ["tucker", "tucker-shared", "mla-q", "mla-coupled", "tpa", "tpa-kvonly", "tpa-const-a"])
def test_layers_decode_with_triton(name):
    """A layer built with impl="triton" decodes (prefill by SDPA, then kernel steps) within the
    tolerance of the einsum layer in float32, both against the float64 layer."""
    from cases import CASES
    cfg = CASES[name]
    layers = {impl: tkl.build_attention(cfg, impl=impl).to(DEV) for impl in ("einsum", "triton")}
    layers["triton"].load_state_dict(layers["einsum"].state_dict())
    layers["exact"] = tkl.build_attention(cfg, impl="einsum").to(DEV, torch.float64)
    layers["exact"].load_state_dict(layers["einsum"].state_dict())
    x = torch.randn(2, 9, cfg.d_model, device=DEV)
    caches = {n: layer.new_cache(2, 9) for n, layer in layers.items()}
    with torch.no_grad():
        for n, layer in layers.items():
            layer((x.double() if n == "exact" else x)[:, :5], cache=caches[n])
        for t in range(5, 9):
            y = {n: layer((x.double() if n == "exact" else x)[:, t:t + 1], cache=caches[n])
                 for n, layer in layers.items()}
            assert err(y["triton"], y["exact"]) <= tolerance(y["exact"], y["einsum"])
