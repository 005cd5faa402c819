"""Post-hoc compression: exact at full rank, error monotone in rank, the GQA/MLA baselines,
and rank profiles."""
import pytest
import torch

import tucker_lab as tkl
from tucker_lab import compression as cz
from tucker_lab.tensor import multilinear_rank
from cases import CASES

F64 = torch.float64


def layer(cfg):
    return tkl.build_attention(cfg).to(F64)


def x_for(l, T=9):
    return torch.randn(2, T, l.cfg.d_model, dtype=F64)


def full_ranks(l):
    """The layer's multilinear ranks (its exact Tucker ranks)."""
    W_qk, W_vo = tkl.attention_tensors(l)
    return multilinear_rank(W_qk), multilinear_rank(W_vo)


@pytest.mark.parametrize("name", ["mha-norope", "gqa", "mqa", "mla-q", "mla-coupled", "tucker-block",
                                  "tucker-tail", "tucker-norope", "tpa-const-a"])
@pytest.mark.parametrize("method", ["hosvd", "hooi"])
def test_full_rank_compression_is_exact(name, method):
    l = layer(CASES[name])
    rq, rv = full_ranks(l)
    if l.cfg.rope:  # the key mode keeps its latent
        rq = (rq[0], rq[1], (l if isinstance(l, tkl.TuckerAttention) else tkl.to_tucker(l)).cfg.r_k)
    t = cz.compress(l, rq, rv, method=method)
    x = x_for(l)
    torch.testing.assert_close(t(x), l(x), rtol=0, atol=1e-10)
    assert max(cz.compression_error(l, t).values()) < 1e-12


def trained_vit_layer():
    torch.manual_seed(0)
    cfg = tkl.MHAConfig(d_model=32, n_heads=4, causal=False, rope=False)
    model = tkl.TinyViT(tkl.ViTConfig(attention=cfg, n_layers=1))
    tkl.train(model, tkl.data.Digits(), tkl.TrainConfig(steps=60, batch_size=32, warmup_steps=6, eval_every=60,
                                                        progress=False))
    return model.blocks[0].attn.double()


@pytest.mark.parametrize("source", ["random", "trained"])
def test_error_never_increases_with_rank(source):
    """HOSVD truncation is an orthogonal projection onto nested subspaces, so its error can
    only fall as any rank grows; HOOI (a local method started from HOSVD) is never worse
    than HOSVD at the same ranks."""
    l = layer(CASES["mha-norope"]) if source == "random" else trained_vit_layer()
    H, C = l.cfg.H, l.cfg.C
    heads, embeds = (1, H // 2, H), (2, C // 4, C // 2, C)
    errs = {}
    for rh in heads:
        for r in embeds:
            errs[rh, r] = cz.compression_error(l, cz.compress(l, (rh, r, r), (rh, r, r)))
            hooi = cz.compression_error(l, cz.compress(l, (rh, r, r), (rh, r, r), method="hooi"))
            assert all(hooi[t] <= errs[rh, r][t] + 1e-12 for t in ("qk", "vo"))
    for t in ("qk", "vo"):
        grid = torch.tensor([[errs[rh, r][t] for r in embeds] for rh in heads])
        assert (grid.diff(dim=0) <= 1e-12).all() and (grid.diff(dim=1) <= 1e-12).all(), grid
        assert grid[-1, -1] < 1e-12


def test_compress_with_rope_refuses_a_smaller_key_rank():
    l = layer(CASES["gqa"])  # RoPE, key latent G * D = 8
    with pytest.raises(ValueError, match=r"with RoPE the key mode keeps its latent of 8 dims"):
        cz.compress(l, (6, 24, 4), (6, 24, 8))
    with pytest.raises(ValueError, match=r"compress: ranks_qk\[1\] \(query\) must be an integer in \[1, 24\]; got 30"):
        cz.compress(layer(CASES["mha-norope"]), (4, 30, 24), (4, 24, 24))
    with pytest.raises(ValueError, match="method must be"):
        cz.compress(layer(CASES["mha-norope"]), (4, 24, 24), (4, 24, 24), method="cp")


def test_compress_model_replaces_every_layer():
    torch.manual_seed(0)
    cfg = tkl.LMConfig(vocab_size=11, n_layers=2, attention=tkl.MHAConfig(d_model=24, n_heads=4, rope=False))
    model = tkl.TinyLM(cfg).double()
    idx = torch.randint(0, 11, (2, 7))
    before = model(idx)
    cz.compress_model(model, (4, 24, 24), (4, 24, 24))
    assert all(isinstance(b.attn, tkl.TuckerAttention) for b in model.blocks)
    torch.testing.assert_close(model(idx), before, rtol=0, atol=1e-10)
    with pytest.raises(ValueError, match="has no tucker_lab attention layers"):
        cz.compress_model(torch.nn.Linear(3, 3), (1, 1, 1), (1, 1, 1))


def test_compress_model_of_a_bare_layer_is_compress():
    torch.manual_seed(0)
    l = layer(CASES["mha-norope"])
    x = x_for(l)
    got, want = cz.compress_model(l, (2, 12, 12), (2, 12, 12)), cz.compress(l, (2, 12, 12), (2, 12, 12))
    assert isinstance(got, tkl.TuckerAttention) and got.cfg == want.cfg
    torch.testing.assert_close(got(x), want(x), rtol=0, atol=0)


@pytest.mark.parametrize("method", ["mean", "svd"])
def test_to_gqa(method):
    l = layer(CASES["mha-norope"])
    x = x_for(l)
    same = cz.to_gqa(l, l.cfg.H, method=method)  # G = H: nothing is shared, so nothing changes
    torch.testing.assert_close(same(x), l(x), rtol=0, atol=1e-10)
    g = cz.to_gqa(l, 2, method=method)
    assert g.cfg.G == 2 and g.cfg.param_count() == tkl.GQAConfig(d_model=24, n_heads=4, n_kv_heads=2).param_count()
    W_qk, _ = tkl.attention_tensors(g)
    assert multilinear_rank(W_qk)[2] <= 2 * l.cfg.D  # the keys now live in G D dims


def test_to_gqa_mean_pools_and_svd_projects():
    l = layer(CASES["mha-norope"])
    g = cz.to_gqa(l, 1, method="mean")
    torch.testing.assert_close(g.w_k.weight, l.w_k.weight.view(4, 6, 24).mean(0), rtol=0, atol=1e-14)
    s = cz.to_gqa(l, 2, method="svd")
    Wq_qk = tkl.attention_tensors(l)[0]
    U = s.w_k.weight.view(2, 6, 24)[0].T  # group 0's orthonormal key basis (C, D)
    P = U @ U.T
    torch.testing.assert_close(tkl.attention_tensors(s)[0][:2], Wq_qk[:2] @ P, rtol=0, atol=1e-12)


def test_to_mla_is_the_best_joint_low_rank_kv():
    l = layer(CASES["mha-norope"])
    x = x_for(l)
    full = cz.to_mla(l, 24)  # R = C: the latent spans everything, exact
    torch.testing.assert_close(full(x), l(x), rtol=0, atol=1e-10)
    m = cz.to_mla(l, 8)
    assert m.cfg.kv_rank == 8 and m.cfg.kv_cache_elements_per_token() == 8
    K = torch.cat((l.w_k.weight.T, l.w_v.weight.T), 1)
    approx = torch.cat((m.w_dkv.weight.T @ m.w_uk.weight.T, m.w_dkv.weight.T @ m.w_uv.weight.T), 1)
    s = torch.linalg.svdvals(K)
    assert ((K - approx).norm() ** 2).item() == pytest.approx((s[8:] ** 2).sum().item(), rel=1e-9)  # Eckart-Young
    with pytest.raises(TypeError, match="expected an MHA/GQA/MQA layer"):
        cz.to_mla(layer(CASES["mla"]), 8)


def test_to_mla_of_gqa_and_of_rope_layers():
    g = layer(CASES["mha-norope"])
    g = cz.to_gqa(g, 2, method="mean")  # a GQA layer without RoPE: rank [W_k, W_v] <= 2 G D = 24
    x = x_for(g)
    torch.testing.assert_close(cz.to_mla(g, 24)(x), g(x), rtol=0, atol=1e-10)
    r = cz.to_mla(layer(CASES["gqa"]), 8)  # RoPE moves into the latent: the coupled form
    assert r.cfg.coupled_rope and r.cfg.kv_rank == 8
    with pytest.raises(ValueError, match="kv_rank"):
        cz.to_mla(layer(CASES["gqa"]), 7)  # coupled RoPE rotates pairs of latent dims


@pytest.mark.parametrize("method", ["mean", "svd"])
def test_to_gqa_of_gqa_keeps_shared_groups_exactly(method):
    l = layer(CASES["gqa-3"])  # H = 6, G = 3, with RoPE
    x = x_for(l)
    torch.testing.assert_close(cz.to_gqa(l, 3, method=method)(x), l(x), rtol=0, atol=0)
    m = cz.to_gqa(l, 1, method=method)
    assert m.cfg.G == 1 and m.cfg.param_count() == tkl.GQAConfig(d_model=36, n_heads=6, n_kv_heads=1).param_count()


def test_rank_profile():
    torch.manual_seed(0)
    cfg = tkl.LMConfig(vocab_size=11, n_layers=2, attention=CASES["gqa"])
    prof = cz.rank_profile(tkl.TinyLM(cfg).double(), energies=(0.5, 1.0))
    assert [p.name for p in prof] == ["blocks.0.attn", "blocks.1.attn"]
    bounds = CASES["gqa"].max_ranks()
    assert prof[0].ranks["qk"][1.0] == bounds["qk"] and prof[0].ranks["vo"][1.0] == bounds["vo"]
    assert all(a <= b for a, b in zip(prof[0].ranks["qk"][0.5], bounds["qk"]))
    rows = prof[0].rows()
    assert len(rows) == 6 and rows[2] == {"layer": "blocks.0.attn", "tensor": "qk", "mode": "key", "dim": 24,
                                          "rank@0.5": rows[2]["rank@0.5"], "rank@1": bounds["qk"][2]}
    with pytest.raises(ValueError, match="has no attention layers tucker_lab can read"):
        cz.rank_profile(torch.nn.Sequential(torch.nn.Linear(2, 2)))
