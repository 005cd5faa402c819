"""The contract every registered variant satisfies, run over every case in cases.py."""
import dataclasses

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import tucker_lab as tkl
from tucker_lab import reference
from cases import CASES, CASE_MODES

F64 = torch.float64


def build(name, mode=None, impl="auto", cfg=None):
    return tkl.build_attention(cfg or CASES[name], mode=mode, impl=impl).to(F64)


def test_a_variant_must_implement_the_decode_contract():
    """What the registry comment says a new module needs is enforced: no decode step, no layer."""
    class ForwardOnly(tkl.AttentionModule):
        config_class = tkl.MHAConfig

        def forward(self, x):
            return x
    with pytest.raises(TypeError, match="abstract.*_decode_static.*decode_core.*decode_query"):
        ForwardOnly(CASES["mha"])


def test_every_registered_config_class_has_a_case():
    covered = {type(c) for c in CASES.values()}
    assert covered == set(tkl.VARIANTS)


@pytest.mark.parametrize("name,mode", CASE_MODES)
@pytest.mark.parametrize("impl", ["sdpa", "einsum"])
@pytest.mark.parametrize("T", [1, 6, 13])
def test_module_equals_float64_reference(name, mode, impl, T):
    layer = build(name, mode, impl)
    x = torch.randn(2, T, layer.cfg.d_model, dtype=F64)
    y = layer(x)
    assert y.shape == x.shape
    torch.testing.assert_close(y, reference.forward(layer, x), rtol=0, atol=1e-10)


@pytest.mark.parametrize("name,mode", CASE_MODES)
def test_causality(name, mode):
    """Changing future tokens leaves earlier outputs alone iff the config is causal."""
    layer = build(name, mode)
    x = torch.randn(1, 9, layer.cfg.d_model, dtype=F64)
    x2 = x.clone()
    x2[:, 5:] += torch.randn_like(x2[:, 5:])
    diff = (layer(x)[:, :5] - layer(x2)[:, :5]).abs().max().item()
    if layer.cfg.causal:
        assert diff < 1e-12
    else:
        assert diff > 1e-6


@pytest.mark.parametrize("name,mode", [c for c in CASE_MODES if CASES[c[0]].rope])
def test_rope_is_relative(name, mode):
    """RoPE makes logits depend on m - n only, so a global shift of positions
    (start_pos) leaves the output unchanged, in every variant and layout."""
    layer = build(name, mode)
    x = torch.randn(2, 7, layer.cfg.d_model, dtype=F64)
    torch.testing.assert_close(layer(x, start_pos=123), layer(x), rtol=0, atol=1e-10)
    # (that RoPE is applied at all is checked against the reference above)


@pytest.mark.parametrize("name", CASES)
def test_param_count_equals_live_module(name):
    layer = build(name)
    assert layer.cfg.param_count() == sum(p.numel() for p in layer.parameters())


@pytest.mark.parametrize("name,mode", CASE_MODES)
def test_flops_equal_live_count(name, mode):
    """Analytic matmul FLOPs == torch's FlopCounterMode on the live forward
    (bidirectional, so each of T tokens attends T keys; einsum kernel, because
    the counter has no formula for PyTorch's CPU flash kernel)."""
    cfg = dataclasses.replace(CASES[name], causal=False)
    layer = build(name, mode, impl="einsum", cfg=cfg)
    T = 5
    x = torch.randn(3, T, cfg.d_model, dtype=F64)
    with FlopCounterMode(display=False) as fc:
        layer(x)
    expected = 3 * T * cfg.flops_per_token(T, mode) + cfg.fixed_flops(mode)
    if mode == "factored":  # the two rank contractions are elementwise, which the counter does not see
        expected -= 3 * T * 2 * cfg.H * T * (cfg.k_rank + cfg.v_rank)
    assert fc.get_total_flops() == expected


@pytest.mark.parametrize("name", ["mha", "mla-q", "tpa", "tucker"])
def test_bad_inputs_are_named(name):
    layer = build(name)
    C = layer.cfg.d_model
    with pytest.raises(ValueError, match=r"\(B, T, C\) with C = d_model = %d; got \(2, 3, %d\)" % (C, C + 1)):
        layer(torch.randn(2, 3, C + 1, dtype=F64))
    with pytest.raises(ValueError, match="shape"):
        layer(torch.randn(3, C, dtype=F64))
    with pytest.raises(ValueError, match="float32 .*weights are torch.float64"):
        layer(torch.randn(2, 3, C))
    with pytest.raises(ValueError, match="meta"):
        layer(torch.randn(2, 3, C, dtype=F64, device="meta"))


def test_build_attention_rejects_non_configs():
    with pytest.raises(TypeError, match="make_config"):
        tkl.build_attention({"d_model": 8})
    with pytest.raises(ValueError, match="impl must be one of"):
        tkl.build_attention(CASES["mha"], impl="cuda-magic")
    with pytest.raises(ValueError, match="mode must be one of"):
        tkl.build_attention(CASES["mla"], mode="fast")
    with pytest.raises(ValueError, match="no naive form"):
        tkl.build_attention(CASES["mla-coupled"], mode="naive")


@pytest.mark.parametrize("name", ["mha", "mla-q", "tpa", "tucker-tail"])
def test_reference_runs_on_the_inputs_device(name):
    """The spec builds its positions, frequencies and masks on x's device (checked on 'meta',
    which fails on any tensor made on the CPU by accident)."""
    layer = tkl.build_attention(CASES[name]).to(F64).to("meta")
    y = reference.forward(layer, torch.randn(2, 5, layer.cfg.d_model, dtype=F64, device="meta"))
    assert y.device.type == "meta" and y.shape == (2, 5, layer.cfg.d_model)
