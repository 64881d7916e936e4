"""Small Sphinx fixes for the book, found by its browser test (tests/browser_check.py).

- jupyter-book 1.x registers sphinx-thebe's inline configuration script twice, so every page threw
  ``Identifier 'THEBE_JS_URL' has already been declared``: keep the first copy of every script.
"""


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


def setup(app):
    app.connect("html-page-context", _drop_duplicate_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
