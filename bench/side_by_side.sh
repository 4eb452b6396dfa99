#!/usr/bin/env bash
# fastdllm against llama.cpp on this machine, in one run: for each precision pair the engine is
# timed, then llama.cpp, then the engine again, so a drift of the VM's memory bandwidth during the
# run shows up as a gap between the two engine runs instead of passing for a speed difference.
set -euo pipefail
cd "$(dirname "$0")/.."

SHAPE=qwen2.5-1.5b
REPS=5
PAIRS="f32:f32 bf16:f16 int8:q8_0"
BIN=${BIN:-build/fastdllm}
OUT=bench/results

usage() {
  cat <<EOF
usage: bench/side_by_side.sh [--shape NAME] [--reps N] [--pairs "f32:f32 bf16:f16 int8:q8_0"]

Decode (one token per pass) and prompt (512 tokens in one pass) speed of the engine
(\`fastdllm bench --shape NAME --dtype D --tokens 1,512\`, random weights built in memory) and of
llama.cpp (bench/llama_cpp_reference.sh: the prebuilt CPU build of the npm package node-llama-cpp,
on a random-weight GGUF of the same shape), 2 threads each, median of --reps. Order per pair:
engine, llama.cpp, engine. Writes $OUT/side_by_side.md and .csv. About 15 minutes at the
1.5B shape on 2 cores; run it on an otherwise idle machine.

  --shape NAME   qwen2.5-0.5b | qwen2.5-1.5b (default $SHAPE)
  --reps N       repetitions per measurement (default $REPS)
  --pairs LIST   engine-dtype:llama.cpp-dtype pairs (default "$PAIRS")
EOF
}

while [ $# -gt 0 ]; do
  case "$1" in
    --shape) SHAPE=$2; shift 2 ;;
    --reps) REPS=$2; shift 2 ;;
    --pairs) PAIRS=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "side_by_side.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ -x "$BIN" ] || { echo "side_by_side.sh: $BIN not found; build first (scripts/build.sh)" >&2; exit 1; }

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
echo "model,dtype,tokens,ms,tokens_per_s,weight_gbs,gflops,threads" > "$TMP/engine_a.csv"
cp "$TMP/engine_a.csv" "$TMP/engine_b.csv"
"$BIN" bench -m assets/models/demo-ar --machine --tokens 1 --reps 1 | grep '^machine' > "$TMP/machine" || true
cat "$TMP/machine"
for pair in $PAIRS; do
  ours=${pair%%:*} theirs=${pair##*:}
  "$BIN" bench --shape "$SHAPE" --dtype "$ours" --tokens 1,512 --reps "$REPS" --csv "$TMP/engine_a.csv"
  bench/llama_cpp_reference.sh --reps "$REPS" --csv "$TMP/llama_$theirs.csv" "$SHAPE:$theirs"
  "$BIN" bench --shape "$SHAPE" --dtype "$ours" --tokens 1,512 --reps "$REPS" --csv "$TMP/engine_b.csv"
done

python3 - "$TMP" "$OUT" "$SHAPE" "$REPS" "$PAIRS" <<'EOF'
import csv, glob, os, sys
tmp, out, shape, reps, pairs = sys.argv[1:6]
def rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))
eng = {}
for run in ("a", "b"):
    for r in rows(os.path.join(tmp, f"engine_{run}.csv")):
        eng[(run, r["dtype"], int(r["tokens"]))] = float(r["tokens_per_s"])
llama = {}
for p in glob.glob(os.path.join(tmp, "llama_*.csv")):
    for r in rows(p):
        llama[r["dtype"]] = (float(r["decode_tok_s"]), float(r["prompt_tok_s"]), r["llama_cpp"], r["node_llama_cpp"], r["cpu_variant"])
md = [f"| {shape} | fastdllm decode (before / after) | llama.cpp decode | ratio | fastdllm prompt (before / after) | llama.cpp prompt | ratio |",
      "|---|---:|---:|---:|---:|---:|---:|"]
csv_rows = []
version = ""
for pair in pairs.split():
    ours, theirs = pair.split(":")
    d = (eng[("a", ours, 1)], eng[("b", ours, 1)])
    p = (eng[("a", ours, 512)], eng[("b", ours, 512)])
    ld, lp, rel, nlc, var = llama[theirs]
    version = f"llama.cpp {rel} (node-llama-cpp {nlc}, ggml CPU variant {var})"
    dm, pm = sum(d) / 2, sum(p) / 2
    md.append(f"| {ours} vs {theirs.upper()} | {d[0]:.1f} / {d[1]:.1f} tok/s | {ld:.1f} tok/s | {dm / ld:.2f}x | "
              f"{p[0]:.0f} / {p[1]:.0f} tok/s | {lp:.0f} tok/s | {pm / lp:.2f}x |")
    csv_rows.append([shape, ours, theirs, f"{d[0]:.2f}", f"{d[1]:.2f}", f"{ld:.2f}", f"{p[0]:.1f}", f"{p[1]:.1f}", f"{lp:.1f}", reps])
machine = open(os.path.join(tmp, "machine")).read().strip()
text = ("\n".join(md) + f"\n\n{machine} (at the start). 2 threads each, median of {reps}; ratio = mean of the two engine runs over llama.cpp. "
        f"{version}, random weights.\n")
os.makedirs(out, exist_ok=True)
with open(os.path.join(out, "side_by_side.md"), "w") as f:
    f.write(text)
with open(os.path.join(out, "side_by_side.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["shape", "engine_dtype", "llama_dtype", "engine_decode_before", "engine_decode_after", "llama_decode",
                "engine_prompt_before", "engine_prompt_after", "llama_prompt", "reps"])
    w.writerows(csv_rows)
print(text)
EOF
