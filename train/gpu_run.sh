#!/usr/bin/env bash
# One-shot GPU run: trains two candidate demo pairs side by side on one CUDA GPU (both fit many
# times over), each an AR phase from scratch then the Fast-dLLM v2 conversion, and packs the
# exports and logs into $OUT as it goes, so a run cut off by a time limit still returns its last
# exports. Meant for a machine with a hard time limit that returns at most 8 files.
#
#   OUT=/some/dir bash train/gpu_run.sh DATA.tok.xz [MINUTES] [TOKENIZER_DIR]
#
# DATA: pre-tokenized documents (train/docs.py). MINUTES: wall-clock budget of each job, both
# phases (default 8). Candidates: A = the shipped shape (hidden 256, 6 layers, 5.4M parameters),
# B = hidden 320, 7 layers, 9.1M parameters. $OUT gets A_ar.tar, A_dllm.tar, B_ar.tar.00/.01,
# B_dllm.tar.00/.01 (tar of config.json + model.safetensors, split below 16 MiB) and logs.tar.
# Unpack: cat B_dllm.tar.* | tar -x -C DIR; then add the tokenizer files of assets/models/demo-ar.
# GPU_RUN_DEVICE=cpu GPU_RUN_EXTRA="--batch 8 --dllm-batch 4 --workers 1" rehearses the script
# without a GPU (with smaller batches: the GPU ones need more than 24 GB of memory).
set -uo pipefail
DATA=${1:?usage: OUT=DIR bash train/gpu_run.sh DATA.tok.xz [MINUTES] [TOKENIZER_DIR]}
MIN=${2:-8}
TOK=${3:-assets/models/demo-ar}
OUT=${OUT:?set OUT to the folder for results}
PY=${PYTHON:-python3}
W=${GPU_RUN_WORK:-/tmp/fastdllm-gpu-run}
export PYTHONUNBUFFERED=1
rm -rf "$W" && mkdir -p "$W/pack" "$OUT"
t0=$(date +%s)

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc; free -g | head -2
  "$PY" -c "import sys, torch; print(sys.version.split()[0], torch.__version__, torch.cuda.get_device_name(0))"
} > "$W/machine.txt" 2>&1
cat "$W/machine.txt"

common=(--device "${GPU_RUN_DEVICE:-cuda}" --data "$DATA" --tok "$TOK" --budget-min "$MIN" --ar-frac 0.5 --batch 128
        --dllm-batch 64 --lr 3e-3 --dllm-lr 1e-3 --warmup 100 --workers 5 --eval-n 50 --eval-min 0
        --ckpt-min 1 --log-every 50)
declare -A shape=(
  [A]="--hidden 256 --layers 6 --heads 4 --kv-heads 2 --inter 688"
  [B]="--hidden 320 --layers 7 --heads 5 --kv-heads 1 --inter 896"
)
pids=()
seed=11
for j in A B; do
  mkdir -p "$W/$j"
  # shellcheck disable=SC2086
  timeout "$("$PY" -c "print(int($MIN * 60 + 120))")" "$PY" train/train.py "${common[@]}" ${shape[$j]} --seed $seed \
    --runs "$W/$j" --export-ar "$W/$j/ar" --export-dllm "$W/$j/dllm" ${GPU_RUN_EXTRA:-} > "$W/$j/log.txt" 2>&1 &
  pids+=($!)
  seed=$((seed + 1))
done

# Pack a finished export (export.py renames a complete folder into place) into $OUT, split
# below the 16 MiB per-file limit; written under another name first, then renamed.
pack() {
  local j=$1 m=$2 d="$W/$1/$2" stamp
  [ -f "$d/config.json" ] || return 0
  stamp=$(stat -c %Y "$d/config.json")
  [ "$(cat "$W/pack/$j$m.stamp" 2>/dev/null)" = "$stamp" ] && return 0
  rm -f "$W/pack/${j}_$m".tar*
  tar -cf "$W/pack/${j}_$m.tar" -C "$d" config.json $(cd "$d" && ls ./*.safetensors* | sed 's|^\./||') || return 0
  if [ "$(stat -c %s "$W/pack/${j}_$m.tar")" -gt 15000000 ]; then
    split -b 15000000 -d -a 2 "$W/pack/${j}_$m.tar" "$W/pack/${j}_$m.tar."
    rm "$W/pack/${j}_$m.tar"
  fi
  for f in "$W/pack/${j}_$m".tar*; do cp "$f" "$OUT/.$(basename "$f").part" && mv "$OUT/.$(basename "$f").part" "$OUT/$(basename "$f")"; done
  echo "$stamp" > "$W/pack/$j$m.stamp"
  echo "[gpu_run] packed ${j}_$m at $(( $(date +%s) - t0 )) s"
}
logs() {
  tar -cf "$W/pack/logs.tar" -C "$W" machine.txt A/log.txt A/metrics.jsonl B/log.txt B/metrics.jsonl 2>/dev/null
  cp "$W/pack/logs.tar" "$OUT/.logs.part" && mv "$OUT/.logs.part" "$OUT/logs.tar"
}

while :; do
  alive=0
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
  for j in A B; do for m in ar dllm; do pack $j $m; done; done
  logs
  for j in A B; do echo "$j: $(grep '"step"' "$W/$j/log.txt" 2>/dev/null | tail -n 1 | cut -c1-200)"; done
  [ $alive = 0 ] && break
  sleep 15
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
for j in A B; do for m in ar dllm; do pack $j $m; done; done
logs
echo "[gpu_run] done in $(( $(date +%s) - t0 )) s, rc=$rc"
for j in A B; do echo "== $j"; grep -E '"(phase_done|phase_eval|data|model)"' "$W/$j/log.txt" | cut -c1-300; grep -m5 -iE 'error|traceback' "$W/$j/log.txt"; done
ls -la "$OUT"
exit $rc
