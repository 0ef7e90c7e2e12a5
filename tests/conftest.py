"""Shared test fixtures: the ../shared corpus (skipped cleanly when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
RAW_OUTPUTS = SHARED / "fixtures" / "raw_outputs"
CORPUS = SHARED / "corpus"


@pytest.fixture(scope="session")
def raw_outputs() -> Path:
    """Real DeepSeek-OCR outputs beside the checkout; skip when the folder is not there."""
    if not RAW_OUTPUTS.is_dir():
        pytest.skip(f"shared fixtures not found at {RAW_OUTPUTS} (they live beside the checkout)")
    return RAW_OUTPUTS


@pytest.fixture(scope="session")
def corpus() -> Path:
    """Real PDFs and scans beside the checkout; skip when the folder is not there."""
    if not CORPUS.is_dir():
        pytest.skip(f"shared corpus not found at {CORPUS} (it lives beside the checkout)")
    return CORPUS
