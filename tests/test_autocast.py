"""Mixed precision: every variant x mode runs under torch.autocast with float32 weights and
bfloat16 inputs, forward and backward, as nn.Linear does, and is as accurate as bfloat16 allows.

The tolerance is flash-attn's rule (its test_flash_attn.py, Dao-AILab/flash-attention): the error of the
module against the float64 truth may be at most twice the error that the float64
*specification itself* (tucker_lab.reference, plain einsums) makes when it is run in
bfloat16, i.e. with its weights and inputs rounded to bfloat16 and every op computed in
bfloat16, plus the bfloat16 rounding of the true values themselves (what any bfloat16
result must lose). The same rule bounds every parameter gradient. The figures are in
the issue-9 report.
"""
import copy

import pytest
import torch

import tucker_lab as tkl
from tucker_lab import reference
from cases import CASES, CASE_MODES

BF16, F64 = torch.bfloat16, torch.float64


def outputs_and_grads(layer, x, g, fn):
    """fn(layer, x) and the gradients of sum(fn(layer, x) * g) w.r.t. the parameters, in float64."""
    layer.zero_grad(set_to_none=True)
    y = fn(layer, x)
    (y.double() * g).sum().backward()
    return y.detach().double(), [p.grad.double() for p in layer.parameters()]


def autocast_call(layer, x, **kw):
    with torch.autocast("cpu", dtype=BF16):
        return layer(x, **kw)




def errors(name, mode):
    """(output error, its bound, [(grad error, its bound) per parameter]) of one case."""
    layer = tkl.build_attention(CASES[name], mode=mode)  # float32 weights
    x = torch.randn(2, 7, layer.cfg.d_model)
    g = torch.randn(2, 7, layer.cfg.d_model, dtype=F64)
    truth, g_truth = outputs_and_grads(copy.deepcopy(layer).double(), x.double(), g, reference.forward)
    ref, g_ref = outputs_and_grads(copy.deepcopy(layer).to(BF16), x.to(BF16), g, reference.forward)
    y, g_y = outputs_and_grads(layer, x.to(BF16), g, autocast_call)
    grads = [((a - t).abs().max().item(), reference.tolerance(t, r.to(BF16))) for a, r, t in zip(g_y, g_ref, g_truth)]
    return (y - truth).abs().max().item(), reference.tolerance(truth, ref.to(BF16)), grads, layer


@pytest.mark.parametrize("name,mode", CASE_MODES)
def test_autocast_forward_and_backward_within_twice_the_reference_error(name, mode):
    err, tol, grads, layer = errors(name, mode)
    assert err <= tol, f"output error {err:.4g} > bound {tol:.4g}"
    for (e, t), (pname, p) in zip(grads, layer.named_parameters()):
        assert p.dtype == torch.float32 and p.grad.dtype == torch.float32  # weights stay float32
        assert e <= t, f"grad of {pname}: error {e:.4g} > bound {t:.4g}"
    # and the computation really ran in bfloat16: the error is bfloat16-sized, not float32-sized
    assert err > 1e-4


@pytest.mark.parametrize("name", ["gqa", "mla-q", "mla-coupled", "tpa", "tucker", "tucker-shared"])
def test_cached_decoding_under_autocast(name):
    """A float32 cache (the layer's default) and a bfloat16 cache both decode under autocast."""
    layer = tkl.build_attention(CASES[name])
    x = torch.randn(2, 8, layer.cfg.d_model)
    with torch.no_grad():
        truth = reference.forward(copy.deepcopy(layer).double(), x.double())
        ref = reference.forward(copy.deepcopy(layer).to(BF16), x.to(BF16)).double()
        for dtype in (torch.float32, BF16):
            cache = layer.new_cache(2, 8, dtype=dtype)
            xb = x.to(BF16)
            y = torch.cat([autocast_call(layer, xb[:, :5], cache=cache)]
                          + [autocast_call(layer, xb[:, t:t + 1], cache=cache) for t in range(5, 8)], 1)
            assert y.dtype == BF16 and cache.seq_len == 8
            assert (y.double() - truth).abs().max().item() <= reference.tolerance(truth, ref.to(BF16))


def test_a_real_dtype_mismatch_is_still_an_error():
    layer = tkl.build_attention(CASES["tucker"])
    x = torch.randn(1, 3, layer.cfg.d_model)
    with pytest.raises(ValueError, match=r"x is torch.bfloat16 .* weights are torch.float32"):
        layer(x.to(BF16))  # outside autocast
    with torch.autocast("cpu", dtype=BF16):
        with pytest.raises(ValueError, match=r"x is torch.float16 .* weights are torch.float32"):
            layer(x.half())  # neither the weights' dtype nor the autocast dtype
        layer(x)  # float32 inputs are fine under autocast too
