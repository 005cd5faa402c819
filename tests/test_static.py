"""Static panels: the rows the page filters are the package's accounting, at every grid point."""
import itertools
import json

import pytest
import torch

import tucker_lab as tkl
from tucker_lab import static
from tucker_lab.accounting import accounting_rows
from tucker_lab.notebook import load_results

FIELDS = ("params", "cache_elems_per_token", "cache_bytes_per_token", "cache_GiB", "flops_per_token")


def _check_grid(panel, build, baselines, **acct):
    chosen = [r for r in panel.rows if r["chosen"]]
    names = [c.name for c in panel.controls]
    assert len(chosen) == len(list(itertools.product(*(c.values for c in panel.controls))))
    for r in chosen:
        knobs = {n: r[n] for n in names}
        try:
            cfg = build(**knobs)
        except ValueError as e:
            assert r["error"] == str(e)
            continue
        want = accounting_rows({**baselines, "x": cfg}, **acct)[-1]
        assert not r["error"] and all(r[f] == want[f] for f in FIELDS), knobs
    base = {r["variant"]: r for r in panel.rows if not r["chosen"]}
    assert base.keys() == baselines.keys()
    for name, row in zip(baselines, accounting_rows(baselines, **acct)):
        assert all(base[name][f] == row[f] for f in FIELDS)


def test_tucker_panel_rows_are_the_accounting():
    p = static.tucker_panel()
    std = tkl.standard_configs(768, 12)

    def build(r_head, r_q, r_k, shared_kv):
        r = (r_head, r_q, r_k)
        return tkl.TuckerConfig(d_model=768, n_heads=12, ranks_qk=r, ranks_vo=r, shared_kv=shared_kv == "yes")

    _check_grid(p, build, {k: v for k, v in std.items() if k not in ("Tucker", "TPA")}, context=4096)


@pytest.mark.parametrize("C,H", [(768, 12), (4096, 32)])
def test_gqa_and_mla_panels(C, H):
    std = tkl.standard_configs(C, H)
    _check_grid(static.gqa_panel(C, H), lambda n_kv_heads: tkl.GQAConfig(d_model=C, n_heads=H, n_kv_heads=n_kv_heads),
                {k: v for k, v in std.items() if k in ("MHA", "MQA")}, context=4096)
    _check_grid(static.mla_panel(C, H),
                lambda kv_rank, q_rank, rope_dim: tkl.MLAConfig(d_model=C, n_heads=H, kv_rank=kv_rank,
                                                                q_rank=q_rank or None, rope_dim=rope_dim,
                                                                rope=rope_dim > 0),
                {k: v for k, v in std.items() if k in ("MHA", "MQA") or k.startswith("GQA")}, context=4096)


def test_tpa_panel():
    std = tkl.standard_configs(768, 12)
    _check_grid(static.tpa_panel(), lambda q_rank, k_rank, v_rank: tkl.TPAConfig(
        d_model=768, n_heads=12, q_rank=q_rank or None, k_rank=k_rank, v_rank=v_rank),
        {k: v for k, v in std.items() if k != "TPA"}, context=4096)


def test_cache_panel_rows_are_the_accounting():
    p = static.cache_panel()
    dtypes = {"bf16": torch.bfloat16, "fp32": torch.float32}
    assert len(p.rows) == 5 * 6 * 3 * 2 * len(tkl.standard_configs(768, 12))
    for r in p.rows[::7]:
        C, H, L = static.MODEL_SIZES[r["model"]]
        want = {w["variant"]: w for w in accounting_rows(tkl.standard_configs(C, H), context=2 ** r["log2_context"],
                                                         n_layers=L, batch=r["batch"], dtype=dtypes[r["dtype"]])}
        assert all(r[f] == want[r["variant"]][f] for f in FIELDS)


def test_results_panels_follow_the_committed_json():
    docs = {t: load_results(f"sweeps/{t}_quick.json") for t in ("lm", "recall", "vit")}
    f = static.frontier_panel(docs)
    for r in f.rows:
        run = next(x for x in docs[r["task"]]["runs"] if x["name"] == r["run"])
        assert r["attention_params"] == int(run["attention_params"])
        assert r["value"] == pytest.approx(float(run[r["metric"].replace(" ", "_")]), rel=1e-5)
    c = static.curves_panel(docs)
    assert {r["task"] for r in c.rows} == set(docs)
    doc = load_results("bench/decode_x86-64-cpu.json")
    b = static.bench_panel(doc)
    assert len(b.rows) == len(doc["results"])
    assert {(r["scope"], r["batch"]) for r in b.rows} == {(r["scope"], r["batch"]) for r in doc["results"]}


def test_html_embeds_the_spec_and_binds_every_control():
    p = static.gqa_panel()
    html = p.to_html()
    assert f'class="{static.PANEL_CLASS}"' in html and 'data-controls="1"' in html
    spec = json.loads(html.split('-spec">', 1)[1].split("</script>", 1)[0].replace("<\\/", "</"))
    assert "$schema" not in spec  # nothing for the page to fetch
    assert [prm["name"] for prm in spec["params"]] == ["n_kv_heads"] and "bind" in spec["params"][0]
    assert "http" not in html.replace("http://www.w3.org", "")


def test_control_validation():
    with pytest.raises(ValueError, match="no values"):
        static.Control("x", [])
    with pytest.raises(ValueError, match="default"):
        static.Control("x", [1, 2], 3)
    assert static.Control("x", [2, 4, 6]).kind == "range" and static.Control("x", [1, 2, 4]).kind == "select"
