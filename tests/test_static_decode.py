"""Static-shape decoding (gpt-fast style): the step over the full preallocated buffer
equals the eager step, compiled or not, and compiles to a fixed number of graphs
however long the sequence grows."""
import pytest
import torch
from torch._dynamo.testing import CompileCounter

import tucker_lab as tkl
from cases import CASES

F64 = torch.float64
CAUSAL = [n for n, c in CASES.items() if c.causal]


def eager_and_static(name, impl="sdpa", compile=False, backend="eager", steps=5, prefill=4, B=2):
    layer = tkl.build_attention(CASES[name], impl=impl).to(F64)
    S_max = prefill + steps + 2  # two slots never written: the mask must hide them
    x = torch.randn(B, prefill + steps, layer.cfg.d_model, dtype=F64)
    c_eager, c_static = layer.new_cache(B, S_max), layer.new_cache(B, S_max)
    c_static.data.normal_()  # garbage in unwritten slots must not leak through the mask
    with torch.no_grad():
        ref = [layer(x[:, :prefill], cache=c_eager)]
        layer(x[:, :prefill], cache=c_static)
        dec = tkl.StaticDecoder(layer, c_static, compile=compile, backend=backend)
        out = [ref[0]]
        for t in range(prefill, prefill + steps):
            ref.append(layer(x[:, t:t + 1], cache=c_eager))
            out.append(dec(x[:, t:t + 1]))
    return torch.cat(ref, 1), torch.cat(out, 1), layer(x), c_static, dec


@pytest.mark.parametrize("name", CAUSAL)
@pytest.mark.parametrize("impl", ["sdpa", "einsum"])
def test_static_step_equals_eager_decoding(name, impl):
    ref, out, full, cache, _ = eager_and_static(name, impl)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-10)
    torch.testing.assert_close(out, full, rtol=0, atol=1e-10)
    assert cache.seq_len == 9


@pytest.mark.parametrize("name", ["gqa", "mla-q", "mla-coupled", "tpa", "tpa-const-a", "tucker", "tucker-shared"])
def test_compiled_static_decode_equals_eager_and_compiles_once(name):
    torch._dynamo.reset()
    counter = CompileCounter()
    ref, out, _, _, _ = eager_and_static(name, compile=True, backend=counter, steps=6)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-10)
    assert counter.frame_count == 1  # one graph for all 6 steps, positions 4..9


@pytest.mark.parametrize("name", ["mqa", "mla", "tucker"])
def test_aot_eager_static_decode_equals_eager(name):
    torch._dynamo.reset()
    ref, out, _, _, _ = eager_and_static(name, compile=True, backend="aot_eager", steps=3)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-10)


def test_static_decoder_checks_its_inputs():
    layer = tkl.build_attention(CASES["gqa"]).to(F64)
    cache = layer.new_cache(2, 2)
    dec = tkl.StaticDecoder(layer, cache, compile=False)
    x = torch.randn(2, 1, layer.cfg.d_model, dtype=F64)
    with pytest.raises(ValueError, match=r"x must be \(B, 1, C\) with B = 2"):
        dec(torch.randn(2, 2, layer.cfg.d_model, dtype=F64))
    dec(x), dec(x)
    with pytest.raises(ValueError, match="the cache is full"):
        dec(x)
    other = tkl.build_attention(CASES["mla"]).to(F64).new_cache(2, 2)
    with pytest.raises(ValueError, match="the cache holds"):
        tkl.StaticDecoder(layer, other)
