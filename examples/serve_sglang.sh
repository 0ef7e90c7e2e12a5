#!/usr/bin/env bash
# Serve DeepSeek-OCR(-2) with SGLang >= 0.5.5 (GPU machine).
# Launched with the hub id, SGLang uses its deepseek-ocr chat template, which puts <image>
# before the prompt itself: clients send the plain prompt.
# --enable-custom-logit-processor lets clients send the no-repeat n-gram processor
# (DeepseekOCRNoRepeatNGramLogitProcessor). Without it the server refuses the guard and
# ocr_loaders goes on without it (one warning). The server unpickles what clients send in that
# field, so keep it on a trusted network.
#   pip install 'sglang[all]>=0.5.5'
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
