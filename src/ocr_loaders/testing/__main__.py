"""``python -m ocr_loaders.testing``: run the fake DeepSeek-OCR server in the foreground.

Prints the base URL on one line, then serves until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from .._defaults import DEFAULT_MODEL
from .content_faults import CONTENT_RATES, ContentFaultPlan, ContentFaultResponder
from .faults import RATE_ORDER, FaultPlan
from .responders import Responder, responder_from_spec
from .server import FakeOCRServer
from .versions import CONTEXT_STYLES, SGLANG_VERSIONS


def make_responder(spec: str) -> Responder:
    """``grid``, ``local``, ``static:TEXT``, ``fixtures:DIR`` or ``loop:N`` (every N-th loops)."""
    try:
        return responder_from_spec(spec)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ocr_loaders.testing",
        description="Fake DeepSeek-OCR server (vLLM or SGLang flavour).",
    )
    p.add_argument("--host", default="127.0.0.1", help="loopback address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--model",
        action="append",
        dest="models",
        metavar="NAME",
        help="served model name (repeatable; default deepseek-ai/DeepSeek-OCR)",
    )
    p.add_argument("--flavor", choices=("vllm", "sglang"), default="vllm")
    p.add_argument(
        "--responder",
        default="grid",
        help="grid | local | static:TEXT | fixtures:DIR | loop:N (default grid)",
    )
    p.add_argument("--max-model-len", type=int, default=8192)
    p.add_argument(
        "--context-style",
        choices=CONTEXT_STYLES,
        default=None,
        help="whose context-length checks and messages to reproduce "
        "(default vllm-0.26 for --flavor vllm, sglang for --flavor sglang)",
    )
    p.add_argument(
        "--unlisted-max-model-len",
        action="store_true",
        help="leave max_model_len out of /v1/models",
    )
    p.add_argument(
        "--enable-custom-logit-processor",
        action="store_true",
        help="SGLang: accept the n-gram custom logit processor (off by default, as in SGLang)",
    )
    p.add_argument(
        "--sglang-version",
        choices=SGLANG_VERSIONS,
        default="0.5.23",
        help="SGLang: whose image-placeholder refusal to reproduce",
    )
    p.add_argument("--slots", type=int, default=None, help="requests in service at once")
    p.add_argument("--service-time", type=float, default=0.0, help="seconds per request")
    p.add_argument(
        "--time-per-token", type=float, default=0.0, help="extra seconds per output token"
    )
    p.add_argument(
        "--service-jitter",
        type=float,
        default=0.0,
        help="vary each service time by up to this fraction (same mean)",
    )
    p.add_argument("--api-key", default=None)
    p.add_argument("--seed", type=int, default=0)
    for attr, fault in RATE_ORDER:
        flag = fault.replace("_", "-")
        p.add_argument(f"--fault-{flag}", dest=attr, type=float, default=0.0, metavar="RATE")
    p.add_argument(
        "--fault-script",
        default="",
        help="comma-separated outcomes for the first requests, e.g. 500,429,ok",
    )
    for attr, _content in CONTENT_RATES:  # answers that say the wrong thing (content_faults.py)
        flag = attr.replace("_", "-")
        p.add_argument(f"--fault-{flag}", dest=attr, type=float, default=0.0, metavar="RATE")
    p.add_argument(
        "--fault-share", type=float, default=0.4, help="share of words a content fault touches"
    )
    p.add_argument(
        "--fault-compress-ratio",
        type=float,
        default=0.0,
        metavar="RATIO",
        help="answers with more text tokens per vision token lose --fault-compress-drop",
    )
    p.add_argument("--fault-compress-drop", type=float, default=0.3, metavar="SHARE")
    p.add_argument("--retry-after", type=float, default=1.0)
    p.add_argument("--hang-seconds", type=float, default=10.0)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rates = {attr: getattr(args, attr) for attr, _fault in RATE_ORDER}
    script = tuple(s for s in args.fault_script.split(",") if s.strip())
    faults = FaultPlan(
        **rates, script=script, retry_after=args.retry_after, hang_seconds=args.hang_seconds
    )
    responder = make_responder(args.responder)
    content = ContentFaultPlan(
        **{attr: getattr(args, attr) for attr, _content in CONTENT_RATES},
        share=args.fault_share,
        compress_ratio=args.fault_compress_ratio,
        compress_drop=args.fault_compress_drop,
        seed=args.seed,
    )
    if content.active:
        responder = ContentFaultResponder(responder, content)
    server = FakeOCRServer(
        responder,
        models=tuple(args.models or [DEFAULT_MODEL]),
        host=args.host,
        port=args.port,
        flavor=args.flavor,
        max_model_len=args.max_model_len,
        context_style=args.context_style,
        list_max_model_len=not args.unlisted_max_model_len,
        enable_custom_logit_processor=args.enable_custom_logit_processor,
        sglang_version=args.sglang_version,
        slots=args.slots,
        service_time=args.service_time,
        time_per_token=args.time_per_token,
        service_jitter=args.service_jitter,
        faults=faults,
        seed=args.seed,
        api_key=args.api_key,
    )
    done = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    server.start()
    print(server.base_url, flush=True)
    try:
        while not done.wait(0.5):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
