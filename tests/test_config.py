"""Configs: every invalid value raises ValueError naming the field and the allowed range."""
import dataclasses

import pytest

import tucker_lab as tkl

C, H = 32, 4
BAD = [
    # (config class, kwargs, the message must contain)
    (tkl.MHAConfig, dict(d_model=0, n_heads=1), r"MHAConfig.d_model must be an integer >= 1; got 0"),
    (tkl.MHAConfig, dict(d_model=30, n_heads=4), r"n_heads must be a divisor of d_model=30 when d_head is None; got 4"),
    (tkl.MHAConfig, dict(d_model=C, n_heads=0), r"n_heads must be an integer >= 1; got 0"),
    (tkl.MHAConfig, dict(d_model=C, n_heads=H, d_head=-2), r"d_head must be an integer >= 1; got -2"),
    (tkl.MHAConfig, dict(d_model=24, n_heads=8), r"d_head must be even \(RoPE rotates pairs of head dims\); got 3"),
    (tkl.MHAConfig, dict(d_model=C, n_heads=H, rope_base=1), r"rope_base must be a number > 1"),
    (tkl.MHAConfig, dict(d_model=C, n_heads=H, scale=0.0), r"scale must be None or a positive number"),
    (tkl.MHAConfig, dict(d_model=C, n_heads=H, causal="yes"), r"causal must be a bool"),
    (tkl.MHAConfig, dict(d_model=32.0, n_heads=H), r"d_model must be an integer >= 1; got 32.0"),
    (tkl.GQAConfig, dict(d_model=C, n_heads=H, n_kv_heads=3), r"n_kv_heads must be a divisor of n_heads=4; got 3"),
    (tkl.GQAConfig, dict(d_model=C, n_heads=H, n_kv_heads=8), r"n_kv_heads must be an integer in \[1, 4\]; got 8"),
    (tkl.GQAConfig, dict(d_model=C, n_heads=H, n_kv_heads=0), r"n_kv_heads must be an integer in \[1, 4\]; got 0"),
    (tkl.MLAConfig, dict(d_model=C, n_heads=H, kv_rank=33), r"kv_rank must be an integer in \[1, 32\]; got 33"),
    (tkl.MLAConfig, dict(d_model=C, n_heads=H, kv_rank=8, q_rank=0), r"q_rank must be an integer in \[1, 32\]; got 0"),
    (tkl.MLAConfig, dict(d_model=C, n_heads=H, kv_rank=8, rope_dim=3), r"rope_dim must be even \(RoPE rotates pairs\); got 3"),
    (tkl.MLAConfig, dict(d_model=C, n_heads=H, kv_rank=8, rope_dim=0), r"rope_dim must be a positive even integer when rope=True and coupled_rope=False"),
    (tkl.MLAConfig, dict(d_model=C, n_heads=H, kv_rank=8, rope=False, rope_dim=4), r"rope_dim must be 0 or None when rope=False"),
    (tkl.MLAConfig, dict(d_model=C, n_heads=H, kv_rank=7, coupled_rope=True), r"kv_rank must be even \(coupled RoPE rotates the KV latent\); got 7"),
    (tkl.MLAConfig, dict(d_model=C, n_heads=H, kv_rank=8, coupled_rope=True, rope_dim=4), r"rope_dim must be 0 or None with coupled_rope=True"),
    (tkl.MLAConfig, dict(d_model=C, n_heads=H, kv_rank=30, rope_dim=4), r"kv_rank must be at most d_model - rope_dim = 28"),
    (tkl.MLAConfig, dict(d_model=C, n_heads=H, kv_rank=8, v_head_dim=0), r"v_head_dim must be an integer >= 1; got 0"),
    (tkl.TPAConfig, dict(d_model=C, n_heads=H, q_rank=2, k_rank=0, v_rank=1), r"k_rank must be an integer in \[1, 32\]; got 0"),
    (tkl.TPAConfig, dict(d_model=C, n_heads=H, q_rank=40, k_rank=1, v_rank=1), r"q_rank must be an integer in \[1, 32\]; got 40"),
    (tkl.TPAConfig, dict(d_model=C, n_heads=H, d_head=5, q_rank=1, k_rank=1, v_rank=1), r"d_head must be even"),
    (tkl.TuckerConfig, dict(d_model=C, n_heads=H, ranks_qk=(5, 8, 8), ranks_vo=(2, 8, 8)), r"ranks_qk\[0\] \(r_head\) must be an integer in \[1, 4\] \(n_heads\); got 5"),
    (tkl.TuckerConfig, dict(d_model=C, n_heads=H, ranks_qk=(2, 33, 8), ranks_vo=(2, 8, 8)), r"ranks_qk\[1\] \(r_embed\) must be an integer in \[1, 32\] \(d_model\); got 33"),
    (tkl.TuckerConfig, dict(d_model=C, n_heads=H, ranks_qk=(2, 8, 8), ranks_vo=(2, 8, 0)), r"ranks_vo\[2\] \(r_latent\) must be an integer in \[1, 32\]"),
    (tkl.TuckerConfig, dict(d_model=C, n_heads=H, ranks_qk=(2, 8), ranks_vo=(2, 8, 8)), r"ranks_qk must be a tuple \(r_head, r_embed, r_latent\) of 3 integers"),
    (tkl.TuckerConfig, dict(d_model=C, n_heads=H, ranks_qk=(2, 8, 8), ranks_vo=(2, 8, 6), shared_kv=True), r"ranks_vo\[2\] must be equal to ranks_qk\[2\]=8 when shared_kv=True"),
    (tkl.TuckerConfig, dict(d_model=C, n_heads=H, ranks_qk=(2, 8, 7), ranks_vo=(2, 8, 8)), r"ranks_qk\[2\] must be even \(latent RoPE"),
    (tkl.TuckerConfig, dict(d_model=C, n_heads=H, ranks_qk=(2, 8, 8), ranks_vo=(2, 8, 8), rope_layout="diagonal"), r"rope_layout must be one of \('latent', 'block', 'tail'\)"),
    (tkl.TuckerConfig, dict(d_model=C, n_heads=H, ranks_qk=(2, 8, 8), ranks_vo=(2, 8, 8), rope_layout="block", rope_dim=6), r"rope_dim must be a divisor of ranks_qk\[2\]=8"),
    (tkl.TuckerConfig, dict(d_model=C, n_heads=H, ranks_qk=(2, 8, 8), ranks_vo=(2, 8, 8), rope_layout="tail", rope_dim=10), r"rope_dim must be an integer in \[2, 8\]; got 10"),
    (tkl.TuckerConfig, dict(d_model=C, n_heads=H, ranks_qk=(2, 8, 8), ranks_vo=(2, 8, 8), rope_layout="tail"), r"rope_dim must be an integer in \[2, 8\]; got None"),
    (tkl.TuckerConfig, dict(d_model=C, n_heads=H, ranks_qk=(2, 8, 8), ranks_vo=(2, 8, 8), rope_dim=4), r"rope_dim must be None with rope_layout='latent'"),
]


@pytest.mark.parametrize("cls,kwargs,message", BAD, ids=[f"{c.__name__}-{i}" for i, (c, _, _) in enumerate(BAD)])
def test_invalid_config_raises_naming_field_and_range(cls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cls(**kwargs)


def test_configs_are_frozen_and_replace_revalidates():
    cfg = tkl.GQAConfig(d_model=C, n_heads=H, n_kv_heads=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.n_heads = 8
    assert dataclasses.replace(cfg, n_kv_heads=1).G == 1
    with pytest.raises(ValueError, match="n_kv_heads"):
        dataclasses.replace(cfg, n_kv_heads=3)
    # d_head stays unresolved, so changing the heads re-derives D
    assert dataclasses.replace(cfg, n_heads=8, n_kv_heads=8).D == 4


def test_make_config_by_name():
    assert tkl.make_config("mqa", d_model=C, n_heads=H) == tkl.GQAConfig(d_model=C, n_heads=H, n_kv_heads=1)
    assert tkl.make_config("tucker", d_model=C, n_heads=H, ranks_qk=[1, 2, 2], ranks_vo=(1, 2, 2)).ranks_qk == (1, 2, 2)
    with pytest.raises(ValueError, match=r"variant must be one of \['gqa', 'mha', 'mla', 'mqa', 'tpa', 'tucker'\]; got 'lsa'"):
        tkl.make_config("lsa", d_model=C, n_heads=H)
    with pytest.raises(ValueError, match=r"MHAConfig has no field\(s\) \['n_kv_heads'\]"):
        tkl.make_config("mha", d_model=C, n_heads=H, n_kv_heads=2)


def test_defaults_follow_the_papers():
    import math
    mla = tkl.MLAConfig(d_model=5120, n_heads=128, d_head=128, kv_rank=512, q_rank=1536, rope_dim=64)
    assert mla.softmax_scale == 1 / math.sqrt(128 + 64)  # DeepSeek: 1/sqrt(qk_nope + qk_rope)
    assert mla.kv_cache_elements_per_token() == 576  # DeepSeek-V2: d_c + d_h^R
    assert tkl.MLAConfig(d_model=64, n_heads=4, kv_rank=16).D_rope == 8  # D/2 by default
    tk = tkl.TuckerConfig(d_model=768, n_heads=12, ranks_qk=(8, 128, 64), ranks_vo=(8, 128, 64))
    assert tk.softmax_scale == 1 / math.sqrt(64)  # the paper's 1/sqrt(C/H)
    assert tkl.MHAConfig(d_model=768, n_heads=12).softmax_scale == 1 / 8


def test_modes_are_validated_in_accounting():
    with pytest.raises(ValueError, match=r"mode must be one of \('naive', 'absorbed'\)"):
        tkl.MLAConfig(d_model=C, n_heads=H, kv_rank=8).flops_per_token(16, mode="fused")


def test_coupled_mla_lists_only_the_mode_it_has():
    coupled = tkl.MLAConfig(d_model=C, n_heads=H, kv_rank=8, coupled_rope=True)
    assert coupled.modes == ("absorbed",)
    assert tkl.MLAConfig(d_model=C, n_heads=H, kv_rank=8).modes == ("naive", "absorbed")
    assert [m for m in coupled.modes if tkl.build_attention(coupled, mode=m).mode == m] == ["absorbed"]
    with pytest.raises(ValueError, match=r"mode must be one of \('absorbed',\); got 'naive'"):
        coupled.flops_per_token(16, mode="naive")


def test_tucker_without_rope_refuses_rope_settings_as_mla_does():
    kw = dict(d_model=24, n_heads=4, ranks_qk=(2, 8, 6), ranks_vo=(3, 5, 4), rope=False)
    with pytest.raises(ValueError, match=r"TuckerConfig.rope_layout must be 'latent' \(the default\) when rope=False"):
        tkl.TuckerConfig(rope_layout="block", rope_dim=2, **kw)
    with pytest.raises(ValueError, match="TuckerConfig.rope_dim must be None when rope=False"):
        tkl.TuckerConfig(rope_dim=2, **kw)
    with pytest.raises(ValueError, match="MLAConfig.rope_dim must be 0 or None when rope=False"):
        tkl.MLAConfig(d_model=24, n_heads=4, kv_rank=8, rope=False, rope_dim=2)
    tkl.TuckerConfig(**kw)  # the defaults are fine
