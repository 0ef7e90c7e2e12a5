"""DeepSeek-OCR grounded markdown: raw text <-> blocks, blocks -> clean markdown.

The grammar (docs/grounding.md) is a sequence of block headers
``<|ref|>LABEL<|/ref|><|det|>[[x0, y0, x1, y1], ...]<|/det|>`` each followed by its content,
which runs to the next header. Real outputs bend it in many ways, so the parser is lossless and
tolerant: it never raises, never ``eval``s, and never drops text that is not a tag:

* text before the first header (or after a block that cannot hold text) becomes a ``text`` block;
* box lists are read with a regex: missing commas, stray letters, out-of-range and inverted
  corners are mended; a box that cannot be read is dropped, its block is kept;
* broken nesting (``<|ref|>a<|/ref|>s<|/ref|><|det|>``) and unclosed tags are absorbed;
* ``<|grounding|>OCR this image.`` output, where the line sits inside the ref tag, becomes ``text``;
* table HTML the model wrote after a caption or footnote header is given back to its table;
* a repetition loop at the end is detected by :func:`find_repetition_loop` and cut by
  :func:`parse_page`, which says so on the page.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from .model import MODEL_UNITS, Block, Box

REF, REF_END, DET, DET_END = "<|ref|>", "<|/ref|>", "<|det|>", "<|/det|>"

KNOWN_LABELS = frozenset(
    {
        "text",
        "title",
        "sub_title",
        "image",
        "table",
        "image_caption",
        "table_caption",
        "equation",
        "table_footnote",
        "image_footnote",
        "figure_title",
    }
)
"""Labels DeepSeek-OCR (1 and 2) emits by design; anything else is kept verbatim."""

HEADING_LABELS = frozenset({"title", "sub_title"})
CAPTION_LABELS = frozenset(
    {
        "image_caption",
        "table_caption",
        "figure_title",
        "table_footnote",
        "image_footnote",
    }
)

# The four tags (and the prompt marker), exactly as the tokenizer writes them.
_TAG_RE = re.compile(r"<\|(/?)(ref|det|grounding)\|>")
_EOS_RE = re.compile(r"<｜end▁of▁sentence｜>|<\|end▁of▁sentence\|>|<\|endoftext\|>")
_BOX_RE = re.compile(r"\[([^\[\]]*)\]")
_INT_RE = re.compile(r"\d+")
_TABLE_RE = re.compile(r"<table\b.*?(?:</table\s*>|\Z)", re.IGNORECASE | re.DOTALL)
_LABEL_LIKE_RE = re.compile(r"^[a-z][a-z0-9_]*(?: [a-z][a-z0-9_]*){0,3}$")


# --- raw text -> blocks ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Tag:
    kind: str  # "ref", "/ref", "det", "/det", "grounding", "/grounding"
    start: int
    end: int


def _tags(text: str) -> list[_Tag]:
    return [_Tag(m.group(1) + m.group(2), m.start(), m.end()) for m in _TAG_RE.finditer(text)]


def _strip_tags(text: str) -> str:
    """Remove tag fragments; one between two non-spaces leaves a space, so words stay apart."""

    def repl(m: re.Match[str]) -> str:
        before = text[m.start() - 1] if m.start() > 0 else " "
        after = text[m.end()] if m.end() < len(text) else " "
        return " " if not before.isspace() and not after.isspace() else ""

    return _TAG_RE.sub(repl, text)


def parse_boxes(det: str) -> tuple[Box, ...]:
    """Read a det payload such as ``[[506 688, 660, 732], [1, 2, 3, 4]]`` without ``eval``.

    Each innermost ``[...]`` group with exactly four integers is a box (a group with a multiple
    of four integers, as when inner brackets are missing, gives several). Values are clamped to
    0..999 and corners ordered so that ``x0 <= x1`` and ``y0 <= y1``. Groups that do not hold
    four integers are skipped.
    """
    boxes: list[Box] = []
    groups = _BOX_RE.findall(det)
    if not groups and _INT_RE.search(det):
        groups = [det]
    for group in groups:
        values = [min(MODEL_UNITS, int(v)) for v in _INT_RE.findall(group)[:64]]
        if not values or len(values) % 4:
            continue
        for i in range(0, len(values), 4):
            x0, y0, x1, y1 = values[i : i + 4]
            boxes.append((min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)))
    return tuple(boxes)


@dataclass(slots=True)
class _Draft:
    label: str
    boxes: tuple[Box, ...]
    text: str
    header: bool  # came from a tag (as opposed to untagged text)


def _clean_content(text: str) -> str:
    """Content between headers, minus leftover tag fragments and surrounding blank lines."""
    return _strip_tags(text).strip("\n").rstrip()


_PAYLOAD_RE = re.compile(r"[ \t\[\],\d-]*")


def _is_payload(det: str) -> bool:
    """A closed det holds one line of box list; anything with a newline or markup is content."""
    return "\n" not in det and "<" not in det


def _unclosed_payload_end(text: str, start: int) -> int:
    """End of a det payload with no closing tag: box characters only, never content."""
    m = _PAYLOAD_RE.match(text, start)
    return m.end() if m else start


def _split_headers(text: str) -> list[_Draft]:
    """Cut the text into header+content drafts, in order, losing nothing but tags and boxes."""
    tags = _tags(text)
    drafts: list[_Draft] = []
    pos = 0  # start of text not yet assigned
    i = 0
    pending: _Draft | None = None  # the block whose content is being collected

    def flush(until: int) -> None:
        nonlocal pending
        chunk = text[pos:until]
        if pending is not None:
            pending.text = _clean_content(chunk)
            drafts.append(pending)
            pending = None
        elif _clean_content(chunk).strip():
            drafts.append(_Draft("text", (), _clean_content(chunk), header=False))

    while i < len(tags):
        tag = tags[i]
        if tag.kind == "ref":
            # Label runs to the last "</ref>" before the next <det> / <ref> / end.
            j = i + 1
            last_ref_end = None
            while j < len(tags) and tags[j].kind not in ("ref", "det"):
                if tags[j].kind == "/ref":
                    last_ref_end = j
                j += 1
            if last_ref_end is None:
                # No closing tag: the label is the first line (an unclosed, truncated header).
                stop = tags[j].start if j < len(tags) else len(text)
                line_end = text.find("\n", tag.end, stop)
                label_end = stop if line_end < 0 else line_end
                flush(tag.start)
                label = _strip_tags(text[tag.end : label_end]).strip()
                pending = _Draft(label or "text", (), "", header=True)
                pos = label_end
                i = j
                continue
            flush(tag.start)
            label = _strip_tags(text[tag.end : tags[last_ref_end].start]).strip()
            after = tags[last_ref_end].end
            boxes: tuple[Box, ...] = ()
            nxt = last_ref_end + 1
            if (
                j < len(tags)
                and tags[j].kind == "det"
                and text[after : tags[j].start].strip() == ""
            ):
                det_end = j + 1
                while det_end < len(tags) and tags[det_end].kind not in ("/det", "ref", "det"):
                    det_end += 1
                if (
                    det_end < len(tags)
                    and tags[det_end].kind == "/det"
                    and _is_payload(text[tags[j].end : tags[det_end].start])
                ):
                    boxes = parse_boxes(text[tags[j].end : tags[det_end].start])
                    after = tags[det_end].end
                    nxt = det_end + 1
                else:  # unclosed det: only box-like characters belong to it
                    payload_end = _unclosed_payload_end(text, tags[j].end)
                    boxes = parse_boxes(text[tags[j].end : payload_end])
                    after = payload_end
                    nxt = j + 1
            pending = _Draft(label, boxes, "", header=True)
            pos = after
            i = nxt
            continue
        if tag.kind == "det":
            # A det with no ref: a box list for an unlabelled block.
            k = i + 1
            while k < len(tags) and tags[k].kind not in ("/det", "ref", "det"):
                k += 1
            flush(tag.start)
            if (
                k < len(tags)
                and tags[k].kind == "/det"
                and _is_payload(text[tag.end : tags[k].start])
            ):
                boxes = parse_boxes(text[tag.end : tags[k].start])
                pos, i = tags[k].end, k + 1
            else:
                payload_end = _unclosed_payload_end(text, tag.end)
                boxes = parse_boxes(text[tag.end : payload_end])
                pos, i = payload_end, i + 1
            pending = _Draft("text", boxes, "", header=True)
            continue
        i += 1  # stray closing tags and <|grounding|> are dropped with the content cleanup
    flush(len(text))
    return drafts


def _resolve_line_mode(d: _Draft) -> _Draft:
    """``OCR this image.`` mode: the recognised line is the ref's payload and nothing follows."""
    if d.header and not d.text.strip() and d.label and d.label not in KNOWN_LABELS:
        return _Draft("text", d.boxes, d.label, header=True)
    if d.header and d.label and not _LABEL_LIKE_RE.match(d.label) and d.label not in KNOWN_LABELS:
        # A sentence in the label slot followed by more text: keep both, as text.
        return _Draft("text", d.boxes, f"{d.label}\n{d.text}".strip("\n"), header=True)
    if not d.label:
        return _Draft("text", d.boxes, d.text, d.header)
    return d


def _has_table(text: str) -> bool:
    return "<table" in text.lower()


def _take_tables(text: str) -> tuple[str, str]:
    """Split ``text`` into (text without table HTML, the table HTML)."""
    tables = [m.group(0) for m in _TABLE_RE.finditer(text)]
    rest = _TABLE_RE.sub("\n", text)
    rest = re.sub(r"\n{3,}", "\n\n", rest).strip("\n").rstrip()
    return rest, "\n\n".join(t.strip() for t in tables)


def _fix_tables(drafts: list[_Draft]) -> list[_Draft]:
    """Give table HTML back to table blocks; every ``<table`` ends up under a ``table`` label.

    The OCR-1 trap: ``table`` header (empty), then ``table_caption`` header whose content holds
    the caption *and* the ``<table>`` HTML. The HTML moves to the nearest empty table block
    (next or previous). HTML with no empty table nearby becomes its own ``table`` block.
    Trailing non-table text inside a table block is split off as a ``text`` block.
    """
    out = list(drafts)
    i = 0
    while i < len(out):
        d = out[i]
        if d.label != "table" and _has_table(d.text):
            rest, tables = _take_tables(d.text)
            target = None
            for j in (i - 1, i + 1, i - 2, i + 2):
                if 0 <= j < len(out) and out[j].label == "table" and not _has_table(out[j].text):
                    target = j
                    break
            if target is not None:
                table = out[target]
                extra = table.text.strip()
                table.text = f"{extra}\n\n{tables}" if extra else tables
                d.text = rest
                if target < i:  # the trap: keep the text order, caption before its table
                    out.insert(i, out.pop(target))
                    i -= 1
            elif not rest.strip():
                d.label = "table"
            else:
                d.text = rest
                out.insert(i + 1, _Draft("table", (), tables, header=False))
        i += 1
    # Text the model wrote after a table's HTML, in the same block, is not part of the table.
    i = 0
    while i < len(out):
        d = out[i]
        if d.label == "table" and _has_table(d.text):
            last = None
            for m in _TABLE_RE.finditer(d.text):
                last = m
            if last is not None and last.group(0).lower().rstrip().endswith("</table>"):
                tail = d.text[last.end() :].strip()
                if tail:
                    d.text = d.text[: last.end()].rstrip()
                    out.insert(i + 1, _Draft("text", (), tail, header=False))
        i += 1
    return out


def parse_grounded(text: str) -> list[Block]:
    """Parse DeepSeek-OCR grounded output into blocks, in reading order. Never raises.

    Content outside the tags is never lost: untagged text becomes ``text`` blocks, labels are
    kept verbatim (``figure_title``, hallucinated ones), and block indexes run 0, 1, 2, ...
    """
    if not isinstance(text, str):
        raise TypeError(f"parse_grounded expects str, got {type(text).__name__}")
    text = _EOS_RE.sub("", text.replace("\r\n", "\n"))
    drafts = [_resolve_line_mode(d) for d in _split_headers(text)]
    drafts = _fix_tables(drafts)
    blocks: list[Block] = []
    for d in drafts:
        if d.label == "image" and d.text.strip():
            # Images carry no text in grounded mode; keep any as a following text block.
            blocks.append(Block("image", d.boxes, "", len(blocks)))
            blocks.append(Block("text", (), d.text, len(blocks)))
            continue
        if not d.header and not d.text.strip():
            continue
        blocks.append(Block(d.label, d.boxes, d.text, len(blocks)))
    return blocks


def format_grounded(blocks: Iterable[Block]) -> str:
    """Write blocks in DeepSeek-OCR's grounded format (what the local engine and tests emit)."""
    parts = []
    for b in blocks:
        boxes = ", ".join(f"[{x0}, {y0}, {x1}, {y1}]" for x0, y0, x1, y1 in b.boxes)
        parts.append(f"{REF}{b.label}{REF_END}{DET}[{boxes}]{DET_END}\n{b.text}\n")
    return "\n".join(parts)


# --- repetition loops -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Loop:
    """A repetition loop running to the end of the text."""

    start: int
    """Where the repeating part begins."""
    period: int
    """Length of one repetition, in characters (approximate when the repeats vary)."""
    keep: int
    """Cut here to keep everything before the loop plus one copy of it."""


_BOUNDARY_RE = re.compile(r"[\s、，。,.;；:：!！?？>)\]]")
_DIGITS_IN_DET = re.compile(r"<\|det\|>.*?<\|/det\|>", re.DOTALL)


def _repeat_links(norm: str, ngram: int, window: int) -> list[int]:
    """For each position, where its ``ngram`` last occurred within ``window`` chars, else -1."""
    last: dict[str, int] = {}
    prev = [-1] * max(0, len(norm) - ngram + 1)
    for i in range(len(prev)):
        g = norm[i : i + ngram]
        p = last.get(g)
        if p is not None and i - p <= window:
            prev[i] = p
        last[g] = i
    return prev


def _dense_tail(prev: list[int], span: int, density: float, start: int) -> int:
    """Walk back from ``start`` while every ``span`` positions stay ``density`` repeated."""
    m = len(prev)
    span = min(span, m)
    if span <= 0:
        return m
    start = min(start, m - span)
    acc = sum(1 for p in prev[start : start + span] if p >= 0)
    need = density * span
    if acc < need:
        return m
    while start > 0:
        acc += (prev[start - 1] >= 0) - (prev[start - 1 + span] >= 0)
        if acc < need:
            break
        start -= 1
    return start


def find_repetition_loop(
    text: str, *, min_repeats: int = 4, min_chars: int = 200, window: int = 4000
) -> Loop | None:
    """Find a repetition loop that runs to the end of ``text``, or ``None``.

    A position "repeats" when the n characters starting there already occurred within the
    previous ``window`` characters. A loop is confirmed when the last 200 characters are 90 %
    repeated at n = 24 (ordinary prose and tables are not); its start is then found by walking
    back while stretches stay 70 % repeated at n = 12, which tolerates the small variations
    real loops have ("主席、副主席、主席、..."). Box coordinates are ignored, since a loop of whole
    blocks repeats with different boxes. Linear in the text length.
    """
    n = len(text)
    if n < min_chars:
        return None
    norm = _DIGITS_IN_DET.sub(lambda m: re.sub(r"\d", "0", m.group(0)), text)
    strict = _repeat_links(norm, 24, window)
    tail = _dense_tail(strict, 200, 0.9, len(strict))
    if tail >= len(strict):
        return None
    loose = _repeat_links(norm, 12, window)
    start = min(tail, _dense_tail(loose, 200, 0.7, tail))
    first = start
    while first < len(loose) and loose[first] < 0:
        first += 1
    if first >= len(loose):
        return None
    loop_start = loose[first]
    period = first - loop_start
    length = n - loop_start
    if period <= 0 or length < min_chars or length < min_repeats * period:
        return None
    keep = min(n, loop_start + period)
    # End the kept copy at a natural boundary (punctuation, space, tag end) when one is near.
    boundary = _BOUNDARY_RE.search(text, keep, min(n, keep + period))
    if boundary is not None:
        keep = boundary.end()
    return Loop(start=loop_start, period=period, keep=keep)


LOOP_NOTE = "[ocr_loaders: repetition loop cut here]"


def cut_repetition_loop(text: str) -> tuple[str, Loop | None]:
    """Cut a trailing repetition loop to one copy; return the kept text and the loop found."""
    loop = find_repetition_loop(text)
    if loop is None:
        return text, None
    return text[: loop.keep].rstrip(), loop


@dataclass(frozen=True, slots=True)
class ParsedPage:
    """Blocks of one page plus what the parser had to do to the raw text."""

    blocks: tuple[Block, ...]
    loop: Loop | None


def parse_page(text: str, finish_reason: str | None = None) -> ParsedPage:
    """Parse one page's output, cutting a trailing repetition loop unless the model stopped.

    A page that ended with ``finish_reason == "stop"`` is parsed as is. Otherwise (``length``,
    or unknown) a loop running to the end is cut to one copy; the caller marks the page
    ``truncated`` and :func:`page_markdown` notes the cut.
    """
    loop = None
    if finish_reason != "stop":
        text, loop = cut_repetition_loop(text)
    return ParsedPage(tuple(parse_grounded(text)), loop)


# --- blocks -> clean markdown ---------------------------------------------------------------

ImageLink = Callable[[Block, int], str]
"""Given an image block and its 0-based number among the page's images, the link target."""

_CENTER_RE = re.compile(r"</?\s*center\s*>", re.IGNORECASE)
_LATEX_FIXES = ((r"\coloneqq", ":="), (r"\eqqcolon", "=:"))


def default_image_link(page: int | None = None) -> ImageLink:
    """Link targets as DeepSeek's own cleanup names crops: ``images/{page}_{k}.jpg``.

    With no page number (a single image), ``images/{k}.jpg``.
    """

    def link(_block: Block, k: int) -> str:
        return f"images/{k}.jpg" if page is None else f"images/{page}_{k}.jpg"

    return link


def caption_for(blocks: Sequence[Block], i: int) -> str:
    """Short alt text for block ``i``: the first line of an adjacent caption, if any."""
    for j in (i + 1, i - 1):
        if 0 <= j < len(blocks) and blocks[j].label in CAPTION_LABELS:
            first = _CENTER_RE.sub("", blocks[j].text).strip().split("\n", 1)[0]
            first = re.sub(r"[\[\]\n]", " ", first)
            return first[:120].rstrip()
    return ""


_TAG_HTML_RE = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9]*)((?:\s[^<>]*)?)/?>")
_TABLE_TAGS = frozenset({"table", "thead", "tbody", "tr", "td", "th"})
_ACTIVE_TAGS = frozenset(
    {
        "script",
        "style",
        "iframe",
        "frame",
        "frameset",
        "object",
        "embed",
        "applet",
        "link",
        "meta",
        "base",
        "form",
        "input",
        "button",
        "textarea",
        "select",
        "option",
        "svg",
        "math",
        "img",
        "image",
        "video",
        "audio",
        "source",
        "track",
        "picture",
        "body",
        "html",
        "head",
        "title",
        "template",
        "noscript",
        "xmp",
        "plaintext",
        "a",
        "area",
        "map",
        "portal",
    }
)
_SPAN_ATTR_RE = re.compile(r"""\s(?:rowspan|colspan)\s*=\s*["']?\d+["']?""", re.IGNORECASE)
_RISKY_ATTR_RE = re.compile(r"\bon[a-z]+\s*=|javascript:|\bsrcdoc\s*=|\bstyle\s*=", re.IGNORECASE)


def neutralize_html(text: str) -> str:
    """Make model output inert where markdown renderers pass HTML through.

    DeepSeek-OCR writes tables as ``<table><tr><td>`` with ``rowspan``/``colspan``: those are
    kept, other attributes dropped. Tags that can run code or load content (``<script>``,
    ``<img onerror=...>``, ``<iframe>``, links) and any tag carrying an event handler or a
    ``javascript:`` URL are escaped, so they show as text. Anything else (``a <b`` in math,
    ``x<y and z>w``) is left as the model wrote it.
    """

    def fix(m: re.Match[str]) -> str:
        closing, name, attrs = m.group(1), m.group(2).lower(), m.group(3)
        if name in _TABLE_TAGS:
            kept = "" if closing else "".join(a.group(0) for a in _SPAN_ATTR_RE.finditer(attrs))
            return f"<{closing}{name}{kept}>"
        if name in _ACTIVE_TAGS or _RISKY_ATTR_RE.search(attrs):
            return html.escape(m.group(0), quote=False)
        return m.group(0)

    return _TAG_HTML_RE.sub(fix, text) if "<" in text else text


def block_markdown(
    block: Block, *, tables: str = "html", image_target: str = "", caption: str = ""
) -> str:
    """Clean markdown for one block: tags gone, headings marked, captions unwrapped.

    Equations keep the model's ``\\[ ... \\]`` delimiters (inline math keeps ``\\( \\)``);
    tables stay the model's HTML unless ``tables="markdown"`` and the table is simple. HTML
    other than table markup is escaped (:func:`neutralize_html`).
    """
    text = neutralize_html(_CENTER_RE.sub("", block.text)).strip()
    for old, new in _LATEX_FIXES:
        text = text.replace(old, new)
    label = block.label
    if label == "image":
        alt = caption.replace("]", " ")
        return f"![{alt}]({image_target})" if image_target else (f"![{alt}]()" if alt else "")
    if label in HEADING_LABELS and text and not text.startswith("#"):
        first, _, rest = text.partition("\n")
        hashes = "#" if label == "title" else "##"
        text = f"{hashes} {first}" + (f"\n{rest}" if rest else "")
    if label == "table" and tables == "markdown":
        text = _TABLE_RE.sub(lambda m: html_table_to_markdown(m.group(0)) or m.group(0), text)
    return text


def to_markdown(
    blocks: Sequence[Block],
    *,
    tables: str = "html",
    image_link: ImageLink | None = None,
    loop_cut: bool = False,
) -> str:
    """Clean markdown for a page's blocks, blocks separated by blank lines.

    Image blocks become ``![caption](target)`` with targets from ``image_link`` (default:
    ``images/{k}.jpg``). ``loop_cut`` appends a visible note where a repetition loop was cut.
    """
    link = image_link or default_image_link()
    parts: list[str] = []
    k = 0
    for i, block in enumerate(blocks):
        target = ""
        caption = ""
        if block.label == "image":
            target = link(block, k)
            caption = caption_for(blocks, i)
            k += 1
        md = block_markdown(block, tables=tables, image_target=target, caption=caption)
        if md:
            parts.append(md)
    if loop_cut:
        parts.append(LOOP_NOTE)
    out = "\n\n".join(parts)
    return re.sub(r"\n{3,}", "\n\n", out)


# --- simple HTML tables -> GitHub markdown --------------------------------------------------

_ROW_RE = re.compile(r"<tr\b[^>]*>(.*?)</tr\s*>", re.IGNORECASE | re.DOTALL)
_CELL_RE = re.compile(r"<t([dh])\b([^>]*)>(.*?)</t[dh]\s*>", re.IGNORECASE | re.DOTALL)
_SPAN_RE = re.compile(r"(rowspan|colspan)\s*=\s*[\"']?(\d+)", re.IGNORECASE)


def parse_html_table(table_html: str) -> list[list[str]] | None:
    """Rows of cell texts of a simple table (no row/col spans > 1), else ``None``."""
    rows: list[list[str]] = []
    for row in _ROW_RE.findall(table_html):
        cells = []
        for _kind, attrs, content in _CELL_RE.findall(row):
            if any(int(v) > 1 for _n, v in _SPAN_RE.findall(attrs)):
                return None
            if "<table" in content.lower():
                return None
            cell = re.sub(r"<br\s*/?>", " ", content, flags=re.IGNORECASE)
            cell = html.unescape(re.sub(r"<[^>]+>", "", cell))
            cells.append(" ".join(cell.split()))
        rows.append(cells)
    if not rows or len({len(r) for r in rows}) != 1 or not rows[0]:
        return None
    return rows


def html_table_to_markdown(table_html: str) -> str | None:
    """GitHub pipe table for a simple HTML table (first row as header), else ``None``."""
    rows = parse_html_table(table_html)
    if rows is None:
        return None

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    out = [line(rows[0]), "| " + " | ".join("---" for _ in rows[0]) + " |"]
    out.extend(line(r) for r in rows[1:])
    return "\n".join(out)
