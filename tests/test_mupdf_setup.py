"""PyMuPDF's add-ons (pymupdf4llm, the layout analyzer) are kept out of ocr_loaders' own
processes, and text is read the same way with or without them.

PyMuPDF 2.0 imports both with ``pymupdf`` (the analyzer loads an ONNX model on the spot);
ocr_loaders uses neither. The add-on checks run in a fresh interpreter, since this one has
imported PyMuPDF already.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ocr_loaders._engines import local_textlayer
from ocr_loaders._engines.local_textlayer import extract_page
from ocr_loaders._mupdf_setup import (
    ADDONS,
    import_pymupdf_without_addons,
    skip_pymupdf_addons,
    uncorrected_quads,
)
from ocr_loaders._rendering import raster

from .conftest import CORPUS, make_pdf, needs_corpus


def _installed(distribution: str) -> bool:
    try:
        importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


needs_addons = pytest.mark.skipif(
    not (_installed("pymupdf_layout") and _installed("pymupdf4llm")),
    reason="PyMuPDF's add-ons (pymupdf_layout, pymupdf4llm; PyMuPDF 2.0 requires them) are "
    "not installed, so there is nothing to leave out",
)

TABLE_PAGE = """
import pymupdf
doc = pymupdf.open()
page = doc.new_page()
for i in range(4):  # a ruled 3 x 3 grid with a word per cell
    page.draw_line((72, 72 + 30 * i), (342, 72 + 30 * i))
    page.draw_line((72 + 90 * i, 72), (72 + 90 * i, 162))
for r in range(3):
    for c in range(3):
        page.insert_text((80 + 90 * c, 92 + 30 * r), f"r{r}c{c}")
found = len(page.find_tables(use_layout=False).tables)
loaded = [m for m in ("pymupdf.layout", "pymupdf4llm", "onnxruntime") if sys.modules.get(m)]
"""


def _python(code: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYMUPDF_SUGGEST_LAYOUT_ANALYZER"}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=True,
    )


@needs_addons
def test_pymupdf_loads_without_its_addons_and_says_nothing() -> None:
    plain = _python("import sys\n" + TABLE_PAGE + "print('loaded', loaded)")
    # The control: PyMuPDF 2.0 loads both add-ons, and the analyzer brings onnxruntime.
    everything = ["pymupdf.layout", "pymupdf4llm", "onnxruntime"]
    assert plain.stdout.splitlines()[-1] == f"loaded {everything}"

    skipped = _python(
        "import sys\nfrom ocr_loaders._mupdf_setup import skip_pymupdf_addons\n"
        "print('skipped', len(skip_pymupdf_addons()))\n"
        + TABLE_PAGE
        + "print('tables', found)\nprint('loaded', loaded)\n"
    )
    # The table is still found, nothing else is loaded, and PyMuPDF's advice to install the
    # analyzer is not printed.
    assert skipped.stdout.splitlines() == ["skipped 2", "tables 1", "loaded []"]


def test_the_command_line_leaves_them_out() -> None:
    cli = _python(
        """
        import sys
        from ocr_loaders._cli import main
        sys.argv = ["ocr-loaders", "--help"]
        try:
            main()
        except SystemExit:
            pass
        print("entries", [sys.modules.get(m, "absent") for m in ("pymupdf.layout", "pymupdf4llm")])
        """
    )
    assert cli.stdout.splitlines()[-1] == "entries [None, None]"


@needs_addons
def test_the_render_worker_loads_pymupdf_without_them_and_a_hook_may_import_them() -> None:
    """The worker imports PyMuPDF without the add-ons; a page hook of a user's own engine,
    which runs in the worker, can still import one."""
    worker = subprocess.run(  # the worker serves stdin until it ends, then returns
        [
            sys.executable,
            "-c",
            "import sys; from ocr_loaders._rendering.process import main; main(); "
            "names = ('pymupdf', 'pymupdf.layout', 'pymupdf4llm', 'onnxruntime'); "
            "sys.stderr.write(f'loaded {[n in sys.modules for n in names]}\\n'); "
            "import pymupdf4llm; sys.stderr.write(f'later {pymupdf4llm.__name__}')",
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert worker.stderr.splitlines()[-2:] == [
        "loaded [True, False, False, False]",
        "later pymupdf4llm",
    ]


def test_once_pymupdf_is_loaded_nothing_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    import pymupdf  # noqa: F401 - loaded, as a user's process may have it

    before = [sys.modules.get(m, "absent") for m in ADDONS]
    monkeypatch.delenv("PYMUPDF_SUGGEST_LAYOUT_ANALYZER", raising=False)
    assert skip_pymupdf_addons() == []
    assert import_pymupdf_without_addons() is sys.modules["pymupdf"]
    assert [sys.modules.get(m, "absent") for m in ADDONS] == before


# --- text geometry ----------------------------------------------------------------------------


@pytest.fixture
def corrections_on() -> Iterator[None]:
    """PyMuPDF's own default (its corrections of character boxes on), as in a process where
    pymupdf4llm was never imported; the process's setting is restored afterwards."""
    import pymupdf

    before = pymupdf.TOOLS.unset_quad_corrections()
    pymupdf.TOOLS.unset_quad_corrections(False)
    yield
    pymupdf.TOOLS.unset_quad_corrections(bool(before))


def test_the_page_hook_and_the_text_layer_read_uncorrected_boxes(
    monkeypatch: pytest.MonkeyPatch, corrections_on: None, tmp_path: Path
) -> None:
    import pymupdf

    seen: list[bool] = []
    real_lines, real_words = local_textlayer._text_lines, pymupdf.TextPage.extractWORDS

    def lines(page: Any, glyph_codes: bool = False) -> Any:
        seen.append(bool(pymupdf.TOOLS.unset_quad_corrections()))
        return real_lines(page, glyph_codes)

    def words(textpage: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(bool(pymupdf.TOOLS.unset_quad_corrections()))
        return real_words(textpage, *args, **kwargs)

    monkeypatch.setattr(local_textlayer, "_text_lines", lines)
    page = pymupdf.open(make_pdf(tmp_path / "a.pdf", 1))[0]
    extract_page(page)
    monkeypatch.setattr(pymupdf.TextPage, "extractWORDS", words)  # the verifier's reader
    raster._text_layer(page, page.get_displaylist())
    assert seen == [True, True]
    assert not pymupdf.TOOLS.unset_quad_corrections()  # put back as it was


def test_overlapping_readers_keep_the_setting_until_the_last_leaves(
    corrections_on: None,
) -> None:
    """Two readers on two threads whose blocks overlap: the first to leave must not switch
    the corrections back on under the second."""
    import pymupdf

    first, second = uncorrected_quads(), uncorrected_quads()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert pymupdf.TOOLS.unset_quad_corrections()  # still off for the second reader
    second.__exit__(None, None, None)
    assert not pymupdf.TOOLS.unset_quad_corrections()  # put back as it was


@needs_corpus
def test_line_boxes_do_not_depend_on_pymupdf4llm_being_loaded(corrections_on: None) -> None:
    """A TeX-made PDF whose embedded fonts PyMuPDF's corrections change: the hook reads the
    same lines whichever way the process was left."""
    import pymupdf

    page = pymupdf.open(CORPUS / "long_geotopo_math_de_117p.pdf")[0]
    fresh = extract_page(page).lines
    with_corrections = [w[:4] for w in page.get_text("words")]
    pymupdf.TOOLS.unset_quad_corrections(True)  # as pymupdf4llm leaves it
    assert [w[:4] for w in page.get_text("words")] != with_corrections  # the setting matters
    assert extract_page(page).lines == fresh
