"""The helpers the chapters share (tucker_lab.notebook)."""
from pathlib import Path

import pytest
import torch

import tucker_lab as tkl
from tucker_lab import notebook
from tucker_lab.attention import mha


def test_max_err_and_seeded_layers():
    cfg = tkl.GQAConfig(d_model=32, n_heads=4, n_kv_heads=2)
    state = torch.random.get_rng_state()
    a, b = notebook.layer_of(cfg, seed=3), notebook.layer_of(cfg, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's random state is untouched
    x = torch.randn(2, 5, 32, dtype=torch.float64)
    assert notebook.max_err(a(x), b(x)) == 0.0
    assert notebook.max_err(a(x), notebook.layer_of(cfg, seed=4)(x)) > 1e-3
    assert next(a.parameters()).dtype == torch.float64
    assert tkl.exercises.seeded_layer(cfg, seed=3).state_dict().keys() == a.state_dict().keys()


def test_spy_attend_records_and_restores():
    layer = notebook.layer_of(tkl.GQAConfig(d_model=32, n_heads=4, n_kv_heads=2), seed=0)
    x = torch.randn(1, 6, 32, dtype=torch.float64)
    real = mha.attend
    with notebook.spy_attend() as calls, notebook.ShapeLog() as log:
        layer(x)
    assert mha.attend is real
    assert calls and calls[0]["q"] == (1, 6, 4, 8) and calls[0]["k"] == (1, 6, 2, 8)
    assert (1, 6, 32) in log.shapes
    with pytest.raises(RuntimeError):
        with notebook.spy_attend(mha):
            raise RuntimeError("boom")
    assert mha.attend is real


def test_panel_bundles():
    live = tkl.widgets.gqa_panel(show=False)
    b = notebook.panel(live, tkl.static.gqa_panel())._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in b and tkl.static.PANEL_CLASS in b["text/html"]
    k = notebook.panel(tkl.widgets.rope_panel(show=False))._repr_mimebundle_()
    assert "needs a running kernel" in k["text/html"] and "tucker-needs-kernel" in k["text/html"]


def test_show_source_is_whole(capsys):
    from IPython.core.interactiveshell import InteractiveShell
    InteractiveShell.instance()
    import inspect
    shown = []
    import IPython.display as d
    orig = d.display
    d.display = shown.append
    try:
        notebook.show_source(tkl.reference.mha)
    finally:
        d.display = orig
    assert shown and shown[0].data == inspect.getsource(tkl.reference.mha)


def test_load_results():
    assert notebook.load_results("sweeps/lm_quick.json")["task"] == "lm"
    with pytest.raises(FileNotFoundError):
        notebook.load_results("sweeps/nothing.json")


def test_load_results_without_a_clone_reads_the_installed_copy(tmp_path, monkeypatch):
    """On Colab there is no clone: the results come from the package's data files, and
    pyproject.toml installs every results JSON the chapters read (bench, sweeps, pretrained)."""
    import glob
    try:
        import tomllib
    except ImportError:
        import tomli as tomllib
    root = Path(__file__).resolve().parents[1]
    data_files = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"]
    shipped = {Path(f).relative_to(root / "results").as_posix() for globs in data_files.values()
               for g in globs for f in glob.glob(str(root / g))}
    committed = {p.relative_to(root / "results").as_posix() for p in (root / "results").rglob("*.json")}
    chapters = {f for f in committed if f.split("/")[0] in ("bench", "sweeps", "pretrained")}
    assert "pretrained/smollm2_frontier.json" in chapters and "sweeps/lm_quick.json" in chapters
    assert chapters <= shipped, f"not installed with the package: {sorted(chapters - shipped)}"
    for nb in (root / "book").glob("*.ipynb"):  # the chapters read them through load_results
        assert "perf.load(bench_dir" not in nb.read_text()
    # a pip install: the copy under <prefix>/share, and no clone around
    share = tmp_path / "share" / "tucker-lab" / "results" / "sweeps"
    share.mkdir(parents=True)
    (share / "lm_quick.json").write_text('{"task": "installed"}')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(notebook, "__file__", str(tmp_path / "site" / "tucker_lab" / "notebook.py"))
    monkeypatch.setattr(notebook.sysconfig, "get_path", lambda name: str(tmp_path))
    assert notebook.load_results("sweeps/lm_quick.json") == {"task": "installed"}
