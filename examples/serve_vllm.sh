#!/usr/bin/env bash
# Serve DeepSeek-OCR with vLLM (GPU machine; >= 8 GB of GPU memory, vLLM >= 0.11.1; 0.11.0
# cannot serve DeepSeek-OCR).
# The n-gram logits processor is what the client's "vllm_xargs" configure per request;
# prefix caching and the multimodal processor cache only cost memory for one-shot pages.
# The client reads --max-model-len from /v1/models and sizes max_tokens from it.
#   pip install 'vllm>=0.11.1'
#   bash examples/serve_vllm.sh            # then: export DEEPSEEK_OCR_BASE_URL=http://HOST:8000/v1
set -euo pipefail
MODEL="${MODEL:-deepseek-ai/DeepSeek-OCR}"   # or deepseek-ai/DeepSeek-OCR-2
PORT="${PORT:-8000}"
exec vllm serve "$MODEL" \
  --port "$PORT" \
  --logits_processors vllm.model_executor.models.deepseek_ocr:NGramPerReqLogitsProcessor \
  --no-enable-prefix-caching \
  --mm-processor-cache-gb 0 \
  --max-model-len 8192 \
  "$@"
