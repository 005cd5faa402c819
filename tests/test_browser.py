"""The built book as a reader sees it, in headless Chromium (``pytest -m browser``).

Serves ``_build/html`` on 127.0.0.1 and opens every page (all ``*.html`` of the build, so new
chapters are covered without listing them). A page fails on any request outside the site,
any console error or uncaught exception, any formula left as raw TeX, a code cell wider than
the column (in a 1280-pixel window), an ipywidgets view left in the page (without a kernel
it cannot move), a static panel (``tucker_lab.static``) that does not draw, or a control of
one that does not change the drawing when moved.
Full-page screenshots of three chapters and ``report.json`` land in
``_build/html/_screenshots/``.

Needs the built site (``jupyter-book build --all .`` first; ``TUCKER_SITE`` points elsewhere),
the ``playwright`` Python package and a Chromium executable (``CHROMIUM``, else ``chromium``
on the PATH; Playwright's own browser download is not used). Outside CI a missing piece
skips the test, saying which; in CI (``CI`` set) it fails.
"""
from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import threading
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
SITE = Path(os.environ.get("TUCKER_SITE", ROOT / "_build" / "html"))
IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")
SKIP_DIRS = {"_static", "_sources", "_images", "_screenshots", "_downloads"}
SCREENSHOTS = ("06_tucker", "10_flash", "12_training")  # or the first chapters found


def _missing(reason: str):
    if IN_CI:
        pytest.fail(f"browser test required in CI: {reason}")
    pytest.skip(reason)


def _chromium() -> str | None:
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and (path := shutil.which(name) or (name if Path(name).is_file() else None)):
            return path
    return None


def site_pages(site: Path = SITE) -> list[Path]:
    """Every HTML page of the build, outside the asset folders."""
    return sorted(p for p in site.rglob("*.html") if not SKIP_DIRS & set(p.relative_to(site).parts))


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    if not (SITE / "index.html").is_file():
        _missing(f"no built site at {SITE}: run `jupyter-book build --all .` first")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(SITE)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package is not installed (pip install playwright)")
    exe = _chromium()
    if exe is None:
        _missing("no Chromium executable (apt-get install chromium, or set CHROMIUM)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, headless=True,
                              args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        yield b
        b.close()


# In the page: every formula typeset (no raw TeX), ipywidgets views and static panels counted.
_PAGE_STATE = """() => {
  const math = [...document.querySelectorAll('.math')];
  const raw = math.filter(m => !m.querySelector('mjx-container')).map(m => m.textContent.slice(0, 80));
  const errors = [...document.querySelectorAll('mjx-merror')].map(e => e.textContent.slice(0, 80));
  const main = document.querySelector('main') || document.body || document.documentElement;
  const clone = main.cloneNode(true);
  clone.querySelectorAll('pre, code, script, style, textarea, mjx-container, .highlight')
       .forEach(e => e.remove());
  const text = clone.textContent;
  const leftover = ['\\\\(', '\\\\[', '$$', '\\\\begin{'].filter(s => text.includes(s));
  const widgets = document.querySelectorAll(
      '.jupyter-widgets, script[type="application/vnd.jupyter.widget-view+json"], '
      + 'script[type="application/vnd.jupyter.widget-state+json"]').length;
  const panels = [...document.querySelectorAll('.tucker-static-panel')].map(p => ({
      id: p.id, rendered: p.getAttribute('data-rendered') === '1' && !!p.querySelector('svg'),
      controls: p.querySelectorAll('.vega-bindings input, .vega-bindings select').length,
      expected: +p.getAttribute('data-controls')}));
  const wide_code = [...document.querySelectorAll('div.cell_input pre')]
      .filter(p => p.scrollWidth > p.clientWidth + 1).map(p => p.textContent.slice(0, 60));
  return {math: math.length, raw, errors, leftover, widgets, panels, wide_code,
          kernel_notes: document.querySelectorAll('.tucker-needs-kernel').length};
}"""

# Move control i of a panel to another value; return the drawing before and after.
_MOVE = """async ([id, i]) => {
  const panel = document.getElementById(id);
  const svg = () => panel.querySelector('svg').outerHTML;
  const el = panel.querySelectorAll('.vega-bindings input, .vega-bindings select')[i];
  const before = svg();
  let moved;
  if (el.tagName === 'SELECT') {
    const opts = [...el.options].map(o => o.value);
    el.value = opts.find(v => v !== el.value);
    moved = el.value;
    el.dispatchEvent(new Event('change', {bubbles: true}));
  } else if (el.type === 'checkbox') {
    el.checked = !el.checked; moved = el.checked;
    el.dispatchEvent(new Event('change', {bubbles: true}));
  } else if (el.type === 'radio') {
    const group = [...panel.querySelectorAll(`input[name="${el.name}"]`)];
    const other = group.find(r => !r.checked); other.checked = true; moved = other.value;
    other.dispatchEvent(new Event('change', {bubbles: true}));
  } else {
    el.value = (+el.value === +el.min) ? el.max : el.min; moved = el.value;
    el.dispatchEvent(new Event('input', {bubbles: true}));
    el.dispatchEvent(new Event('change', {bubbles: true}));
  }
  for (let t = 0; t < 40 && svg() === before; t++) await new Promise(r => setTimeout(r, 50));
  const label = el.closest('label, .vega-bind') ? el.closest('label, .vega-bind').textContent.trim() : el.name;
  return {label: label.slice(0, 40), moved: String(moved), changed: svg() !== before};
}"""


def check_page(context, base: str, url: str, shot: Path | None = None) -> dict:
    """Open one page; return what it loaded, logged and rendered (see the module docstring)."""
    page = context.new_page()
    outside, console, failed = [], [], []
    page.on("request", lambda r: None if r.url.startswith((base, "data:", "blob:", "about:"))
            else outside.append(r.url))
    page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: console.append(f"uncaught: {e}"))
    page.on("requestfailed", lambda r: failed.append(f"{r.url} ({r.failure})")
            if r.url.startswith(base) else None)
    page.goto(url, wait_until="load")
    page.wait_for_load_state("networkidle")  # index.html redirects to the first page
    page.wait_for_function("() => !window.MathJax || (window.MathJax.startup && window.MathJax.startup.promise)",
                           timeout=20_000)
    page.evaluate("() => window.MathJax && window.MathJax.startup.promise.then(() => true)")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.tucker-static-panel')]"
        ".every(p => p.getAttribute('data-rendered') === '1')", timeout=30_000)
    state = page.evaluate(_PAGE_STATE)
    moves = []
    for p in state["panels"]:
        for i in range(p["controls"]):
            moves.append({"panel": p["id"], **page.evaluate(_MOVE, [p["id"], i])})
    if shot is not None:
        shot.parent.mkdir(parents=True, exist_ok=True)
        page.reload(wait_until="load")
        page.evaluate("() => window.MathJax && window.MathJax.startup.promise.then(() => true)")
        page.wait_for_timeout(500)
        page.screenshot(path=str(shot), full_page=True)
    page.close()
    return {"outside": outside, "console": console, "failed": failed, "moves": moves, **state}


def test_every_page(server, browser):
    pages = site_pages()
    assert len(pages) >= 3, f"only {len(pages)} pages in {SITE}"
    chapters = [p for p in pages if p.parent.name == "book" and p.stem[:2].isdigit()]
    shots = [p for p in chapters if p.stem in SCREENSHOTS] or chapters[:3]
    out = SITE / "_screenshots"
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    # anything outside the site is refused at once (and reported by check_page)
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(server)
                  or route.request.url.startswith(("data:", "blob:")) else route.abort())
    report, problems = {}, []
    for path in pages:
        rel = path.relative_to(SITE).as_posix()
        shot = out / f"{path.stem}.png" if path in shots else None
        r = report[rel] = check_page(context, server, server + rel, shot)
        for key in ("outside", "console", "failed", "raw", "errors", "leftover", "wide_code"):
            problems += [f"{rel}: {key}: {x}" for x in r[key]]
        if r["widgets"]:
            problems.append(f"{rel}: {r['widgets']} embedded ipywidgets views or states (they cannot move here)")
        for p in r["panels"]:
            if not p["rendered"] or p["controls"] != p["expected"]:
                problems.append(f"{rel}: static panel {p['id']} not drawn with its {p['expected']} controls: {p}")
        problems += [f"{rel}: moving {m['label']!r} to {m['moved']} changed nothing in {m['panel']}"
                     for m in r["moves"] if not m["changed"]]
    context.close()
    summary = {"pages": len(pages), "requests_outside_site": sum(len(r["outside"]) for r in report.values()),
               "console_errors": sum(len(r["console"]) for r in report.values()),
               "formulas": sum(r["math"] for r in report.values()),
               "static_panels": sum(len(r["panels"]) for r in report.values()),
               "controls_moved": sum(len(r["moves"]) for r in report.values()),
               "kernel_notes": sum(r["kernel_notes"] for r in report.values()),
               "screenshots": [str(out / f"{p.stem}.png") for p in shots], "problems": problems}
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps({"summary": summary, "pages": report}, indent=1))
    print(json.dumps({k: v for k, v in summary.items() if k != "problems"}, indent=1))
    assert not problems, "\n".join(problems[:60])
    assert all((out / f"{p.stem}.png").stat().st_size > 10_000 for p in shots)
