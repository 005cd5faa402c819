"""Widget panels, driven without a kernel: the rows they show are the configs' own accounting."""
import pytest
import torch

import tucker_lab as tkl
from tucker_lab import widgets
from tucker_lab.accounting import accounting_rows


def knob(panel, name):
    return next(c for c in panel.children if getattr(c, "description", None) == name)


def last(panel):
    return panel.result[-1]


def test_gqa_panel_follows_the_slider():
    p = widgets.gqa_panel(768, 12, show=False)
    for G in (1, 4, 12):
        knob(p, "n_kv_heads").value = G
        cfg = tkl.GQAConfig(d_model=768, n_heads=12, n_kv_heads=G)
        assert last(p)["params"] == cfg.param_count()
        assert last(p)["cache_elems_per_token"] == 2 * G * 64


def test_mla_panel_and_its_q_rank_zero_convention():
    p = widgets.mla_panel(768, 12, show=False)
    knob(p, "kv_rank").value, knob(p, "q_rank").value, knob(p, "rope_dim").value = 128, 0, 32
    assert last(p)["params"] == tkl.MLAConfig(d_model=768, n_heads=12, kv_rank=128, rope_dim=32).param_count()
    knob(p, "q_rank").value = 256
    assert last(p)["params"] == tkl.MLAConfig(d_model=768, n_heads=12, kv_rank=128, q_rank=256,
                                              rope_dim=32).param_count()


def test_tucker_panel_and_invalid_settings():
    p = widgets.tucker_panel(768, 12, show=False)
    knob(p, "r_head").value, knob(p, "r_q").value, knob(p, "r_k").value = 4, 64, 32
    cfg = tkl.TuckerConfig(d_model=768, n_heads=12, ranks_qk=(4, 64, 32), ranks_vo=(4, 64, 32))
    assert last(p)["params"] == cfg.param_count()
    knob(p, "shared_kv").value = True
    assert last(p)["cache_elems_per_token"] == 32
    knob(p, "r_k").value = 31  # not even; the slider steps by 2, but a reader may type it
    assert "must be even" in p.result


def test_tpa_panel_kv_only():
    p = widgets.tpa_panel(768, 12, show=False)
    knob(p, "q_rank").value = 0
    assert last(p)["params"] == tkl.TPAConfig(d_model=768, n_heads=12, q_rank=None, k_rank=2,
                                              v_rank=2).param_count()


def test_cache_panel_matches_accounting():
    p = widgets.cache_panel(show=False)
    knob(p, "model").value, knob(p, "log2 context").value, knob(p, "batch").value = "GPT-2 small", 12, 4
    expected = accounting_rows(tkl.standard_configs(768, 12), context=4096, n_layers=12, batch=4)
    assert p.result == expected


def test_rows_html_lists_every_row():
    cfgs = tkl.standard_configs(64, 4)
    html = widgets.rows_html(accounting_rows(cfgs), cfgs)
    assert all(f"<td>{name}</td>" in html for name in cfgs)
    assert "n/a" in html  # contextual TPA has no fixed weight tensors
    assert str(cfgs["Tucker"].max_ranks()["qk"]) in html


def test_rank_panel_reports_max_ranks():
    p = widgets.rank_panel(768, 12, show=False)
    knob(p, "n_kv_heads").value = 3
    assert p.result["GQA-3"] == {"qk": (12, 768, 192), "vo": (12, 768, 192)}
    assert p.result["MHA"]["qk"] == (12, 768, 768)


@pytest.mark.parametrize("variant", widgets.SPECIAL_CASES)
@pytest.mark.parametrize("rope", [True, False])
def test_special_case_panel_is_exact(variant, rope):
    p = widgets.special_case_panel(show=False)
    knob(p, "variant").value, knob(p, "rope").value = variant, rope
    assert p.result["max_abs_error"] < 1e-10
    assert p.result["rope_layout"] == ("none" if not rope else
                                       {"MLA (decoupled RoPE)": "tail", "MLA (coupled RoPE)": "latent"}.get(variant, "block"))


def test_rope_panel_frequencies():
    from tucker_lab.rope import rope_frequencies
    p = widgets.rope_panel(show=False)
    knob(p, "layout").value, knob(p, "n").value, knob(p, "rope_dim").value = "tail", 64, 16
    f = p.result
    assert torch.equal(f, rope_frequencies(64, layout="tail", rope_dim=16))
    assert (f[:48] == 0).all() and (f[48:] > 0).all()
    knob(p, "layout").value, knob(p, "rope_dim").value = "block", 24
    assert "must divide n=64" in p.result


def test_bench_panel_selects_rows():
    doc = {"device": "cpu", "dtype": "float32", "results": [
        {"variant": v, "impl": "sdpa", "scope": s, "batch": b, "context": c, "median_ms": 1.0, "floor_ms": 0.5}
        for v in ("MHA", "Tucker") for s in ("core", "layer") for b in (1, 8) for c in (16, 32)]}
    p = widgets.bench_panel(doc, show=False)
    knob(p, "scope").value, knob(p, "batch").value = "layer", 8
    assert len(p.result) == 4 and all(r["scope"] == "layer" and r["batch"] == 8 for r in p.result)


def test_curves_panel_overlays_chosen_runs():
    doc = {"task": "lm", "runs": [{"name": n, "curves": {"step": [1, 2], "val_loss": [3.0, v], "val_accuracy": []}}
                                  for n, v in (("MHA", 2.0), ("GQA-2", 2.1), ("Tucker-1,8,4", 2.5))]}
    p = widgets.curves_panel(doc, show=False)
    assert set(p.result) == {"MHA", "Tucker-1,8,4"}
    knob(p, "runs").value = ("GQA-2",)
    assert p.result == {"GQA-2": ([1, 2], [3.0, 2.1])}


def test_hosvd_panel():
    from tucker_lab.tensor import hosvd, relative_error, tucker_to_tensor
    t = torch.randn(4, 5, 6, dtype=torch.float64)
    p = widgets.hosvd_panel(t, show=False)
    knob(p, "r1").value, knob(p, "r2").value, knob(p, "r3").value = 2, 3, 4
    assert p.result["hosvd"] == relative_error(t, tucker_to_tensor(*hosvd(t, (2, 3, 4))))
    assert p.result["hooi"] <= p.result["hosvd"] + 1e-12 and p.result["numbers"] == 24 + 8 + 15 + 24


def test_compression_panel():
    layer = tkl.build_attention(tkl.MHAConfig(d_model=16, n_heads=4, rope=False)).double()
    p = widgets.compression_panel(layer, show=False)
    knob(p, "r_head").value, knob(p, "r_embed").value, knob(p, "r_latent").value = 4, 16, 16
    assert p.result["qk"] < 1e-12 and p.result["vo"] < 1e-12 and p.result["original"] == 4 * 16 * 16
