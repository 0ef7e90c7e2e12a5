"""A stand-in embedding: hashed bag of words. Not a model; for tests, examples and CI.

Each lower-cased word is hashed (BLAKE2b) to a bucket and a sign; the counts are
L2-normalised. Texts sharing words are close, so a query with a caption's words finds that
caption, which is all a test of a store needs. It knows nothing of meaning: use a real
embedding model for real retrieval. Nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import math
import re

DIM = 256
"""Default vector size."""

_WORD = re.compile(r"\w+", re.UNICODE)


def hashed_vector(text: str, dim: int = DIM) -> list[float]:
    """The unit vector of ``text``'s words; a text without words gets the first axis."""
    if dim < 2:
        raise ValueError(f"dim must be at least 2, got {dim}")
    vec = [0.0] * dim
    for word in _WORD.findall(text.lower()):
        digest = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")
        vec[digest % dim] += 1.0 if (digest >> 63) & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vec))
    if norm == 0.0:
        vec[0] = 1.0
        return vec
    return [v / norm for v in vec]
