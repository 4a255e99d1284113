#!/usr/bin/env bash
# The real-base zoo (issue 18) on the GPU machine, one device call per seed.
#
#   bash benchmarks/real_zoo_device.sh MODE SEED [--set KEY=VALUE ...]
#
# MODE: measure  build the zoo, its greedy sanity table (base / MATH / LANG / base+dMATH+dLANG on
#                every split, skills included) and benchmarks/zoo_paths.py (sources, a
#                task-arithmetic grid, hand layer paths on the search split): the issue's
#                "measure first";
#       table    build the zoo and run benchmarks/zoo_table.py (sources, controls, hand merges,
#                PS, DFS, PS+DFS; held-out) with budgets for one 10-minute call (SANITY=1 adds
#                the sanity table, ~1 min);
#       build    the zoo only (and its sanity table).
# --set: the size preset's fields (`mergekit-evo zoo build --help`), e.g. --set math_lr=2e-4;
#        a zoo built with other settings is rebuilt.
#
# What it needs and where it keeps things (all on the machine, nothing travels back but $OUT):
#   /tmp/site          the wheels (installed from .whl when that is carried; it stays while the
#                      machine is warm, so the GGUF's part calls need not carry .whl again)
#   $GGUF              default /tmp/big/SmolLM2-135M-Instruct.Q4_1.gguf (split_for_device.sh)
#   /tmp/realzoo/base  the dequantised base, made once per machine from $GGUF
#   /tmp/realzoo/zoo-S the zoo of seed S (rebuilt when missing or built with other --set)
#   $OUT               zoo.json, sanity.json, paths-S.json, zoo-real-S.{json,md}, build-S.log
# The calls (from a checkout with .whl = `bash ../shared/device/wheelhouse.sh py3langid click`
# and the GGUF split: `bash ../shared/device/split_for_device.sh GGUF 20` -> .p1 ... .p5; 20 MB
# parts, since the first call also carries the tracked tree, ~12 MiB, and .whl, ~27 MiB), back to
# back: 1. carry [.whl, .p1]: pip install (README line) && cp .p1/part* /tmp/big/; 2-4. carry
# [.pK]: cp .pK/part* /tmp/big/; 5. carry [.p5]: join and check as split_for_device.sh prints,
# then `bash benchmarks/real_zoo_device.sh measure 0`; then, while the machine is warm,
# `bash benchmarks/real_zoo_device.sh table 0` and `... table 1` (no carry: the base is there).
# Budgets (environment): DEADLINE_S (default 570: every step stops in time to copy results),
# PS_TRIALS / DFS_TRIALS / PS_DFS_TRIALS (60 / 80 / 140), SEARCH_WALL (100 s per search: the
# rows are scored after the searches, so three capped searches must leave them time),
# LIMIT (search-split questions, 100), HELDOUT_LIMIT (all 400), HAND_GRID (0.5,1,1.5).
set -uo pipefail
cd "$(dirname "$0")/.."
T0=$(date +%s)
MODE=${1:?MODE: measure, table or build}
SEED=${2:?SEED}
shift 2
SETS=("$@")
for s in "${SETS[@]}"; do
  [[ $s == --set ]] && continue
  [[ $s == *=* ]] || { echo "bad argument: $s (expected --set KEY=VALUE)"; exit 2; }
done
case $MODE in measure|table|build) ;; *) echo "MODE: $MODE; valid: measure, table, build"; exit 2;; esac
OUT=${OUT:-/tmp/realzoo/out}
GGUF=${GGUF:-/tmp/big/SmolLM2-135M-Instruct.Q4_1.gguf}
ROOT=${ROOT:-/tmp/realzoo}
DEVICE=${DEVICE:-cuda}   # DEVICE=cpu SIZE=tiny BASE_FROM=HF_FOLDER: the CPU check of this script
SIZE=${SIZE:-gpu}
ZOO=$ROOT/zoo-$SEED
DEADLINE_S=${DEADLINE_S:-570}
mkdir -p "$OUT" "$ROOT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
left() { local n=$(( DEADLINE_S - ($(date +%s) - T0) )); echo $(( n > 1 ? n : 1 )); }
say() { echo "[real_zoo $(( $(date +%s) - T0 ))s] $*"; }

if [[ -d .whl ]]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
fi
export PYTHONPATH=/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}
python3 -c "import mergekit, lm_eval, optuna" 2>/dev/null \
  || { echo "no wheels: carry .whl (../shared/device/wheelhouse.sh) in this or an earlier call of this machine"; exit 1; }
say "wheels ready"

if [[ ! -f $ROOT/base/config.json ]]; then
  [[ -n ${BASE_FROM:-} || -f $GGUF ]] || { echo "no base yet and no GGUF at $GGUF: send it first (split_for_device.sh)"; exit 1; }
  python3 -c "
from pathlib import Path
from mergekit_evo.zoo.gguf import prepare_base
prepare_base(Path('$ROOT/base.tmp'), gguf=Path('$GGUF'), base_from='${BASE_FROM:-}' or None)" \
    || exit 1
  mv "$ROOT/base.tmp" "$ROOT/base"
  say "base dequantised"
fi

# the greedy sanity table (first SANITY_N=200 questions of every split): measure mode only by default
SANITY=${SANITY:-$([[ $MODE == table ]] && echo 0 || echo 1)}
STAMP="seed=$SEED ${SETS[*]}"
if [[ -f $ZOO/zoo.json && "$(cat "$ZOO/.stamp" 2>/dev/null)" == "$STAMP" ]]; then
  say "zoo $ZOO already built ($STAMP)"
else
  rm -rf "$ZOO" "$ROOT/work-$SEED"   # stale search folders would resume over new weights
  python3 -m mergekit_evo zoo build "$ZOO" --design real-base --size "$SIZE" --seed "$SEED" \
    --device "$DEVICE" --base-from "$ROOT/base" "${SETS[@]}" 2>&1 \
    | grep --line-buffered -v -e "it/s]" -e "s/it]" | tee "$OUT/build-$SEED.log"
  [[ -f $ZOO/zoo.json ]] || { say "build failed"; exit 1; }
  echo "$STAMP" > "$ZOO/.stamp"
  say "zoo built"
fi
if [[ $SANITY == 1 && ! -f $ZOO/sanity.json ]]; then
  python3 -c "
import json, sys
from mergekit_evo.zoo.evaluate import format_table, sanity_table
r = sanity_table('$ZOO', max_records=${SANITY_N:-200}, device='$DEVICE')
open('$ZOO/sanity.json', 'w').write(json.dumps(r, indent=2) + '\\n')
print(format_table(r))" 2>&1 | grep --line-buffered -v -e "it/s]" -e "s/it]" | tee "$OUT/sanity-$SEED.log"
  say "sanity table done"
fi
cp "$ZOO/zoo.json" "$OUT/zoo-$SEED.json"
[[ -f $ZOO/sanity.json ]] && cp "$ZOO/sanity.json" "$OUT/sanity-$SEED.json"

if [[ $MODE == measure ]]; then
  timeout "$(left)" python3 benchmarks/zoo_paths.py --zoo "$ZOO" --device "$DEVICE" \
    --candidates auto --batch-size 100 --limit "${LIMIT:-100}" --work "$ROOT/paths-$SEED" \
    --json "$OUT/paths-$SEED.json" 2>&1 | tee "$OUT/paths-$SEED.log"
  say "measure done"
elif [[ $MODE == table ]]; then
  # a search never resumes across calls: its folder is new each time (docs/zoo-gpu.md, seed 1)
  rm -rf "$ROOT/work-$SEED"
  timeout "$(left)" python3 benchmarks/zoo_table.py --zoo "$ZOO" --device "$DEVICE" \
    --candidates auto --batch-size 100 --hand-grid "${HAND_GRID:-0.5,1,1.5}" --proxy-search none \
    --skip dfs_cma --limit "${LIMIT:-100}" ${HELDOUT_LIMIT:+--heldout-limit $HELDOUT_LIMIT} \
    --ps-trials "${PS_TRIALS:-60}" --dfs-trials "${DFS_TRIALS:-80}" \
    --ps-dfs-trials "${PS_DFS_TRIALS:-140}" --search-wall "${SEARCH_WALL:-100}" \
    --title "The real-base zoo table (issue 18: fine-tunes of SmolLM2-135M-Instruct)" \
    --work "$ROOT/work-$SEED" --md "$OUT/zoo-real-$SEED.md" --json "$OUT/zoo-real-$SEED.json" \
    2>&1 | grep --line-buffered -v -e "it/s]" -e "s/it]" > "$OUT/table-$SEED.log"
  tail -n 40 "$OUT/table-$SEED.log"
  say "table done"
fi
say "total $(( $(date +%s) - T0 )) s"
