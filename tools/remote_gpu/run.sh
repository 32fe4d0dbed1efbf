#!/bin/bash
# One-shot GPU reproduction: train until the deadline, then pack what finished.
# Usage (repo root on the GPU machine, tools/remote_gpu/ and the wheels in .device/ beside it):
#   bash tools/remote_gpu/run.sh SECONDS JOBS DATASET [WORKDIR]
set -u
NAME=${3:-ml-1m}; WORK=${4:-/work/runs-rep/$NAME}
T0=$(date +%s)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .device/whl/*.whl || exit 1
export PYTHONPATH=$PWD/src:/tmp/site OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
mkdir -p $WORK && cp -r .device/prepared $WORK/prepared
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader; nproc; python3 -c "import torch, pandas; print(torch.__version__, pandas.__version__, torch.cuda.is_available())"
BUDGET=${1:-470}
LEFT=$(( BUDGET - ($(date +%s) - T0) ))
(while sleep 45; do nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader; done) > $OUT/gpu.log 2>&1 &
echo "training for at most $LEFT s with ${2:-14} jobs"
timeout -k 20 -s INT $LEFT python3 tools/remote_gpu/gpu_run.py configs/$NAME.toml $WORK ${2:-14} > $OUT/train.log 2>&1
echo "training rc=$? after $(( $(date +%s) - T0 )) s"
sleep 2
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
python3 tools/remote_gpu/pack.py $WORK /tmp/gpu.tar.gz
split -b 15m -d /tmp/gpu.tar.gz $OUT/$NAME-gpu.tar.gz.part; ls -la $OUT
grep -c "s)$" $OUT/train.log
tail -n 25 $OUT/train.log
echo "total $(( $(date +%s) - T0 )) s"
