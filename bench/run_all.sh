#!/usr/bin/env bash
# Every measurement docs/benchmarks.md shows, on this machine: pass costs (demo models and published
# shapes, f32/bf16/int8), the end-to-end sweep with accuracy, projection and plot, and the
# PyTorch reference timing (and, with LLAMA_CPP=1, llama.cpp side by side). Took 7-10 minutes on 2 cores (2026-11-27); BENCH_QUICK=1 times fewer shapes.
# Run it on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-build/fastdllm}
OUT=bench/results
mkdir -p $OUT
rm -f $OUT/passes.csv
echo "model,dtype,tokens,ms,tokens_per_s,weight_gbs,gflops,threads,best_ms,read_gbs" > $OUT/passes.csv
{
  echo "# Forward-pass cost"
  echo
  $BIN bench -m assets/models/demo-ar --dtype f32 --machine --reps 20 --csv $OUT/passes.csv
  for dt in bf16 int8; do $BIN bench -m assets/models/demo-ar --dtype $dt --reps 20 --csv $OUT/passes.csv | tail -n +3; done
  shapes="qwen2.5-0.5b:f32 qwen2.5-0.5b:bf16 qwen2.5-0.5b:int8 qwen2.5-1.5b:f32 qwen2.5-1.5b:bf16 qwen2.5-1.5b:int8 qwen2.5-7b:bf16 qwen2.5-7b:int8"
  [ "${BENCH_QUICK:-0}" = 1 ] && shapes="qwen2.5-1.5b:bf16 qwen2.5-1.5b:int8"
  for s in $shapes; do
    $BIN bench --shape ${s%%:*} --dtype ${s##*:} --reps 3 --csv $OUT/passes.csv | tail -n +3
  done
} | tee $OUT/passes.md
python3 bench/sweep.py --bin $BIN --passes $OUT/passes.csv
/usr/bin/python3 bench/torch_reference.py --bin $BIN --limit 10
/usr/bin/python3 bench/torch_reference.py --bin $BIN --limit 10 --cache dual-overlap --modes diffusion
# llama.cpp side by side (installs node-llama-cpp from npm once, writes ~11 GB of GGUF files to
# /tmp): only when asked, LLAMA_CPP=1.
if [ "${LLAMA_CPP:-0}" = 1 ]; then bench/side_by_side.sh; fi
