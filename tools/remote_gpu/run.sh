#!/bin/bash
# One-shot GPU reproduction: train until the deadline, then pack what finished into $OUT.
# Usage, in the repository root on the GPU machine (see README.md beside this file):
#   bash tools/remote_gpu/run.sh SECONDS JOBS DATASET [WORKDIR]
set -u
BUDGET=${1:-470}; JOBS=${2:-14}; NAME=${3:-ml-1m}; WORK=${4:-/work/runs-rep/$NAME}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
T0=$(date +%s)
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
if ! python3 -c "import pydantic" 2>/dev/null; then  # missing from the GPU image: wheels carried in .device/whl
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .device/whl/*.whl || exit 1
  export PYTHONPATH=$PYTHONPATH:/tmp/site
fi
# The prepared data and embedded features travel; run records keep the work folder's absolute path.
if [ -d .device/prepared ] && [ ! -d "$WORK/prepared" ]; then mkdir -p "$WORK" && cp -r .device/prepared "$WORK/prepared"; fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
(while sleep 45; do nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader; done) > "$OUT/gpu.log" 2>&1 &
LEFT=$(( BUDGET - ($(date +%s) - T0) ))
echo "training for at most $LEFT s, $JOBS runs at a time"
# --cached-features: the raw images and encoders stay behind; reports rendered here are thrown away.
timeout -k 20 -s INT $LEFT python3 -c "from auxrec.cli import main; main()" reproduce all --dataset "$NAME" \
  --workdir "$WORK" --reports "/tmp/reports-$NAME" --jobs "$JOBS" --cached-features --no-progress > "$OUT/train.log" 2>&1
echo "training rc=$? after $(( $(date +%s) - T0 )) s"
python3 tools/remote_gpu/pack.py "$WORK" "/tmp/$NAME-gpu.tar.gz"
split -b 15m -d "/tmp/$NAME-gpu.tar.gz" "$OUT/$NAME-gpu.tar.gz.part"  # the transfer takes files of at most 16 MiB
ls -la "$OUT"; tail -n 25 "$OUT/train.log"
echo "total $(( $(date +%s) - T0 )) s"
