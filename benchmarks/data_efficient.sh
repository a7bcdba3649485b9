#!/usr/bin/env bash
# The data-efficient comparison: the default DCGAN recipe on the first 10% of the
# training split, without augmentation, with DiffAugment and with ADA (and a second seed of
# the plain run, for the spread), 4,000 steps each at equal seeds, two runs at a time.
#
#   bash benchmarks/data_efficient.sh [OUT_DIR] [STEPS]     (default /tmp/data_efficient, 4000)
#
# Each run's FD every 1,000 steps is in OUT_DIR/<name>/metrics.jsonl ("eval" records), its
# grids in OUT_DIR/<name>/samples; the table at the end. About 30 minutes on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/data_efficient}
steps=${2:-4000}
python=${PYTHON:-python}
mkdir -p "$out"

run() {
  local name=$1
  shift
  rm -rf "${out:?}/$name"
  "$python" experiments/mnist.py --config=experiments/configs/mnist.py:full \
    --config.data_fraction=0.1 --config.steps="$steps" \
    --config.width=0.5 --config.eval_every=1000 --config.progress=False "$@" \
    --workdir="$out/$name" > "$out/$name.log" 2>&1
}

run none --config.augment=none &
run diffaugment --config.augment=diffaugment &
wait
run ada --config.augment=ada --config.ada_kimg=100 &
run none_seed1 --config.augment=none --config.seed=1 &
wait

"$python" - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
for name in ("none", "none_seed1", "diffaugment", "ada"):
  with open(os.path.join(out, name, "metrics.jsonl")) as f:
    evals = [json.loads(line) for line in f if '"eval"' in line]
  cells = ", ".join(f"{r['step']}: FD {r['eval']['fd']:.2f} ({r['eval']['coverage']}/10)"
                    for r in evals)
  print(f"{name:12s} {cells}")
PY
