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
  --reverse-max-len 7
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
