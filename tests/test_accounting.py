"""Analytic accounting == the papers' formulas (papers.md 1.5 and 2.3) and the CLI table.
(Accounting == the live module is in test_attention_contract.py.)"""
import re

import pytest
import torch

import tucker_lab as tkl
from tucker_lab.accounting import accounting_rows, main

d, h = 96, 8
dh = d // h


@pytest.mark.parametrize("G", [1, 2, 4, 8])
def test_mha_mqa_gqa_match_table_1(G):
    cfg = tkl.GQAConfig(d_model=d, n_heads=h, n_kv_heads=G)
    assert cfg.param_count() == 2 * d * d + 2 * G * dh * d  # GQA; MQA at G=1; MHA 4d^2 at G=h
    assert cfg.kv_cache_elements_per_token() == 2 * G * dh
    if G == h:
        assert cfg.param_count() == 4 * d * d


@pytest.mark.parametrize("dc", [8, 16, 40])
def test_simplified_mla_matches_the_tucker_papers_table(dc):
    """Tucker paper Table 1: MLA with a shared KV down-projection, no RoPE key: d^2 + 5 d d_c."""
    cfg = tkl.MLAConfig(d_model=d, n_heads=h, kv_rank=dc, q_rank=dc, rope=False)
    assert cfg.param_count() == d * d + 5 * d * dc
    assert cfg.kv_cache_elements_per_token() == dc


@pytest.mark.parametrize("dc,dcq,dr", [(16, 32, 4), (24, 48, 6)])
def test_deepseek_mla_matches_the_tpa_papers_table(dc, dcq, dr):
    cfg = tkl.MLAConfig(d_model=d, n_heads=h, kv_rank=dc, q_rank=dcq, rope_dim=dr)
    assert cfg.param_count() == dcq * (d + h * dh + h * dr) + dc * (d + 2 * h * dh) + d * (h * dh + dr)
    assert cfg.kv_cache_elements_per_token() == dc + dr


@pytest.mark.parametrize("RQ,RK,RV", [(6, 2, 2), (16, 1, 1), (3, 2, 5)])
def test_tpa_matches_table_1(RQ, RK, RV):
    tpa = tkl.TPAConfig(d_model=d, n_heads=h, q_rank=RQ, k_rank=RK, v_rank=RV)
    assert tpa.param_count() == d * (RQ + RK + RV) * (h + dh) + d * h * dh
    assert tpa.kv_cache_elements_per_token() == (RK + RV) * (h + dh)
    kv = tkl.TPAConfig(d_model=d, n_heads=h, q_rank=None, k_rank=RK, v_rank=RV)
    assert kv.param_count() == d * (RK + RV) * (h + dh) + 2 * d * h * dh
    const = tkl.TPAConfig(d_model=d, n_heads=h, q_rank=RQ, k_rank=RK, v_rank=RV, contextual_a=False)
    assert const.param_count() == (RQ + RK + RV) * (d * dh + h) + d * h * dh
    assert const.kv_cache_elements_per_token() == (RK + RV) * dh


@pytest.mark.parametrize("r", [(2, 16, 8), (8, 96, 48), (1, 4, 2)])
def test_tucker_matches_table_1(r):
    r1, r2, r3 = r
    sep = tkl.TuckerConfig(d_model=d, n_heads=h, ranks_qk=r, ranks_vo=r)
    assert sep.param_count() == 2 * (r1 * r2 * r3 + h * r1 + d * r2 + d * r3)
    assert sep.kv_cache_elements_per_token() == 2 * r3
    shared = tkl.TuckerConfig(d_model=d, n_heads=h, ranks_qk=r, ranks_vo=r, shared_kv=True)
    assert shared.param_count() == sep.param_count() - d * r3
    assert shared.kv_cache_elements_per_token() == r3


def test_gpt2_headline_ratios():
    """Tucker [8,128,64] at GPT-2 small: ~18% of MHA's attention parameters and ~39%
    of the paper's simplified MLA (d_c = 128), as the Tucker paper reports."""
    tucker = tkl.TuckerConfig(d_model=768, n_heads=12, ranks_qk=(8, 128, 64), ranks_vo=(8, 128, 64))
    mha = tkl.MHAConfig(d_model=768, n_heads=12)
    mla = tkl.MLAConfig(d_model=768, n_heads=12, kv_rank=128, q_rank=128, rope=False)
    assert tucker.param_count() == 426_176
    assert round(tucker.param_count() / mha.param_count(), 2) == 0.18
    assert round(tucker.param_count() / mla.param_count(), 2) == 0.39


@pytest.mark.parametrize("dtype,size", [(torch.bfloat16, 2), (torch.float32, 4), (torch.float64, 8)])
def test_cache_bytes(dtype, size):
    cfg = tkl.MLAConfig(d_model=64, n_heads=4, kv_rank=32, rope_dim=8)
    assert cfg.kv_cache_bytes_per_token(dtype) == 40 * size
    assert cfg.cache_shapes() == {"c_kv": (32,), "k_rope": (8,)}


def test_rows_and_cli_table(capsys):
    rows = accounting_rows(tkl.standard_configs(768, 12), context=1024, n_layers=12, batch=2)
    by = {r["variant"]: r for r in rows}
    assert by["MHA"]["params_vs_base"] == 1.0
    assert by["MQA"]["cache_vs_base"] == pytest.approx(1 / 12)
    # 12 layers x 2 sequences x 1024 tokens x 2 H D elements x 2 bytes
    assert by["MHA"]["cache_GiB"] == pytest.approx(12 * 2 * 1024 * 1536 * 2 / 2**30)
    text = main(["--n-layers", "12"])
    assert "Tucker" in text and "426,176" in text and "2,359,296" in text
    assert capsys.readouterr().out.strip() == text.strip()


@pytest.mark.parametrize("args,msg", [
    (["--n-layers", "-2"], "argument --n-layers: must be an integer >= 1; got -2"),
    (["--context", "0"], "argument --context: must be an integer >= 1; got 0"),
    (["--batch", "two"], "argument --batch: must be an integer >= 1; got 'two'"),
    (["--d-model", "10", "--n-heads", "3"], r"n_heads must divide d_model=10 into even head dims"),
    (["--dtype", "fp8"], "argument --dtype: invalid choice: 'fp8'"),
])
def test_cli_rejects_nonsense_with_exit_code_2(args, msg, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2
    assert re.search(msg, capsys.readouterr().err)


def test_cli_help_lists_allowed_values(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "an integer >= 1" in help_text and "one of bf16, fp16, fp32" in help_text
