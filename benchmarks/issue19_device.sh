#!/bin/bash
# Issue 19 in one device call (nvidia-h200, timeout_s 600): the benchmark, then the GPU tests.
#
#   carry: [".whl", ".data"]    (.whl: bash ../shared/device/wheelhouse.sh py3langid click;
#                                .data: mkdir -p .data && cp -r ../shared/data/gsm8k .data/)
#   command: bash benchmarks/issue19_device.sh
#
# Everything lands in $OUT: benchmarks.json (rewritten as each stage ends, so a call cut short
# keeps what it measured), bench.log, pytest-gpu.log, gpu.txt.  Budget (seconds of the call):
# BENCH_BUDGET for the benchmark's stages (a stage that would not fit is skipped and listed
# under "skipped"), the rest up to CALL_BUDGET for `pytest -m gpu`.  Stage order: 7b before zoo,
# so the 7B goals are measured even when the zoo's float32 checks run long (the 2026-12-03 run:
# 0.37b 143 s; see NEEDS in candidate_cost.py for the other estimates).
set -u
start=$(date +%s)
OUT=${OUT:-/tmp/out19}
mkdir -p "$OUT"
CALL_BUDGET=${CALL_BUDGET:-580}
BENCH_BUDGET=${BENCH_BUDGET:-445}
if [ -z "${SKIP_INSTALL:-}" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false MERGEKIT_EVO_DATA=${MERGEKIT_EVO_DATA:-$PWD/.data}
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv \
  > "$OUT/gpu.txt" 2>&1
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" \
  2>&1 | tee -a "$OUT/gpu.txt"
used=$(( $(date +%s) - start ))
python3 benchmarks/candidate_cost.py --stages "${STAGES:-0.37b,7b,zoo,zoo-fixture}" \
  --work /tmp/w19 --deadline $(( BENCH_BUDGET - used )) --json "$OUT/benchmarks.json" \
  ${BENCH_ARGS:-} 2>&1 | tee "$OUT/bench.log"
left=$(( CALL_BUDGET - ($(date +%s) - start) ))
echo "benchmark done after $(( $(date +%s) - start )) s; ${left} s left for the GPU tests"
if [ "$left" -gt 45 ]; then
  timeout "$left" python3 -m pytest -v -m gpu tests/gpu -p no:cacheprovider -rs 2>&1 \
    | tee "$OUT/pytest-gpu.log"
else
  echo "no time left for the GPU tests" | tee "$OUT/pytest-gpu.log"
fi
tail -n 40 "$OUT/bench.log"
