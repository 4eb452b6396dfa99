#!/usr/bin/env bash
# bench/eval.py end to end on a few held-out items of each family: the accuracy table must
# agree with the per-item file, and the paired table (both right / only AR / only diffusion,
# exact McNemar p) must agree with a recount of those items and with textbook p-values.
set -u
BIN="$1"; SRC="$2"
OUT=$(mktemp -d); trap 'rm -rf "$OUT"' EXIT
cd "$SRC" || exit 1
python3 bench/eval.py --bin "$BIN" --limit 3 --out-dir "$OUT" --extra -t 1 >/dev/null 2>"$OUT/err" \
  || { echo "FAIL: eval.py exited non-zero"; cat "$OUT/err"; exit 1; }
python3 - "$OUT" <<'PY'
import csv, json, sys
sys.path.insert(0, "bench")
import eval as ev
out = sys.argv[1]
items = [json.loads(l) for l in open(f"{out}/eval_items.jsonl")]
fams = sorted({i["family"] for i in items})
assert fams == ["arithmetic", "reverse", "sort", "spell"], fams
assert len(items) == 4 * 3 * 2, len(items)
# every item's verdict is the exact-match of its extracted answer
for i in items:
    assert i["ok"] == (i["pred"] == i["answer"]), i
acc = {(r["family"], r["mode"]): r for r in csv.DictReader(open(f"{out}/eval.csv"))}
paired = {r["family"]: r for r in csv.DictReader(open(f"{out}/eval_paired.csv"))}
for fam in fams + ["all"]:
    sel = [i for i in items if fam == "all" or i["family"] == fam]
    ar = {i["prompt"]: i["ok"] for i in sel if i["mode"] == "ar"}
    df = {i["prompt"]: i["ok"] for i in sel if i["mode"] == "diffusion"}
    p = paired[fam]
    assert int(p["n"]) == len(ar) == len(df), (fam, p)
    assert int(p["both"]) == sum(ar[k] and df[k] for k in ar), (fam, p)
    assert int(p["ar_only"]) == sum(ar[k] and not df[k] for k in ar), (fam, p)
    assert int(p["diffusion_only"]) == sum(df[k] and not ar[k] for k in ar), (fam, p)
    for mode, d in (("ar", ar), ("diffusion", df)):
        assert abs(float(acc[(fam, mode)]["exact_match"]) - sum(d.values()) / len(d)) < 1e-4, (fam, mode)
    diff = float(acc[(fam, "diffusion")]["exact_match"]) - float(acc[(fam, "ar")]["exact_match"])
    assert abs(float(p["difference_points"]) - 100 * diff) < 0.02, (fam, p)
# exact McNemar p-values: 13 vs 8 discordant items gives 0.383 (binomial(21, 1/2) tail, doubled);
# 10 vs 0 gives 2/1024; an even split or no discordant item gives 1
assert abs(ev.mcnemar_exact_p(13, 8) - 0.38331) < 1e-5
assert abs(ev.mcnemar_exact_p(0, 10) - 2 / 1024) < 1e-12
assert ev.mcnemar_exact_p(5, 5) == 1.0 and ev.mcnemar_exact_p(0, 0) == 1.0
md = open(f"{out}/eval.md").read()
assert "exact McNemar p" in md and "| all | 12 |" in md, md
print("eval.py: accuracy and paired tables agree with the items")
PY
