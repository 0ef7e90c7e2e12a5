"""The report as one HTML file: a fixed skeleton, the inspector's script and style, the data.

Nothing from the model is written as markup. The data goes into a
``<script type="application/json">`` island with ``<``, ``>`` and ``&`` escaped (so no text can
close the element), and the script puts it on the page through ``textContent``. The
Content-Security-Policy allows exactly the inspector's own script and style (by sha256), images
from the report's folder, and nothing else: no network, no other script, no plugin.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
from functools import cache
from importlib import resources
from typing import Any

SKELETON = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Inspector: {title}</title>
<style>{css}</style>
</head>
<body>
<header class="top">
<h1 id="doc-title"></h1>
<div id="doc-meta" class="muted"></div>
<ul id="notes" class="notes"></ul>
<div id="summary">
<section><h2>Pages by status</h2><div id="status-counts" class="counts"></div></section>
<section><h2>Flagged pages</h2><ul id="flagged" class="flagged"></ul></section>
<section><h2>Compression ratio (pages)</h2><div id="ratio-chart" class="chart"></div>
<div id="ratio-labels" class="chart-labels"></div></section>
</div>
</header>
<main>
<aside>
<div class="search"><input id="search" type="search" placeholder="Filter chunks by text"
 aria-label="Filter chunks by text"><div id="chunk-count" class="muted"></div></div>
<div id="chunk-list"></div>
</aside>
<div id="pages"></div>
</main>
<div id="detail" hidden></div>
<script type="application/json" id="inspector-data">{data}</script>
<script>{js}</script>
</body>
</html>
"""


@cache
def asset(name: str) -> str:
    """The inspector's script or style, shipped as package data."""
    return (
        resources.files(__package__).joinpath("assets").joinpath(name).read_text(encoding="utf-8")
    )


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode()


def csp(js: str, css: str) -> str:
    """The policy: the inspector's own script and style only, images from beside the file."""
    return (
        "default-src 'none'; "
        f"script-src '{_sha256(js)}'; "
        f"style-src '{_sha256(css)}'; "
        "img-src 'self' file: data:; "
        "base-uri 'none'; form-action 'none'; object-src 'none'"
    )


def finite(value: Any) -> Any:
    """``value`` with NaN and infinities (which JSON cannot hold) replaced by ``None``."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def json_island(data: Any) -> str:
    """JSON safe inside ``<script type="application/json">``: no ``<``, ``>`` or ``&`` left
    (escaped as ``\\u003c`` etc., which JSON.parse reads back), nor U+2028/U+2029."""
    text = json.dumps(finite(data), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for ch, esc in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(ch, esc)
    return text


def render_html(data: dict[str, Any]) -> str:
    """The whole report for :func:`~.report.report_data`'s object."""
    js, css = asset("inspector.js"), asset("inspector.css")
    return SKELETON.format(
        csp=csp(js, css),
        title=html.escape(str(data.get("title", "")), quote=True),
        css=css,
        js=js,
        data=json_island(data),
    )
