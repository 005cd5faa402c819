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
