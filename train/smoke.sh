#!/usr/bin/env bash
# Tiny end-to-end run of the recipe for CI (CPU, well under 2 minutes):
# data -> 400-token BPE -> a few AR steps -> a few block-diffusion steps -> export both.
#   bash train/smoke.sh OUTDIR      (writes OUTDIR/ar and OUTDIR/dllm, HF folders)
# Works without the optional data packages (fortunes, wordnet, wamerican): make_data.py falls
# back to built-in word lists. Needs python3 with torch (python3-torch) and regex (python3-regex).
set -euo pipefail
OUT=${1:?usage: train/smoke.sh OUTDIR}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for c in /usr/bin/python3 python3; do
    if "$c" -c "import torch, regex" 2>/dev/null; then PY=$c; break; fi
  done
fi
if [ -z "$PY" ]; then echo "smoke: no python3 with torch and regex (apt-get install python3-torch python3-regex)" >&2; exit 1; fi
mkdir -p "$OUT"
set -x
"$PY" "$HERE/make_data.py" --seed 7 --n 3000 --out "$OUT/data" --eval-dir "$OUT/eval" --n-eval 10 --multi-turn 0.2 \
  --reverse-max-len 7 --exclude-eval-seeds 9
# The sets of eval seed 9 (a validation draw) must be kept out of training too.
"$PY" "$HERE/make_data.py" --seed 7 --eval-seed 9 --n 1 --out "$OUT/data_val" --eval-dir "$OUT/val" --n-eval 10
"$PY" - "$OUT" <<'PYCHECK'
import json, re, sys
out = sys.argv[1]
held = set()
for fam in ("spell", "reverse", "arithmetic", "sort"):
    for line in open(f"{out}/val/{fam}.jsonl"):
        held.add(json.loads(line)["prompt"])
words = {re.findall(r"[A-Za-z]+", p)[-1].lower() for p in held if p.startswith(("Spell", "Reverse"))}
bad = 0
for line in open(f"{out}/data/train.jsonl"):
    r = json.loads(line)
    msgs = r.get("messages", [])
    bad += any(m["role"] == "user" and m["content"] in held for m in msgs)
    for m in msgs:  # every answer, history turns included: "g-a-r-d-e-n", "The reverse of garden is ..."
        if m["role"] != "assistant":
            continue
        a = m["content"]
        if re.fullmatch(r"[a-z](-[a-z])+", a):
            bad += a.replace("-", "") in words
        elif a.startswith("The reverse of "):
            bad += a.split()[3] in words
assert bad == 0, f"{bad} training questions use items of the excluded eval seed"
print("smoke: eval seed 9's items are absent from training")
PYCHECK
"$PY" "$HERE/bpe.py" --corpus "$OUT/data/corpus.txt" --vocab-size 400 --out "$OUT/tok"
"$PY" "$HERE/train.py" --data "$OUT/data/train.jsonl" --tok "$OUT/tok" --runs "$OUT/runs" \
  --export-ar "$OUT/ar" --export-dllm "$OUT/dllm" --eval-arith "" \
  --hidden 64 --layers 2 --heads 4 --kv-heads 2 --inter 176 --seq 128 --batch 4 --dllm-batch 2 \
  --ar-steps 6 --dllm-steps 6 --warmup 2 --log-every 2 --budget-min 1.5 --ar-frac 0.5 --threads 2
# The multi-process (DistributedDataParallel, Gloo) path: two ranks continue the conversion for a
# few steps from the AR checkpoint and export.
MASTER_PORT=${MASTER_PORT:-29533} PYTHON="$PY" bash "$HERE/ddp_local.sh" 2 --phases dllm --init "$OUT/runs/ar.pt" \
  --data "$OUT/data/train.jsonl" --tok "$OUT/tok" --runs "$OUT/runs_ddp" --export-ar "" --export-dllm "$OUT/dllm_ddp" \
  --eval-arith "" --hidden 64 --layers 2 --heads 4 --kv-heads 2 --inter 176 --seq 128 --dllm-batch 2 \
  --dllm-steps 4 --warmup 2 --log-every 2 --budget-min 1 --threads 1
# Pre-tokenized data (train/docs.py) packed by two data-loader worker processes, continuing the
# conversion from the exported dLLM folder (train.py --init FOLDER), as the GPU run does.
"$PY" "$HERE/docs.py" --data "$OUT/data/train.jsonl" --tok "$OUT/tok" --out "$OUT/data/train.tok.xz" --seq 128
"$PY" "$HERE/train.py" --phases dllm --init "$OUT/dllm" --data "$OUT/data/train.tok.xz" --tok "$OUT/tok" \
  --runs "$OUT/runs_cont" --export-ar "" --export-dllm "$OUT/dllm_cont" --eval-arith "" --hidden 64 --layers 2 \
  --heads 4 --kv-heads 2 --inter 176 --seq 128 --dllm-batch 2 --dllm-steps 4 --warmup 2 --log-every 2 \
  --budget-min 1 --threads 2 --workers 2
# Checkpoint averaging (train/average.py): a folder averaged with itself is the same file,
# and the average of two exports is their midpoint (to BF16 rounding, relative 2^-8).
"$PY" "$HERE/average.py" --out "$OUT/avg_self" "$OUT/dllm:1" "$OUT/dllm:3"
cmp "$OUT/avg_self/model.safetensors" "$OUT/dllm/model.safetensors"
"$PY" "$HERE/average.py" --out "$OUT/avg" "$OUT/dllm:1" "$OUT/dllm_cont:1"
"$PY" - "$OUT" "$HERE" <<'PYCHECK'
import sys, numpy as np
sys.path.insert(0, sys.argv[2])
from average import load
out = sys.argv[1]
_, a = load(f"{out}/dllm"); _, b = load(f"{out}/dllm_cont"); _, m = load(f"{out}/avg")
worst = max(float(np.max(np.abs(m[n] - (a[n] + b[n]) / 2) / (np.abs((a[n] + b[n]) / 2) + 1e-30))) for n in m)
assert worst <= 2 ** -7, f"average is off the midpoint by {worst}"
print(f"smoke: average.py gives the midpoint (worst relative error {worst:.1e})")
PYCHECK
