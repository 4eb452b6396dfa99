#!/usr/bin/env python3
"""End-to-end decoding sweep on the demo models, through the C++ engine (standard library only).

  python3 bench/sweep.py [--bin build/fastdllm] [--limit 25] [--passes bench/results/passes.csv]

Runs every evaluation prompt (assets/eval/*.jsonl) with AR decoding on demo-ar and with diffusion
decoding on demo-dllm for each cache mode (threshold 0.9) and each threshold (dual and
dual-overlap caches), then AR and the two caches at 0.9 again with `--dtype int8` and with
`--dtype int4` (speedup against AR in the same weight type), and
reports per configuration: exact-match accuracy (same answer extraction as bench/eval.py),
tokens/s (every generated token over the engine's request time, prefill + decode, summed over
prompts; the fair comparison, since a diffusion prompt shorter than a block has no separate
prefill), decode tokens/s (after the prefill), tokens per forward pass (prefill excluded), NFE per
answer, and the pass mix. With --passes (rows written by `fastdllm bench --csv`), the measured
pass mix is projected onto the published shapes: time = sum over passes (prefills included) of
the measured cost of a pass of that many tokens (interpolated between measured sizes; the engine's
JSON says how many passes ran how many tokens). It also prices the best case each decoding can
reach whatever the model: AR one pass per token; diffusion a 32-token block decided with the
fewest passes its rules allow (dual: one whole-block pass per sub-block, every cell of the
sub-block above the threshold at once, then the commit; dual-overlap: one whole-block pass, one
2S-token pass per later sub-block, the commit). Beside each configuration's speedup over AR it
shows that best case at the demo dLLM's own pass costs, timed at the start of the same run
(`fastdllm bench -m DLLM --tokens 1,8,16,32` in each weight type): the most its cache mode can
gain on this machine. Writes bench/results/sweep.md, sweep.csv and speed_vs_threshold.png
(gnuplot, when installed).
"""
import argparse, csv, glob, json, os, subprocess, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from eval import extract  # noqa: E402  (one answer-extraction rule for every report)


def run(args, model, prompt, extra):
    cmd = [args.bin, "generate", "-m", model, "-p", prompt, "--chat", "-n", str(args.max_new_tokens), "--json", "--warmup"] + extra
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        sys.exit(f"sweep.py: {' '.join(cmd)} failed: {p.stderr.strip()}")
    return json.loads(p.stdout)


def demo_bounds(args, dtype):
    """The best case over AR of each cache mode at the dLLM's pass costs in `dtype`, timed now by
    `fastdllm bench` (speedup_bound.h): {cache: x}; none and prefix share dual's bound."""
    cmd = [args.bin, "bench", "-m", args.dllm_model, "--tokens", "1,8,16,32", "--reps", "21", "--json"]
    if dtype:
        cmd += ["--dtype", dtype]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        sys.exit(f"sweep.py: {' '.join(cmd)} failed: {p.stderr.strip()}")
    b = json.loads(p.stdout).get("best_case_speedup", {})
    return {"none": b.get("dual", 0.0), "prefix": b.get("dual", 0.0), "dual": b.get("dual", 0.0),
            "dual-overlap": b.get("dual-overlap", 0.0)}


def load_pass_costs(path):
    """{(model, dtype): {tokens: ms}} from `fastdllm bench --csv` rows."""
    costs = {}
    if not path or not os.path.exists(path):
        return costs
    with open(path) as f:
        for row in csv.reader(f):
            if len(row) < 4 or row[0] == "model":
                continue
            costs.setdefault((row[0], row[1]), {})[int(row[2])] = float(row[3])
    return costs


def pass_cost(c, n):
    """Cost of an n-token pass from the measured sizes: linear between the nearest two (above the
    largest, proportional to it)."""
    sizes = sorted(c)
    if n in c:
        return c[n]
    if n > sizes[-1]:
        return c[sizes[-1]] * n / sizes[-1]
    lo = max(k for k in sizes if k < n) if n > sizes[0] else sizes[0]
    hi = min(k for k in sizes if k > n)
    if lo == hi:
        return c[lo]
    return c[lo] + (c[hi] - c[lo]) * (n - lo) / (hi - lo)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default="build/fastdllm")
    ap.add_argument("--ar-model", default="assets/models/demo-ar")
    ap.add_argument("--dllm-model", default="assets/models/demo-dllm")
    ap.add_argument("--eval-dir", default="assets/eval")
    ap.add_argument("--limit", type=int, default=25, help="prompts per family")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--block-size", type=int, default=32, help="the dLLM's block size (for the prefill size)")
    ap.add_argument("--thresholds", default="0.5,0.7,0.8,0.9,0.95,1.0")
    ap.add_argument("--passes", default="bench/results/passes.csv")
    ap.add_argument("--out-dir", default="bench/results")
    args = ap.parse_args()

    items = []
    for path in sorted(glob.glob(os.path.join(args.eval_dir, "*.jsonl"))):
        fam = os.path.splitext(os.path.basename(path))[0]
        with open(path) as f:
            rows = [json.loads(l) for l in f if l.strip()]
        items += [(fam, r) for r in rows[: args.limit]]
    if not items:
        sys.exit(f"sweep.py: no evaluation prompts in {args.eval_dir}")

    # (name, model, options, threshold, cache, dtype); dtype "" = the engine's default.
    configs = [("ar", args.ar_model, ["--mode", "ar"], None, "ar", "")]
    for cache in ("none", "prefix", "dual"):
        configs.append((f"diffusion {cache} 0.9", args.dllm_model,
                        ["--mode", "diffusion", "--cache", cache, "--threshold", "0.9"], 0.9, cache, ""))
    for cache in ("dual", "dual-overlap"):
        for th in [float(t) for t in args.thresholds.split(",")]:
            if th != 0.9 or cache == "dual-overlap":
                configs.append((f"diffusion {cache} {th:g}", args.dllm_model,
                                ["--mode", "diffusion", "--cache", cache, "--threshold", str(th)], th, cache, ""))
    # --unmask prefix (ours): the same caches at 0.9, deciding each sub-block's cells left to right.
    for cache in ("dual", "dual-overlap"):
        configs.append((f"diffusion {cache} 0.9 prefix", args.dllm_model,
                        ["--mode", "diffusion", "--cache", cache, "--threshold", "0.9", "--unmask", "prefix"], 0.9,
                        cache, ""))
    for dt in ("int8", "int4"):
        configs.append((f"ar {dt}", args.ar_model, ["--mode", "ar", "--dtype", dt], None, "ar", dt))
        for cache in ("dual", "dual-overlap"):
            configs.append((f"diffusion {cache} 0.9 {dt}", args.dllm_model,
                            ["--mode", "diffusion", "--cache", cache, "--threshold", "0.9", "--dtype", dt], 0.9, cache,
                            dt))
    bounds = {dt: demo_bounds(args, dt) for dt in sorted({c[5] for c in configs})}

    # Configurations take turns prompt by prompt (not one configuration over every prompt, then the
    # next), so a minute in which the VM runs slow weighs on all of them alike.
    acc = [{"ok": 0, "dec_tok": 0, "nfe": 0, "all_tok": 0, "dec_s": 0.0, "total_s": 0.0, "sizes": {},
            "mix": {"prefill": 0, "block": 0, "subblock": 0, "commit": 0, "decode": 0}} for _ in configs]
    for i, (fam, it) in enumerate(items):
        for (name, model, extra, th, cache, dtype), a in zip(configs, acc):
            j = run(args, model, it["prompt"], extra)
            a["ok"] += extract(fam, j["text"]) == it["answer"]
            a["dec_tok"] += j["timings"]["decoded_after_prefill"]
            a["dec_s"] += j["timings"]["decode_s"]
            a["all_tok"] += len(j["tokens"])
            a["total_s"] += j["timings"]["total_s"]
            for n, k in j["passes_by_size"].items():
                a["sizes"][int(n)] = a["sizes"].get(int(n), 0) + k
            a["nfe"] += j["nfe"]
            for k in a["mix"]:
                a["mix"][k] += j["passes"][k]
        print(f"\rsweep.py: prompt {i + 1}/{len(items)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    results = []
    for (name, model, extra, th, cache, dtype), a in zip(configs, acc):
        mix, nfe, dec_tok, total_s, dec_s = a["mix"], a["nfe"], a["dec_tok"], a["total_s"], a["dec_s"]
        fwd = nfe - mix["prefill"]
        r = {"config": name, "threshold": th if th is not None else "", "cache": cache, "dtype": dtype or "default",
             "unmask": "prefix" if "--unmask" in extra else "confidence",
             "n": len(items),
             "exact_match": a["ok"] / len(items), "tok_s": a["all_tok"] / total_s if total_s else 0.0,
             "decode_tok_s": dec_tok / dec_s if dec_s else 0.0, "tokens": a["all_tok"], "passes_by_size": a["sizes"],
             "tokens_per_forward": dec_tok / fwd if fwd else 0.0, "nfe_per_answer": nfe / len(items),
             "decoded_tokens": dec_tok, "best_case_here": bounds[dtype].get(cache, "") if cache != "ar" else "",
             **{f"{k}_passes": v for k, v in mix.items()}}
        results.append(r)
        print(f"{name:24s} em={r['exact_match']:.3f} tok/s={r['tok_s']:.1f} tok/fwd={r['tokens_per_forward']:.2f}",
              file=sys.stderr, flush=True)

    # Projection of each configuration's measured pass mix onto the published shapes.
    costs = load_pass_costs(args.passes)
    proj_cols = []
    for (model, dtype), c in sorted(costs.items()):
        if not model.startswith("qwen2.5") or not all(k in c for k in (1, 8, 32)):
            continue
        col = f"{model} {dtype} tok/s"
        proj_cols.append(col)
        for r in results:
            ms = sum(k * pass_cost(c, n) for n, k in r["passes_by_size"].items())
            r[col] = r["tokens"] / (ms / 1e3) if ms else 0.0

    # The best case of each decoding at each measured shape, whatever the model (see the top).
    B, S = args.block_size, 8
    bound = ["| pass costs of | AR, 1 token per pass | diffusion dual, best case | dual-overlap, best case |",
             "|---|---:|---:|---:|"]
    for (model, dtype), c in sorted(costs.items()):
        if not all(k in c for k in (1, 8, 32)):
            continue
        ar_best = 1e3 / c[1]
        dual_best = B / ((B // S + 1) * pass_cost(c, B) / 1e3)
        overlap_best = B / ((2 * pass_cost(c, B) + (B // S - 1) * pass_cost(c, 2 * S)) / 1e3)
        bound.append(f"| {model} {dtype} | {ar_best:.1f} tok/s | {dual_best:.1f} tok/s ({dual_best / ar_best:.2f}x) | "
                     f"{overlap_best:.1f} tok/s ({overlap_best / ar_best:.2f}x) |")

    os.makedirs(args.out_dir, exist_ok=True)
    ar = {r["dtype"]: r for r in results if r["cache"] == "ar"}  # each configuration against AR in its dtype
    cols = ["config", "n", "exact_match", "tok_s", "tokens_per_forward", "nfe_per_answer"] + proj_cols
    with open(os.path.join(args.out_dir, "sweep.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(results[0].keys()) + [c for c in proj_cols if c not in results[0]])
        w.writeheader()
        for r in results:
            w.writerow({k: (json.dumps(v) if isinstance(v, dict) else v) for k, v in r.items()})
    md = ["| configuration | exact match | tokens/s | speedup vs AR | best case here | decode tokens/s | tokens/forward | NFE/answer |" +
          "".join(f" {c} |" for c in proj_cols),
          "|---|---:|---:|---:|---:|---:|---:|---:|" + "---:|" * len(proj_cols)]
    for r in results:
        best = f"{r['best_case_here']:.2f}x" if r["best_case_here"] != "" else ""
        md.append(f"| {r['config']} | {100 * r['exact_match']:.1f}% | {r['tok_s']:.1f} | "
                  f"{r['tok_s'] / ar[r['dtype']]['tok_s'] if ar[r['dtype']]['tok_s'] else 0:.2f}x | {best} | {r['decode_tok_s']:.1f} | "
                  f"{r['tokens_per_forward']:.2f} | {r['nfe_per_answer']:.1f} |" + "".join(f" {r[c]:.1f} |" for c in proj_cols))
    text = "\n".join(md) + (f"\n\n{len(items)} prompts ({args.limit} per family), at most {args.max_new_tokens} new "
                             "tokens. tokens/s: every generated token over the engine's request time (prefill + "
                             "decode); decode tokens/s: tokens decided after the prefill over the decode time "
                             "(for prompts shorter than a block, diffusion has no separate prefill). best case here: "
                             "the most the configuration's cache mode can gain over AR at the demo dLLM's pass costs "
                             "in its weight type, timed at the start of this run (B=32, S=8, every sub-block decided "
                             "by its first pass; an answer shorter than a block skips the commit and can pass it). "
                             "Projections price the same passes, prefill included, at the measured pass costs of "
                             "each shape.\n")
    if len(bound) > 2:
        text += ("\nBest case of each decoding (every cell of a sub-block decided by its first pass; decode "
                 f"only, B={B}, S={S}), priced at the measured pass costs:\n\n" + "\n".join(bound) + "\n")
    with open(os.path.join(args.out_dir, "sweep.md"), "w") as f:
        f.write(text)
    print(text)

    # Speed against threshold, AR as the baseline line.
    dat = os.path.join(args.out_dir, "speed_vs_threshold.dat")
    with open(dat, "w") as f:
        for cache in ("dual", "dual-overlap"):  # two gnuplot data sets, index 0 and 1
            for r in sorted(results, key=lambda r: r["threshold"] if r["threshold"] != "" else -1):
                if r["cache"] == cache and r["dtype"] == "default" and r["unmask"] == "confidence":
                    f.write(f"{r['threshold']} {r['tok_s']:.3f} {100 * r['exact_match']:.2f}\n")
            f.write("\n\n")
    png = os.path.join(args.out_dir, "speed_vs_threshold.png")
    script = f"""set terminal pngcairo size 800,480
set output '{png}'
set title 'demo-dllm vs demo-ar, measured on this machine'
set xlabel 'threshold'
set ylabel 'tokens/s'
set y2label 'exact match (%)'
set y2tics
set key center right
set grid
plot '{dat}' index 0 using 1:2 with linespoints lw 2 title 'diffusion dual tokens/s', \\
     '{dat}' index 1 using 1:2 with linespoints lw 2 title 'diffusion dual-overlap tokens/s', \\
     {ar['default']['tok_s']:.3f} with lines dt 2 lw 2 title 'AR tokens/s', \\
     '{dat}' index 0 using 1:3 axes x1y2 with linespoints title 'dual exact match', \\
     '{dat}' index 1 using 1:3 axes x1y2 with linespoints title 'dual-overlap exact match'
"""
    try:
        subprocess.run(["gnuplot"], input=script, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"sweep.py: no plot ({e})", file=sys.stderr)


if __name__ == "__main__":
    main()
