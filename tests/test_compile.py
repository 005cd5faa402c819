"""torch.compile(layer, fullgraph=True): one graph, no graph breaks, for every family and
mode in training (forward + backward) and in no-grad inference (repeated calls, where
Tucker reuses folded cores in eager mode), and compiled cached decoding settles on a
fixed, small number of graphs however long the sequence grows.

The CPU-cheap backends are used ("aot_eager" traces the backward too; "eager" with a
counter for the graph counts); inductor compiles the same graphs."""
import pytest
import torch
from torch._dynamo.testing import CompileCounter

import tucker_lab as tkl
from cases import CASES

# one case per config class and mode, plus the options that change the traced code
COMPILED = [("mha", None), ("gqa", None), ("mla", "naive"), ("mla-q", "absorbed"), ("mla-coupled", "absorbed"),
            ("tpa", "naive"), ("tpa", "factored"), ("tpa-const-a", "factored"), ("tucker", None),
            ("tucker-shared", None), ("tucker-tail", None)]


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def test_every_config_class_is_compiled():
    assert {type(CASES[n]) for n, _ in COMPILED} == set(tkl.VARIANTS)


@pytest.mark.parametrize("name,mode", COMPILED)
def test_compiled_training_and_inference_match_eager(name, mode):
    layer = tkl.build_attention(CASES[name], mode=mode)
    compiled = torch.compile(layer, fullgraph=True, backend="aot_eager")
    x = torch.randn(2, 7, layer.cfg.d_model)
    # training: forward + backward, gradients equal to eager's
    compiled(x).square().sum().backward()
    grads = [p.grad.clone() for p in layer.parameters()]
    layer.zero_grad()
    layer(x).square().sum().backward()
    for a, b in zip(grads, (p.grad for p in layer.parameters())):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # inference: two no-grad calls (Tucker's eager fold reuse must not reach the graph),
    # then a parameter changes and the compiled layer follows it
    with torch.no_grad():
        y1, y2 = compiled(x), compiled(x)
        torch.testing.assert_close(y1, layer(x), rtol=1e-5, atol=1e-6)
        assert torch.equal(y1, y2)
        next(layer.parameters()).mul_(2.0)
        torch.testing.assert_close(compiled(x), layer(x), rtol=1e-5, atol=1e-6)
        assert not torch.allclose(compiled(x), y1)


@pytest.mark.parametrize("name", ["gqa", "mla-q", "tpa", "tucker", "tucker-shared"])
def test_compiled_cached_decoding_uses_a_fixed_number_of_graphs(name):
    """Prefill, then one-token steps up to a full cache of 48: one graph for the prefill,
    one for the steps once the growing cache length is seen as dynamic, and at most one
    more for the step that fills the cache (its views become contiguous, which SDPA's
    decomposition specializes on). The count stops growing after the first steps."""
    layer = tkl.build_attention(CASES[name])
    counter = CompileCounter()
    compiled = torch.compile(layer, fullgraph=True, backend=counter)
    S = 48
    x = torch.randn(2, S, layer.cfg.d_model)
    cache = layer.new_cache(2, S)
    counts = []
    with torch.no_grad():
        ys = [compiled(x[:, :6], cache=cache)]
        for t in range(6, S):
            ys.append(compiled(x[:, t:t + 1], cache=cache))
            counts.append(counter.frame_count)
        torch.testing.assert_close(torch.cat(ys, 1), layer(x), rtol=1e-5, atol=1e-5)
    assert len(set(counts[2:-1])) == 1, counts  # steps 8 .. S-2 add no graph
    assert counts[-1] <= 3, counts


def test_tucker_fold_reuse_is_not_traced():
    """The eager reuse reads data_ptr(); under compile the fold is recomputed instead."""
    layer = tkl.build_attention(CASES["tucker"]).eval()
    x = torch.randn(1, 4, layer.cfg.d_model)
    compiled = torch.compile(layer, fullgraph=True, backend="eager")
    with torch.no_grad():
        compiled(x)
        assert not layer._folded  # nothing kept from inside the graph
        layer(x)
        assert layer._folded  # eager inference still reuses the fold
