#!/usr/bin/env python3
"""Exact-match evaluation of the demo models through the C++ engine (standard library only).

  python3 bench/eval.py [--bin build/fastdllm] [--limit 20] [--families arithmetic,sort]

For every family in assets/eval/<family>.jsonl ({"prompt", "answer"} per line) it runs
`fastdllm generate --chat --json --warmup` once per prompt (one untimed pass first, so the
timings are those of a warm process, as in a chat):
  AR        on --ar-model   (default assets/models/demo-ar):   --mode ar
  diffusion on --dllm-model (default assets/models/demo-dllm): --mode diffusion --threshold 0.9
            --block-size 32 --sub-block-size 8 --cache dual
and extracts the answer from the reply with the same per-family rule for both modes:
  arithmetic  the last integer in the reply
  spell       the last letter-hyphen-letter run (g-a-r-d-e-n), lower-cased
  reverse     the last word of the reply
  sort        all integers of the reply, joined with ", "
  other       the whole reply, stripped
Reported per family and mode: exact-match accuracy, tokens/s (generated tokens over the
engine's own request time, `timings.total_s` = prefill + decode, when its JSON has it, else over
the process wall time, which includes model loading; the `tok/s source` column says which), mean tokens per forward
(generated tokens / nfe; the engine's nfe counts every forward of the request, prefill included),
mean generated tokens. Writes bench/results/eval.md, eval.csv and eval_items.jsonl.

  python3 bench/eval.py --dtypes bf16,int8,int4 [--extra -t 1]

instead runs every prompt once per weight type (`--dtype`, the types taking turns prompt by
prompt) and writes eval_dtypes.md and eval_dtypes.csv: per family and mode, each type's exact
match and tokens per forward, each type's difference from the first one in points, and how many
answers changed against the first type.
"""
import argparse
import csv
import glob
import json
import math
import os
import re
import subprocess
import sys
import time


def extract(family, text):
    t = text.strip()
    if family == "arithmetic":
        m = re.findall(r"-?\d+", t)
        return m[-1] if m else ""
    if family == "spell":
        m = re.findall(r"[A-Za-z](?:-[A-Za-z])+", t)
        return m[-1].lower() if m else ""
    if family == "reverse":
        m = re.findall(r"[A-Za-z]+", t)
        return m[-1].lower() if m else ""
    if family == "sort":
        return ", ".join(re.findall(r"-?\d+", t))
    return t


def parse_json(raw):
    try:
        obj = json.loads(raw)
        if isinstance(obj, dict):
            return obj
    except ValueError:
        pass
    for line in reversed(raw.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                obj = json.loads(line)
                if isinstance(obj, dict):
                    return obj
            except ValueError:
                continue
    return None


def decode_seconds(timings):
    """Find the decode time in the engine's `timings` object (seconds), or None."""
    if not isinstance(timings, dict):
        return None
    cands = []
    for k, v in timings.items():
        if not isinstance(v, (int, float)):
            continue
        kl = k.lower()
        scale = 1e-3 if kl.endswith("_ms") or kl.endswith("ms") else (1.0 if kl.endswith("_s") or kl.endswith("sec") or kl.endswith("seconds") else None)
        if scale is None:
            continue
        if "total" in kl:  # prefill + decode: the same footing for AR and diffusion
            cands.append((0, v * scale))
        elif "decode" in kl or "generat" in kl:
            cands.append((1, v * scale))
    if not cands:
        return None
    cands.sort()
    return cands[0][1]


def mcnemar_exact_p(b, c):
    """Two-sided exact McNemar p-value: of the b + c items that only one side got right, how
    likely a split at least this uneven is if either side were equally likely to win each."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def paired_rows(items_out, fams):
    """Per family (and all): items both modes got right, only AR, only diffusion, and the exact
    McNemar p-value of the difference; None when the run did not have both modes."""
    by = {}
    for it in items_out:
        by.setdefault((it["family"], it["prompt"]), {})[it["mode"]] = it["ok"]
    rows = []
    for fam in fams + ["all"]:
        pairs = [v for (f, _), v in by.items() if (fam == "all" or f == fam) and "ar" in v and "diffusion" in v]
        if not pairs:
            return None
        both = sum(v["ar"] and v["diffusion"] for v in pairs)
        ar_only = sum(v["ar"] and not v["diffusion"] for v in pairs)
        dllm_only = sum(v["diffusion"] and not v["ar"] for v in pairs)
        rows.append({"family": fam, "n": len(pairs), "both": both, "ar_only": ar_only, "diffusion_only": dllm_only,
                     "difference_points": 100.0 * (dllm_only - ar_only) / len(pairs),
                     "mcnemar_p": mcnemar_exact_p(ar_only, dllm_only)})
    return rows


def run_one(args, model, mode, prompt, dtype=None):
    cmd = [args.bin, "generate", "-m", model, "--prompt", prompt, "--chat", "--warmup", "-n", str(args.max_new_tokens),
           "--mode", mode, "--json"]
    if mode == "diffusion":
        cmd += ["--threshold", str(args.threshold), "--block-size", str(args.block_size),
                "--sub-block-size", str(args.sub_block_size), "--cache", args.cache]
    if dtype:
        cmd += ["--dtype", dtype]
    cmd += args.extra
    t0 = time.time()
    for attempt in range(3):  # the binary may be mid-rebuild (ETXTBSY / EACCES): retry briefly
        try:
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=args.timeout)
            break
        except OSError:
            if attempt == 2:
                raise
            time.sleep(5)
            t0 = time.time()
    wall = time.time() - t0
    if p.returncode != 0:
        raise RuntimeError(f"exit {p.returncode}: {' '.join(cmd)}\n{p.stderr.decode(errors='replace')[-800:]}")
    obj = parse_json(p.stdout.decode("utf-8", errors="replace"))
    if obj is None:
        raise RuntimeError("no JSON in output of: " + " ".join(cmd))
    toks = obj.get("tokens", [])
    ntok = len(toks) if isinstance(toks, list) else int(toks)
    dec = decode_seconds(obj.get("timings"))
    return {"text": obj.get("text", ""), "ntok": ntok, "nfe": obj.get("nfe") or 0,
            "secs": dec if dec else wall, "secs_src": "engine" if dec else "wall", "wall": wall}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default="build/fastdllm")
    ap.add_argument("--ar-model", default="assets/models/demo-ar")
    ap.add_argument("--dllm-model", default="assets/models/demo-dllm")
    ap.add_argument("--eval-dir", default="assets/eval")
    ap.add_argument("--families", default="", help="comma list (default: every *.jsonl in --eval-dir)")
    ap.add_argument("--modes", default="ar,diffusion")
    ap.add_argument("--limit", type=int, default=0, help="items per family (0 = all)")
    ap.add_argument("--max-new-tokens", "-n", type=int, default=64)
    ap.add_argument("--threshold", type=float, default=0.9)
    ap.add_argument("--block-size", type=int, default=32)
    ap.add_argument("--sub-block-size", type=int, default=8)
    ap.add_argument("--cache", default="dual")
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--out-dir", default="bench/results")
    ap.add_argument("--dtype", default="", help="weight type for both models (--dtype of the engine)")
    ap.add_argument("--dtypes", default="", help="comma list: compare these weight types (writes eval_dtypes.*)")
    ap.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="further CLI flags, passed as-is (last)")
    args = ap.parse_args()

    if not os.path.exists(args.bin):
        sys.exit(f"eval.py: binary {args.bin} not found (build it, or pass --bin)")
    fams = [f for f in args.families.split(",") if f] or sorted(
        os.path.splitext(os.path.basename(p))[0] for p in glob.glob(os.path.join(args.eval_dir, "*.jsonl")))
    modes = [m for m in args.modes.split(",") if m]
    os.makedirs(args.out_dir, exist_ok=True)
    if args.dtypes:
        return compare_dtypes(args, fams, modes, [d for d in args.dtypes.split(",") if d])
    rows, items_out = [], []
    totals = {m: {"n": 0, "ok": 0, "ntok": 0, "nfe": 0, "secs": 0.0} for m in modes}
    for fam in fams:
        with open(os.path.join(args.eval_dir, fam + ".jsonl")) as f:
            items = [json.loads(l) for l in f if l.strip()]
        if args.limit:
            items = items[:args.limit]
        for mode in modes:
            model = args.ar_model if mode == "ar" else args.dllm_model
            n = ok = ntok = nfe = 0
            secs = 0.0
            srcs = set()
            tpf = []
            for it in items:
                r = run_one(args, model, mode, it["prompt"], args.dtype or None)
                pred = extract(fam, r["text"])
                hit = pred == it["answer"]
                n += 1
                ok += hit
                ntok += r["ntok"]
                nfe += r["nfe"]
                secs += r["secs"]
                srcs.add(r["secs_src"])
                if r["nfe"]:
                    tpf.append(r["ntok"] / r["nfe"])
                items_out.append({"family": fam, "mode": mode, "prompt": it["prompt"], "answer": it["answer"],
                                  "pred": pred, "ok": hit, "text": r["text"], "tokens": r["ntok"], "nfe": r["nfe"],
                                  "secs": round(r["secs"], 4)})
            row = {"family": fam, "mode": mode, "n": n, "exact_match": ok / max(n, 1),
                   "tok_s": ntok / secs if secs else 0.0, "tok_s_source": "/".join(sorted(srcs)),
                   "tokens_per_forward": sum(tpf) / len(tpf) if tpf else 0.0,
                   "mean_tokens": ntok / max(n, 1)}
            rows.append(row)
            t = totals[mode]
            t["n"] += n
            t["ok"] += ok
            t["ntok"] += ntok
            t["nfe"] += nfe
            t["secs"] += secs
            print(f"{fam:12s} {mode:9s} n={n:4d} em={row['exact_match']:.3f} tok/s={row['tok_s']:.1f} "
                  f"tok/fwd={row['tokens_per_forward']:.2f}", file=sys.stderr, flush=True)
    for mode in modes:
        t = totals[mode]
        rows.append({"family": "all", "mode": mode, "n": t["n"], "exact_match": t["ok"] / max(t["n"], 1),
                     "tok_s": t["ntok"] / t["secs"] if t["secs"] else 0.0, "tok_s_source": "",
                     "tokens_per_forward": t["ntok"] / t["nfe"] if t["nfe"] else 0.0,
                     "mean_tokens": t["ntok"] / max(t["n"], 1)})

    hdr = ["family", "mode", "n", "exact_match", "tok_s", "tok_s_source", "tokens_per_forward", "mean_tokens"]
    with open(os.path.join(args.out_dir, "eval.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=hdr)
        w.writeheader()
        for r in rows:
            w.writerow({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()})
    with open(os.path.join(args.out_dir, "eval_items.jsonl"), "w") as f:
        for it in items_out:
            f.write(json.dumps(it) + "\n")
    md = ["| family | mode | n | exact match | tok/s | tok/s source | tokens/forward | mean tokens |",
          "|---|---|---:|---:|---:|---|---:|---:|"]
    for r in rows:
        md.append(f"| {r['family']} | {r['mode']} | {r['n']} | {100 * r['exact_match']:.1f}% | {r['tok_s']:.1f} | "
                  f"{r['tok_s_source']} | {r['tokens_per_forward']:.2f} | {r['mean_tokens']:.1f} |")
    desc = (f"Models: AR `{args.ar_model}` (--mode ar), dLLM `{args.dllm_model}` (--mode diffusion, threshold "
            f"{args.threshold}, block {args.block_size}, sub-block {args.sub_block_size}, cache {args.cache}); "
            f"max {args.max_new_tokens} new tokens; binary `{args.bin}`"
            + (f"; weights `--dtype {args.dtype}`" if args.dtype else "")
            + (f"; further flags for both: `{' '.join(args.extra)}`" if args.extra else "")
            + ". tokens/forward = generated tokens / nfe "
            f"(nfe as reported by the engine, prefill included; the 'all' row pools tokens and nfe).")
    text = "\n".join(md) + "\n\n" + desc + "\n"
    paired = paired_rows(items_out, fams) if "ar" in modes and "diffusion" in modes else None
    if paired:
        phdr = ["family", "n", "both", "ar_only", "diffusion_only", "difference_points", "mcnemar_p"]
        with open(os.path.join(args.out_dir, "eval_paired.csv"), "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=phdr)
            w.writeheader()
            for r in paired:
                w.writerow({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()})
        pmd = ["| family | n | both right | only AR right | only diffusion right | diffusion - AR (points) | exact McNemar p |",
               "|---|---:|---:|---:|---:|---:|---:|"]
        for r in paired:
            pmd.append(f"| {r['family']} | {r['n']} | {r['both']} | {r['ar_only']} | {r['diffusion_only']} | "
                       f"{r['difference_points']:+.1f} | {r['mcnemar_p']:.3f} |")
        text += ("\nPaired, item by item (the same prompts in both modes). The p-value is the chance of a split "
                 "of the items only one mode got right at least this uneven if both modes were equally good "
                 "(two-sided exact McNemar test); at 100 items per family a 5-point gap is often noise.\n\n"
                 + "\n".join(pmd) + "\n")
    with open(os.path.join(args.out_dir, "eval.md"), "w") as f:
        f.write(text)
    print(text)


def compare_dtypes(args, fams, modes, dtypes):
    """Every prompt once per weight type, the types taking turns; writes eval_dtypes.md/.csv."""
    acc = {}  # (family, mode, dtype) -> counts
    answers = {}  # (family, mode, prompt, dtype) -> (ok, pred)
    for fam in fams:
        with open(os.path.join(args.eval_dir, fam + ".jsonl")) as f:
            items = [json.loads(l) for l in f if l.strip()]
        if args.limit:
            items = items[:args.limit]
        for mode in modes:
            model = args.ar_model if mode == "ar" else args.dllm_model
            for it in items:
                for d in dtypes:
                    r = run_one(args, model, mode, it["prompt"], d)
                    pred = extract(fam, r["text"])
                    hit = pred == it["answer"]
                    for key in ((fam, mode, d), ("all", mode, d)):
                        a = acc.setdefault(key, {"n": 0, "ok": 0, "ntok": 0, "nfe": 0, "secs": 0.0})
                        a["n"] += 1
                        a["ok"] += hit
                        a["ntok"] += r["ntok"]
                        a["nfe"] += r["nfe"]
                        a["secs"] += r["secs"]
                    answers[(fam, mode, it["prompt"], d)] = (hit, pred)
            line = " ".join(f"{d} {100 * acc[(fam, mode, d)]['ok'] / acc[(fam, mode, d)]['n']:.0f}%" for d in dtypes)
            print(f"{fam:12s} {mode:9s} {line}", file=sys.stderr, flush=True)
    base = dtypes[0]
    rows = []
    for fam in fams + ["all"]:
        for mode in modes:
            row = {"family": fam, "mode": mode, "n": acc[(fam, mode, base)]["n"]}
            for d in dtypes:
                a = acc[(fam, mode, d)]
                row[f"exact_match_{d}"] = a["ok"] / a["n"]
                row[f"tokens_per_forward_{d}"] = a["ntok"] / a["nfe"] if a["nfe"] else 0.0
                row[f"tok_s_{d}"] = a["ntok"] / a["secs"] if a["secs"] else 0.0
                keys = [k for k in answers if k[3] == d and k[1] == mode and (fam == "all" or k[0] == fam)]
                row[f"changed_{d}"] = sum(answers[k][1] != answers[(k[0], k[1], k[2], base)][1] for k in keys)
            rows.append(row)
    hdr = list(rows[0].keys())
    with open(os.path.join(args.out_dir, "eval_dtypes.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=hdr)
        w.writeheader()
        for r in rows:
            w.writerow({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()})
    others = dtypes[1:]
    cols = ([(d, lambda r, d=d: f"{100 * r[f'exact_match_{d}']:.1f}%") for d in dtypes]
            + [(f"{d} - {base}", lambda r, d=d: f"{100 * (r[f'exact_match_{d}'] - r[f'exact_match_{base}']):+.1f}")
               for d in others]
            + [(f"tok/fwd {d}", lambda r, d=d: f"{r[f'tokens_per_forward_{d}']:.2f}") for d in dtypes]
            + [(f"answers changed, {d}", lambda r, d=d: f"{r[f'changed_{d}']}") for d in others])
    md = ["| family | mode | n | " + " | ".join(c[0] for c in cols) + " |", "|---|---|---:|" + "---:|" * len(cols)]
    for r in rows:
        md.append(f"| {r['family']} | {r['mode']} | {r['n']} | " + " | ".join(c[1](r) for c in cols) + " |")
    desc = (f"Exact match per weight type (`--dtype`), every prompt run once per type, the types taking turns. "
            f"Models: AR `{args.ar_model}`, dLLM `{args.dllm_model}` (threshold {args.threshold}, block "
            f"{args.block_size}, sub-block {args.sub_block_size}, cache {args.cache}); max {args.max_new_tokens} new "
            f"tokens; binary `{args.bin}`" + (f"; further flags: `{' '.join(args.extra)}`" if args.extra else "")
            + f". tokens/forward = generated tokens / nfe (prefill included). 'answers changed': extracted answers "
            f"that differ from {base}'s.")
    text = "\n".join(md) + "\n\n" + desc + "\n"
    with open(os.path.join(args.out_dir, "eval_dtypes.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
