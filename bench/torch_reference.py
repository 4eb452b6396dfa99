#!/usr/bin/env python3
"""A PyTorch reference of the engine's decoding, timed against the engine on the same prompts.

  /usr/bin/python3 bench/torch_reference.py [--limit 10] [--threads 2] [--bin build/fastdllm]

What it runs, for every prompt (the first --limit items of each assets/eval/<family>.jsonl, in
the chat template):
  AR        on --ar-model (demo-ar): greedy, a KV cache, one token per forward;
  diffusion on --dllm-model (demo-dllm): docs/design.md's block decoding (block 32,
            sub-block 8, threshold 0.9, --cache dual|dual-overlap|prefix|none), the block-level prefix cache
            and the sub-block DualCache as K/V rows of one buffer, exactly like the engine.
The model is a plain float32 PyTorch Qwen2 forward (eager, `torch.set_num_threads(--threads)`),
the way the upstream code runs on a CPU. Then the same prompts go through `fastdllm generate
--json --warmup` (timed warm, like PyTorch's one process) twice: in float32 (to check that the reference decodes the same tokens with the same
number of forwards), in the engine's default weight type (the speed a user gets) and in int8
(`--dtype int8`: the fastest, whose rounding may change some answers; the table says on how
many prompts its tokens equal the f32 ones).

Tokens/s are generated tokens over the decoding time of each request (model loading excluded on
both sides; the engine's own `timings.total_s`). Writes bench/results/torch_reference.md and .csv
(torch_reference_<cache>.* with --cache other than dual; _unmask_prefix added with --unmask prefix).
Runs on Debian's python3-torch 1.13 (CPU); start it on an otherwise idle machine.
"""
import argparse
import csv
import json
import math
import os
import struct
import subprocess
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "train"))
from bpe import Tokenizer  # noqa: E402  (the project's own byte-level BPE, same files as the engine reads)


# ----------------------------------------------------------------------------- model

def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        raw = bytearray(data[a:b])
        if info["dtype"] == "BF16":
            t = (torch.frombuffer(raw, dtype=torch.int16).to(torch.int32) << 16).view(torch.float32)
        elif info["dtype"] == "F16":
            t = torch.frombuffer(raw, dtype=torch.float16).float()
        elif info["dtype"] == "F32":
            t = torch.frombuffer(raw, dtype=torch.float32).clone()
        else:
            raise SystemExit(f"{path}: tensor {name} has dtype {info['dtype']}, not BF16/F16/F32")
        out[name] = t.reshape(info["shape"])
    return out


def load_weights(folder):
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(index):
        files = sorted(set(json.load(open(index))["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    w = {}
    for f in files:
        w.update(read_safetensors(os.path.join(folder, f)))
    return w


class Qwen2Ref:
    """Qwen2 forward over one K/V buffer per layer: a pass writes rows [pos0, pos0+T) and its
    queries attend to rows [0, kv_len) under an optional boolean mask."""

    def __init__(self, folder, max_len=2048):
        c = json.load(open(os.path.join(folder, "config.json")))
        self.cfg = c
        w = load_weights(folder)
        self.H = c["hidden_size"]
        self.nh = c["num_attention_heads"]
        self.nkv = c["num_key_value_heads"]
        self.hd = self.H // self.nh
        self.eps = c.get("rms_norm_eps", 1e-6)
        self.emb = w["model.embed_tokens.weight"]
        self.lm = w.get("lm_head.weight", self.emb)
        self.norm = w["model.norm.weight"]
        self.layers = []
        for i in range(c["num_hidden_layers"]):
            p = f"model.layers.{i}."
            self.layers.append({k: w[p + k + ".weight"] for k in (
                "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj", "input_layernorm", "post_attention_layernorm")})
            for k in ("q", "k", "v"):
                self.layers[-1][k + "_bias"] = w[p + f"self_attn.{k}_proj.bias"]
        theta = c.get("rope_theta", 10000.0)
        self.inv_freq = 1.0 / (theta ** (torch.arange(0, self.hd, 2, dtype=torch.float32) / self.hd))
        self.K = [torch.zeros(max_len, self.nkv, self.hd) for _ in self.layers]
        self.V = [torch.zeros(max_len, self.nkv, self.hd) for _ in self.layers]

    def rms(self, x, w):
        return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))

    def rope(self, x, pos):  # x: T, heads, hd
        f = pos.float()[:, None] * self.inv_freq
        emb = torch.cat((f, f), dim=-1)
        cos, sin = emb.cos()[:, None], emb.sin()[:, None]
        x1, x2 = x.chunk(2, dim=-1)
        return x * cos + torch.cat((-x2, x1), dim=-1) * sin

    @torch.no_grad()
    def forward(self, ids, pos0, kv_len, mask, rows):
        """ids: tokens at positions pos0.. ; mask: [T, kv_len] bool or None (all visible);
        rows: (first, count) of the pass rows whose logits are returned."""
        T = len(ids)
        pos = torch.arange(pos0, pos0 + T)
        x = self.emb[torch.tensor(ids)]
        rep = self.nh // self.nkv
        for li, L in enumerate(self.layers):
            h = self.rms(x, L["input_layernorm"])
            q = (h @ L["self_attn.q_proj"].T + L["q_bias"]).view(T, self.nh, self.hd)
            k = (h @ L["self_attn.k_proj"].T + L["k_bias"]).view(T, self.nkv, self.hd)
            v = (h @ L["self_attn.v_proj"].T + L["v_bias"]).view(T, self.nkv, self.hd)
            self.K[li][pos0:pos0 + T] = self.rope(k, pos)
            self.V[li][pos0:pos0 + T] = v
            q = self.rope(q, pos).transpose(0, 1)                                  # nh, T, hd
            keys = self.K[li][:kv_len].transpose(0, 1).repeat_interleave(rep, 0)   # nh, kv, hd
            vals = self.V[li][:kv_len].transpose(0, 1).repeat_interleave(rep, 0)
            att = (q @ keys.transpose(1, 2)) / math.sqrt(self.hd)
            if mask is not None:
                att = att.masked_fill(~mask, float("-inf"))
            y = (torch.softmax(att, dim=-1) @ vals).transpose(0, 1).reshape(T, self.H)
            x = x + y @ L["self_attn.o_proj"].T
            h = self.rms(x, L["post_attention_layernorm"])
            g = h @ L["mlp.gate_proj"].T
            x = x + (torch.nn.functional.silu(g) * (h @ L["mlp.up_proj"].T)) @ L["mlp.down_proj"].T
        first, count = rows
        return self.rms(x[first:first + count], self.norm) @ self.lm.T


def pick(logits_row, mask_id):
    """Greedy pick over the whole vocabulary except the mask token; confidence = its softmax prob."""
    l = logits_row.double().clone()
    if mask_id >= 0:
        l[mask_id] = float("-inf")
    p = torch.softmax(l, dim=-1)
    tok = int(torch.argmax(l))
    return tok, float(p[tok])


# ----------------------------------------------------------------------------- decoders

def decode_ar(m, prompt, max_new, stops):
    L = len(prompt)
    mask = torch.ones(L, L, dtype=torch.bool).tril()
    logits = m.forward(prompt, 0, L, mask, (L - 1, 1))
    out, nfe = [], 1
    while True:
        tok, _ = pick(logits[0], -1)
        out.append(tok)
        if tok in stops or len(out) >= max_new:
            break
        pos = L + len(out) - 1
        logits = m.forward([tok], pos, pos + 1, None, (0, 1))
        nfe += 1
    return out, nfe


def block_causal(q_pos, k_len, B):
    q = torch.tensor(q_pos)[:, None] // B
    k = torch.arange(k_len)[None, :] // B
    return k <= q


def decode_diffusion(m, prompt, max_new, stops, mask_id, B=32, S=8, tau=0.9, cache="dual", unmask="confidence"):
    seq = list(prompt)
    L = len(prompt)
    nfe = 0
    full = L // B * B
    if full > 0:  # block-causal prefill of the prompt's whole blocks
        logits = m.forward(seq[:full], 0, full, block_causal(range(full), full, B), (full - 1, 1))
        nfe += 1
        if L % B == 0:
            seq.append(pick(logits[0], mask_id)[0])

    def stop_finished():
        for t in seq[L:]:
            if t == mask_id:
                return False
            if t in stops:
                return True
        return False

    def full_pass(bs, first_pos, count):
        if cache == "none":  # recompute everything up to the block's end
            n = bs + B
            return m.forward(seq[:n], 0, n, block_causal(range(n), n, B), (first_pos, count))
        return m.forward(seq[bs:bs + B], bs, bs + B, None, (first_pos - bs, count))

    for _ in range(max_new // B):
        bs = len(seq) // B * B
        seq.extend([mask_id] * (bs + B - len(seq)))
        dual_filled = False
        for s0 in range(bs, bs + B, S):
            if stop_finished():
                break
            while any(seq[p] == mask_id for p in range(s0, s0 + S)) and not stop_finished():
                if dual_filled and seq[s0] != mask_id:
                    logits = m.forward(seq[s0:s0 + S], s0, bs + B, None, (0, S - 1))
                    row0 = s0
                elif dual_filled and cache == "dual-overlap" and s0 > bs:
                    # first cell still masked: the previous sub-block and this one, not the block
                    logits = m.forward(seq[s0 - S:s0 + S], s0 - S, bs + B, None, (S - 1, S))
                    row0 = s0 - 1
                else:
                    row0 = max(s0 - 1, bs)
                    logits = full_pass(bs, row0, s0 + S - 1 - row0)
                    dual_filled = cache in ("dual", "dual-overlap")
                nfe += 1
                cand = [(p,) + pick(logits[p - 1 - row0], mask_id) for p in range(s0, s0 + S) if seq[p] == mask_id]
                if unmask == "prefix":  # ours: the leftmost masked cell, then the confident run after it
                    for i, (p, tok, conf) in enumerate(cand):
                        if i > 0 and conf <= tau:
                            break
                        seq[p] = tok
                else:  # the paper's: every cell above tau, and always the most confident one
                    best = max(range(len(cand)), key=lambda i: (cand[i][2], -i))
                    for i, (p, tok, conf) in enumerate(cand):
                        if i == best or conf > tau:
                            seq[p] = tok
        if stop_finished():
            break
        logits = full_pass(bs, bs + B - 1, 1)  # commit
        nfe += 1
        seq.append(pick(logits[0], mask_id)[0])
    out = []
    for t in seq[L:]:
        if t == mask_id:
            break
        out.append(t)
        if t in stops:
            break
    return out, nfe


# ----------------------------------------------------------------------------- driver

def engine_run(args, model, mode, prompt, dtype):
    cmd = [args.bin, "generate", "-m", model, "--chat", "-p", prompt, "--json", "--warmup", "-t", str(args.threads),
           "-n", str(args.max_new_tokens), "--mode", mode, "--dtype", dtype]
    if mode == "diffusion":
        cmd += ["--threshold", "0.9", "--block-size", "32", "--sub-block-size", "8", "--cache", args.cache,
                "--unmask", args.unmask]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise SystemExit(f"engine failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr}")
    d = json.loads(r.stdout)
    return d["tokens"], d["nfe"], d["timings"]["total_s"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default="build/fastdllm")
    ap.add_argument("--ar-model", default="assets/models/demo-ar")
    ap.add_argument("--dllm-model", default="assets/models/demo-dllm")
    ap.add_argument("--eval-dir", default="assets/eval")
    ap.add_argument("--families", default="arithmetic,sort,spell,reverse")
    ap.add_argument("--limit", type=int, default=10, help="prompts per family")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--cache", default="dual", choices=["dual", "dual-overlap", "prefix", "none"])
    ap.add_argument("--unmask", default="confidence", choices=["confidence", "prefix"],
                    help="which cells a diffusion step decides (the engine's --unmask)")
    ap.add_argument("--modes", default="ar,diffusion")
    ap.add_argument("--out-dir", default="bench/results")
    ap.add_argument("--check", action="store_true",
                    help="exit 1 unless the reference and the engine (f32) agree on every prompt (tokens and NFE)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    prompts = []
    for fam in args.families.split(","):
        with open(os.path.join(args.eval_dir, fam + ".jsonl")) as f:
            prompts += [json.loads(l)["prompt"] for l in f][:args.limit]

    rows = []
    for mode, folder in (("ar", args.ar_model), ("diffusion", args.dllm_model)):
        if mode not in args.modes.split(","):
            continue
        tok = Tokenizer(os.path.join(folder, "tokenizer.json"))
        stops = {tok.token_id("<|im_end|>"), tok.token_id("<|endoftext|>")} - {None}
        mask_id = tok.token_id("|<MASK>|")
        m = Qwen2Ref(folder)
        ref_tok = ref_s = ref_nfe = 0
        same = 0
        eng = {d: [0, 0.0, 0] for d in ("f32", "default", "int8")}  # tokens, seconds, prompts equal to f32
        for i, p in enumerate(prompts):
            ids = tok.encode(f"<|im_start|>user\n{p}<|im_end|>\n<|im_start|>assistant\n")
            t0 = time.perf_counter()
            if mode == "ar":
                out, nfe = decode_ar(m, ids, args.max_new_tokens, stops)
            else:
                out, nfe = decode_diffusion(m, ids, args.max_new_tokens, stops, mask_id, cache=args.cache,
                                                   unmask=args.unmask)
            ref_s += time.perf_counter() - t0
            ref_tok += len(out)
            ref_nfe += nfe
            e_tokens, e_nfe, e_s = engine_run(args, folder, mode, p, "f32")
            if e_tokens == out and e_nfe == nfe:
                same += 1
            else:
                print(f"\n{mode}: differs on {p!r}: reference {out} ({nfe} forwards), engine {e_tokens} "
                      f"({e_nfe} forwards)", file=sys.stderr)
            eng["f32"][0] += len(e_tokens)
            eng["f32"][1] += e_s
            f32_tokens = e_tokens
            for name, dtype in (("default", "auto"), ("int8", "int8")):
                e_tokens, _, e_s = engine_run(args, folder, mode, p, dtype)
                eng[name][0] += len(e_tokens)
                eng[name][1] += e_s
                eng[name][2] += e_tokens == f32_tokens
            print(f"\r{mode}: {i + 1}/{len(prompts)}", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
        ref_tps = ref_tok / ref_s
        rows.append({
            "mode": mode if mode == "ar" else f"diffusion ({args.cache}"
                    + ("" if args.unmask == "confidence" else f", unmask {args.unmask}") + ")",
            "model": os.path.basename(folder.rstrip("/")),
            "prompts": len(prompts),
            "same_tokens_and_nfe": same,
            "torch_f32_tok_s": round(ref_tps, 1),
            "torch_tok_per_fwd": round(ref_tok / ref_nfe, 2),
            "engine_f32_tok_s": round(eng["f32"][0] / eng["f32"][1], 1),
            "engine_default_tok_s": round(eng["default"][0] / eng["default"][1], 1),
            "engine_int8_tok_s": round(eng["int8"][0] / eng["int8"][1], 1),
            "default_same_tokens_as_f32": eng["default"][2],
            "int8_same_tokens_as_f32": eng["int8"][2],
            "speedup_f32": round(eng["f32"][0] / eng["f32"][1] / ref_tps, 1),
            "speedup_default": round(eng["default"][0] / eng["default"][1] / ref_tps, 1),
            "speedup_int8": round(eng["int8"][0] / eng["int8"][1] / ref_tps, 1),
        })

    os.makedirs(args.out_dir, exist_ok=True)
    # torch_reference.{md,csv} for the default cache, torch_reference_<cache>.{md,csv} otherwise.
    stem = "torch_reference" + ("" if args.cache == "dual" else "_" + args.cache.replace("-", "_")) \
        + ("" if args.unmask == "confidence" else "_unmask_" + args.unmask)
    hdr = list(rows[0].keys())
    with open(os.path.join(args.out_dir, stem + ".csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=hdr)
        w.writeheader()
        w.writerows(rows)
    lines = [f"PyTorch {torch.__version__} (float32, eager, {args.threads} threads) vs fastdllm ({args.threads} threads) on "
             f"{len(prompts)} chat prompts ({args.families}, first {args.limit} each), greedy, at most "
             f"{args.max_new_tokens} new tokens; diffusion: block 32, sub-block 8, threshold 0.9.", "",
             "| mode | model | same tokens + NFE as engine f32 | PyTorch tok/s | tok/forward | engine f32 tok/s | "
             "engine default dtype tok/s | engine int8 tok/s | speedup (f32) | speedup (default) | speedup (int8) | "
             "default / int8 tokens equal to f32 |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['mode']} | {r['model']} | {r['same_tokens_and_nfe']}/{r['prompts']} | {r['torch_f32_tok_s']} | "
                     f"{r['torch_tok_per_fwd']} | {r['engine_f32_tok_s']} | {r['engine_default_tok_s']} | "
                     f"{r['engine_int8_tok_s']} | {r['speedup_f32']}x | {r['speedup_default']}x | {r['speedup_int8']}x | "
                     f"{r['default_same_tokens_as_f32']} / {r['int8_same_tokens_as_f32']} of {r['prompts']} |")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(args.out_dir, stem + ".md"), "w") as f:
        f.write(text)
    print(text)
    if args.check and any(r["same_tokens_and_nfe"] != r["prompts"] for r in rows):
        print("FAIL: the PyTorch reference and the engine decoded differently", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
