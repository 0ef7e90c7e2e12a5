"""Pieces (text placed in a chunk) and the sources that cut units into them; solid units."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from .._model import Region
from .units import Unit

PieceKind = Literal["heading", "prose", "solid", "note"]


@dataclass(frozen=True, slots=True)
class Measured:
    """A text and its token count, taken once."""

    text: str
    tokens: int


@dataclass(frozen=True, slots=True)
class Piece(Measured):
    """Text placed in a chunk, with what it cites and how many tokens it costs."""

    page: int
    labels: tuple[str, ...]
    regions: tuple[Region, ...]
    kind: PieceKind
    continued: bool = False
    """A later part of a split prose block: joined to its overlap by a line break, not a
    blank line (a space could re-tokenize the part's first word into more tokens)."""
    joins: tuple[str, ...] = ()
    """The page breaks its unit was joined across (:attr:`Unit.joins`)."""


def whole_piece(unit: Unit, tokens: int) -> Piece:
    """The whole unit as one piece."""
    kind: PieceKind = "solid" if unit.kind == "group" else unit.kind
    return Piece(unit.text, tokens, unit.page, unit.labels, unit.regions, kind, joins=unit.joins)


class Source(Protocol):
    """A unit being placed: what is left of it, and how to take a part that fits a room."""

    tokens: int
    done: bool

    def splittable(self) -> bool: ...

    def take(self, room: int, force: bool) -> Piece | None:
        """The largest leading part within ``room`` tokens, or None if nothing fits.

        With ``force``, the smallest atomic part is returned even when it does not fit.
        """
        ...


class Solid:
    """A unit that is never split (equation, figure, small table group, loop note)."""

    def __init__(self, piece: Piece) -> None:
        self.piece = piece
        self.tokens = piece.tokens
        self.done = False

    def splittable(self) -> bool:
        return False

    def take(self, room: int, force: bool) -> Piece | None:
        if self.piece.tokens > room and not force:
            return None
        self.done = True
        self.tokens = 0
        return self.piece
