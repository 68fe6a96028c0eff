#!/usr/bin/env bash
# The CLI's defaults against the post's settings, measured as a user would run them:
# `flowmatch train` then `flowmatch reflow` on the spiral, each model evaluated on
# fresh samples (eval seed 1000 + S, never a training seed). Prints the table in README.md.
#
#   tests/scripts/defaults.sh BINARY OUT_DIR "SEEDS"
#   TRAIN_FLAGS="--recipe post" REFLOW_FLAGS="--recipe post --pairs online" \
#     tests/scripts/defaults.sh target/release/flowmatch /tmp/post "0 1 2 3 4"
set -euo pipefail
bin=$1 out=$2 seeds=$3
read -r -a train_flags <<< "${TRAIN_FLAGS:-}"
read -r -a reflow_flags <<< "${REFLOW_FLAGS:-}"
mkdir -p "$out"
ratio() { python3 -c 'import json,sys; print("%.3f" % json.load(sys.stdin)["w2_ratio"])'; }
echo "| seed | flow matching, RK4 × 20: W2 / floor | reflow, Euler × 1: W2 / floor | train (s) | reflow (s) |"
echo "|---:|---:|---:|---:|---:|"
for seed in $seeds; do
  fm="$out/fm-$seed" rf="$out/rf-$seed"
  start=$(date +%s.%N)
  "$bin" train --target spiral --seed "$seed" --threads 2 --force --out "$fm" "${train_flags[@]}" 2>/dev/null
  middle=$(date +%s.%N)
  "$bin" reflow --teacher "$fm/model.safetensors" --seed "$seed" --threads 2 --force --out "$rf" "${reflow_flags[@]}" 2>/dev/null
  end=$(date +%s.%N)
  flow=$("$bin" eval --model "$fm/model.safetensors" --seed $((1000 + seed)) --threads 2 | ratio)
  reflow=$("$bin" eval --model "$rf/model.safetensors" --seed $((1000 + seed)) --threads 2 --solver euler --steps 1 | ratio)
  python3 -c "import sys; print('| %s | %s | %s | %.1f | %.1f |' % (sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[5]) - float(sys.argv[4]), float(sys.argv[6]) - float(sys.argv[5])))" \
    "$seed" "$flow" "$reflow" "$start" "$middle" "$end"
done
