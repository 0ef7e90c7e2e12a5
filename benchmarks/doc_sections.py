"""One ``## `` section of a generated markdown page, replaced in place or appended.

Several benchmarks write their own section of docs/benchmarks.md; each owns only its section.
"""

from __future__ import annotations

from pathlib import Path


def replace_section(doc_path: Path, heading: str, text: str) -> None:
    """Put ``text`` (which starts with ``heading``) where the section ``heading`` is, up to the
    next ``## `` heading, or at the end of the page when there is none yet."""
    doc = doc_path.read_text(encoding="utf-8")
    head, found, rest = doc.partition(heading)
    if found:
        nxt = rest.find("\n## ")
        tail = rest[nxt + 1 :] if nxt >= 0 else ""
        doc = head + text + ("\n" + tail if tail else "")
    else:
        doc = doc.rstrip("\n") + "\n\n" + text
    doc_path.write_text(doc, encoding="utf-8")
