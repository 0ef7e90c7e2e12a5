"""Vision-token formula: published examples and an independent brute-force tile search."""

from __future__ import annotations

import random

import pytest

from ocr_loaders import vision_tokens
from ocr_loaders._tokens import count_tokens, model_family, tile_grid


@pytest.mark.parametrize(
    ("w", "h", "model", "expected"),
    [
        (1190, 1684, "deepseek-ocr", 903),
        (1190, 1684, "deepseek-ocr-2", 1121),
        (1684, 1190, "deepseek-ocr", 893),
        (700, 700, "deepseek-ocr", 693),
        (700, 700, "deepseek-ocr-2", 257),
        (640, 640, "deepseek-ocr", 273),  # fits one tile: global view only
        (641, 10, "deepseek-ocr", 273 + (10 * 6 + 1) * 10),  # very wide: 6x1 grid
    ],
)
def test_known_values(w: int, h: int, model: str, expected: int) -> None:
    assert vision_tokens(w, h, model=model) == expected


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("deepseek-ai/DeepSeek-OCR", "deepseek-ocr"),
        ("deepseek-ai/DeepSeek-OCR-2", "deepseek-ocr-2"),
        ("DeepSeek-OCR2", "deepseek-ocr-2"),
        ("deepseek-ocr-2", "deepseek-ocr-2"),
        ("my-org/deepseek_ocr_2-awq", "deepseek-ocr-2"),
        ("deepseek-ocr", "deepseek-ocr"),
        ("local:pymupdf+rapidocr", "deepseek-ocr"),
    ],
)
def test_model_family(name: str, family: str) -> None:
    assert model_family(name) == family
    assert vision_tokens(1190, 1684, model=name) == (1121 if family.endswith("2") else 903)


def brute_force(w: int, h: int, tile: int, base: int, per_grid) -> int:  # type: ignore[no-untyped-def]
    """Independent search: every grid's distance, the minimum, then the documented tie rule.

    Distances are floats, as in the servers' preprocessors: an "exact tie" is float equality.
    """
    if w <= tile and h <= tile:
        return base
    grids = [(a, b) for a in range(1, 7) for b in range(1, 7) if 2 <= a * b <= 6]
    dist = {g: abs(w / h - g[0] / g[1]) for g in grids}
    best = min(dist.values())
    tied = sorted((g for g in grids if dist[g] == best), key=lambda g: g[0] * g[1])
    choice = tied[0]
    for g in tied[1:]:  # a later (larger) tied grid wins only for a large enough image
        if w * h > 0.5 * tile * tile * g[0] * g[1]:
            choice = g
    return int(base + per_grid(*choice))


def test_agrees_with_brute_force_on_random_sizes() -> None:
    rng = random.Random(1234)
    sizes = [(rng.randint(1, 6000), rng.randint(1, 6000)) for _ in range(4000)]
    sizes += [(rng.randint(500, 1600), rng.randint(500, 1600)) for _ in range(2000)]
    # sizes whose aspect ratio sits exactly between two neighbouring grid ratios
    for num, den in [(5, 4), (7, 4), (5, 2), (7, 2), (9, 2), (11, 2), (7, 12), (5, 12), (5, 6)]:
        for k in range(1, 400, 7):
            sizes.append((num * k, den * k))
    for w, h in sizes:
        assert vision_tokens(w, h) == brute_force(
            w, h, 640, 273, lambda a, b: (10 * a + 1) * 10 * b
        ), (w, h)
        assert vision_tokens(w, h, "deepseek-ocr-2") == brute_force(
            w, h, 768, 257, lambda a, b: 144 * a * b
        ), (w, h)


def test_tie_rule_prefers_larger_grid_only_for_large_images() -> None:
    # aspect 1.25 is exactly between 2x2 (1.0) and 3x2 (1.5); 2x2 comes first (fewer tiles).
    # 3x2 takes over only when the image's area exceeds 0.5 * 640^2 * 6 = 1,228,800 px.
    assert tile_grid(750, 600, 640) == (2, 2)
    assert tile_grid(1250, 1000, 640) == (3, 2)
    assert vision_tokens(750, 600) == 273 + 21 * 20
    assert vision_tokens(1250, 1000) == 273 + 31 * 20


def test_count_tokens_uses_cl100k_offline() -> None:
    assert count_tokens("") == 0
    assert count_tokens("hello world") == 2
    assert count_tokens("The quick brown fox jumps over the lazy dog.") == 10


def test_rejects_non_positive_sizes() -> None:
    with pytest.raises(ValueError, match="positive"):
        vision_tokens(0, 100)
