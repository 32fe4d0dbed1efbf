#!/usr/bin/env bash
# The auxrec half of train_throughput.py on a CUDA machine (the `device` tool's GPU).
# Usage there, from the repo root, with the raw MovieLens folders copied to .gpu-data/ and
# pydantic's wheels in .whl/ (the GPU image lacks pydantic):
#   bash benchmarks/gpu_throughput.sh [BUDGET_SEC]
# Writes $OUT/train_throughput-gpu.json (or benchmarks/results/ when OUT is unset).
set -euo pipefail
budget=${1:-75}
out=${OUT:-benchmarks/results}
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
python3 benchmarks/train_throughput.py --tools auxrec --device cuda --budget-sec "$budget" \
  --shared-data .gpu-data --workdir /tmp/bench-gpu --out "$out/train_throughput-gpu.json"
