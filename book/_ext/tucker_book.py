"""Sphinx extension of the Tucker Lab book: every page is self-contained.

Loaded by Jupyter Book through ``_config.yml`` (``sphinx.local_extensions``). It

- serves MathJax 3 from ``book/_static/mathjax`` (components ``startup`` + ``input/tex`` +
  ``output/chtml``, fonts and TeX extensions alongside; see ``book/_static/README.md``);
- adds Vega, Vega-Lite and vega-embed from ``book/_static/vega``, deferred, on the pages that
  hold a static knob panel (``tucker_lab.static``); the panels draw themselves once the
  scripts have run;
- adds ``tucker.css`` (printed output wraps inside the column; the panels' controls);
- drops what would load from elsewhere or do nothing: sphinx-thebe's configuration and
  loader (the book uses Colab launch buttons, not Binder) and the embedded ipywidgets state
  (without a kernel the widgets cannot move; ``tucker_lab.notebook.live`` shows a note instead).
"""
from __future__ import annotations

from pathlib import Path

STATIC = Path(__file__).resolve().parents[1] / "_static"
VEGA = ("vega/vega.min.js", "vega/vega-lite.min.js", "vega/vega-embed.min.js")
PANEL_MARK = "tucker-static-panel"  # class of the <div> that tucker_lab.static emits


def _config_inited(app, config):
    if str(STATIC) not in [str(Path(app.srcdir, p).resolve()) for p in config.html_static_path]:
        config.html_static_path.append(str(STATIC))
    config.mathjax_path = "mathjax/startup.js"
    mj = dict(config.mathjax3_config or {})
    mj["loader"] = {"load": ["input/tex", "output/chtml"]}
    config.mathjax3_config = mj


def _dropped(script) -> bool:
    name = str(getattr(script, "filename", "") or "")
    attrs = getattr(script, "attributes", {}) or {}
    body = attrs.get("body", "") or ""
    return ("thebe" in name or "THEBE_JS_URL" in body
            or attrs.get("type") == "application/vnd.jupyter.widget-state+json"
            or name.startswith(("http://", "https://", "//")))


def _page_context(app, pagename, templatename, context, doctree):
    from sphinx.builders.html._assets import _JavaScript
    scripts = [s for s in context.get("script_files", []) if not _dropped(s)]
    body = context.get("body", "") or ""
    if PANEL_MARK in body:
        scripts += [_JavaScript("_static/" + f, defer="defer") for f in VEGA]
    context["script_files"] = scripts
    css = [c for c in context.get("css_files", [])
           if not str(getattr(c, "filename", c)).startswith(("http://", "https://", "//"))]
    context["css_files"] = css


def setup(app):
    app.add_css_file("tucker.css")
    app.connect("config-inited", _config_inited)
    app.connect("html-page-context", _page_context, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
