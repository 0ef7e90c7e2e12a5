"""``ocr-loaders inspect OUT/``: the visual inspector for documents ``convert`` already wrote.

Writes ``OUT/<stem>.html`` for every ``<stem>.stats.json`` in the folder (or the one named by
``--stem``). With the per-page blocks ``convert --html`` keeps, every block's box is drawn;
without them, only the boxes of chunk regions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from .._errors import InputError
from .._inspect import write_inspector


def inspect_command(
    output: Annotated[Path, typer.Argument(help="A folder `ocr-loaders convert` wrote.")],
    stem: Annotated[
        str | None, typer.Option(help="Only this document (its output file stem).")
    ] = None,
    password: Annotated[
        str | None, typer.Option(help="Password of encrypted sources (to render their pages).")
    ] = None,
    no_images: Annotated[
        bool, typer.Option("--no-images", help="Draw boxes on blank pages, render nothing.")
    ] = False,
) -> None:
    """Write the visual inspector (OUT/<stem>.html) for converted documents."""
    console = Console(stderr=True, width=120)
    try:
        written = write_inspector(output, stem, password=password, images=not no_images)
    except InputError as exc:
        console.print(f"error: {exc}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(2) from None
    for path in written:
        console.print(str(path), highlight=False, markup=False, soft_wrap=True)
