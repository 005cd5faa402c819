"""The lean install: `pip install tucker-lab` is the library on torch, numpy, tensorly and tqdm;
plotting, widgets, datasets, Triton and transformers come with extras, and a module that
misses one says which (tucker_lab._extras.require). requirements.txt installs what the book
and the tests use.

A core-only install is simulated in a subprocess by blocking every optional module
(``sys.modules[name] = None`` makes its import fail): the layers still work and each
feature that needs an extra raises an ImportError naming it.
"""
from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

try:
    import tomllib
except ImportError:  # Python 3.10: the dev extra brings tomli
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
CORE = {"torch", "numpy", "tensorly", "tqdm"}
# top-level modules of the optional dependencies (import names)
OPTIONAL = ("matplotlib", "ipywidgets", "IPython", "sklearn", "altair", "transformers", "triton", "gguf",
            "accelerate")
# import name -> the distribution that provides it, where the two differ. yaml is not asked
# for by name: jupyter-book (book extra) depends on PyYAML.
DIST = {"sklearn": "scikit-learn", "IPython": "ipython", "yaml": "jupyter-book"}

# feature -> (the extra it needs, code run with every optional module blocked)
NEEDS = {
    "plots": ("plot", "import tucker_lab.plots"),
    "widgets": ("widgets", "import tucker_lab.widgets"),
    "static panels": ("widgets", "tkl.static.gqa_panel()"),
    "show_source": ("widgets", "tkl.notebook.show_source(tkl.notebook.max_err)"),
    "Digits": ("data", "tkl.data.Digits()"),
    "experiments.plot_frontier": ("plot", "tkl.experiments.plot_frontier({'runs': []})"),
    "real_model.plot_frontier": ("plot", "tkl.real_model.plot_frontier({'runs': []})"),
    "perf.decode_figure": ("plot", "import tucker_lab.perf as p; p.decode_figure([], 1, time_key='t')"),
    "kernels.latent_mqa_decode": ("triton", "tkl.kernels.latent_mqa_decode(None, None, None)"),
    "kernels.tpa_decode": ("triton", "tkl.kernels.tpa_decode(None)"),
    "load_pretrained": ("pretrained", "tkl.load_pretrained()"),
    "bench hf-decode": ("hf", "tkl.bench.hf_counterpart('MHA', None, None, 'cpu')"),
}

LEAN = textwrap.dedent("""
    import json, sys
    for name in {optional!r}:
        sys.modules[name] = None  # import fails as if not installed
    import torch
    import tucker_lab as tkl
    from tucker_lab import *  # noqa: F403  (__all__ must hold only what the core can import)

    # the library works on the core alone
    cfg = tkl.TuckerConfig(d_model=32, n_heads=4, ranks_qk=(4, 8, 8), ranks_vo=(4, 8, 8))
    assert tkl.build_attention(cfg)(torch.randn(1, 5, 32)).shape == (1, 5, 32)
    gqa = tkl.build_attention(tkl.GQAConfig(d_model=32, n_heads=4, n_kv_heads=2))
    tkl.to_tucker(gqa)
    tkl.rank_profile(gqa)
    tkl.tensor.hosvd(torch.randn(4, 5, 6), (2, 3, 3))
    assert not tkl.kernels.available()

    out = {{}}
    for feature, (extra, code) in {needs!r}.items():
        try:
            exec(code, {{"tkl": tkl}})
        except ImportError as e:
            out[feature] = str(e)
        except Exception as e:
            out[feature] = f"not an ImportError: {{type(e).__name__}}: {{e}}"
        else:
            out[feature] = "no error"
    print(json.dumps(out))
""")


def _python(code: str) -> str:
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300,
                       check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


@pytest.fixture(scope="module")
def lean_messages() -> dict[str, str]:
    return json.loads(_python(LEAN.format(optional=OPTIONAL, needs=NEEDS)).splitlines()[-1])


def test_import_loads_no_optional_dependency():
    code = f"import json, sys, tucker_lab; print(json.dumps([m for m in {OPTIONAL!r} if m in sys.modules]))"
    loaded = json.loads(_python(code))
    assert loaded == [], f"`import tucker_lab` imports optional modules: {loaded}"


@pytest.mark.parametrize("feature", NEEDS)
def test_a_missing_extra_is_named(lean_messages, feature):
    extra = NEEDS[feature][0]
    msg = lean_messages[feature]
    assert f"optional extra '{extra}'" in msg, msg
    assert f"pip install 'tucker-lab[{extra}]'" in msg and f"pip install -e '.[{extra}]'" in msg, msg


def _name(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9_.-]+", requirement).group(0).lower().replace("_", "-")


def _resolve(extras: set[str]) -> set[str]:
    """Distribution names that `tucker-lab[extras]` installs by name (self-references followed)."""
    opt, names, todo, seen = PYPROJECT["project"]["optional-dependencies"], set(), list(extras), set()
    while todo:
        extra = todo.pop()
        assert extra in opt, f"no extra {extra!r} in pyproject.toml"
        if extra in seen:
            continue
        seen.add(extra)
        for req in opt[extra]:
            if _name(req) == "tucker-lab":
                todo += re.search(r"\[(.*)\]", req).group(1).split(",")
            else:
                names.add(_name(req))
    return names | {_name(r) for r in PYPROJECT["project"]["dependencies"]}


def _required_extras() -> dict[str, set[str]]:
    """extra -> top-level modules the package asks for with require(module, extra, ...)."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / "tucker_lab").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "require" \
                    and path.name != "_extras.py":
                module, extra = (a.value for a in node.args[:2])
                found.setdefault(extra, set()).add(module.split(".")[0])
    return found


def _requirements_txt_extras() -> set[str]:
    lines = [l.strip() for l in (ROOT / "requirements.txt").read_text().splitlines()]
    (spec,) = [l for l in lines if l and not l.startswith("#")]
    return set(re.fullmatch(r"-e \.\[([a-z,]+)\]", spec).group(1).split(","))


def test_core_dependencies_are_the_lean_set():
    assert {_name(r) for r in PYPROJECT["project"]["dependencies"]} == CORE


def test_every_required_module_comes_with_its_extra():
    required = _required_extras()
    assert set(required) >= {"plot", "widgets", "data", "triton", "pretrained"}  # the scan saw them
    for extra, modules in required.items():
        have = _resolve({extra})
        for m in modules:
            assert DIST.get(m, m.lower()) in have, f"require({m!r}, {extra!r}): the extra does not install it"


def test_all_is_every_extra_but_flash():
    opt = set(PYPROJECT["project"]["optional-dependencies"])
    assert _resolve({"all"}) == _resolve(opt - {"flash"})


def _imports(source: str) -> set[str]:
    mods = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            mods |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            mods.add(node.module.split(".")[0])
    return mods


def test_requirements_txt_installs_what_the_book_and_the_tests_use():
    installed = _resolve(_requirements_txt_extras())
    # the package's own optional features: the chapters execute all of them
    for extra in _required_extras():
        assert _resolve({extra}) <= installed, f"requirements.txt misses the extra {extra!r}"
    local = {"tucker_lab", "cases", "conftest"} | {p.stem for p in (ROOT / "tests").glob("*.py")}
    sources = [p.read_text() for p in (ROOT / "tests").glob("*.py")]
    for nb in (ROOT / "book").glob("*.ipynb"):
        cells = json.loads(nb.read_text())["cells"]
        # IPython magics and shell lines are not Python: each becomes a `pass` at its indentation
        sources += [re.sub(r"(?m)^(\s*)[%!].*$", r"\1pass", "".join(c["source"]))
                    for c in cells if c["cell_type"] == "code"]
    used = set().union(*map(_imports, sources)) - local - set(sys.stdlib_module_names)
    missing = sorted(m for m in used if DIST.get(m, m.lower()) not in installed)
    assert not missing, f"imported by tests or chapters but not installed by requirements.txt: {missing}"
