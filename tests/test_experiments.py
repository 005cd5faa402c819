"""Sweeps: the grid, the matched-quality ratios, a tiny end-to-end sweep and its plot."""
import json
import re

import matplotlib

matplotlib.use("Agg")
import pytest

from tucker_lab import experiments as E


def test_grid_spans_every_family_within_valid_ranks():
    g = E.grid(96, 4, causal=True, rope=True)
    assert {E.family(n) for n in g} == {"MHA", "GQA", "MLA", "TPA", "Tucker"}
    assert "MQA" in g and g["MQA"].n_kv_heads == 1
    tucker = [c for n, c in g.items() if n.startswith("Tucker")]
    assert [c.param_count() for c in tucker] == sorted(c.param_count() for c in tucker)
    assert g["Tucker-4,96,48"].ranks_qk == (4, 96, 48)


def doc_of(runs):
    return {"task": "lm", "budget": "quick", "device": "cpu",
            "runs": [{"name": n, "family": E.family(n), "attention_params": p, "val_loss": l} for n, p, l in runs]}


def test_matched_ratios():
    doc = doc_of([("MHA", 1000, 2.00), ("GQA-2", 800, 2.20), ("MLA-8", 900, 1.50),
                  ("Tucker-1,8,4", 100, 2.20), ("Tucker-2,16,8", 200, 2.03), ("Tucker-4,32,16", 400, 1.90)])
    r = E.matched_ratios(doc)
    assert r["MHA"][0]["match"] == "Tucker-2,16,8" and r["MHA"][0]["ratio"] == 5.0  # 2.03 <= 2.00 * 1.02
    assert r["GQA"][0]["match"] == "Tucker-1,8,4" and r["GQA"][0]["ratio"] == 8.0  # 2.20 <= 2.20 * 1.02
    assert r["MLA"][0]["match"] is None and r["MLA"][0]["ratio"] is None  # no Tucker run reaches 1.53
    for run in doc["runs"]:
        run["val_accuracy"] = 1 - run["val_loss"] / 4
    acc = E.matched_ratios(doc, metric="val_accuracy")  # higher is better, absolute tolerance
    assert acc["MHA"][0]["match"] == "Tucker-2,16,8"  # 0.4925 >= 0.5 - 0.02


def test_tiny_sweep_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setitem(E.BUDGETS["vit"], "quick", dict(d_model=16, n_heads=2, n_layers=1, steps=4,
                                                        batch_size=16, lr=1e-3, patch_size=4))
    out = E.main(["sweep", "--task", "vit", "--variants", "MHA", "Tucker-1,2,2", "--out", str(tmp_path / "s.json")])
    doc = json.loads(out.read_text())
    assert [r["name"] for r in doc["runs"]] == ["MHA", "Tucker-1,2,2"]
    for r in doc["runs"]:
        assert r["attention_params"] == E.grid(16, 2, causal=False, rope=False)[r["name"]].param_count()
        assert r["curves"]["step"][-1] == 4 and 0 <= r["val_accuracy"] <= 1
    for key in ("device", "commit", "torch", "train", "sizes", "data"):
        assert key in doc
    png = E.main(["plot", str(out)])
    assert png.exists() and png.stat().st_size > 1000
    with pytest.raises(ValueError, match="unknown variants"):
        E.run_sweep("vit", "quick", ["Linear"])


@pytest.mark.parametrize("args,msg", [
    (["plot", "results/sweeps/lm_quick.json", "--metric", "bogus"], "argument --metric: invalid choice: 'bogus'"),
    (["plot", "no/such/file.json"], "argument results: cannot read a results JSON"),
    (["sweep", "--task", "vit", "--seeds", "-1"], "argument --seeds: must be an integer >= 0; got -1"),
    (["sweep", "--task", "vit", "--variants", "Linear"], r"argument --variants: unknown \['Linear'\]"),
    (["sweep", "--task", "chess"], "argument --task: invalid choice: 'chess'"),
])
def test_cli_rejects_nonsense_with_exit_code_2(args, msg, capsys):
    with pytest.raises(SystemExit) as e:
        E.main(args)
    assert e.value.code == 2
    assert re.search(msg, capsys.readouterr().err)


def test_library_functions_name_a_bad_metric():
    doc = doc_of([("MHA", 1000, 2.0), ("Tucker-1,8,4", 100, 2.2)])
    with pytest.raises(ValueError, match=r"metric must be one of \('val_loss', 'val_accuracy'\); got 'bogus'"):
        E.matched_ratios(doc, metric="bogus")
    with pytest.raises(ValueError, match="task must be one of"):
        E.run_sweep("chess")
