#!/bin/bash
# On the GPU machine, from the repository root, after the bundle's parts were sent:
#   bash benchmarks/gpu/remote.sh stash DIR      # copy DIR/bundle.tar.xz.part-* to /tmp/parts
#   bash benchmarks/gpu/remote.sh all [SECONDS]  # install, serve, run the conformance (default 560 s)
#   bash benchmarks/gpu/remote.sh resume [SECONDS]  # the server is still up: finish what is left
#   bash benchmarks/gpu/remote.sh inprocess [SECONDS]  # install, then the in-process engine
#   (inprocess.py: vllm.LLM in this process); SERVE_FLAGS adds flags to `vllm serve`
# Everything it prints also goes to $OUT/remote.log; the report is $OUT/conformance.json.
set -u
T0=$(date +%s)
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
REPO=$(pwd)
BUNDLE=/tmp/bundle
SITE=/tmp/site
LOG=/tmp/vllm.log
PORT=8000
el() { echo $(($(date +%s) - T0)); }
say() { echo "[$(date +%H:%M:%S) +$(el)s] $*"; }

export PYTHONPATH=$SITE:$REPO/src
export PATH=$SITE/bin:$PATH
export TIKTOKEN_CACHE_DIR=$BUNDLE/tiktoken   # tiktoken cannot download cl100k_base there
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1
export PYTHONUNBUFFERED=1
# vLLM 0.26 imports flashinfer to decide on its sampler unless told not to (flashinfer is not carried)
export VLLM_USE_FLASHINFER_SAMPLER=0
CONF_ARGS=${CONF_ARGS:-}   # extra conformance.py arguments, e.g. "--sections a,b,f"

stash() {
    mkdir -p /tmp/parts && cp "$1"/bundle.tar.xz.part-* /tmp/parts/ && ls -l /tmp/parts
    df -h /tmp | tail -1
}

install() {
    if [ -f $SITE/.installed ]; then say "already installed"; return 0; fi
    say "checking parts"
    (cd /tmp/parts && sha256sum -c "$REPO/benchmarks/gpu/bundle.sha256") || return 1
    mkdir -p $BUNDLE
    cat /tmp/parts/bundle.tar.xz.part-* | xz -dc -T0 | tar -xf - -C $BUNDLE || return 1
    say "unpacked: $(du -sh $BUNDLE | cut -f1)"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target $SITE \
        $BUNDLE/stage/*.whl || return 1
    # openai 3.x (through httpx2) imports truststore; bundles made before it was added to
    # wheels.txt lack it: a stub is enough for plain-http loopback calls
    python3 -c "import sys; sys.path.insert(0, '$SITE'); import truststore" 2>/dev/null ||
        printf 'import ssl\nSSLContext = ssl.SSLContext\ndef inject_into_ssl():\n    pass\ndef extract_from_ssl():\n    pass\n' >$SITE/truststore.py
    # byte-compile once (16 cores): the server's processes then skip compiling vLLM's modules at
    # each start (added after the recorded runs, which used --no-compile and no bytecode cache)
    python3 -m compileall -q -j 0 $SITE >/dev/null 2>&1 || true
    touch $SITE/.installed
    say "installed $(ls $BUNDLE/stage | wc -l) wheels into $SITE"
}

versions() {
    nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv,noheader
    python3 - <<'EOF'
import importlib, sys
print("python", sys.version.split()[0])
for m in ("torch", "transformers", "tokenizers", "numpy", "vllm", "openai", "pymupdf",
          "tiktoken", "pydantic", "fastapi", "xgrammar", "triton"):
    try:
        mod = importlib.import_module(m)
        print(f"{m} {getattr(mod, '__version__', getattr(mod, 'VersionBind', '?'))} {mod.__file__}")
    except Exception as exc:
        print(f"{m} IMPORT FAILED: {type(exc).__name__}: {exc}")
import torch
print("cuda", torch.version.cuda, torch.cuda.is_available(), torch.cuda.get_device_capability())
EOF
}

serve() {  # $@: extra flags
    say "vllm serve $*"
    setsid nohup python3 -m vllm.entrypoints.cli.main serve $BUNDLE/model \
        --served-model-name deepseek-ai/DeepSeek-OCR \
        --logits_processors vllm.model_executor.models.deepseek_ocr:NGramPerReqLogitsProcessor \
        --no-enable-prefix-caching --mm-processor-cache-gb 0 \
        --load-format dummy --max-model-len 4096 --port $PORT ${SERVE_FLAGS:-} "$@" >$LOG 2>&1 </dev/null &
    echo $! >/tmp/vllm.pid
}

healthy() {
    python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/health', timeout=2)" 2>/dev/null
}

wait_health() {  # $1: seconds; 0 healthy, 1 died, 2 timeout
    local t=$(($(date +%s) + $1))
    while [ "$(date +%s)" -lt $t ]; do
        if healthy; then return 0; fi
        if ! kill -0 "$(cat /tmp/vllm.pid)" 2>/dev/null; then return 1; fi
        sleep 2
    done
    return 2
}

bring_up() {  # start, report versions while it loads, wait; one retry with --enforce-eager if it dies
    local s0 rc
    s0=$(date +%s)
    serve
    versions 2>&1 | tee "$OUT/versions.txt"
    wait_health "${1:-400}"; rc=$?
    if [ $rc -eq 1 ]; then
        say "first start died; log tail:"; tail -n 60 $LOG
        cp $LOG "$OUT/vllm-first-try.log"
        s0=$(date +%s)
        serve --enforce-eager
        wait_health 200; rc=$?
    fi
    echo "startup_seconds=$(($(date +%s) - s0)) rc=$rc (0 up, 1 died, 2 still starting) eager=$(grep -c enforce-eager /proc/$(cat /tmp/vllm.pid)/cmdline 2>/dev/null)" | tee "$OUT/startup.txt"
    grep -E "Loading weights|Model loading took|torch.compile|ompil|graph|KV cache|Maximum concurrency|init engine|Starting vLLM|Using .*backend|FLASH" $LOG | tail -n 40 >>"$OUT/startup.txt"
    return $rc
}

finish() {
    tail -c 1500000 $LOG >"$OUT/vllm.log" 2>/dev/null
    say "end"
}

case "${1:-all}" in
inprocess)
    BUDGET=${2:-300}
    exec > >(tee -a "$OUT/remote.log") 2>&1
    install || { say "INSTALL FAILED"; exit 3; }
    say "in-process engine"
    timeout "$BUDGET" python3 benchmarks/gpu/inprocess.py --model-dir $BUNDLE/model --out "$OUT"
    say "in-process engine done (rc $?)"
    ;;
stash)
    stash "$2"
    ;;
all)
    BUDGET=${2:-560}
    exec > >(tee -a "$OUT/remote.log") 2>&1
    install || { say "INSTALL FAILED"; exit 3; }
    if ! bring_up 400; then say "SERVER NOT UP"; tail -n 120 $LOG; finish; exit 4; fi
    python3 -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:$PORT/v1/models').read().decode())"
    python3 benchmarks/gpu/conformance.py --model-dir $BUNDLE/model --server-log $LOG \
        --out "$OUT" --state /tmp/conf-state/conformance.json --budget $((BUDGET - $(el))) $CONF_ARGS
    finish
    ;;
resume)
    BUDGET=${2:-560}
    exec > >(tee -a "$OUT/remote.log") 2>&1
    wait_health 300 || { say "server is not up"; tail -n 120 $LOG; finish; exit 4; }
    say "server up"
    python3 benchmarks/gpu/conformance.py --model-dir $BUNDLE/model --server-log $LOG \
        --out "$OUT" --state /tmp/conf-state/conformance.json --resume --budget $((BUDGET - $(el))) $CONF_ARGS
    finish
    ;;
esac
