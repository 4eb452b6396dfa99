#!/usr/bin/env bash
# fastdllm against llama.cpp on this machine, in one run: for each precision pair the engine is
# timed, then llama.cpp, then the engine again, so a drift of the VM's memory bandwidth during the
# run shows up as a gap between the two engine runs instead of passing for a speed difference.
# The one-token pass's weight stream is reported as a share of the read bandwidth measured right
# before and right after its passes, in the same process (`fastdllm bench --machine`).
set -euo pipefail
cd "$(dirname "$0")/.."

SHAPE=qwen2.5-1.5b
REPS=5
PAIRS="f32:f32 bf16:f16 int8:q8_0 int4:q4_0"
BIN=${BIN:-build/fastdllm}
OUT=bench/results

usage() {
  cat <<EOF
usage: bench/side_by_side.sh [--shape NAME] [--reps N] [--pairs "f32:f32 bf16:f16 int8:q8_0 int4:q4_0"]

Decode (one token per pass) and prompt (512 tokens in one pass) speed of the engine
(\`fastdllm bench --shape NAME --dtype D --tokens 1,512\`, random weights built in memory) and of
llama.cpp (bench/llama_cpp_reference.sh: the prebuilt CPU build of the npm package node-llama-cpp,
on a GGUF of the same random weights), 2 threads each, median of --reps. Order per pair:
engine, llama.cpp, engine; each engine run measures the read bandwidth right before and right
after its one-token passes (--machine) and reports their weight stream as a share of it. Writes $OUT/side_by_side.md and .csv.
About 20 minutes at the 1.5B shape on 2 cores; run it on an otherwise idle machine.

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
echo "model,dtype,tokens,ms,tokens_per_s,weight_gbs,gflops,threads,best_ms,read_gbs" > "$TMP/engine_a.csv"
cp "$TMP/engine_a.csv" "$TMP/engine_b.csv"
"$BIN" bench -m assets/models/demo-ar --machine --tokens 1 --reps 1 | grep '^machine' > "$TMP/machine" || true
cat "$TMP/machine"
for pair in $PAIRS; do
  ours=${pair%%:*} theirs=${pair##*:}
  "$BIN" bench --shape "$SHAPE" --dtype "$ours" --tokens 1,512 --reps "$REPS" --machine --csv "$TMP/engine_a.csv"
  bench/llama_cpp_reference.sh --reps "$REPS" --csv "$TMP/llama_$theirs.csv" "$SHAPE:$theirs"
  "$BIN" bench --shape "$SHAPE" --dtype "$ours" --tokens 1,512 --reps "$REPS" --machine --csv "$TMP/engine_b.csv"
done

python3 - "$TMP" "$OUT" "$SHAPE" "$REPS" "$PAIRS" <<'EOF'
import csv, glob, os, sys
tmp, out, shape, reps, pairs = sys.argv[1:6]
def rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))
eng, gbs, best, bw = {}, {}, {}, {}
for run in ("a", "b"):
    for r in rows(os.path.join(tmp, f"engine_{run}.csv")):
        eng[(run, r["dtype"], int(r["tokens"]))] = float(r["tokens_per_s"])
        gbs[(run, r["dtype"], int(r["tokens"]))] = float(r["weight_gbs"])
        best[(run, r["dtype"], int(r["tokens"]))] = int(r["tokens"]) / (float(r["best_ms"]) / 1e3)
        if int(r["tokens"]) == 1:
            bw[(run, r["dtype"])] = float(r["read_gbs"])
llama = {}
for p in glob.glob(os.path.join(tmp, "llama_*.csv")):
    for r in rows(p):
        llama[r["dtype"]] = (float(r["decode_tok_s"]), float(r["prompt_tok_s"]), r["llama_cpp"], r["node_llama_cpp"], r["cpu_variant"],
                             float(r["decode_best_tok_s"]))
md = [f"| {shape} | fastdllm decode (before / after) | llama.cpp decode | ratio | fastdllm prompt (before / after) | llama.cpp prompt | ratio |",
      "|---|---:|---:|---:|---:|---:|---:|"]
bmd = ["| weights | one-token pass, weight GB/s (before / after) | read probes around it, GB/s | share of the probes |",
       "|---|---:|---:|---:|"]
xmd = [f"| {shape} | fastdllm decode, best pass (before / after) | llama.cpp decode, best repetition | ratio |",
       "|---|---:|---:|---:|"]
csv_rows = []
version = ""
for pair in pairs.split():
    ours, theirs = pair.split(":")
    d = (eng[("a", ours, 1)], eng[("b", ours, 1)])
    p = (eng[("a", ours, 512)], eng[("b", ours, 512)])
    ld, lp, rel, nlc, var, lbest = llama[theirs]
    eb = (best[("a", ours, 1)], best[("b", ours, 1)])
    xmd.append(f"| {ours} vs {theirs.upper()} | {eb[0]:.1f} / {eb[1]:.1f} tok/s | {lbest:.1f} tok/s | {sum(eb) / 2 / lbest:.2f}x |")
    version = f"llama.cpp {rel} (node-llama-cpp {nlc}, ggml CPU variant {var})"
    dm, pm = sum(d) / 2, sum(p) / 2
    md.append(f"| {ours} vs {theirs.upper()} | {d[0]:.1f} / {d[1]:.1f} tok/s | {ld:.1f} tok/s | {dm / ld:.2f}x | "
              f"{p[0]:.0f} / {p[1]:.0f} tok/s | {lp:.0f} tok/s | {pm / lp:.2f}x |")
    g = (gbs[("a", ours, 1)], gbs[("b", ours, 1)])
    b = (bw[("a", ours)], bw[("b", ours)])
    share = (g[0] / b[0], g[1] / b[1])
    bmd.append(f"| {ours} | {g[0]:.1f} / {g[1]:.1f} | {b[0]:.1f} / {b[1]:.1f} | {100 * share[0]:.0f}% / {100 * share[1]:.0f}% |")
    csv_rows.append([shape, ours, theirs, f"{d[0]:.2f}", f"{d[1]:.2f}", f"{ld:.2f}", f"{p[0]:.1f}", f"{p[1]:.1f}", f"{lp:.1f}", reps,
                     f"{g[0]:.2f}", f"{g[1]:.2f}", f"{b[0]:.2f}", f"{b[1]:.2f}"])
machine = open(os.path.join(tmp, "machine")).read().strip()
text = ("\n".join(md) + f"\n\n{machine} (at the start). 2 threads each, median of {reps}; ratio = mean of the two engine runs over llama.cpp. "
        f"{version}; the GGUF files hold the engine's random weights (make_gguf.py --weights engine).\n\n"
        "The engine's one-token pass against the read bandwidth `fastdllm bench --machine` measured right before "
        "and right after its passes, in the same process (the mean of the two; each the best of 5 reads of 1 GiB, "
        "2 threads):\n\n" + "\n".join(bmd) + "\n\n"
        "The same runs by their fastest repetition (the engine: one pass; llama.cpp: one repetition of 128 tokens; "
        "ratio = the mean of the two engine runs over llama.cpp), which a busy machine disturbs less than the median:\n\n"
        + "\n".join(xmd) + "\n")
os.makedirs(out, exist_ok=True)
with open(os.path.join(out, "side_by_side.md"), "w") as f:
    f.write(text)
with open(os.path.join(out, "side_by_side.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["shape", "engine_dtype", "llama_dtype", "engine_decode_before", "engine_decode_after", "llama_decode",
                "engine_prompt_before", "engine_prompt_after", "llama_prompt", "reps", "engine_gbs_before",
                "engine_gbs_after", "read_probe_gbs_before", "read_probe_gbs_after"])
    w.writerows(csv_rows)
print(text)
EOF
