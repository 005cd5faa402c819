"""Figures plot the package's numbers."""
import matplotlib

matplotlib.use("Agg")
import pytest
import torch

import tucker_lab as tkl
from tucker_lab import plots


def test_cache_vs_context_lines_are_the_accounting():
    cfgs = tkl.standard_configs(768, 12)
    ax = plots.plot_cache_vs_context(cfgs, n_layers=12, contexts=[1024, 4096])
    lines = {l.get_label(): l.get_ydata() for l in ax.get_lines()}
    mha = cfgs["MHA"].kv_cache_bytes_per_token(torch.bfloat16) * 12
    assert list(lines["MHA"]) == pytest.approx([mha * 1024 / 2**30, mha * 4096 / 2**30])


def test_landscape_points():
    cfgs = tkl.standard_configs(768, 12)
    ax = plots.plot_landscape(cfgs)
    pts = [tuple(c.get_offsets()[0]) for c in ax.collections]
    assert pts == [(c.param_count(), c.kv_cache_elements_per_token()) for c in cfgs.values()]


def test_spectra_are_normalized():
    ax = plots.plot_spectra([torch.tensor([4.0, 2.0, 1.0])], ["mode 1"])
    assert list(ax.get_lines()[0].get_ydata()) == pytest.approx([1.0, 0.5, 0.25])


def test_rope_plot_and_bench_plot():
    axes = plots.plot_rope({"full": {"layout": "full"}, "tail": {"layout": "tail", "rope_dim": 8}}, n=32, max_offset=10)
    score = axes[1].get_lines()[0].get_ydata()
    assert score[0] == pytest.approx(1.0)  # offset 0: <1, 1> / n
    doc = {"device": "cpu", "dtype": "float32", "results": [
        {"variant": "MHA", "impl": "sdpa", "scope": "core", "batch": 1, "context": c, "median_ms": c / 100, "floor_ms": c / 1000}
        for c in (16, 32)]}
    ax = plots.plot_decode_bench(doc)
    assert list(ax.get_lines()[0].get_ydata()) == [0.16, 0.32] and list(ax.get_lines()[1].get_ydata()) == [0.016, 0.032]
