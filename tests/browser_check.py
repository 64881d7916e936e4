"""Open a built book the way a reader does: every page in headless Chromium, at desktop and phone widths.

``check_site(html_dir)`` serves ``html_dir`` on localhost, loads each page and returns a list of ``Problem``s:
a console error or uncaught exception, a local request that failed (or answered >= 400), a broken image or one
from another host (broken for an offline reader),
a markdown table left as text, an equation left as raw TeX (MathJax, served with the book, did not typeset it),
a table cell truncated with "..." or "…", a NaN cell, a printed line repeated more than a few times, a missing
findings box, a figure whose texts overlap or whose legend covers its data (``rdlib.viz.layout_problems`` prints it
under the figure), a page wider than the screen, text cut off, code wider than the column, a wide table with no
hint that it scrolls, and, at phone width, a table of contents that does not open when its toggle is pressed. Screenshots of every page at both widths go to
``screenshots``. Requests to other hosts cannot succeed on an offline machine: they are answered with an empty 200
so that the page does not wait, and listed in ``Report.external`` (a book that loads MathJax from its CDN therefore
shows raw TeX here, as it would to an offline reader).

Chromium comes from Debian (``/usr/bin/chromium``), driven by Playwright from PyPI, with the flags that work on
a closed network.
"""
from __future__ import annotations

import contextlib
import functools
import http.server
import re
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from rdlib.viz import LAYOUT_PROBLEM

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WIDTHS = {"desktop": (1280, 900), "phone": (390, 844)}


def chromium_path() -> str | None:
    """The Chromium binary to drive, or None when none is installed."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass(frozen=True)
class Problem:
    page: str
    width: str
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.page} @ {self.width}: {self.kind}: {self.detail}"


@dataclass
class Report:
    problems: list[Problem] = field(default_factory=list)
    pages: list[str] = field(default_factory=list)
    screenshots: list[Path] = field(default_factory=list)
    external: set[str] = field(default_factory=set)


# Text a reader sees outside code blocks; a markdown table's separator row in it means it was not rendered.
_VISIBLE_TEXT_JS = """() => {
  const found = document.querySelector('main') || document.body;
  if (!found) return '';
  const root = found.cloneNode(true);
  root.querySelectorAll('pre, code, script, style, .highlight').forEach(e => e.remove());
  return root.innerText;
}"""
_BROKEN_IMAGES_JS = """() => Array.from(document.images)
  .filter(img => !img.complete || img.naturalWidth === 0)
  .map(img => img.src)"""
_TRUNCATED_CELLS_JS = """() => Array.from(document.querySelectorAll('td, th'))
  .map(c => c.innerText.trim())
  .filter(t => /(\\.\\.\\.|\\u2026)$/.test(t))"""
# Text of every cell's printed output (stdout/stderr streams), one string per output
_STREAM_TEXT_JS = """() => Array.from(document.querySelectorAll('.cell_output .output.stream, .cell_output .output.stderr'))
  .map(e => e.innerText)"""
# Table cells a reader sees as a missing value pandas printed (NaN, <NA>, None), alone or inside "x ± nan"
_MISSING_CELLS_JS = """() => Array.from(document.querySelectorAll('td'))
  .map(c => c.innerText.trim())
  .filter(t => /^(nan|NaN|<NA>|None|NaT)$/.test(t) || /(^|[^A-Za-z])(nan|NaN)([^A-Za-z]|$)/.test(t))"""
# How many identical printed lines a page may show before it is clutter (a worker logging the same thing per run)
MAX_REPEATS = 3
MIN_REPEATED_LENGTH = 20
# A chapter that judges claims opens with its findings box (rdlib.chapter.Chapter.finding); the introduction
# collects them (rdlib.findings)
FINDINGS_HEADINGS = ("What this chapter finds", "What this comparison finds", "What the book finds")
# MathJax typesets asynchronously: wait for it where a page has math; "not loaded" when it never arrives
_MATHJAX_JS = """async () => {
  if (!document.querySelector('.math, div.math, span.math')) return 'no math';
  const ready = () => window.MathJax && MathJax.startup && MathJax.startup.promise;
  for (let i = 0; i < 100 && !ready(); i++) await new Promise(r => setTimeout(r, 50));
  if (!ready()) return 'not loaded';
  await MathJax.startup.promise;
  return 'typeset';
}"""
# TeX a reader should never see: display/inline delimiters or a command left in the text
_RAW_TEX = re.compile(r"\\\[|\\\(|\\(?:frac|begin|mathrm|lVert|sum)\b|\$\$")
# a name between backticks that reached the page as text (a table cell or a glued string is not Markdown)
_RAW_BACKTICKS = re.compile(r"`[^`\n]{1,80}`")
# a separator cell "|---|", or "|—|" once smart quotes have turned the dashes into an em dash
_RAW_TABLE = re.compile(r"\|\s*:?(?:-{3,}|[\u2014\u2013]+):?\s*\|")


def _sidebar_visible_js(selector: str) -> str:
    return f"""() => {{
  const el = document.querySelector('{selector}');
  if (!el) return null;
  const r = el.getBoundingClientRect(), s = getComputedStyle(el);
  return s.visibility !== 'hidden' && s.display !== 'none' && r.width > 50 && r.right > 50 && r.left < window.innerWidth
    && el.querySelectorAll('a[href]').length > 0;
}}"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # noqa: D102 - keep pytest output clean
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):  # noqa: D102 - a browser that hangs up early is not an error
        import sys

        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


@contextlib.contextmanager
def serve(directory: Path):
    """Serve ``directory`` on a free localhost port; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = _QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


_REFRESH = re.compile(r'<meta http-equiv="refresh" content="0; url=([^"]+)"', re.I)


def html_pages(html_dir: Path) -> list[str]:
    """Every page of a built book, relative to its root (Sphinx's generated index and search pages included), except
    redirect stubs (jupyter-book's index.html), which ``redirects`` lists."""
    skip = {"_static", "_sources", "_images"}
    pages = (p for p in html_dir.rglob("*.html") if not skip & set(p.parts))
    return sorted(str(p.relative_to(html_dir)) for p in pages if not _REFRESH.search(p.read_text(errors="replace")))


def redirects(html_dir: Path) -> dict[str, str]:
    """{redirect page: its target}, both relative to ``html_dir``."""
    out = {}
    for p in html_dir.rglob("*.html"):
        m = _REFRESH.search(p.read_text(errors="replace"))
        if m:
            out[str(p.relative_to(html_dir))] = str((p.parent / m.group(1).split("#")[0]).resolve().relative_to(html_dir.resolve()))
    return out


def check_site(html_dir: Path, screenshots: Path | None = None, pages: list[str] | None = None,
               timeout_ms: int = 30_000, findings: tuple[str, ...] = ()) -> Report:
    """Load every page at every width in WIDTHS and return what a reader would hit. ``findings``: pages that must
    show a findings box (one of :data:`FINDINGS_HEADINGS`)."""
    from playwright.sync_api import sync_playwright

    html_dir = Path(html_dir)
    report = Report(pages=pages or html_pages(html_dir))
    for page, target in redirects(html_dir).items():
        if not (html_dir / target).is_file():
            report.problems.append(Problem(page, "-", "broken redirect", target))
    if screenshots is not None:
        Path(screenshots).mkdir(parents=True, exist_ok=True)
    exe = chromium_path()
    if exe is None:
        raise RuntimeError("no Chromium found (install Debian's `chromium` package)")
    with serve(html_dir) as base, sync_playwright() as pw:
        host = urlparse(base).netloc
        browser = pw.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_FLAGS)
        try:
            for width, (w, h) in WIDTHS.items():
                context = browser.new_context(viewport={"width": w, "height": h}, is_mobile=width == "phone",
                                              has_touch=width == "phone")

                def route(r):
                    if urlparse(r.request.url).netloc in (host, ""):
                        return r.continue_()
                    report.external.add(urlparse(r.request.url).netloc)
                    return r.fulfill(status=200, body="", content_type="application/javascript")

                context.route("**/*", route)
                for rel in report.pages:
                    _check_page(context, base, rel, width, report, screenshots, timeout_ms, host,
                                rel in findings)
                context.close()
        finally:
            browser.close()
    return report


# What a reader on a narrow screen cannot read: the page scrolling sideways, text cut off by a box that clips it,
# code that runs past the column, a table or an equation wider than the column with no hint that it scrolls
# (book/_static/rdlib.*)
# A figure shown below this fraction of its pixel width has 9-point labels (12.5 px at the book's 100 dpi) under
# 9 px: on a phone it must keep that width and scroll (book/_static/rdlib.js uses the same threshold).
MIN_FIGURE_SCALE = 0.75
_LAYOUT_JS = """() => {
  const out = {page: [], cut: [], code: [], unhinted: [], small: [], figure: [], equation: []};
  const doc = document.documentElement;
  const article = document.querySelector('article.bd-article') || document.querySelector('main') || document.body;
  const wider = e => e.clientWidth > 0 && e.scrollWidth > e.clientWidth + 1;
  const said = e => (e.innerText || e.textContent || '').trim().replace(/\\s+/g, ' ').slice(0, 80);
  if (doc.scrollWidth > doc.clientWidth + 1) {
    const culprit = Array.from(article.querySelectorAll('p, li, td, th, h1, h2, h3, h4, dd, div.math, pre'))
      .find(e => wider(e) && getComputedStyle(e).overflowX === 'visible');
    out.page.push(`${doc.scrollWidth} px on a ${doc.clientWidth} px screen` + (culprit ? `: ${culprit.tagName} "${said(culprit)}"` : ''));
  }
  for (const e of article.querySelectorAll('*')) {
    if (e.tagName.startsWith('MJX-') || e.closest('math, mjx-assistive-mml')) continue;
    const style = getComputedStyle(e);
    if ((style.overflowX === 'hidden' || style.overflowX === 'clip') && wider(e) && !e.closest('.cell_output'))
      out.cut.push(`${e.tagName}.${e.className} shows ${e.clientWidth} of ${e.scrollWidth} px: "${said(e)}"`);
    if (e.tagName === 'PRE' && !e.closest('.cell_output') && wider(e))
      out.code.push(`${e.scrollWidth} px in a ${e.clientWidth} px column: "${said(e)}"`);
  }
  for (const box of article.querySelectorAll('div.cell_output .output, .pst-scrollable-table-container')) {
    const style = getComputedStyle(box);
    const outer = box.parentElement && box.parentElement.closest('div.cell_output .output, .pst-scrollable-table-container');
    if (!['auto', 'scroll'].includes(style.overflowX) || !wider(box) || !box.querySelector('table')) continue;
    if (outer && wider(outer) && ['auto', 'scroll'].includes(getComputedStyle(outer).overflowX)) continue;
    if (!/scroll/.test(getComputedStyle(box, '::before').content))
      out.unhinted.push(`${box.scrollWidth} px in a ${box.clientWidth} px column: "${said(box.querySelector('tr'))}"`);
  }
  for (const img of article.querySelectorAll('div.cell_output img')) {
    const shown = img.getBoundingClientRect().width, name = img.src.split('/').pop().slice(0, 12) + '…';
    if (!img.naturalWidth || !shown) continue;
    if (shown < img.naturalWidth * MIN_FIGURE_SCALE - 1)
      out.small.push(`${name} shown ${Math.round(shown)} px wide, ${Math.round(100 * shown / img.naturalWidth)} % of its ${img.naturalWidth} px`);
    const box = img.parentElement;
    if (wider(box) && !/scroll/.test(getComputedStyle(box, '::before').content))
      out.figure.push(`${name} ${box.scrollWidth} px in a ${box.clientWidth} px column`);
  }
  for (const box of article.querySelectorAll('div.math, span.math')) {     // MathJax's boxes scroll or clip
    const eq = box.querySelector('mjx-container');
    if (!eq || !(wider(eq) || wider(box))) continue;
    if (!/scroll/.test(getComputedStyle(box, '::before').content))
      out.equation.push(`${Math.max(eq.scrollWidth, box.scrollWidth)} px in a ${box.clientWidth} px column: "${said(box.querySelector('mjx-assistive-mml') || box).slice(0, 60)}"`);
  }
  return out;
}""".replace("MIN_FIGURE_SCALE", str(MIN_FIGURE_SCALE))
LAYOUT_KINDS = {"page": "page wider than the screen", "cut": "text cut off", "code": "code wider than the column",
                "unhinted": "wide table without a scroll hint", "small": "figure too small to read",
                "figure": "wide figure without a scroll hint", "equation": "wide equation without a scroll hint"}


def repeated_lines(outputs: list[str], max_repeats: int = MAX_REPEATS,
                   min_length: int = MIN_REPEATED_LENGTH) -> dict[str, int]:
    """Printed lines of at least ``min_length`` characters that a page shows more than ``max_repeats`` times."""
    from collections import Counter

    counts = Counter(line.strip() for text in outputs for line in text.splitlines()
                     if len(line.strip()) >= min_length)
    return {line: n for line, n in counts.items() if n > max_repeats}


def _check_page(context, base, rel, width, report, screenshots, timeout_ms, host, needs_findings=False):
    page = context.new_page()
    found: list[Problem] = []

    def add(kind, detail):
        found.append(Problem(rel, width, kind, detail))

    page.on("console", lambda m: m.type == "error" and add("console error", m.text))
    page.on("pageerror", lambda e: add("uncaught exception", str(e)))
    page.on("requestfailed", lambda r: urlparse(r.url).netloc == host
            and add("failed request", f"{r.url} ({r.failure})"))
    page.on("response", lambda r: urlparse(r.url).netloc == host and r.status >= 400
            and add("failed request", f"{r.url} (HTTP {r.status})"))
    page.goto(base + rel, wait_until="load", timeout=timeout_ms)
    page.wait_for_timeout(300)
    for src in page.evaluate(_BROKEN_IMAGES_JS):
        if urlparse(src).netloc in (host, ""):
            add("broken image", src)
    for src in page.evaluate("() => Array.from(document.images).map(img => img.src)"):
        if urlparse(src).scheme in ("http", "https") and urlparse(src).netloc != host:
            add("image from another host", f"{src} (broken for an offline reader)")
    if page.evaluate(_MATHJAX_JS) == "not loaded":
        add("equations not typeset", "MathJax did not load")
    text = page.evaluate(_VISIBLE_TEXT_JS)
    for m in _RAW_TEX.finditer(text):
        add("raw TeX", text[max(0, m.start() - 30):m.end() + 30].replace("\n", " "))
    for m in _RAW_BACKTICKS.finditer(text):
        add("raw backticks", text[max(0, m.start() - 30):m.end() + 30].replace("\n", " "))
    for m in _RAW_TABLE.finditer(text):
        add("raw markdown table", text[max(0, m.start() - 40):m.end() + 20].replace("\n", " "))
    for cell in page.evaluate(_TRUNCATED_CELLS_JS):
        add("truncated cell", cell[-80:])
    for cell in page.evaluate(_MISSING_CELLS_JS):
        add("missing value shown as NaN", cell[-80:])
    for line, n in repeated_lines(page.evaluate(_STREAM_TEXT_JS)).items():
        add("repeated output line", f"{n}× {line[:100]}")
    for line in page.evaluate(_STREAM_TEXT_JS):
        for problem in (x for x in line.splitlines() if x.startswith(LAYOUT_PROBLEM)):
            add("figure layout", problem.removeprefix(LAYOUT_PROBLEM))          # rdlib.viz.layout_problems
    for key, found_here in page.evaluate(_LAYOUT_JS).items():
        for detail in found_here:
            add(LAYOUT_KINDS[key], detail)
    if needs_findings and not any(h in text for h in FINDINGS_HEADINGS):
        add("no findings box", f"none of {FINDINGS_HEADINGS} on the page")
    if screenshots is not None:            # before the phone's table of contents is opened over the page
        shot = Path(screenshots) / f"{rel.replace('/', '__').removesuffix('.html')}-{context.pages[0].viewport_size['width']}.png"
        page.screenshot(path=str(shot), full_page=True)
        report.screenshots.append(shot)
    if width == "phone":
        _check_phone_toc(page, add)
    page.close()
    report.problems.extend(found)


def _check_phone_toc(page, add):
    """At phone width the table of contents is hidden; pressing its toggle must show it."""
    sidebar = "#pst-primary-sidebar"
    shown = page.evaluate(_sidebar_visible_js(sidebar))
    # pydata-sphinx-theme >= 0.16 opens the sidebar as a modal dialog holding the sidebar's items
    modal = "dialog#pst-primary-sidebar-modal"
    if shown is None:
        return add("phone table of contents", f"no {sidebar} on the page")
    if shown:
        return add("phone table of contents", "the sidebar covers the page before the toggle is pressed")
    toggle = page.locator(".primary-toggle:visible").first
    if toggle.count() == 0:
        return add("phone table of contents", "no visible toggle button for the sidebar")
    toggle.click()
    page.wait_for_timeout(500)
    if not (page.evaluate(_sidebar_visible_js(sidebar)) or page.evaluate(_sidebar_visible_js(modal))):
        add("phone table of contents", "pressing the toggle does not open the sidebar")
