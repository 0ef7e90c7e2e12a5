"""Raw model text -> blocks, tolerantly; blocks -> grounded text (see the package docstring)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from .._model import MODEL_UNITS, Block, Box
from .labels import DET, DET_END, KNOWN_LABELS, REF, REF_END, TABLE_RE

# The four tags (and the prompt marker), exactly as the tokenizer writes them.
_TAG_RE = re.compile(r"<\|(/?)(ref|det|grounding)\|>")
_EOS_RE = re.compile(r"<｜end▁of▁sentence｜>|<\|end▁of▁sentence\|>|<\|endoftext\|>")
_BOX_RE = re.compile(r"\[([^\[\]]*)\]")
_INT_RE = re.compile(r"\d+")
_LABEL_LIKE_RE = re.compile(r"^[a-z][a-z0-9_]*(?: [a-z][a-z0-9_]*){0,3}$")


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
    """A ``<table`` tag, by the same rule that cuts it out (``<tablefoo`` is text)."""
    return TABLE_RE.search(text) is not None


def _take_tables(text: str) -> tuple[str, str]:
    """Split ``text`` into (text without table HTML, the table HTML)."""
    tables = [m.group(0) for m in TABLE_RE.finditer(text)]
    rest = TABLE_RE.sub("\n", text)
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
            for m in TABLE_RE.finditer(d.text):
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
