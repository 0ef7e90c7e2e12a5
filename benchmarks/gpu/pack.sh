#!/bin/bash
# Build the bundle that brings vLLM 0.26.0 + DeepSeek-OCR (config only) + the client's
# dependencies to the GPU machine, in parts that fit one device call each.
# Run on the development machine, from the repository root:  bash benchmarks/gpu/pack.sh
# Needs: a CPython 3.12 for `pip download` (pyenv's here), xz, ../shared/deepseek-ocr-model.
# Output (ignored by git through .git/info/exclude '/.gpu/'):
#   .gpu/p1/bundle.tar.xz.part-aa, .gpu/p2/...-ab, .gpu/p3/...-ac   (one folder per call's carry)
#   benchmarks/gpu/bundle.sha256  (checked on the GPU machine before unpacking)
set -euo pipefail
PY=${PY:-/root/.pyenv/versions/3.12.1/bin/python}
PART=${PART:-55M}
G=.gpu
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >>.git/info/exclude
mkdir -p $G/vllm $G/whl $G/stage
PLAT=(--only-binary=:all: --python-version 3.12 --implementation cp
      --platform manylinux_2_35_x86_64 --platform manylinux_2_34_x86_64
      --platform manylinux_2_31_x86_64 --platform manylinux_2_28_x86_64
      --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
      --platform manylinux1_x86_64)

# 1. wheels: vLLM itself and the exact set (benchmarks/gpu/wheels.txt) that the GPU machine lacks
$PY -m pip download -q --no-deps "${PLAT[@]}" -d $G/vllm vllm==0.26.0
$PY -m pip download -q --no-deps "${PLAT[@]}" -d $G/whl -r benchmarks/gpu/wheels.txt

# 2. vLLM without what an H200 never runs (FA2, Blackwell attention, Rust frontend), stored
#    uncompressed; the other wheels re-stored uncompressed too, so xz sees the raw bytes
rm -rf $G/stage && mkdir -p $G/stage
python3 benchmarks/gpu/strip_vllm.py $G/vllm/vllm-0.26.0-*.whl $G/stage
python3 benchmarks/gpu/restore_wheels.py $G/stage $G/whl/*.whl

# 3. model config + tokenizer (no weights: served with --load-format dummy) and tiktoken's
#    cl100k_base table (the GPU machine has no internet; llama-index-core ships this copy)
rm -rf $G/model $G/tiktoken
cp -r ../shared/deepseek-ocr-model $G/model && chmod -R u+w $G/model
TT=$(python3 -c "import llama_index.core, os; print(os.path.join(os.path.dirname(llama_index.core.__file__), '_static', 'tiktoken_cache'))")
cp -r "$TT" $G/tiktoken

# 4. one xz stream, split into parts of $PART
rm -rf $G/p1 $G/p2 $G/p3 $G/p4 $G/parts && mkdir -p $G/parts
tar -cf - -C $G stage model tiktoken | xz -T2 -9 | split -b "$PART" -a 2 - $G/parts/bundle.tar.xz.part-
(cd $G/parts && sha256sum bundle.tar.xz.part-*) >benchmarks/gpu/bundle.sha256
i=1
for f in $G/parts/bundle.tar.xz.part-*; do mkdir -p $G/p$i && mv "$f" $G/p$i/ && i=$((i + 1)); done
ls -l $G/p*/
