#!/usr/bin/env python3
"""Conformance of the ocr_loaders client against a running DeepSeek-OCR server.

Runs ON the GPU machine against ``vllm serve`` (see README.md beside this file), or anywhere
against the project's fake server (``python -m ocr_loaders.testing --max-model-len 4096``), and
writes ``conformance.json`` into ``--out`` after every section, so a run cut short still leaves
what it measured.

Sections (``--sections``, default all, in this order):
  a  GET /v1/models and /version; what the client's dialect detection says
  b  the exact request the library builds, for real rendered pages (Letter, A4, A4 landscape,
     a 300x200 image, a 4000x3000 photo after the client's downscaling): accepted?, usage,
     prompt_tokens - vision_tokens(w, h), finish_reason; the answers go through the parser
  c  context-limit probes: the library's default request (max_model_len 8192), max_tokens=9000,
     max_tokens = max_model_len, prompt + max_tokens over the limit by a little, an exact fit,
     an over-long prompt; status and message of each; what the library's engine does with it
  d  a client that disconnects mid-request: is the request aborted (/metrics)
  e1 the CLI, as shipped, on a 64-page PDF at --concurrency 64
  f  throughput of the image path at concurrency 1/16/64/128, max_tokens fixed, client CPU/page
  e2 the CLI again with the client told the server's max_model_len (a patch of max_tokens_for)

The library's code is used wherever it exists (imports are guarded: if a name moved, the
fallback builds the same JSON by hand and the report says so).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import statistics
import subprocess
import sys
import time
import traceback
import urllib.request
from pathlib import Path
from typing import Any

PROMPT = "<|grounding|>Convert the document to markdown."
REPORT: dict[str, Any] = {"started": time.strftime("%Y-%m-%d %H:%M:%S")}
ARGS: argparse.Namespace
DEADLINE = 0.0


def save() -> None:
    targets = [Path(ARGS.out) / "conformance.json"]
    if ARGS.state:
        targets.append(Path(ARGS.state))
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps(REPORT, indent=2, default=str))
        tmp.replace(target)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def left() -> float:
    return DEADLINE - time.time()


# --- HTTP helpers ---------------------------------------------------------------------------


def root_url() -> str:
    return re.sub(r"/v\d+$", "", ARGS.base_url.rstrip("/"))


def get_json(url: str, timeout: float = 10.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


def post_json(url: str, body: dict[str, Any], timeout: float = 30.0) -> tuple[int, Any]:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, raw.decode(errors="replace")


def metrics() -> dict[str, float]:
    """The server's Prometheus metrics, summed over label sets, by metric name (+ labels)."""
    try:
        with urllib.request.urlopen(root_url() + "/metrics", timeout=5) as r:
            text = r.read().decode()
    except Exception:
        return {}
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+([-+\deE.naNInf]+)", line)
        if not m:
            continue
        name, labels, value = m.group(1), m.group(2) or "", float(m.group(3))
        out[name] = out.get(name, 0.0) + value
        reason = re.search(r'finished_reason="(\w+)"', labels)
        if reason:
            key = f"{name}[{reason.group(1)}]"
            out[key] = out.get(key, 0.0) + value
    return out


def metric(m: dict[str, float], *names: str) -> float | None:
    for n in names:
        if n in m:
            return m[n]
    return None


# --- inputs ---------------------------------------------------------------------------------

_LOREM_TEXT = (
    "DeepSeek-OCR reads a page image and writes grounded markdown. Each block carries a label "
    "and a box in 0..999 units, so a retrieval hit can cite its region on the page. The loader "
    "streams pages, retries faults, keeps truncated pages with their status, and reports the "
    "compression ratio between text tokens and vision tokens."
)
LOREM = _LOREM_TEXT.split()


def _text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(LOREM) for _ in range(n))


def make_pdf(path: Path, pages: int, size: tuple[float, float], seed: int) -> None:
    import pymupdf

    rng = random.Random(seed)
    doc = pymupdf.open()
    w, h = size
    for i in range(pages):
        page = doc.new_page(width=w, height=h)
        page.insert_text((56, 64), f"Section {i + 1}: results of run {seed}-{i}", fontsize=16)
        y = 96.0
        while y < h - 220:
            box = pymupdf.Rect(56, y, w - 56, y + 70)
            page.insert_textbox(box, _text(rng, 60), fontsize=10)
            y += 80
        # a small ruled table
        top = h - 200
        for r in range(5):
            page.draw_line((56, top + r * 24), (w - 56, top + r * 24))
            for c in range(4):
                x = 60 + c * (w - 112) / 4
                page.insert_text(
                    (x, top + r * 24 + 16), f"{rng.randint(0, 999)}.{r}{c}", fontsize=9
                )
        page.insert_text((w / 2 - 10, h - 30), str(i + 1), fontsize=9)
    doc.save(path)
    doc.close()


def make_images(work: Path) -> dict[str, Path]:
    from PIL import Image, ImageDraw

    small = Image.new("RGB", (300, 200), "white")
    d = ImageDraw.Draw(small)
    d.text((10, 10), "Invoice 0042\nTotal: 12.50 EUR", fill="black")
    d.rectangle((10, 80, 290, 190), outline="black")
    sp = work / "small_300x200.png"
    small.save(sp)
    rng = random.Random(7)
    photo = Image.effect_noise((4000, 3000), 40).convert("RGB")
    d = ImageDraw.Draw(photo)
    for _ in range(60):
        x, y = rng.randint(0, 3800), rng.randint(0, 2800)
        d.rectangle(
            (x, y, x + rng.randint(50, 400), y + rng.randint(50, 300)),
            fill=(rng.randint(0, 255), rng.randint(0, 255), rng.randint(0, 255)),
        )
    for k in range(40):
        d.text((100, 80 + k * 70), _text(rng, 12), fill="white")
    pp = work / "photo_4000x3000.jpg"
    photo.save(pp, quality=88)
    return {"small_300x200": sp, "photo_4000x3000": pp}


def make_inputs(work: Path, doc_pages: int) -> dict[str, Path]:
    work.mkdir(parents=True, exist_ok=True)
    files = {
        "letter": work / "letter.pdf",
        "a4": work / "a4.pdf",
        "a4_landscape": work / "a4_landscape.pdf",
        "doc": work / f"doc{doc_pages}.pdf",
    }
    make_pdf(files["letter"], 1, (612, 792), 1)
    make_pdf(files["a4"], 1, (595, 842), 2)
    make_pdf(files["a4_landscape"], 1, (842, 595), 3)
    make_pdf(files["doc"], doc_pages, (595, 842), 4)
    files.update(make_images(work))
    return files


# --- the library: its own rendering and request building -------------------------------------

USED: dict[str, str] = {
    "render": "ocr_loaders._rendering.raster.open_document(...).render(n, RenderSettings())",
    "request": "ocr_loaders._engines.openai_compat.build_request",
}


def lib_pages(path: Path) -> list[Any]:
    """PageImages exactly as the library renders them (PyMuPDF 144 dpi, pixel cap)."""
    from ocr_loaders import RenderSettings
    from ocr_loaders._rendering.raster import open_document
    from ocr_loaders._sources import resolve_inputs

    doc = open_document(resolve_inputs([str(path)])[0])
    try:
        return [doc.render(n, RenderSettings()) for n in range(1, doc.page_count + 1)]
    finally:
        doc.close()


def vision_tokens(w: int, h: int) -> int:
    from ocr_loaders import vision_tokens as vt

    return int(vt(w, h))


def lib_request(page: Any, max_model_len: int, max_tokens: int | None = None) -> dict[str, Any]:
    """``chat.completions.create`` kwargs as the library builds them."""
    from ocr_loaders._engines.openai_compat import EndpointSettings, Guard, build_request

    s = EndpointSettings(base_urls=(ARGS.base_url,), model=ARGS.model, max_model_len=max_model_len)
    return build_request(page, s, "vllm", s.prompt, Guard(s.ngram_size, s.window_size), max_tokens)


def wire_body(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The JSON the openai client sends for these kwargs (extra_body merged at the top)."""
    body = {k: v for k, v in kwargs.items() if k != "extra_body"}
    body.update(kwargs.get("extra_body") or {})
    return body


def parse_check(text: str, finish: str | None) -> dict[str, Any]:
    try:
        from ocr_loaders._grounding import parse_page, to_markdown

        parsed = parse_page(text, finish)
        md = to_markdown(list(parsed.blocks)) if parsed.blocks else ""
        return {
            "raised": False,
            "blocks": len(parsed.blocks),
            "loop_cut": parsed.loop is not None,
            "markdown_chars": len(md),
        }
    except ImportError as exc:
        return {"raised": None, "note": f"parser not importable: {exc}"}
    except Exception as exc:
        return {
            "raised": True,
            "error": f"{type(exc).__name__}: {exc}",
            "trace": traceback.format_exc()[-2000:],
        }


class Sender:
    """Sends kwargs through the same client the library uses (AsyncOpenAI, raw response)."""

    def __init__(self) -> None:
        from openai import AsyncOpenAI

        self.client = AsyncOpenAI(
            base_url=ARGS.base_url, api_key="EMPTY", max_retries=0, timeout=600
        )

    async def send(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        import openai

        t0 = time.perf_counter()
        try:
            raw = await self.client.chat.completions.with_raw_response.create(**kwargs)
            data = json.loads(raw.http_response.content)
            ch = (data.get("choices") or [{}])[0]
            usage = data.get("usage") or {}
            text = (ch.get("message") or {}).get("content") or ""
            return {
                "status": 200,
                "accepted": True,
                "latency_s": round(time.perf_counter() - t0, 3),
                "finish_reason": ch.get("finish_reason"),
                "prompt_tokens": usage.get("prompt_tokens"),
                "completion_tokens": usage.get("completion_tokens"),
                "text_head": text[:300],
                "_text": text,
            }
        except openai.APIStatusError as exc:
            body: Any
            try:
                body = exc.response.json()
            except Exception:
                body = exc.response.text
            msg = body.get("error", body).get("message") if isinstance(body, dict) else None
            return {
                "status": exc.status_code,
                "accepted": False,
                "message": msg,
                "body": body,
                "latency_s": round(time.perf_counter() - t0, 3),
            }
        except Exception as exc:
            return {"status": None, "accepted": False, "message": f"{type(exc).__name__}: {exc}"}


def tokenizer_counts() -> dict[str, Any]:
    """Text-token counts of the prompt under the two chat templates vLLM might apply."""
    try:
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(Path(ARGS.model_dir) / "tokenizer.json"))

        def n(s: str) -> int:
            return len(tok.encode(s, add_special_tokens=False).ids)

        return {
            "bos+'\\n'+prompt (deepseek_ocr template; <image> replaced)": 1 + n("\n" + PROMPT),
            "bos+'<|User|>: '..'\\n'+prompt+'\\n\\n<|Assistant|>: ' (deepseek_vl2 template)": 1
            + n("<|User|>: ")
            + n("\n" + PROMPT + "\n\n")
            + n("<|Assistant|>: "),
        }
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


# --- sections -------------------------------------------------------------------------------


def section_a() -> None:
    res: dict[str, Any] = {}
    res["models"] = get_json(ARGS.base_url.rstrip("/") + "/models")
    with contextlib.suppress(Exception):
        res["version"] = get_json(root_url() + "/version")
    cards = res["models"].get("data") or []
    card = cards[0] if cards else {}
    res["max_model_len_listed"] = "max_model_len" in card
    res["max_model_len"] = card.get("max_model_len")
    res["owned_by"] = card.get("owned_by")
    try:
        from ocr_loaders._engines.openai_compat import detect_dialect

        res["detect_dialect"] = detect_dialect(ARGS.base_url)
    except ImportError as exc:
        res["detect_dialect"] = f"not importable: {exc}"
    res["pass"] = bool(res["max_model_len_listed"] and res["detect_dialect"] == "vllm")
    REPORT["a_models"] = res
    ARGS.served_len = int(card.get("max_model_len") or ARGS.max_model_len)


async def sections_b_c(files: dict[str, Path]) -> None:
    sender = Sender()
    served = ARGS.served_len
    pages = {}
    for name in ("letter", "a4", "a4_landscape", "small_300x200", "photo_4000x3000"):
        pages[name] = lib_pages(files[name])[0]
    a4 = pages["a4"]
    # exact prompt length of the A4 request from /tokenize (no generation), for the probes
    a4_kwargs = lib_request(a4, served)
    tok_status, tok_body = post_json(
        root_url() + "/tokenize", {"model": ARGS.model, "messages": a4_kwargs["messages"]}
    )
    tok_text_status, tok_text = post_json(
        root_url() + "/tokenize",
        {
            "model": ARGS.model,
            "messages": [{"role": "user", "content": PROMPT}],
            "return_token_strs": True,
        },
    )
    a4_prompt = tok_body.get("count") if isinstance(tok_body, dict) else None
    vt_a4 = vision_tokens(a4.image_width, a4.image_height) or 903
    if not a4_prompt:
        a4_prompt = vt_a4 + 12
    REPORT["tokenize"] = {
        "a4_multimodal": {
            "status": tok_status,
            "count": a4_prompt,
            "body_head": str(tok_body)[:300],
        },
        "text_only_prompt": {
            "status": tok_text_status,
            "count": tok_text.get("count") if isinstance(tok_text, dict) else None,
            "token_strs": tok_text.get("token_strs")
            if isinstance(tok_text, dict)
            else str(tok_text)[:300],
        },
        "tokenizer_counts": tokenizer_counts(),
    }
    save()

    jobs: dict[str, Any] = {}
    for name, page in pages.items():
        jobs["b:" + name] = lib_request(page, served)
    long_prompt = lib_request(a4, served, max_tokens=64)
    long_prompt["messages"][0]["content"][1]["text"] = PROMPT + " " + "lorem ipsum " * 2500
    probes = {
        "library_default_request_8192": lib_request(a4, 8192),
        "max_tokens_9000": lib_request(a4, served, max_tokens=9000),
        "max_tokens_eq_max_model_len": lib_request(a4, served, max_tokens=served),
        "max_tokens_eq_max_model_len_plus_1": lib_request(a4, served, max_tokens=served + 1),
        "over_by_5": lib_request(a4, served, max_tokens=served - a4_prompt + 5),
        "exact_fit": lib_request(a4, served, max_tokens=served - a4_prompt),
        "prompt_too_long": long_prompt,
    }
    for k, v in probes.items():
        jobs["c:" + k] = v
    log(f"b/c: {len(jobs)} requests in parallel (A4 prompt {a4_prompt} tokens, served {served})")
    results = await asyncio.gather(*(sender.send(kw) for kw in jobs.values()))
    b: dict[str, Any] = {}
    c: dict[str, Any] = {"a4_prompt_tokens": a4_prompt, "max_model_len": served}
    for key, res in zip(jobs, results, strict=True):
        kind, name = key.split(":", 1)
        kw = jobs[key]
        res["max_tokens_sent"] = kw["max_tokens"]
        text = res.pop("_text", None)
        if kind == "b":
            page = pages[name]
            vt = vision_tokens(page.image_width, page.image_height)
            res.update(
                {
                    "image_w": page.image_width,
                    "image_h": page.image_height,
                    "image_bytes": len(page.image),
                    "mime": page.mime,
                    "downscaled": getattr(page, "downscaled", None),
                    "vision_tokens": vt,
                }
            )
            if res.get("prompt_tokens") is not None and vt is not None:
                res["prompt_minus_vision"] = res["prompt_tokens"] - vt
            if text is not None:
                res["parse"] = parse_check(text, res.get("finish_reason"))
            b[name] = res
        else:
            if res["accepted"] and res.get("completion_tokens") is not None:
                res["prompt_plus_completion"] = (res.get("prompt_tokens") or 0) + res[
                    "completion_tokens"
                ]
                res["clamped"] = res["completion_tokens"] < kw["max_tokens"]
            c[name] = res
    residuals = {r.get("prompt_minus_vision") for r in b.values()}
    b["_summary"] = {
        "all_accepted": all(
            r.get("accepted") for r in b.values() if isinstance(r, dict) and "accepted" in r
        ),
        "prompt_minus_vision_values": sorted(x for x in residuals if x is not None),
        "constant_residual": len(residuals) == 1 and None not in residuals,
        "parse_never_raised": all(
            not (r.get("parse") or {}).get("raised")
            for r in b.values()
            if isinstance(r, dict) and "parse" in r
        ),
        "request_builder": USED.get("request"),
        "renderer": USED.get("render"),
    }
    REPORT["b_pages"] = b
    REPORT["c_limits"] = c
    save()
    # what the library's engine does with the real refusal (default max_model_len 8192)
    try:
        from ocr_loaders._engines.openai_compat import EndpointSettings, OpenAICompatEngine

        eng = OpenAICompatEngine(EndpointSettings(base_urls=(ARGS.base_url,), model=ARGS.model))
        t0 = time.perf_counter()
        raw = await eng.recognize(a4)
        c["library_engine_default_settings"] = {
            "finish_reason": raw.finish_reason,
            "error": raw.error,
            "attempts": raw.attempts,
            "text_chars": len(raw.text),
            "prompt_tokens": raw.prompt_tokens,
            "completion_tokens": raw.completion_tokens,
            "seconds": round(time.perf_counter() - t0, 2),
            "dialect": eng.dialect,
            "recovered": bool(raw.text) and not raw.error,
        }
        await eng.aclose()
    except Exception as exc:
        c["library_engine_default_settings"] = {
            "raised": f"{type(exc).__name__}: {exc}",
            "trace": traceback.format_exc()[-1500:],
        }
    save()


def _abort_lines(path: str) -> list[str]:
    """The server log's recent lines that mention an abort."""
    if not Path(path).exists():
        return []
    lines = Path(path).read_text(errors="replace").splitlines()[-400:]
    return [ln[-300:] for ln in lines if "abort" in ln.lower()][-10:]


async def section_d(files: dict[str, Path]) -> None:
    import httpx

    a4 = lib_pages(files["a4"])[0]
    kw = lib_request(a4, ARGS.served_len)
    body = wire_body(kw)
    res: dict[str, Any] = {"max_tokens": body["max_tokens"]}
    before = metrics()
    res["metrics_available"] = bool(before)

    def running(m: dict[str, float]) -> float | None:
        return metric(m, "vllm:num_requests_running")

    def gen(m: dict[str, float]) -> float | None:
        return metric(m, "vllm:generation_tokens_total", "vllm:generation_tokens")

    async with httpx.AsyncClient(timeout=600) as client:
        task = asyncio.create_task(
            client.post(ARGS.base_url.rstrip("/") + "/chat/completions", json=body)
        )
        t0 = time.perf_counter()
        seen = False
        while time.perf_counter() - t0 < 15:
            await asyncio.sleep(0.2)
            r = running(metrics())
            if r and r >= 1:
                seen = True
                break
        res["running_seen"] = seen
        res["running_seen_after_s"] = round(time.perf_counter() - t0, 2)
        await asyncio.sleep(1.5)
        g0 = gen(metrics())
        await asyncio.sleep(0.5)
        g1 = gen(metrics())
        res["generation_tokens_per_s_before_disconnect"] = (
            None if g0 is None or g1 is None else round((g1 - g0) / 0.5, 1)
        )
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        t_cancel = time.perf_counter()
    # the connection is closed now (client context exited)
    drop_after = None
    for _ in range(100):
        await asyncio.sleep(0.1)
        r = running(metrics())
        if r is not None and r < 1:
            drop_after = round(time.perf_counter() - t_cancel, 2)
            break
    await asyncio.sleep(1.0)
    m1 = metrics()
    await asyncio.sleep(1.0)
    m2 = metrics()
    res["running_after"] = running(m2)
    res["running_dropped_to_0_after_s"] = drop_after
    g_a, g_b = gen(m1), gen(m2)
    res["generation_tokens_in_1s_after_disconnect"] = (
        None if g_a is None or g_b is None else g_b - g_a
    )
    for key in (
        "vllm:request_success_total[abort]",
        "vllm:request_success_total[length]",
        "vllm:request_success_total[stop]",
    ):
        if key in before or key in m2:
            res[f"delta {key}"] = m2.get(key, 0.0) - before.get(key, 0.0)
    if ARGS.server_log:
        res["server_log_abort_lines"] = _abort_lines(ARGS.server_log)
    gen_before = res["generation_tokens_per_s_before_disconnect"]
    gen_after = res["generation_tokens_in_1s_after_disconnect"]
    if gen_before is not None and gen_after is not None:
        # decoding was going on before the disconnect and stopped after it
        res["aborted"] = gen_before > 0 and gen_after == 0
        res["aborted_by"] = "vllm:generation_tokens_total stopped growing"
    else:
        res["aborted"] = drop_after is not None
        res["aborted_by"] = "vllm:num_requests_running dropped to 0"
    res["pass"] = bool(res["aborted"] and seen)
    REPORT["d_disconnect"] = res
    save()


PATCH = (
    "import dataclasses, sys\n"
    "import ocr_loaders._engines.wire as wire\n"
    "_orig = wire.max_tokens_for\n"
    "def _patched(page, settings, prompt):\n"
    "    return _orig(page, dataclasses.replace(settings, max_model_len={n}), prompt)\n"
    "wire.max_tokens_for = _patched\n"
    "from ocr_loaders._cli import main\n"
    "sys.argv = ['ocr-loaders'] + sys.argv[1:]\n"
    "main()\n"
)


def run_cli(name: str, pdf: Path, patched_len: int | None, timeout: float) -> None:
    out_dir = Path(ARGS.work) / f"out_{name}"
    args = [
        "convert",
        str(pdf),
        "-o",
        str(out_dir),
        "--base-url",
        ARGS.base_url,
        "--model",
        ARGS.model,
        "--concurrency",
        str(ARGS.cli_concurrency),
        "--no-cache",
        "--json",
        "--quiet",
    ]
    if patched_len is None:
        cmd = [sys.executable, "-m", "ocr_loaders", *args]
    else:
        cmd = [sys.executable, "-c", PATCH.format(n=patched_len), *args]
    res: dict[str, Any] = {
        "command": " ".join(["ocr-loaders", *args]),
        "client_max_model_len_patch": patched_len,
        "timeout_s": round(timeout),
    }
    m0 = metrics()
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        res["exit_code"] = p.returncode
        stdout, stderr = p.stdout, p.stderr
    except subprocess.TimeoutExpired as exc:
        res["exit_code"] = "timeout"
        stdout = (
            (exc.stdout or b"").decode(errors="replace")
            if isinstance(exc.stdout, bytes)
            else (exc.stdout or "")
        )
        stderr = (
            (exc.stderr or b"").decode(errors="replace")
            if isinstance(exc.stderr, bytes)
            else (exc.stderr or "")
        )
    res["wall_s"] = round(time.perf_counter() - t0, 1)
    m1 = metrics()
    for k in (
        "vllm:generation_tokens_total",
        "vllm:prompt_tokens_total",
        "vllm:request_success_total",
    ):
        if k in m1:
            res[f"server delta {k}"] = m1[k] - m0.get(k, 0.0)
    res["traceback_in_stderr"] = "Traceback" in stderr
    res["stderr_tail"] = stderr[-3000:]
    try:
        stats = json.loads(stdout[stdout.index("{") :])
        keep = {k: v for k, v in stats.items() if not isinstance(v, (list, dict))}
        res["stats"] = keep
        res["pages_ok"] = stats.get("pages_ok")
        res["pages_truncated"] = stats.get("pages_truncated")
        res["pages_failed"] = stats.get("pages_failed")
    except ValueError:
        res["stdout_tail"] = stdout[-2000:]
    # per-page statuses and errors from the JSONL the CLI wrote
    statuses: dict[str, int] = {}
    errors: dict[str, int] = {}
    for f in out_dir.glob("*.jsonl"):
        for line in f.read_text().splitlines():
            with contextlib.suppress(ValueError):
                md = json.loads(line).get("metadata", {})
                statuses[md.get("ocr_status", "?")] = statuses.get(md.get("ocr_status", "?"), 0) + 1
                if md.get("ocr_error"):
                    e = str(md["ocr_error"])[:240]
                    errors[e] = errors.get(e, 0) + 1
    res["chunk_statuses"] = statuses
    res["chunk_errors"] = dict(sorted(errors.items(), key=lambda kv: -kv[1])[:5])
    res["files"] = sorted(p.name for p in out_dir.glob("*")) if out_dir.exists() else []
    REPORT[f"{name}_cli"] = res
    save()


async def section_f(files: dict[str, Path]) -> None:
    import ocr_loaders._engines.openai_compat as oc

    t0c = time.process_time()
    t0 = time.perf_counter()
    pages = lib_pages(files["doc"])
    render_cpu = (time.process_time() - t0c) / len(pages)
    res: dict[str, Any] = {
        "pages_distinct": len(pages),
        "page_px": [pages[0].image_width, pages[0].image_height],
        "vision_tokens_per_page": vision_tokens(pages[0].image_width, pages[0].image_height),
        "render_cpu_s_per_page": round(render_cpu, 4),
        "render_wall_s_per_page": round((time.perf_counter() - t0) / len(pages), 4),
        "max_tokens": ARGS.fixed_max_tokens,
        "levels": [],
        "note": "dummy (random) weights; output capped by max_tokens; engine=OpenAICompatEngine "
        "with output_retries=0, dialect vllm; pages pre-rendered (render cost separate)",
    }
    # build_request (ocr_loaders._engines.wire) sizes max_tokens: patched there
    import ocr_loaders._engines.wire as wire

    orig = wire.max_tokens_for
    wire.max_tokens_for = lambda *_args: ARGS.fixed_max_tokens
    try:
        settings = oc.EndpointSettings(
            base_urls=(ARGS.base_url,),
            model=ARGS.model,
            max_model_len=ARGS.served_len,
            output_retries=0,
            dialect="vllm",
            backup_requests=False,
        )
        engine = oc.OpenAICompatEngine(settings)

        async def batch(conc: int, n: int) -> dict[str, Any]:
            sem = asyncio.Semaphore(conc)
            lat: list[float] = []
            comp: list[int] = []
            fails: list[str] = []

            async def one(i: int) -> None:
                async with sem:
                    s = time.perf_counter()
                    raw = await engine.recognize(pages[i % len(pages)])
                    lat.append(time.perf_counter() - s)
                    if raw.error or raw.completion_tokens is None:
                        fails.append(raw.error or "no usage")
                    else:
                        comp.append(raw.completion_tokens)

            m0 = metrics()
            c0 = time.process_time()
            w0 = time.perf_counter()
            await asyncio.gather(*(one(i) for i in range(n)))
            wall = time.perf_counter() - w0
            cpu = time.process_time() - c0
            m1 = metrics()
            lat.sort()
            out = {
                "concurrency": conc,
                "requests": n,
                "wall_s": round(wall, 2),
                "pages_per_s": round(n / wall, 2),
                "output_tokens_per_s": round(sum(comp) / wall, 1),
                "completion_tokens_mean": round(statistics.mean(comp), 1) if comp else None,
                "latency_p50_s": round(lat[len(lat) // 2], 3) if lat else None,
                "latency_p95_s": round(lat[int(len(lat) * 0.95) - 1], 3) if lat else None,
                "client_cpu_s_per_page": round(cpu / n, 4),
                "failed": len(fails),
                "fail_examples": fails[:3],
            }
            pt = metric(m1, "vllm:prompt_tokens_total")
            if pt is not None:
                out["server_prompt_tokens_per_page"] = round(
                    (pt - metric(m0, "vllm:prompt_tokens_total")) / n, 1
                )
            return out

        await batch(8, 8)  # warm-up
        for conc, n in ARGS.levels:
            if left() < 60 + n * 0.1:
                res["levels"].append({"concurrency": conc, "skipped": "deadline"})
                continue
            r = await batch(conc, n)
            log(
                f"f: c={conc} n={n}: {r['pages_per_s']} pages/s, "
                f"cpu/page {r['client_cpu_s_per_page']}"
            )
            res["levels"].append(r)
            REPORT["f_throughput"] = res
            save()
        await engine.aclose()
    finally:
        wire.max_tokens_for = orig
    REPORT["f_throughput"] = res
    save()


def run_section(name: str, fn: Any, *a: Any) -> None:
    if name not in ARGS.sections:
        return
    if name in REPORT.get("section_seconds", {}) and name not in REPORT.get("errors", {}):
        log(f"section {name}: done in an earlier run (--resume)")
        return
    if left() < 20:
        REPORT.setdefault("skipped", []).append(name)
        save()
        return
    log(f"section {name} ({left():.0f} s left)")
    t0 = time.perf_counter()
    try:
        out = fn(*a)
        if asyncio.iscoroutine(out):
            asyncio.run(out)
    except Exception as exc:
        REPORT.setdefault("errors", {})[name] = {
            "error": f"{type(exc).__name__}: {exc}",
            "trace": traceback.format_exc()[-3000:],
        }
        log(f"section {name} failed: {exc}")
    REPORT.setdefault("section_seconds", {})[name] = round(time.perf_counter() - t0, 1)
    save()


def main() -> None:
    global ARGS, DEADLINE
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base-url", default="http://127.0.0.1:8000/v1")
    p.add_argument("--model", default="deepseek-ai/DeepSeek-OCR")
    p.add_argument("--model-dir", default=".gpu/model", help="for tokenizer.json")
    p.add_argument("--max-model-len", type=int, default=4096, help="if /v1/models omits it")
    p.add_argument("--out", default=os.environ.get("OUT", "conformance-out"))
    p.add_argument("--work", default="/tmp/conformance")
    p.add_argument("--server-log", default=None)
    p.add_argument("--state", default=None, help="also save the report here (for --resume)")
    p.add_argument(
        "--resume", action="store_true", help="load --state and skip the sections it already holds"
    )
    p.add_argument("--sections", default="a,b,d,e1,f,e2")
    p.add_argument("--budget", type=float, default=420.0, help="seconds for the whole run")
    p.add_argument("--doc-pages", type=int, default=64)
    p.add_argument("--cli-concurrency", type=int, default=64)
    p.add_argument(
        "--e2-min-seconds",
        type=float,
        default=150.0,
        help="skip e2 (for a --resume) when less than this is left",
    )
    p.add_argument("--fixed-max-tokens", type=int, default=64)
    p.add_argument(
        "--levels",
        default="1:16,16:64,64:256,128:384",
        help="concurrency:requests pairs for section f",
    )
    ARGS = p.parse_args()
    ARGS.sections = set(ARGS.sections.split(","))
    ARGS.levels = [tuple(int(x) for x in lv.split(":")) for lv in ARGS.levels.split(",")]
    DEADLINE = time.time() + ARGS.budget
    if ARGS.resume and ARGS.state and Path(ARGS.state).exists():
        REPORT.update(json.loads(Path(ARGS.state).read_text()))
        REPORT.setdefault("resumed", []).append(time.strftime("%Y-%m-%d %H:%M:%S"))
        REPORT.get("errors", {}).clear()
        if REPORT.get("a_models", {}).get("max_model_len"):
            ARGS.max_model_len = int(REPORT["a_models"]["max_model_len"])
    ARGS.served_len = ARGS.max_model_len
    REPORT["args"] = {k: v for k, v in vars(ARGS).items() if k != "sections"}
    REPORT["sections_requested"] = sorted(ARGS.sections)
    with contextlib.suppress(Exception):
        import ocr_loaders

        REPORT["ocr_loaders_file"] = ocr_loaders.__file__
    files = make_inputs(Path(ARGS.work), ARGS.doc_pages)
    run_section("a", section_a)
    run_section("b", sections_b_c, files)
    run_section("d", section_d, files)
    run_section("e1", lambda: run_cli("e1", files["doc"], None, min(180.0, left() - 10)))
    run_section("f", section_f, files)
    if "e2" in ARGS.sections and left() < ARGS.e2_min_seconds:
        REPORT.setdefault("skipped", []).append(f"e2 (only {left():.0f} s left; needs a resume)")
        ARGS.sections.discard("e2")
    run_section("e2", lambda: run_cli("e2", files["doc"], ARGS.served_len, left() - 15))
    REPORT["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    save()
    log("done")


if __name__ == "__main__":
    main()
