"""The book's sources: worked solutions, panels, reading order, code width, no outside hosts.

The notebooks are read as JSON (not executed: the book build executes them). Every exercise's
worked solution, the ``python`` block in its folded ``dropdown``, is run here and must pass
``tkl.exercises.check``.
"""
from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest
import yaml

import tucker_lab as tkl

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
CHAPTERS = sorted(BOOK.glob("[0-9][0-9]_*.ipynb"))
SOLUTION = re.compile(r":::\{dropdown\} Worked solution to (\d+\.\d+)\n(?:.*?\n)??```python\n(.*?)\n```\n:::", re.S)


def cells(path: Path, kind: str | None = None) -> list[str]:
    nb = json.loads(path.read_text())
    return ["".join(c["source"]) for c in nb["cells"] if kind is None or c["cell_type"] == kind]


def worked_solutions() -> dict[str, str]:
    out = {}
    for path in CHAPTERS:
        for md in cells(path, "markdown"):
            for key, code in SOLUTION.findall(md):
                assert key not in out, f"two worked solutions for {key}"
                assert int(key.split(".")[0]) == int(path.name[:2]), (key, path.name)
                out[key] = code
    return out


def test_every_exercise_of_a_written_chapter_has_one_worked_solution():
    written = {int(p.name[:2]) for p in CHAPTERS}
    expected = {k for k in tkl.exercises.keys() if int(k.split(".")[0]) in written}
    assert set(worked_solutions()) == expected


@pytest.mark.parametrize("key", sorted(worked_solutions(), key=lambda k: tuple(map(int, k.split(".")))))
def test_worked_solution_passes_the_check(key):
    code = worked_solutions()[key]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, f"<worked solution {key}>", "exec"), {"__name__": "__worked__"})
    assert f"Exercise {key}: correct." in out.getvalue()
    assert all(len(line) <= 88 for line in code.splitlines()), key


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_cells(path):
    code = cells(path, "code")
    md = "\n".join(cells(path, "markdown"))
    wide = [line for c in code for line in c.splitlines() if len(line) > 88]
    assert not wide, f"code lines wider than 88 columns: {wide[:3]}"
    # the prompts are Markdown; the reader's cell collects the answers, one check per exercise
    keys = tkl.exercises.keys(chapter=int(path.name[:2]))
    assert all(f"**Exercise {k}.**" in md for k in keys)
    assert any("answers = {" in c and all(f'"{k}": None' in c for k in keys) for c in code)
    # package source is shown whole (show_source), never printed or sliced from getsource
    assert not any("getsource" in c for c in code)
    # every ipywidgets panel goes through notebook.panel: a static twin or a "needs a kernel" note
    for c in code:
        for m in re.finditer(r"tkl\.widgets\.(\w+_panel)\(", c):
            assert re.search(rf"panel\(\s*tkl\.widgets\.{m.group(1)}\(", c), (path.name, m.group(0))


def test_reading_order_agrees():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [ch["file"] for part in toc["parts"] for ch in part["chapters"]]
    numbered = [f for f in files if re.match(r"book/\d\d_", f)]
    assert numbered == sorted(numbered), "the table of contents must list chapters in order"
    assert [Path(f).name for f in numbered] == [p.stem for p in CHAPTERS]
    intro = (BOOK / "intro.md").read_text()
    rows = re.findall(r"^\| (\d+) \| \[[^\]]+\]\(([^)]+)\)", intro, re.M)
    assert [name for _, name in rows] == [Path(f).name for f in numbered]
    assert [int(n) for n, _ in rows] == [int(Path(f).name[:2]) for f in numbered]


# hosts a page could load scripts, styles or fonts from (the book serves all of them itself)
CDN = re.compile(r"cdn\.jsdelivr|unpkg\.com|cdnjs\.|googleapis\.com|gstatic\.com|bootstrap(?:cdn)|"
                 r"code\.jquery|cdn\.plot\.ly|mathjax\.org/mathjax|polyfill\.io")


def test_no_repository_file_names_a_cdn():
    skip = {".git", "_build", "__pycache__", ".pytest_cache"}
    hits = []
    for p in ROOT.rglob("*"):
        if p.is_file() and not skip & set(p.relative_to(ROOT).parts) and p.suffix not in (".png", ".woff"):
            text = p.read_text(errors="ignore")
            hits += [f"{p.relative_to(ROOT)}: {m.group(0)}" for m in CDN.finditer(text)]
    assert not hits, hits
