"""Whole-model import, perplexity and the real-model tools.

Random small Llama configs (no download): TinyLM.from_hf gives transformers' logits in
float64 to 1e-10, tied and untied, GQA and odd sizes; perplexity equals a direct
computation. Marked ``pretrained``: the real SmolLM2-135M (fetched once from the package
index, cached), whose logits, perplexities and greedy tokens match transformers'."""
import math

import pytest
import torch
import torch.nn.functional as F

transformers = pytest.importorskip("transformers")
pytest.importorskip("gguf")

import tucker_lab as tkl  # noqa: E402
from tucker_lab import real_model as rm  # noqa: E402
from tucker_lab.pretrained import eval_tokens  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

SMALL = {
    "gqa-tied": dict(hidden_size=48, num_attention_heads=6, num_key_value_heads=2, head_dim=8,
                     intermediate_size=72, tie_word_embeddings=True),
    "mha-untied": dict(hidden_size=40, num_attention_heads=5, num_key_value_heads=5, head_dim=8,
                       intermediate_size=60, tie_word_embeddings=False),
    "odd-mqa": dict(hidden_size=42, num_attention_heads=3, num_key_value_heads=1, head_dim=14,
                    intermediate_size=50, tie_word_embeddings=True, rope_theta=1e5, rms_norm_eps=1e-5),
}


class Float64Rope(torch.nn.Module):
    """transformers computes RoPE angles (and RMSNorm) in float32 even for a float64 model;
    tucker_lab in the input's precision. For a float64 comparison both must use float64."""

    def __init__(self, dim: int, base: float):
        super().__init__()
        self.inv = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))

    def forward(self, x, position_ids):
        f = position_ids[..., None].double() * self.inv
        e = torch.cat((f, f), -1)
        return e.cos().to(x.dtype), e.sin().to(x.dtype)


def small_llama(name: str, dtype=torch.float64, **extra) -> LlamaForCausalLM:
    kw = dict(SMALL[name], vocab_size=97, num_hidden_layers=3, max_position_embeddings=128, **extra)
    rope_theta = kw.pop("rope_theta", 10000.0)
    cfg = LlamaConfig(rope_parameters={"rope_type": "default", "rope_theta": rope_theta}, **kw)
    m = LlamaForCausalLM(cfg).to(dtype).eval()
    if dtype == torch.float64:  # transformers computes RoPE angles and RMSNorm in float32 always
        m.model.rotary_emb = Float64Rope(cfg.head_dim, rope_theta)
        for norm in (mod for mod in m.modules() if type(mod).__name__ == "LlamaRMSNorm"):
            norm.forward = lambda x, n=norm: n.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True)
                                                                       + n.variance_epsilon)
    with torch.no_grad():  # norm gains away from 1, so a missed norm would show
        for n, p in m.named_parameters():
            if "norm" in n:
                p.uniform_(0.5, 1.5)
    return m


@pytest.mark.parametrize("name", sorted(SMALL))
def test_from_hf_logits_equal_transformers(name):
    hf = small_llama(name)
    lm = tkl.TinyLM.from_hf(hf)
    assert lm.cfg.tie_embeddings == SMALL[name]["tie_word_embeddings"]
    assert lm.cfg.param_count() == sum(p.numel() for p in hf.parameters())
    ids = torch.randint(0, 97, (2, 19))
    with torch.no_grad():
        want, got = hf(ids).logits, lm(ids)
    assert (got - want).abs().max().item() <= 1e-10


def test_from_hf_refuses_what_tinylm_does_not_compute():
    with pytest.raises(TypeError, match="LlamaForCausalLM"):
        tkl.TinyLM.from_hf(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="bias"):
        tkl.TinyLM.from_hf(small_llama("gqa-tied", attention_bias=True))
    with pytest.raises(ValueError, match="mlp_bias"):
        tkl.TinyLM.from_hf(small_llama("gqa-tied", mlp_bias=True))
    with pytest.raises(ValueError, match="hidden_act"):
        tkl.TinyLM.from_hf(small_llama("gqa-tied", hidden_act="gelu"))
    scaled = small_llama("gqa-tied")
    scaled.config.rope_parameters = {"rope_type": "linear", "rope_theta": 1e4, "factor": 2.0}
    for layer in scaled.model.layers:
        layer.self_attn.config = scaled.config
    with pytest.raises(ValueError, match="scaled RoPE"):
        tkl.TinyLM.from_hf(scaled)


def direct_ppl(model, ids):
    with torch.no_grad():
        logits = model(ids[None])
    logits = logits if isinstance(logits, torch.Tensor) else logits.logits
    return math.exp(F.cross_entropy(logits[0, :-1].double(), ids[1:]).item())


@pytest.mark.parametrize("stride", [None, 5, 15])
def test_perplexity_scores_every_token_once(stride):
    hf = small_llama("gqa-tied")
    lm = tkl.TinyLM.from_hf(hf)
    ids = torch.randint(0, 97, (40,))
    # one window over everything: the plain definition
    assert tkl.perplexity(lm, ids, window=40, progress=False) == pytest.approx(direct_ppl(lm, ids), rel=1e-12)
    # sliding windows: the same on our model and transformers', never more than one window of context
    got = tkl.perplexity(lm, ids, window=16, stride=stride, progress=False)
    assert got == pytest.approx(tkl.perplexity(hf, ids, window=16, stride=stride, progress=False), rel=1e-10)
    # token by token: token t is scored by the window that holds the most context before it
    s = stride or 8
    starts = list(range(0, 40 - 16 + 1, s))
    starts += [40 - 16] if starts[-1] + 16 < 40 else []
    nll, scored, n = 0.0, 1, 0
    with torch.no_grad():
        for a in starts:
            lp = torch.log_softmax(lm(ids[None, a:a + 16])[0].double(), -1)
            assert a < scored  # the window holds context for its first scored token
            for t in range(scored, a + 16):
                nll, n = nll - lp[t - a - 1, ids[t]].item(), n + 1
            scored = a + 16
    assert n == 39 and got == pytest.approx(math.exp(nll / 39), rel=1e-10)


def test_perplexity_bad_input():
    lm = tkl.TinyLM.from_hf(small_llama("gqa-tied"))
    with pytest.raises(ValueError, match="shorter than one window"):
        tkl.perplexity(lm, torch.arange(10), window=16)
    with pytest.raises(ValueError, match="stride"):
        tkl.perplexity(lm, torch.arange(40), window=16, stride=16)
    with pytest.raises(ValueError, match="token_ids"):
        tkl.perplexity(lm, torch.zeros(40), window=16)
    with pytest.raises(ValueError, match="window"):
        tkl.perplexity(lm, torch.arange(40), window=0)


def test_load_pretrained_bad_input():
    with pytest.raises(ValueError, match="neither a known offline model"):
        tkl.load_pretrained("no-such-model")
    with pytest.raises(ValueError, match="source"):
        tkl.load_pretrained("smollm2-135m", source="ftp")


@pytest.mark.parametrize("family", rm.FAMILIES)
def test_family_ladder_counts_are_the_live_modules(family):
    lm = tkl.TinyLM.from_hf(small_llama("gqa-tied", dtype=torch.float32))
    ladder = rm.family_ladder(lm, family)
    assert [s.params for s in ladder] == sorted(s.params for s in ladder)
    for s in (ladder[0], ladder[len(ladder) // 2], ladder[-1]):
        assert rm.attention_params(rm.replace_layers(lm, s)) == s.params
    with pytest.raises(ValueError, match="no setting has at most"):
        rm.choose(ladder, ladder[0].params - 1)
    assert rm.choose(ladder, ladder[-1].params) == ladder[-1]


def test_gqa_at_its_own_groups_and_exact_tucker_are_exact():
    hf = small_llama("gqa-tied")
    lm = tkl.TinyLM.from_hf(hf)
    ids = torch.randint(0, 97, (1, 23))
    same = [s for s in rm.family_ladder(lm, "gqa-svd") if s.label == "G=2"][0]
    with torch.no_grad():
        want = lm(ids)
        assert (rm.replace_layers(lm, same)(ids) - want).abs().max() == 0
        assert (rm.exact_tucker(lm)(ids) - want).abs().max() <= 1e-10


def test_fit_layers_lowers_each_layers_error():
    lm = tkl.TinyLM.from_hf(small_llama("gqa-tied", dtype=torch.float32))
    io = rm.layer_io(lm, torch.randint(0, 97, (4, 32)))
    small = rm.replace_layers(lm, rm.family_ladder(lm, "tucker-hosvd")[3])
    before = [((b.attn(x) - y).pow(2).mean() / y.pow(2).mean()).item() for b, (x, y) in zip(small.blocks, io)]
    after = rm.fit_layers(small, io, steps=30, lr=3e-3)
    assert all(a < b for a, b in zip(after, before))


# --- the real model: SmolLM2-135M from the package index (cached after the first run) ---

@pytest.fixture(scope="module")
def smol():
    model, tok = tkl.load_pretrained("smollm2-135m")
    return model, tok, tkl.TinyLM.from_hf(model, tok)


@pytest.mark.pretrained
def test_smollm2_config_and_logits(smol):
    hf, tok, lm = smol
    c = hf.config
    assert (c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.num_key_value_heads) == (30, 576, 9, 3)
    assert lm.tokenizer is tok and lm.cfg.tie_embeddings and lm.cfg.mlp_hidden == 1536
    assert lm.cfg.attention.rope_base == 1e5 and lm.cfg.norm_eps == pytest.approx(1e-5)
    ids = tok("The capital of France is", return_tensors="pt").input_ids
    with torch.no_grad():
        want, got = hf(ids).logits, lm(ids)
    assert (got - want).abs().max() <= 1e-4 * want.abs().max()


@pytest.mark.pretrained
@pytest.mark.parametrize("text", ["shakespeare", "python-docs"])
def test_smollm2_perplexity_matches_transformers(smol, text):
    hf, tok, lm = smol
    ids = eval_tokens(tok, text, 256)
    ours, theirs = (tkl.perplexity(m, ids, window=128, stride=96, progress=False) for m in (lm, hf))
    assert f"{ours:.4g}" == f"{theirs:.4g}" and 1 < ours < 1000


@pytest.mark.pretrained
def test_smollm2_greedy_generation_matches_transformers(smol):
    hf, tok, lm = smol
    ids = tok("The capital of France is", return_tensors="pt").input_ids
    theirs = hf.generate(ids, max_new_tokens=12, do_sample=False)[0]
    ours = tkl.generate(lm, ids[0], 12, temperature=0)
    assert ours.tolist() == theirs.tolist()
    assert "Paris" in tok.decode(ours[len(ids[0]):])


@pytest.mark.pretrained
def test_smollm2_exact_tucker_and_spectra(smol):
    hf, tok, lm = smol
    ids = tok("Tensor decompositions of attention weights", return_tensors="pt").input_ids
    with torch.no_grad():
        want = lm(ids)
        assert (rm.exact_tucker(lm)(ids) - want).abs().max() <= 1e-4 * want.abs().max()
    prof = tkl.rank_profile(lm)
    assert len(prof) == 30
    layer = lm.blocks[7].attn  # Gram spectra == SVD spectra, and the same energy ranks
    W_qk, W_vo = (t.double() for t in tkl.attention_tensors(layer))
    for t, W in (("qk", W_qk), ("vo", W_vo)):
        for n, s in enumerate(tkl.tensor.multilinear_singular_values(W)):
            g = prof[7].spectra[t][n]
            assert (g - s).abs().max() <= 1e-6 * s[0]
            assert [tkl.tensor.energy_rank(g, e) for e in (0.9, 0.99, 0.999)] == \
                   [tkl.tensor.energy_rank(s, e) for e in (0.9, 0.99, 0.999)]


@pytest.mark.pretrained
def test_smollm2_every_family_at_matched_budgets(smol):
    hf, tok, lm = smol
    total = rm.attention_params(lm)
    ids = tok("Attention is all you need", return_tensors="pt").input_ids
    for family in ("tucker-hosvd", "gqa-svd", "mla-svd"):  # HOOI: the same ladder, tested on small models
        s = rm.choose(rm.family_ladder(lm, family), total)  # the largest at 100%
        m = rm.replace_layers(lm, s)
        assert rm.attention_params(m) == s.params <= total
        assert torch.isfinite(m(ids)).all()
    with pytest.raises(ValueError, match="gqa-svd: no setting"):
        rm.choose(rm.family_ladder(lm, "gqa-svd"), total // 2)  # q and o alone are 75% of attention
