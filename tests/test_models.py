"""TinyLM and generation: accounting == live, cached generation == uncached, for every variant."""
import pytest
import torch

import tucker_lab as tkl
from cases import CASES

CAUSAL = [n for n, c in CASES.items() if c.causal]


def lm(name, layers=2, vocab=37, max_seq_len=32):
    cfg = tkl.LMConfig(vocab_size=vocab, n_layers=layers, attention=CASES[name], max_seq_len=max_seq_len)
    return tkl.TinyLM(cfg).double().eval()


@pytest.mark.parametrize("name", CAUSAL)
def test_param_count_equals_live_model(name):
    model = lm(name)
    assert model.cfg.param_count() == sum(p.numel() for p in model.parameters())
    untied = tkl.TinyLM(tkl.LMConfig(vocab_size=37, n_layers=1, attention=CASES[name], tie_embeddings=False))
    assert untied.cfg.param_count() == sum(p.numel() for p in untied.parameters())


@pytest.mark.parametrize("name", CAUSAL)
def test_greedy_generation_with_caches_is_token_identical(name):
    model = lm(name)
    prompt = torch.randint(0, 37, (2, 7), generator=torch.Generator().manual_seed(1))
    cached = tkl.generate(model, prompt, 12, temperature=0)
    plain = tkl.generate(model, prompt, 12, temperature=0, use_cache=False)
    assert cached.shape == (2, 19) and torch.equal(cached, plain)
    assert torch.equal(cached[:, :7], prompt)


@pytest.mark.parametrize("name", ["gqa", "mla-q", "tpa", "tucker-shared"])
def test_sampling_with_caches_is_token_identical(name):
    model = lm(name)
    prompt = torch.randint(0, 37, (9,), generator=torch.Generator().manual_seed(2))
    a = tkl.generate(model, prompt, 10, temperature=0.8, top_k=5, generator=torch.Generator().manual_seed(3))
    b = tkl.generate(model, prompt, 10, temperature=0.8, top_k=5, use_cache=False,
                     generator=torch.Generator().manual_seed(3))
    assert a.shape == (19,) and torch.equal(a, b)


def test_cached_logits_equal_full_logits():
    model = lm("mla")
    idx = torch.randint(0, 37, (2, 10))
    caches = model.new_caches(2, 10)
    step = torch.cat([model(idx[:, :6], caches=caches), model(idx[:, 6:8], caches=caches),
                      model(idx[:, 8:], caches=caches)], 1)
    torch.testing.assert_close(step, model(idx), rtol=0, atol=1e-10)


def test_top_k_one_is_greedy():
    model = lm("tucker")
    prompt = torch.randint(0, 37, (1, 5))
    torch.testing.assert_close(tkl.generate(model, prompt, 6, temperature=1.0, top_k=1),
                               tkl.generate(model, prompt, 6, temperature=0))


def test_bad_inputs():
    with pytest.raises(ValueError, match="LMConfig.attention must be causal"):
        tkl.LMConfig(vocab_size=10, n_layers=1, attention=CASES["mha-bidir"])
    with pytest.raises(ValueError, match="LMConfig.vocab_size must be an integer >= 1; got 0"):
        tkl.LMConfig(vocab_size=0, n_layers=1, attention=CASES["mha"])
    with pytest.raises(ValueError, match="LMConfig.attention must be an attention config"):
        tkl.LMConfig(vocab_size=10, n_layers=1, attention={"d_model": 8})
    model = lm("gqa", max_seq_len=12)
    with pytest.raises(ValueError, match=r"prompt \(8\) \+ max_new_tokens \(5\) = 13 exceeds max_seq_len=12"):
        tkl.generate(model, torch.zeros(8, dtype=torch.long), 5)
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        tkl.generate(model, torch.zeros(2, dtype=torch.long), 1, temperature=-1.0)
    with pytest.raises(ValueError, match="top_k must be None or an integer >= 1"):
        tkl.generate(model, torch.zeros(2, dtype=torch.long), 1, top_k=0)
    with pytest.raises(ValueError, match=r"idx must be integer token ids of shape \(B, T\)"):
        model(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"positions up to 12 but max_seq_len=12"):
        model(torch.zeros(1, 13, dtype=torch.long))
    with pytest.raises(ValueError, match="one cache per layer"):
        model(torch.zeros(1, 3, dtype=torch.long), caches=model.new_caches(1)[:1])


@pytest.mark.parametrize("name", ["mha-bidir", "tucker-norope"])
def test_vit_accounting_patches_and_shapes(name):
    cfg = tkl.ViTConfig(attention=CASES[name], image_size=8, patch_size=2, n_layers=2)
    model = tkl.TinyViT(cfg)
    assert cfg.param_count() == sum(p.numel() for p in model.parameters())
    img = torch.arange(2 * 64, dtype=torch.float32).view(2, 8, 8)
    patches = model.patchify(img)
    assert patches.shape == (2, 16, 4)
    assert patches[0, 1].tolist() == [2.0, 3.0, 10.0, 11.0]  # second patch of the first row
    assert patches[0, 4].tolist() == [16.0, 17.0, 24.0, 25.0]  # first patch of the second row
    assert model(img).shape == (2, 10)


def test_vit_config_errors():
    with pytest.raises(ValueError, match="must be bidirectional"):
        tkl.ViTConfig(attention=CASES["mha"])
    with pytest.raises(ValueError, match="patch_size must divide image_size=8"):
        tkl.ViTConfig(attention=CASES["mha-bidir"], patch_size=3)
    with pytest.raises(ValueError, match="ViTConfig.mlp_hidden must be an integer >= 1; got 0"):
        tkl.ViTConfig(attention=CASES["mha-bidir"], mlp_hidden=0)
    with pytest.raises(ValueError, match=r"images must be \(B, 1, 8, 8\)"):
        tkl.TinyViT(tkl.ViTConfig(attention=CASES["mha-bidir"]))(torch.zeros(2, 7, 7))
