"""Small Sphinx fixes for the book, found by its browser test (tests/browser_check.py).

- jupyter-book 1.x registers sphinx-thebe's inline configuration script twice, so every page threw
  ``Identifier 'THEBE_JS_URL' has already been declared``: keep the first copy of every script.
- Every page gets ``_static/rdlib.css`` and ``rdlib.js`` (unless ``rdlib_reader_layout = False``, as the browser
  test's deliberately broken book sets): code wrapped to the column, equations and inline names that never widen the
  page, a "scroll sideways" hint on tables wider than the column, and figures never shrunk below 75 % of their
  size (on a phone they keep that width and scroll in their own box, with the same hint).
- MathJax is served with the book (``make install`` puts it in ``book/_static/mathjax/``) so that equations typeset
  offline; where it is missing (no npm), the pages load it from its CDN instead of a file that is not there.
"""
from pathlib import Path

MATHJAX_CDN = "https://cdn.jsdelivr.net/npm/mathjax@3.2.2/es5/tex-svg-full.js"


def _mathjax_or_cdn(app, config):
    path = config.mathjax_path or ""
    if "://" in path:
        return
    static = [Path(app.confdir) / p for p in config.html_static_path]
    if not any((d / path).is_file() for d in static):
        config.mathjax_path = MATHJAX_CDN
        from sphinx.util import logging

        logging.getLogger(__name__).info(f"MathJax file {path} not found in {config.html_static_path}: "
                                         f"using {MATHJAX_CDN} (run `make install` with npm available)")


def _drop_duplicate_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for script in scripts:
        # the two copies differ only in filename None vs "" (an inline script either way)
        filename = getattr(script, "filename", script) or ""
        key = (str(filename), tuple(sorted((k, str(v)) for k, v in getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    scripts[:] = kept


def _reader_layout(app, config):
    if config.rdlib_reader_layout:
        app.add_css_file("rdlib.css")
        app.add_js_file("rdlib.js")


def setup(app):
    app.add_config_value("rdlib_reader_layout", True, "html")
    app.connect("config-inited", _mathjax_or_cdn)
    app.connect("config-inited", _reader_layout)
    app.connect("html-page-context", _drop_duplicate_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
