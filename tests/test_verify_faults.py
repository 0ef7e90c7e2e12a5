"""Content faults of the fake server: answers that arrive fine but say the wrong thing."""

from __future__ import annotations

import random

import pytest

from ocr_loaders._grounding import format_grounded, parse_grounded
from ocr_loaders._model import Block
from ocr_loaders.testing import ContentFaultPlan, ContentFaultResponder, OCRReply, OCRRequest
from ocr_loaders.testing.__main__ import build_parser
from ocr_loaders.testing.content_faults import drop_share, invent, truncate


def blocks(n: int = 10, words: int = 10) -> list[Block]:
    return [
        Block(
            "text",
            ((50, 40 + 90 * i, 950, 120 + 90 * i),),
            " ".join(f"w{i}x{k}" for k in range(words)),
            i,
        )
        for i in range(n)
    ]


def count(bs: list[Block]) -> int:
    return sum(len(b.text.split()) for b in bs)


def test_drop_truncate_and_invent_touch_the_share_of_words() -> None:
    page = blocks()
    dropped = drop_share(page, 0.4, random.Random(1))
    assert 50 <= count(dropped) <= 60 and len(dropped) < len(page)
    assert count(drop_share(blocks(1, 50), 0.4, random.Random(1))) == 30  # one block: cut
    cut = truncate(page, 0.4)
    assert count(cut) == 60 and cut[-1].text == page[5].text
    added = invent(page, 0.4, random.Random(1))
    assert count(added) >= 140 and all(b.text in [a.text for a in added] for b in page)
    assert [b.index for b in added] == list(range(len(added)))


def request(image: bytes, seq: int, size: tuple[int, int] = (1190, 1684)) -> OCRRequest:
    return OCRRequest(image, size[0], size[1], "image/png", "p", "m", {}, seq)


def test_the_fault_of_a_page_depends_on_the_seed_and_its_pixels_only() -> None:
    rates = {"drop_blocks": 0.25, "truncate_text": 0.25, "made_up": 0.25, "other_page": 0.25}
    plan = ContentFaultPlan(**rates, seed=3)
    picks = [plan.pick(i) for i in range(200)]
    assert picks == [ContentFaultPlan(**rates, seed=3).pick(i) for i in range(200)]
    assert picks != [ContentFaultPlan(**rates, seed=4).pick(i) for i in range(200)]
    assert {"drop_blocks", "truncate_text", "made_up", "other_page"} == set(picks)
    with pytest.raises(ValueError, match="add up"):
        ContentFaultPlan(drop_blocks=0.6, made_up=0.6)


def test_other_page_answers_with_the_previous_page_and_logs() -> None:
    answers = {b"a": format_grounded(blocks(2)), b"b": format_grounded(blocks(3))}
    responder = ContentFaultResponder(
        lambda r: OCRReply(answers[r.image]), ContentFaultPlan(other_page=1.0)
    )
    assert responder(request(b"a", 0)).text == answers[b"a"]  # nothing seen yet: unchanged
    assert responder(request(b"b", 1)).text == answers[b"a"]
    assert [f for _s, _c, f in responder.log] == ["ok", "other_page"]


def test_compression_stand_in_spares_tiles() -> None:
    dense = format_grounded(blocks(12, 40))  # ~1.8 text tokens per vision token
    responder = ContentFaultResponder(
        lambda r: OCRReply(dense if r.width == 1190 else format_grounded(blocks(2, 40))),
        ContentFaultPlan(compress_ratio=1.0, compress_drop=0.5),
    )
    whole = parse_grounded(responder(request(b"page", 0)).text)
    tile = parse_grounded(responder(request(b"tile", 1, (1684, 1286))).text)
    assert count(whole) <= 240 and count(tile) == 80
    assert [f for _s, _c, f in responder.log] == ["compress", "ok"]


def test_the_server_command_takes_the_content_fault_flags() -> None:
    args = build_parser().parse_args(
        ["--fault-drop-blocks", "0.1", "--fault-other-page", "0.2", "--fault-compress-ratio", "0.3"]
    )
    assert (args.drop_blocks, args.other_page, args.fault_compress_ratio) == (0.1, 0.2, 0.3)
