#!/usr/bin/env bash
# Serve DeepSeek-OCR(-2) with SGLang (GPU machine).
# --enable-custom-logit-processor lets clients send the no-repeat n-gram processor; the server
# unpickles what clients send, so keep it on a trusted network.
#   pip install 'sglang[all]'
#   bash examples/serve_sglang.sh          # then: export DEEPSEEK_OCR_BASE_URL=http://HOST:30000/v1
set -euo pipefail
MODEL="${MODEL:-deepseek-ai/DeepSeek-OCR-2}"
PORT="${PORT:-30000}"
exec sglang serve \
  --model-path "$MODEL" \
  --port "$PORT" \
  --enable-multimodal \
  --enable-custom-logit-processor \
  "$@"
