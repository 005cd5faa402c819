"""The benchmark CLI writes complete JSON whose byte counts are the accounting's."""
import json
import re
from pathlib import Path

import pytest

import torch

import tucker_lab as tkl
from tucker_lab import bench
from cases import CASES


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c.causal])
def test_decode_step_times_what_every_layer_exposes(name):
    """bench needs nothing per variant: the step rewinds its cache, so every timed call is
    the same step, and the core is the attention part of that step."""
    layer = tkl.build_attention(CASES[name]).to(torch.float64)
    x = torch.randn(2, 1, layer.cfg.d_model, dtype=torch.float64)
    core, step, cache = bench.decode_step(layer, 2, 5, x)
    with torch.no_grad():
        first, again = step(), step()
        assert cache.seq_len == 5  # rewound after each step
        torch.testing.assert_close(again, first, rtol=0, atol=0)
        y = core()  # token 4 over the 5 random cached tokens
        assert cache.seq_len == 5 and y.shape[:3] == (2, 1, layer.cfg.H)
        # the same as the step's attention when token 5 is the query (recomputed by hand)
        cache.truncate(5)
        layer(x, cache=cache)
        torch.testing.assert_close(layer.output(layer.decode_core(layer.decode_query(x, 5), cache)), first,
                                   rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", ["decode", "prefill"])
def test_bench_cli_writes_provenance_and_consistent_numbers(kind, tmp_path):
    out = bench.main([kind, "--d-model", "64", "--n-heads", "4", "--contexts", "16,32", "--lengths", "8",
                      "--batches", "1,2", "--variants", "MHA,MLA,TPA,Tucker", "--min-run-time", "0.001",
                      "--out", str(tmp_path / "b.json")])
    doc = json.loads(out.read_text())
    for key in ("device", "torch", "triton", "commit", "date", "dtype", "copy_bandwidth_GBps"):
        assert key in doc
    cfgs = tkl.standard_configs(64, 4)
    rows = doc["results"]
    if kind == "decode":
        assert len(rows) == 4 * 2 * 2 * 2  # variants x batches x contexts x scopes
        for r in rows:
            cache = r["batch"] * r["context"] * cfgs[r["variant"]].kv_cache_bytes_per_token(tkl.bench._DTYPES["fp32"])
            assert r["cache_bytes"] == cache
            assert r["bytes"] == cache if r["scope"] == "core" else r["bytes"] > cache
            assert r["achieved_GBps"] == pytest.approx(r["bytes"] / (r["median_ms"] / 1e3) / 1e9)
            assert r["floor_ms"] == pytest.approx(r["bytes"] / (doc["copy_bandwidth_GBps"] * 1e9) * 1e3)
    else:
        assert len(rows) == 4 * 2
        r = rows[0]
        cfg = cfgs[r["variant"]]
        T = r["length"]
        assert r["flops"] == r["batch"] * sum(cfg.flops_per_token(t) for t in range(1, T + 1)) + cfg.fixed_flops()


@pytest.mark.parametrize("args,msg", [
    (["decode", "--scopes", "core,bogus"], "argument --scopes: must be comma-separated values from core, layer"),
    (["decode", "--min-run-time", "-1"], "argument --min-run-time: must be a finite number > 0; got -1"),
    (["decode", "--contexts", "1024,0"], "argument --contexts: each value must be an integer >= 1; got 0"),
    (["prefill", "--batches", "-8"], "argument --batches: each value must be an integer >= 1; got -8"),
    (["decode", "--d-model", "0"], "argument --d-model: must be an integer >= 1; got 0"),
    (["decode", "--impls", "cuda-magic"], "argument --impls: must be comma-separated values from auto, flash"),
    (["decode", "--out", "x.json", "--save"], "argument --save: not allowed with argument --out"),
    (["decode", "--variants", "Linformer"], r"argument --variants: unknown variants \['Linformer'\]"),
])
def test_cli_rejects_nonsense_with_exit_code_2(args, msg, capsys):
    with pytest.raises(SystemExit) as e:
        bench.main(args)
    assert e.value.code == 2
    assert re.search(msg, capsys.readouterr().err)


def test_cli_prints_a_table_and_writes_to_results_only_when_asked(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # --save writes results/bench/ under the working directory
    monkeypatch.setattr(bench, "copy_bandwidth", lambda device: 1e10)
    common = ["prefill", "--d-model", "32", "--n-heads", "2", "--lengths", "4", "--batches", "1",
              "--variants", "MQA,Tucker", "--min-run-time", "0.001"]
    out = bench.main(common)
    assert not out.is_relative_to(tmp_path) and out.parent.name == "tucker_lab_bench"
    assert not (tmp_path / "results").exists()
    printed = capsys.readouterr().out
    table = [line.split() for line in printed.splitlines()[2:4]]
    assert [row[0] for row in table] == ["MQA", "Tucker"]
    doc = json.loads(out.read_text())
    assert [float(row[4]) for row in table] == pytest.approx([r["median_ms"] for r in doc["results"]], abs=1e-4)
    saved = bench.main(common + ["--save"])
    assert saved == Path("results") / "bench" / out.name and (tmp_path / saved).exists()
@pytest.mark.parametrize("clock", ["wall", "cpu"])
def test_hf_decode_compares_the_same_step(clock, tmp_path):
    """bench hf-decode: transformers' layer and ours compute the same step (same weights),
    every row carries both times, the floors and the load average."""
    pytest.importorskip("transformers")
    import torch
    threads = torch.get_num_threads()
    try:
        out = bench.main(["hf-decode", "--d-model", "64", "--n-heads", "4", "--contexts", "8", "--batches", "2",
                          "--variants", "GQA-1,MLA,Tucker", "--rounds", "3", "--clock", clock,
                          "--threads", "1", "--out", str(tmp_path / "h.json")])
    finally:
        torch.set_num_threads(threads)
    doc = json.loads(out.read_text())
    assert doc["clock"] == clock and "transformers" in doc and doc["matmul_TFLOPs"] > 0
    rows = {r["variant"]: r for r in doc["results"]}
    assert rows["GQA-1"]["hf_module"] == "LlamaAttention" and rows["MLA"]["hf_module"] == "DeepseekV3Attention"
    assert rows["Tucker"]["hf_module"] is None and rows["Tucker"]["hf_ms"] is None
    for v in ("GQA-1", "MLA"):
        r = rows[v]
        assert r["max_abs_diff_vs_hf"] < 1e-5
        assert r["ours_ms"] > 0 and r["hf_ms"] > 0 and r["ours_over_hf"] > 0 and len(r["loadavg"]) == 2
        assert r["floor_ms"] >= r["floor_core_ms"] > 0
