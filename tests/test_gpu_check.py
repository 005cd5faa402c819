"""The GPU check script cannot rot: its CPU dry run (tiny sizes, the same code paths,
Triton interpreted) runs here and writes every section's JSON, and the performance
chapter's GPU cell can read what it writes."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tucker_lab import perf

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-check")
    env = {**os.environ, "PYTHON": sys.executable, "TRITON_INTERPRET": "1"}
    p = subprocess.run(["bash", "gpu/check.sh", "--device", "cpu", "--tiny", "--out", str(out)], cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=600)
    return p, out


def test_dry_run_passes_and_writes_every_section(dry_run):
    p, out = dry_run
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["sections"]) == {"env", "cuda_tests", "kernels", "train", "static", "bench", "pytest",
                                        "notebooks"}
    assert all(s["ok"] for s in summary["sections"].values())
    for name in ("env", "cuda_tests", "kernels", "train", "static", "decode", "prefill", "targets", "notebooks"):
        assert (out / f"{name}.json").is_file(), name
    env = json.loads((out / "env.json").read_text())
    for key in ("device", "torch", "triton", "transformers", "commit", "date", "copy_bandwidth_GBps"):
        assert key in env


def test_dry_run_checks_every_variant_and_mode(dry_run):
    _, out = dry_run
    rows = json.loads((out / "cuda_tests.json").read_text())["results"]
    seen = {(r["variant"], r["mode"]) for r in rows}
    for v in ("MHA", "GQA-1", "MQA", "MLA", "TPA", "Tucker"):
        assert any(s[0] == v for s in seen), v
    assert ("MLA", "absorbed") in seen and ("MLA", "naive") in seen and ("TPA", "factored") in seen
    assert {r["dtype"] for r in rows if "backend" in r} == {"bf16", "fp16"}
    assert any(r["status"] == "ok" and r.get("backend") == "flash" for r in rows)
    static = json.loads((out / "static.json").read_text())["results"]
    assert len(static) >= 6 and all(r["graphs"] == 1 for r in static)
    nbs = json.loads((out / "notebooks.json").read_text())["results"]
    assert [r["notebook"] for r in nbs] == ["15_performance.ipynb"] and nbs[0]["status"] == "ok"


def test_chapter_reads_a_check_folder(dry_run, tmp_path):
    _, out = dry_run
    decode = json.loads((out / "decode.json").read_text())
    assert {r["variant"] for r in decode["results"]} >= {"GQA-2", "MLA", "TPA", "Tucker"}
    core = [r for r in decode["results"] if r["scope"] == "core"]
    ax = perf.decode_figure(core, decode["copy_bandwidth_GBps"], time_key="median_ms")
    assert len(ax.lines) == len({r["variant"] for r in core}) + 1  # one series per variant, the floor
    lines = perf.target_lines(json.loads((out / "targets.json").read_text()))
    assert any("goal >= 0.8" in line for line in lines)
    # a committed GPU folder is found only when it comes from a CUDA device
    (tmp_path / "gpu" / "run").mkdir(parents=True)
    (tmp_path / "gpu" / "run" / "decode.json").write_text(json.dumps(decode | {"device_type": "cuda"}))
    assert perf.gpu_runs(tmp_path) == [tmp_path / "gpu" / "run"]
    assert perf.gpu_runs(out.parent) == []
