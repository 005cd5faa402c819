"""Factor caches: cached decoding == the full forward, the cache holds exactly the
factors (bytes == accounting), the decode path never forms per-head K/V, bad calls fail."""
import dataclasses

import pytest
import torch

import tucker_lab as tkl
from tucker_lab.cache import FactorCache
from tucker_lab.notebook import ShapeLog
from cases import CASES

F64 = torch.float64
CAUSAL = [n for n, c in CASES.items() if c.causal]
SPLITS = {"prefill-all": [13], "prefill+decode": [5, 1, 1, 1, 1, 1, 1, 1, 1],
          "chunks": [3, 4, 1, 2, 3], "decode-only": [1] * 13}


def algebras(cfg):
    return ["auto"] + [m for m in cfg.modes if m != "default" and not getattr(cfg, "coupled_rope", False)]


def run_cached(layer, x, split, cache=None):
    cache = cache or layer.new_cache(x.shape[0], x.shape[1])
    outs, t = [], 0
    for n in split:
        outs.append(layer(x[:, t:t + n], cache=cache, start_pos=t))
        t += n
    return torch.cat(outs, 1), cache


@pytest.mark.parametrize("name", CAUSAL)
@pytest.mark.parametrize("split", SPLITS, ids=list(SPLITS))
def test_cached_decoding_equals_full_forward(name, split):
    for mode in algebras(CASES[name]):
        layer = tkl.build_attention(CASES[name], mode=mode).to(F64)
        x = torch.randn(2, 13, layer.cfg.d_model, dtype=F64)
        y, cache = run_cached(layer, x, SPLITS[split])
        torch.testing.assert_close(y, layer(x), rtol=0, atol=1e-10)
        # the cache holds exactly the accounted bytes: B x tokens x bytes per token
        assert cache.nbytes() == 2 * 13 * layer.cfg.kv_cache_bytes_per_token(F64)
        assert cache.shapes == layer.cfg.cache_shapes()


@pytest.mark.parametrize("name", ["mqa", "mla-q", "tpa", "tucker"])
def test_start_pos_defaults_to_the_cache_fill(name):
    layer = tkl.build_attention(CASES[name]).to(F64)
    x = torch.randn(1, 6, layer.cfg.d_model, dtype=F64)
    cache = layer.new_cache(1, 6)
    y = torch.cat([layer(x[:, :4], cache=cache), layer(x[:, 4:5], cache=cache), layer(x[:, 5:], cache=cache)], 1)
    torch.testing.assert_close(y, layer(x), rtol=0, atol=1e-10)


# (case, the per-head dims a materialized K or V would carry): sizes chosen distinct
NO_PER_HEAD_KV = {
    "mla": (tkl.MLAConfig(d_model=40, n_heads=3, d_head=10, kv_rank=14, rope_dim=4), ["D", "D_v"]),
    "mla-coupled": (tkl.MLAConfig(d_model=40, n_heads=3, d_head=10, kv_rank=14, coupled_rope=True), ["D", "D_v"]),
    "tpa": (tkl.TPAConfig(d_model=40, n_heads=3, d_head=10, q_rank=2, k_rank=2, v_rank=1), ["D"]),
    "tpa-const": (tkl.TPAConfig(d_model=40, n_heads=3, d_head=10, q_rank=2, k_rank=2, v_rank=1,
                                contextual_a=False), ["D"]),
    "tpa-kvonly": (tkl.TPAConfig(d_model=40, n_heads=3, d_head=10, q_rank=None, k_rank=2, v_rank=1), ["D"]),
    "tucker": (tkl.TuckerConfig(d_model=39, n_heads=3, ranks_qk=(2, 8, 6), ranks_vo=(2, 7, 4)), ["r_k", "r_v"]),
    "tucker-shared": (tkl.TuckerConfig(d_model=39, n_heads=3, ranks_qk=(2, 8, 6), ranks_vo=(2, 7, 6),
                                       shared_kv=True), ["r_k"]),
}


@pytest.mark.parametrize("name", NO_PER_HEAD_KV)
@pytest.mark.parametrize("impl", ["sdpa", "einsum"])
@pytest.mark.parametrize("step", [1, 3])
def test_decode_never_forms_per_head_keys_or_values(name, impl, step, monkeypatch):
    """One-token steps and multi-token chunks after a prefill read the factors as they are."""
    cfg, dims = NO_PER_HEAD_KV[name]
    layer = tkl.build_attention(cfg, impl=impl).to(F64)
    S = 11 - step + 1  # the cache ends at 12 tokens either way
    x = torch.randn(2, S + step, cfg.d_model, dtype=F64)
    cache = layer.new_cache(2, S + step)
    layer(x[:, :S], cache=cache)
    seen = []  # what reaches attend(): one K/V head for MLA and Tucker
    real = tkl.functional.attend
    monkeypatch.setattr(f"tucker_lab.attention.{layer.__module__.split('.')[-1]}.attend",
                        lambda q, k, v, **kw: seen.append((k.shape, v.shape)) or real(q, k, v, **kw))
    with ShapeLog() as log:
        layer(x[:, S:], cache=cache)  # the step: 1 or 3 tokens
    sizes = {"D": cfg.D, "D_v": getattr(cfg, "D_v", cfg.D),
             "r_k": getattr(cfg, "r_k", 0), "r_v": getattr(cfg, "r_v", 0)}
    for d in dims:  # no tensor with all of the 12 keys, H heads and a head dim
        bad = [s for s in log.shapes if 12 in s and cfg.H in s and sizes[d] in s]
        assert not bad, f"per-head keys/values formed: {bad}"
    if isinstance(layer, (tkl.MLAttention, tkl.TuckerAttention)):
        assert seen and all(k[2] == 1 and v[2] == 1 for k, v in seen)
    else:
        assert not seen  # factored TPA does not call attend at all


def make(name="gqa"):
    layer = tkl.build_attention(CASES[name]).to(F64)
    return layer, torch.randn(2, 4, layer.cfg.d_model, dtype=F64)


def test_bad_calls_are_clear_errors():
    layer, x = make()
    cache = layer.new_cache(2, 6)
    layer(x, cache=cache)  # 4 tokens in
    with pytest.raises(ValueError, match=r"decoding past the cache: positions 4\.\.7 but max_seq_len=6"):
        layer(x, cache=cache, start_pos=4)
    with pytest.raises(ValueError, match=r"start_pos=2 but the cache holds 4 tokens"):
        layer(x[:, :1], cache=cache, start_pos=2)  # rewinds
    with pytest.raises(ValueError, match=r"start_pos=5 but the cache holds 4 tokens"):
        layer(x[:, :1], cache=cache, start_pos=5)  # skips
    with pytest.raises(ValueError, match=r"batch size 1 does not match the cache's batch_size=2"):
        layer(x[:1, :1], cache=cache)
    c32 = layer.new_cache(2, 6, dtype=torch.float32)
    with pytest.raises(ValueError, match=r"computes in torch.float64 .* cache is torch.float32"):
        layer(x, cache=c32)
    with pytest.raises(ValueError, match=r"cache is torch.float64 on meta"):
        layer(x, cache=layer.new_cache(2, 6, device="meta"))
    other = FactorCache(CASES["mla"].cache_shapes(), 2, 6, dtype=F64)  # made by hand: no owner yet
    with pytest.raises(ValueError, match=r"this cache holds .*c_kv.* but the layer caches .*'k'"):
        layer(x, cache=other)
    with pytest.raises(ValueError, match="start_pos must be an integer >= 0; got -1"):
        layer(x, start_pos=-1)
    cache.reset()
    torch.testing.assert_close(layer(x, cache=cache), layer(x), rtol=0, atol=1e-12)


def test_factor_cache_basics():
    with pytest.raises(ValueError, match="max_seq_len must be an integer >= 1; got 0"):
        FactorCache({"k": (2,)}, 1, 0)
    c = FactorCache({"k": (2, 3), "v": (4,)}, 2, 5, dtype=F64)
    assert c.allocated_bytes() == 2 * 5 * (6 + 4) * 8 and c.nbytes() == 0
    views = c.update(0, k=torch.ones(2, 3, 2, 3, dtype=F64), v=torch.ones(2, 3, 4, dtype=F64))
    assert views["k"].shape == (2, 3, 2, 3) and c.seq_len == 3 and c.nbytes() == 2 * 3 * 10 * 8
    with pytest.raises(ValueError, match=r"factor 'v' must have shape \(2, 1, 4\)"):
        c.update(3, k=torch.ones(2, 1, 2, 3, dtype=F64), v=torch.ones(2, 1, 3, dtype=F64))
    with pytest.raises(ValueError, match=r"needs exactly the factors \['k', 'v'\]"):
        c.update(3, k=torch.ones(2, 1, 2, 3, dtype=F64))
    assert c.to(dtype=torch.float32).dtype == torch.float32
    assert "seq_len=3" in repr(c)


@pytest.mark.parametrize("name", CAUSAL)
@pytest.mark.parametrize("impl", ["sdpa", "einsum"])
def test_decode_core_is_the_last_row_of_the_full_forward(name, impl):
    """What bench times as the "core" of a step, layer.decode_core over the cache with the
    query from layer.decode_query, composed with layer.output, is the full forward's row."""
    layer = tkl.build_attention(CASES[name], impl=impl).to(F64)
    x = torch.randn(2, 9, layer.cfg.d_model, dtype=F64)
    full = layer(x)
    cache = layer.new_cache(2, 9)
    with torch.no_grad():
        layer(x, cache=cache)
        for T in (1, 3):  # a decode step, and a chunk: the last T rows
            y = layer.output(layer.decode_core(layer.decode_query(x[:, -T:], 9 - T), cache))
            torch.testing.assert_close(y, full[:, -T:], rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", ["gqa", "mla-q", "tpa", "tucker-shared"])
def test_truncate_rewinds_decoding(name):
    """After truncate(n) the cache decodes as if only n tokens had been written."""
    layer = tkl.build_attention(CASES[name]).to(F64)
    x = torch.randn(2, 8, layer.cfg.d_model, dtype=F64)
    y = torch.randn(2, 3, layer.cfg.d_model, dtype=F64)  # another continuation of x[:, :5]
    cache = layer.new_cache(2, 8)
    with torch.no_grad():
        layer(x, cache=cache)
        cache.truncate(5)
        assert cache.seq_len == 5 and cache.nbytes() == 2 * 5 * layer.cfg.kv_cache_bytes_per_token(F64)
        got = layer(y, cache=cache)
        torch.testing.assert_close(got, layer(torch.cat((x[:, :5], y), 1))[:, 5:], rtol=0, atol=1e-10)
        read = cache.read()
        assert set(read) == set(cache.shapes) and all(t.shape[1] == 8 for t in read.values())
    with pytest.raises(ValueError, match=r"truncate.seq_len must be an integer in \[0, 8\]; got 9"):
        cache.truncate(9)
    with pytest.raises(ValueError, match=r"in \[0, 8\]; got -1"):
        cache.truncate(-1)


def test_tucker_folds_its_cores_once_for_inference():
    """Outside autograd the folded cores T_i are kept until a parameter changes."""
    from torch.utils.flop_counter import FlopCounterMode
    cfg = CASES["tucker"]
    layer = tkl.build_attention(cfg, impl="einsum").to(F64)
    x = torch.randn(1, 3, cfg.d_model, dtype=F64)
    with torch.no_grad():
        layer(x)  # folds
        with FlopCounterMode(display=False) as fc:
            y = layer(x)
        assert fc.get_total_flops() == 3 * cfg.flops_per_token(3)  # no fixed_flops: the fold is reused
        layer.core_qk.mul_(2.0)  # a parameter changes: the fold must follow
        torch.testing.assert_close(layer(x), tkl.reference.forward(layer, x), rtol=0, atol=1e-12)
    assert not torch.allclose(y, layer(x))


@pytest.mark.parametrize("name", ["gqa", "mla-q", "tpa", "tucker"])
def test_a_cache_belongs_to_one_layer(name):
    """A cache shared by two layers, or made by another layer of the same or another
    config, is refused before anything is written, so decoding then goes on correctly."""
    cfg = CASES[name]
    a, b = (tkl.build_attention(cfg).to(F64) for _ in range(2))
    x = torch.randn(2, 6, cfg.d_model, dtype=F64)
    cache = a.new_cache(2, 6)
    assert cache.owner is a
    with torch.no_grad():
        a(x[:, :3], cache=cache)
        for other in (b, tkl.build_attention(dataclasses.replace(cfg, rope_base=500.0)).to(F64)):
            with pytest.raises(ValueError, match=r"belongs to another layer .*make one per layer with "
                                                 r"layer\.new_cache"):
                other(x[:, 3:4], cache=cache)  # start_pos omitted: would continue at 3
        assert cache.seq_len == 3  # nothing written by the refused calls
        y = torch.cat([a(x[:, :3]), a(x[:, 3:4], cache=cache), a(x[:, 4:], cache=cache)], 1)[:, 3:]
        torch.testing.assert_close(y, a(x)[:, 3:], rtol=0, atol=1e-10)
    # a cache made by hand is claimed by the first layer that writes to it
    hand = FactorCache(cfg.cache_shapes(), 2, 6, dtype=F64)
    with torch.no_grad():
        b(x[:, :2], cache=hand)
        assert hand.owner is b
        with pytest.raises(ValueError, match="belongs to another layer"):
            a(x[:, 2:3], cache=hand)


def test_tinylm_refuses_one_cache_object_for_every_layer():
    cfg = tkl.LMConfig(vocab_size=11, n_layers=2, attention=CASES["tucker"], max_seq_len=8)
    model = tkl.TinyLM(cfg).double()
    idx = torch.randint(0, 11, (1, 5))
    shared = model.blocks[0].attn.new_cache(1, 8)
    with torch.no_grad():
        with pytest.raises(ValueError, match=r"rather than \[cache\] \* n_layers"):
            model(idx, caches=[shared] * 2)
        assert shared.seq_len == 0  # checked before the first layer wrote anything
        caches = model.new_caches(1)
        torch.testing.assert_close(model(idx, caches=caches), model(idx), rtol=0, atol=1e-10)
    with pytest.raises(ValueError, match=r"TinyLM.new_caches.max_seq_len must be an integer in \[1, 8\]; got 9"):
        model.new_caches(1, 9)
    with pytest.raises(TypeError, match="caches must be None or the list of FactorCaches"):
        model(idx, caches={"k": torch.zeros(1)})


@pytest.mark.parametrize("name", ["mha-bidir", "tucker-norope"])
def test_a_bidirectional_layer_refuses_a_cache(name):
    """Chunked prefill of a non-causal layer cannot see later tokens, so it would differ
    from the full forward: refused."""
    layer = tkl.build_attention(CASES[name]).to(F64)
    x = torch.randn(1, 4, layer.cfg.d_model, dtype=F64)
    with pytest.raises(ValueError, match=r"bidirectional \(causal=False\); a cache serves causal decoding"):
        layer.new_cache(1, 4)
    hand = FactorCache(layer.cfg.cache_shapes(), 1, 4, dtype=F64)
    with pytest.raises(ValueError, match=r"bidirectional \(causal=False\); a cache serves causal decoding"):
        layer(x, cache=hand)


def test_a_cache_must_be_a_factor_cache():
    layer, x = make()
    with pytest.raises(TypeError, match="cache must be None or a FactorCache from layer.new_cache"):
        layer(x, cache={"k": torch.zeros(2, 4)})


@pytest.mark.parametrize("name", [n for n in CAUSAL if n in ("mha", "gqa", "mla", "mla-q", "mla-coupled",
                                                            "tpa", "tpa-const-a", "tucker", "tucker-shared")])
def test_gradients_through_a_cache_equal_the_uncached_gradients(name):
    """With gradients enabled a cached call stays differentiable: prefill and decode in
    chunks give the gradients of the full forward, for the inputs and every parameter
    (GQA w_k/w_v, MLA w_dkv/w_kr, Tucker U_k/U_v included), and repeated calls work."""
    for mode in algebras(CASES[name]):
        layer = tkl.build_attention(CASES[name], mode=mode).to(F64)
        x = torch.randn(2, 9, layer.cfg.d_model, dtype=F64, requires_grad=True)
        g = torch.randn(2, 9, layer.cfg.d_model, dtype=F64)
        wrt = [x, *layer.parameters()]
        full = torch.autograd.grad((layer(x) * g).sum(), wrt)
        y, cache = run_cached(layer, x, [4, 1, 2, 1, 1])
        cached = torch.autograd.grad((y * g).sum(), wrt, allow_unused=True)
        for (pname, _), a, b in zip([("x", x), *layer.named_parameters()], full, cached):
            assert b is not None, f"{pname} got no gradient through the cache"
            torch.testing.assert_close(b, a, rtol=0, atol=1e-10)
        # the buffers hold the same values, without history
        assert not cache.data.requires_grad
        cache.reset()
        with torch.no_grad():
            torch.testing.assert_close(run_cached(layer, x, [4, 5], cache)[0], y.detach(), rtol=0, atol=1e-10)
