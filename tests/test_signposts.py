"""Every pointer in the code and its documents leads somewhere: "See: book/..." names a
chapter or page that exists, and a path into this repository names a file or folder that
exists (or one that a named script writes)."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# folders that scripts create when they run (pending runs have not made them yet)
WRITTEN = {"results/gpu": "gpu/check.sh writes it on a GPU machine"}
POINTER = re.compile(r"(?<![\w/.-])((?:book|tests|results|gpu|tucker_lab|\.ci)/[\w./-]*\w)")


def sources():
    for pattern in ("tucker_lab/**/*.py", "tests/*.py", "gpu/*", "book/*.md", "book/api/*.md", "*.md", ".ci/run",
                    "pyproject.toml"):
        yield from (p for p in ROOT.glob(pattern) if p.is_file() and p.name != Path(__file__).name)


def resolves(ref: str) -> bool:
    p = ROOT / ref
    return any(q.exists() for q in (p, Path(f"{p}.ipynb"), Path(f"{p}.md"), Path(f"{p}.py"))) or any(
        ref == w or ref.startswith(w + "/") for w in WRITTEN)


POINTERS = sorted({(str(f.relative_to(ROOT)), m.group(1)) for f in sources()
                   for m in POINTER.finditer(f.read_text(errors="ignore"))})


def test_the_scan_finds_the_pointers():
    refs = {r for _, r in POINTERS}
    assert {"book/09_decoding", "book/10_flash"} <= refs and len(POINTERS) > 40
    assert not resolves("book/99_nonexistent") and not resolves("tests/test_nonexistent.py")


@pytest.mark.parametrize("where,ref", POINTERS)
def test_pointer_resolves(where, ref):
    assert resolves(ref), f"{where} points to {ref}, which does not exist"


def test_see_lines_name_chapters_in_the_book():
    toc = (ROOT / "_toc.yml").read_text()
    seen = 0
    for f in sources():
        for chapter in re.findall(r"See: ((?:book/\w+(?:, )?)+)", f.read_text(errors="ignore")):
            for ref in chapter.split(", "):
                seen += 1
                assert ref.removeprefix("book/") in toc, f"{f}: {ref} is not in the table of contents"
    assert seen > 20  # the package's modules point to their chapters
