"""The special cases, exactly (float64, max abs error <= 1e-10):
GQA(G=H) = MHA, MQA = GQA(G=1), MHA/MQA/GQA/MLA/const-TPA = Tucker points,
MHA/MQA/GQA = TPA with constant head factors, and the rank bounds of papers.md 1.4."""
import pytest
import torch

import tucker_lab as tkl
from tucker_lab import reference
from tucker_lab.notebook import max_err as err
from tucker_lab.tensor import multilinear_rank, tucker_to_tensor
from cases import CASES

F64 = torch.float64
TOL = 1e-10

# (d_model, n_heads, n_kv_heads, d_head, rope): odd sizes included
GQA_SHAPES = [(24, 4, 4, None, True), (24, 4, 4, None, False), (30, 6, 3, None, False),
              (36, 6, 2, 6, True), (21, 7, 1, None, False), (48, 8, 2, None, True), (18, 3, 1, 4, True)]
MLA_SHAPES = [dict(d_model=32, n_heads=4, kv_rank=12),
              dict(d_model=32, n_heads=4, kv_rank=12, q_rank=10, rope_dim=6),
              dict(d_model=30, n_heads=3, d_head=6, kv_rank=9, q_rank=7, v_head_dim=5, rope_dim=4),
              dict(d_model=32, n_heads=4, kv_rank=12, q_rank=10, coupled_rope=True),
              dict(d_model=27, n_heads=3, kv_rank=11, rope=False)]



def gqa(C, H, G, D, rope):
    return tkl.build_attention(tkl.GQAConfig(d_model=C, n_heads=H, n_kv_heads=G, d_head=D, rope=rope)).to(F64)


def x_for(layer, T=11, B=2):
    return torch.randn(B, T, layer.cfg.d_model, dtype=F64)


@pytest.mark.parametrize("shape", [s for s in GQA_SHAPES if s[1] == s[2]])
def test_gqa_with_G_equal_H_is_mha(shape):
    layer = gqa(*shape)
    x = x_for(layer)
    P = layer.head_projections()
    kw = dict(scale=layer.cfg.softmax_scale, rope_base=10000.0 if shape[4] else None)
    assert err(layer(x), reference.mha(x, P["W_q"], P["W_k"], P["W_v"], P["W_o"], **kw)) <= TOL
    mha = tkl.build_attention(tkl.MHAConfig(d_model=shape[0], n_heads=shape[1], d_head=shape[3],
                                            rope=shape[4])).to(F64)
    mha.load_state_dict(layer.state_dict())
    assert err(mha(x), layer(x)) == 0


@pytest.mark.parametrize("shape", [s for s in GQA_SHAPES if s[2] == 1])
def test_mqa_is_gqa_with_one_kv_head(shape):
    layer = gqa(*shape)
    x = x_for(layer)
    C, H, D = layer.cfg.C, layer.cfg.H, layer.cfg.D
    W_q = reference._heads(layer.w_q.weight, H, D)  # the spec's own reading of the layout
    w_k, w_v = layer.w_k.weight.T, layer.w_v.weight.T  # one (C, D) key and value head
    W_o = reference._heads_out(layer.w_o.weight, H, D)
    ref = reference.mqa(x, W_q, w_k, w_v, W_o, scale=layer.cfg.softmax_scale,
                        rope_base=10000.0 if shape[4] else None)
    assert err(layer(x), ref) <= TOL
    assert tkl.make_config("mqa", d_model=C, n_heads=H, d_head=shape[3], rope=shape[4]) == layer.cfg


def check_tucker_point(layer):
    """to_tucker(layer) gives the same outputs and the same two weight tensors."""
    x = x_for(layer)
    t = tkl.to_tucker(layer)
    assert isinstance(t, tkl.TuckerAttention)
    # the Tucker form caches exactly what the layer caches
    assert t.cfg.kv_cache_elements_per_token() == layer.cfg.kv_cache_elements_per_token()
    e = err(t(x), layer(x))
    assert e <= TOL
    if not (isinstance(layer, tkl.TPAttention) and layer.cfg.contextual_a):
        for a, b in zip(tkl.attention_tensors(t), tkl.attention_tensors(layer)):
            assert err(a, b) <= TOL
    return t, e


@pytest.mark.parametrize("shape", GQA_SHAPES)
def test_mha_mqa_gqa_are_tucker_points(shape):
    layer = gqa(*shape)
    t, _ = check_tucker_point(layer)
    C, H, G, D = layer.cfg.C, layer.cfg.H, layer.cfg.G, layer.cfg.D
    # papers.md 1.4: ranks (H, d, n_KV d_H) for both tensors; RoPE -> block latent RoPE
    assert t.cfg.ranks_qk == (H, C, G * D) and t.cfg.ranks_vo == (H, C, G * D)
    assert not layer.cfg.rope or (t.cfg.rope_layout, t.cfg.rope_dim) == ("block", D)


@pytest.mark.parametrize("kw", MLA_SHAPES, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()))
@pytest.mark.parametrize("mode", ["naive", "absorbed"])
def test_mla_is_a_tucker_point(kw, mode):
    cfg = tkl.MLAConfig(**kw)
    layer = tkl.build_attention(cfg, mode="absorbed" if cfg.coupled_rope else mode).to(F64)
    t, _ = check_tucker_point(layer)
    assert t.cfg.ranks_qk == (cfg.H, cfg.q_rank or cfg.C, cfg.R_kv + cfg.D_rope)
    assert t.cfg.ranks_vo == (cfg.H, cfg.C, cfg.R_kv + cfg.D_rope)  # zero columns for k_rope
    if cfg.rope:  # decoupled key -> trailing slice; coupled -> the paper's latent RoPE
        expected = ("latent", None) if cfg.coupled_rope else ("tail", cfg.D_rope)
        assert (t.cfg.rope_layout, t.cfg.rope_dim) == expected
    assert t.cfg.shared_kv  # one cached latent, as MLA caches one


@pytest.mark.parametrize("name", ["mla", "mla-q", "mla-dv", "mla-norope"])
def test_mla_absorbed_equals_naive(name):
    naive = tkl.build_attention(CASES[name], mode="naive").to(F64)
    absorbed = tkl.build_attention(CASES[name], mode="absorbed").to(F64)
    absorbed.load_state_dict(naive.state_dict())
    x = x_for(naive)
    assert err(absorbed(x), naive(x)) <= TOL


@pytest.mark.parametrize("kv_only", [False, True])
def test_constant_head_tpa_is_a_tucker_point(kv_only):
    cfg = tkl.TPAConfig(d_model=24, n_heads=4, q_rank=None if kv_only else 3, k_rank=2, v_rank=3,
                        contextual_a=False)
    check_tucker_point(tkl.build_attention(cfg).to(F64))


@pytest.mark.parametrize("shape", GQA_SHAPES)
def test_mha_mqa_gqa_are_tpa_with_constant_head_factors(shape):
    layer = gqa(*shape)
    tpa = tkl.to_tpa(layer)
    H, G = layer.cfg.H, layer.cfg.G
    assert (tpa.cfg.q_rank, tpa.cfg.k_rank, tpa.cfg.v_rank, tpa.cfg.contextual_a) == (H, G, G, False)
    x = x_for(layer)
    assert err(tpa(x), layer(x)) <= TOL
    assert err(reference.forward(tpa, x), layer(x)) <= TOL  # TPA's own spec, eq. 3.1
    # the head factors are the paper's: a_q = H e_i; a_k = G x (group indicator)
    assert torch.equal(tpa.a_q, H * torch.eye(H, dtype=F64))
    assert torch.equal(tpa.a_k.sum(0), G * torch.ones(H, dtype=F64))


LINEAR = [n for n, c in CASES.items()
          if not getattr(c, "latent_norm", False) and getattr(c, "contextual_a", False) is False]


@pytest.mark.parametrize("name", LINEAR)
def test_multilinear_ranks_attain_the_bounds(name):
    """rank(W_qk), rank(W_vo) <= max_ranks() always, with equality for random weights."""
    layer = tkl.build_attention(CASES[name]).to(F64)
    W_qk, W_vo = tkl.attention_tensors(layer)
    C, H = layer.cfg.C, layer.cfg.H
    assert W_qk.shape == W_vo.shape == (H, C, C)
    bounds = layer.cfg.max_ranks()
    assert multilinear_rank(W_qk) == bounds["qk"]
    assert multilinear_rank(W_vo) == bounds["vo"]


@pytest.mark.parametrize("name", [n for n in LINEAR if not CASES[n].rope])
def test_attention_is_two_tensors(name):
    """Eqs. 2-6 of the Tucker paper: softmax(x W_qk[i] x^T) x W_vo[i]^T summed over heads."""
    layer = tkl.build_attention(CASES[name]).to(F64)
    x = x_for(layer)
    W_qk, W_vo = tkl.attention_tensors(layer)
    y = reference.tensor_attention(x, W_qk, W_vo, scale=layer.cfg.softmax_scale, causal=layer.cfg.causal)
    assert err(y, layer(x)) <= TOL


@pytest.mark.parametrize("name", ["tucker", "tucker-shared", "tucker-block"])
def test_tucker_tensors_are_mode_products(name):
    """W_qk = core_qk x1 U_head x2 U_q x3 U_k (tensorly), and the same for W_vo."""
    t = tkl.build_attention(CASES[name]).to(F64)
    W_qk, W_vo = tkl.attention_tensors(t)
    U_v = t.U_k if t.U_v is None else t.U_v
    assert err(W_qk, tucker_to_tensor(t.core_qk, [t.U_head_qk, t.U_q, t.U_k])) <= TOL
    assert err(W_vo, tucker_to_tensor(t.core_vo, [t.U_head_vo, t.U_o, U_v])) <= TOL


def test_to_tucker_refuses_what_is_not_a_tucker_point():
    with pytest.raises(ValueError, match="latent_norm=True is not a Tucker point"):
        tkl.to_tucker(tkl.build_attention(CASES["mla-norm"]))
    with pytest.raises(ValueError, match="contextual_a=True is not a Tucker point"):
        tkl.to_tucker(tkl.build_attention(CASES["tpa"]))
    with pytest.raises(ValueError, match=r"needs 32 dims \(n_kv_heads \* d_head\) but a Tucker rank is at most d_model = 20"):
        tkl.to_tucker(tkl.build_attention(CASES["mha-wide-heads"]))
    with pytest.raises(TypeError, match="unsupported layer Linear"):
        tkl.to_tucker(torch.nn.Linear(3, 3))
    with pytest.raises(TypeError, match="to_tpa: takes an MHA/MQA/GQA layer"):
        tkl.to_tpa(tkl.build_attention(CASES["mla"]))
    with pytest.raises(ValueError, match="quadratic in x"):
        tkl.attention_tensors(tkl.build_attention(CASES["tpa"]))
    with pytest.raises(ValueError, match="quadratic in x"):
        CASES["tpa"].max_ranks()


def test_to_tucker_of_tucker_is_a_copy():
    t = tkl.build_attention(CASES["tucker-tail"]).to(F64)
    c = tkl.to_tucker(t)
    x = x_for(t)
    assert c is not t and err(c(x), t(x)) == 0
