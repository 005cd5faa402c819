"""Factor caches: cached decoding == the full forward, the cache holds exactly the
factors (bytes == accounting), the decode path never forms per-head K/V, bad calls fail."""
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
    other = tkl.build_attention(CASES["mla"]).to(F64).new_cache(2, 6)
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
