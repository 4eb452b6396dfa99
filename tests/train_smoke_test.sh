#!/usr/bin/env bash
# ctest: bash tests/train_smoke_test.sh <path-to-fastdllm-binary> <source-dir>
# Runs the training recipe at toy size (train/smoke.sh, including a two-rank DDP leg), checks the
# exported folders, and, when the fastdllm binary exists, decodes with the exported models through
# the C++ engine.
set -uo pipefail
BIN=${1:-}
SRC=${2:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

echo "== train/smoke.sh -> $TMP"
bash "$SRC/train/smoke.sh" "$TMP" > "$TMP/smoke.log" 2>&1 || { tail -40 "$TMP/smoke.log" >&2; fail "train/smoke.sh exited non-zero"; }

for m in ar dllm dllm_ddp dllm_cont; do
  for f in config.json model.safetensors tokenizer.json tokenizer_config.json generation_config.json; do
    [ -s "$TMP/$m/$f" ] || fail "missing $m/$f"
  done
done

# train/docs.py: the pre-tokenized file holds exactly the documents train.py tokenizes from the
# .jsonl, and export.load_hf reads an exported folder back to the weights it was written from
# (re-exporting them reproduces model.safetensors byte for byte).
PYTORCH=${PYTHON:-}
if [ -z "$PYTORCH" ]; then
  for c in /usr/bin/python3 python3; do "$c" -c "import torch, regex" 2>/dev/null && { PYTORCH=$c; break; }; done
fi
"$PYTORCH" - "$TMP" "$SRC/train" <<'PY' || fail "pre-tokenized data or load_hf round trip"
import filecmp, json, os, sys
d, train_dir = sys.argv[1], sys.argv[2]
sys.path.insert(0, train_dir)
import docs, export
from bpe import Tokenizer
tok = Tokenizer(os.path.join(d, "tok", "tokenizer.json"))
a = docs.Docs.from_jsonl(os.path.join(d, "data", "train.jsonl"), tok, 128)
b = docs.load(os.path.join(d, "data", "train.tok.xz"), tok, os.path.join(d, "tok"), 128)
assert len(a) == len(b) > 1000, (len(a), len(b))
assert (a.ids, a.start, a.resp, a.fam, a.families) == (b.ids, b.start, b.resp, b.fam, b.families)
for i in (0, len(a) // 2, len(a) - 1):
    ids, resp, fam = b[i]
    assert resp[0] == 0 and resp[-1] == 1 and len(ids) == len(resp) and fam in b.families, (i, resp, fam)
docs.load(os.path.join(d, "data", "train.tok.xz"), tok, os.path.join(d, "dllm"), 128)  # same tokenizer.json: fine
try:
    other = os.path.join(d, "tok_other")
    os.makedirs(other, exist_ok=True)
    with open(os.path.join(other, "tokenizer.json"), "w") as f:
        f.write("{}")
    docs.load(os.path.join(d, "data", "train.tok.xz"), tok, other, 128)
    sys.exit("a .tok.xz made with another tokenizer.json was accepted")
except ValueError as e:
    assert "another tokenizer" in str(e), e
state, cfg = export.load_hf(os.path.join(d, "dllm"))
export.export(state, cfg, os.path.join(d, "tok"), os.path.join(d, "dllm_again"), "dllm", 32)
assert filecmp.cmp(os.path.join(d, "dllm", "model.safetensors"), os.path.join(d, "dllm_again", "model.safetensors"),
                   shallow=False), "load_hf + export does not reproduce the exported weights"
m = [json.loads(l) for l in open(os.path.join(d, "runs_cont", "metrics.jsonl"))]
assert any(r.get("event") == "init" and r["path"].endswith("dllm") for r in m), "dllm_cont did not start from the folder"
print(f"ok: {len(a)} pre-tokenized documents identical, load_hf round trip byte-identical")
PY

python3 - "$TMP" <<'PY' || fail "exported folders are not valid"
import json, struct, sys, os
d = sys.argv[1]
# dllm_ddp: the same conversion run as two DistributedDataParallel ranks (train/ddp_local.sh)
phases = [json.loads(l) for l in open(os.path.join(d, "runs_ddp", "metrics.jsonl")) if '"phase"' in l]
assert any(p.get("event") == "phase" and p.get("world") == 2 for p in phases), "the DDP run did not run 2 ranks"
for m, arch in (("ar", "Qwen2ForCausalLM"), ("dllm", "Fast_dLLM_QwenForCausalLM"), ("dllm_ddp", "Fast_dLLM_QwenForCausalLM"),
                ("dllm_cont", "Fast_dLLM_QwenForCausalLM")):
    cfg = json.load(open(os.path.join(d, m, "config.json")))
    assert cfg["architectures"] == [arch], (m, cfg["architectures"])
    if m != "ar":
        assert cfg["bd_size"] == 32, cfg.get("bd_size")
    p = os.path.join(d, m, "model.safetensors")
    with open(p, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
    size = os.path.getsize(p)
    end = 0
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        assert v["dtype"] == "BF16", (k, v["dtype"])
        cnt = 1
        for s in v["shape"]:
            cnt *= s
        a, b = v["data_offsets"]
        assert b - a == 2 * cnt, k
        end = max(end, b)
    assert 8 + n + end == size, (8 + n + end, size)
    L = cfg["num_hidden_layers"]
    need = ["model.embed_tokens.weight", "model.norm.weight"] + [
        f"model.layers.{i}.{s}" for i in range(L) for s in (
            "self_attn.q_proj.weight", "self_attn.q_proj.bias", "self_attn.k_proj.weight", "self_attn.k_proj.bias",
            "self_attn.v_proj.weight", "self_attn.v_proj.bias", "self_attn.o_proj.weight",
            "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight",
            "input_layernorm.weight", "post_attention_layernorm.weight")]
    missing = [k for k in need if k not in hdr]
    assert not missing, missing[:5]
    assert hdr["model.embed_tokens.weight"]["shape"] == [cfg["vocab_size"], cfg["hidden_size"]]
    tok = json.load(open(os.path.join(d, m, "tokenizer.json")))
    specials = {t["content"] for t in tok["added_tokens"]}
    assert {"<|im_end|>", "|<MASK>|", "<|im_start|>", "<|endoftext|>"} <= specials, specials
    print(f"ok: {m} ({len(hdr) - 1} tensors, {size} bytes)")
PY

if [ -z "$BIN" ] || [ ! -x "$BIN" ]; then
  echo "SKIP: fastdllm binary '$BIN' not found; the engine part of this test did not run"
  exit 0
fi

check_json() {  # $1 = label, stdin = output of the CLI
  python3 -c '
import json, sys
label = sys.argv[1]
raw = sys.stdin.read()
obj = None
try:
    obj = json.loads(raw)
except ValueError:
    for line in reversed(raw.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                obj = json.loads(line); break
            except ValueError:
                pass
if not isinstance(obj, dict):
    sys.exit(label + ": output is not a JSON object: " + raw[:400])
for k in ("tokens", "nfe"):
    if k not in obj:
        sys.exit(label + ": JSON lacks key " + k + ": " + raw[:400])
print(label + ": ok, " + str(len(obj["tokens"]) if isinstance(obj["tokens"], list) else obj["tokens"]) + " tokens, nfe " + str(obj["nfe"]))
' "$1"
}

echo "== engine: diffusion decode with the exported dLLM"
out=$("$BIN" generate -m "$TMP/dllm" --prompt "What is 2 + 3?" --chat -n 32 --mode diffusion --json 2>"$TMP/err1") \
  || { cat "$TMP/err1" >&2; fail "fastdllm generate (diffusion) exited non-zero"; }
printf '%s' "$out" | check_json "diffusion" || fail "diffusion JSON check"

echo "== engine: diffusion decode with the dLLM trained by two DDP ranks"
out=$("$BIN" generate -m "$TMP/dllm_ddp" --prompt "What is 2 + 3?" --chat -n 32 --mode diffusion --json 2>"$TMP/err3") \
  || { cat "$TMP/err3" >&2; fail "fastdllm generate (diffusion, DDP model) exited non-zero"; }
printf '%s' "$out" | check_json "diffusion (DDP)" || fail "diffusion (DDP) JSON check"

echo "== engine: diffusion decode with the dLLM continued from its folder on pre-tokenized data"
out=$("$BIN" generate -m "$TMP/dllm_cont" --prompt "What is 2 + 3?" --chat -n 32 --mode diffusion --json 2>"$TMP/err4") \
  || { cat "$TMP/err4" >&2; fail "fastdllm generate (diffusion, continued model) exited non-zero"; }
printf '%s' "$out" | check_json "diffusion (continued)" || fail "diffusion (continued) JSON check"

echo "== engine: AR decode with the exported AR model"
out=$("$BIN" generate -m "$TMP/ar" --prompt-ids 1,2,3 -n 8 --mode ar --json 2>"$TMP/err2") \
  || { cat "$TMP/err2" >&2; fail "fastdllm generate (ar) exited non-zero"; }
printf '%s' "$out" | check_json "ar" || fail "AR JSON check"
echo "PASS"
