#!/usr/bin/env python3
"""Write a Hugging Face model folder (config.json, BF16 safetensors, tokenizer files).

  python3 train/export.py --ckpt train/runs/dllm.pt --tok train/runs/tok --out assets/models/demo-dllm --arch dllm

The safetensors writer is self-contained (no `safetensors` package): 8-byte little-endian
header length, JSON header {name: {dtype, shape, data_offsets}}, then the raw data. BF16 is
the top 16 bits of the float32 with round-to-nearest-even. Shards above --max-shard-bytes with
model.safetensors.index.json.
"""
import argparse
import json
import os
import shutil
import struct
import sys

import numpy as np

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "|<MASK>|"]


def f32_to_bf16_bytes(a):
    a = np.ascontiguousarray(a, dtype=np.float32)
    u = a.view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(a)
    if nan.any():
        r[nan] = 0x7FC0
    return r.astype("<u2").tobytes()


def bf16_bytes_to_f32(b, shape):
    u = np.frombuffer(b, dtype="<u2").astype(np.uint32) << 16
    return u.view(np.float32).reshape(shape)


def write_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, float32 numpy array)."""
    header, blobs, off = {}, [], 0
    for name, arr in tensors:
        data = f32_to_bf16_bytes(arr)
        header[name] = {"dtype": "BF16", "shape": list(arr.shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    if metadata:
        header["__metadata__"] = metadata
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * ((8 - len(hb) % 8) % 8)  # align data to 8 bytes
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for b in blobs:
            f.write(b)
    return off


def read_safetensors_header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n)), 8 + n


def load_hf(folder):
    """An exported folder (one model.safetensors or shards; BF16 or F32) -> (state dict of
    float32 torch tensors in our names, model.Config fields). Lets a run continue from a shipped
    model when its checkpoint is gone (train.py --init FOLDER)."""
    import torch
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    files = ["model.safetensors"]
    idx = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(idx):
        with open(idx) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    state = {}
    for fn in files:
        path = os.path.join(folder, fn)
        header, base = read_safetensors_header(path)
        with open(path, "rb") as f:
            for name, t in header.items():
                if name == "__metadata__":
                    continue
                a, b = t["data_offsets"]
                f.seek(base + a)
                raw = f.read(b - a)
                if t["dtype"] == "BF16":
                    arr = bf16_bytes_to_f32(raw, t["shape"])
                elif t["dtype"] == "F32":
                    arr = np.frombuffer(raw, dtype="<f4").reshape(t["shape"])
                else:
                    raise ValueError(f"{path}: tensor {name} has dtype {t['dtype']} (BF16 or F32 expected)")
                state[name] = torch.from_numpy(arr.copy())
    if cfg.get("tie_word_embeddings", True):
        state["lm_head.weight"] = state["model.embed_tokens.weight"]
    keys = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
            "num_key_value_heads", "max_position_embeddings", "rms_norm_eps", "rope_theta", "tie_word_embeddings")
    return state, {k: cfg[k] for k in keys}


def hf_tensors(state, cfg):
    """Map our state dict (same names as transformers' Qwen2) to an ordered list of numpy arrays."""
    out = []
    names = ["model.embed_tokens.weight"]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        names += [p + "input_layernorm.weight"]
        for n in ("q", "k", "v"):
            names += [p + f"self_attn.{n}_proj.weight", p + f"self_attn.{n}_proj.bias"]
        names += [p + "self_attn.o_proj.weight", p + "post_attention_layernorm.weight"]
        names += [p + f"mlp.{n}_proj.weight" for n in ("gate", "up", "down")]
    names += ["model.norm.weight"]
    if not cfg["tie_word_embeddings"]:
        names += ["lm_head.weight"]
    for n in names:
        t = state[n]
        out.append((n, t.detach().float().cpu().numpy()))
    return out


def export(state, mcfg, tok_dir, out_dir, arch="ar", bd_size=32, max_shard_bytes=2 * 1024 ** 3, extra=None):
    """state: model state_dict; mcfg: dict of model.Config fields; arch 'ar' or 'dllm'."""
    tmp = out_dir.rstrip("/") + ".tmp"
    if os.path.exists(tmp):
        shutil.rmtree(tmp)
    os.makedirs(tmp)
    for fn in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        shutil.copy(os.path.join(tok_dir, fn), os.path.join(tmp, fn))
    with open(os.path.join(tok_dir, "tokenizer.json"), encoding="utf-8") as f:
        ids = {t["content"]: t["id"] for t in json.load(f)["added_tokens"]}
    hd = mcfg["hidden_size"] // mcfg["num_attention_heads"]
    cfg = {
        "architectures": ["Fast_dLLM_QwenForCausalLM" if arch == "dllm" else "Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "hidden_act": "silu",
        "hidden_size": mcfg["hidden_size"],
        "intermediate_size": mcfg["intermediate_size"],
        "num_hidden_layers": mcfg["num_hidden_layers"],
        "num_attention_heads": mcfg["num_attention_heads"],
        "num_key_value_heads": mcfg["num_key_value_heads"],
        "head_dim": hd,
        "max_position_embeddings": mcfg["max_position_embeddings"],
        "rms_norm_eps": mcfg["rms_norm_eps"],
        "rope_theta": mcfg["rope_theta"],
        "vocab_size": mcfg["vocab_size"],
        "tie_word_embeddings": mcfg["tie_word_embeddings"],
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|endoftext|>"],
        "attention_dropout": 0.0,
        "initializer_range": 0.02,
        "use_cache": True,
        "use_sliding_window": False,
        "sliding_window": None,
        "max_window_layers": mcfg["num_hidden_layers"],
        "torch_dtype": "bfloat16",
    }
    if arch == "dllm":
        cfg["bd_size"] = bd_size
        cfg["mask_token_id"] = ids["|<MASK>|"]
    if extra:
        cfg["fastdllm_training"] = extra
    with open(os.path.join(tmp, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    tensors = hf_tensors(state, cfg)
    total = sum(a.size * 2 for _, a in tensors)
    if total <= max_shard_bytes:
        write_safetensors(os.path.join(tmp, "model.safetensors"), tensors, {"format": "pt"})
    else:
        shards, cur, cur_b = [], [], 0
        for t in tensors:
            b = t[1].size * 2
            if cur and cur_b + b > max_shard_bytes:
                shards.append(cur)
                cur, cur_b = [], 0
            cur.append(t)
            cur_b += b
        if cur:
            shards.append(cur)
        wmap = {}
        for i, sh in enumerate(shards):
            fn = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
            write_safetensors(os.path.join(tmp, fn), sh, {"format": "pt"})
            for n, _ in sh:
                wmap[n] = fn
        with open(os.path.join(tmp, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": wmap}, f, indent=2)
    if os.path.exists(out_dir):
        shutil.rmtree(out_dir)
    os.rename(tmp, out_dir)
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", required=True, help="checkpoint written by train.py")
    ap.add_argument("--tok", required=True, help="folder with tokenizer.json etc.")
    ap.add_argument("--out", required=True)
    ap.add_argument("--arch", choices=["ar", "dllm"], default=None, help="default: from the checkpoint's phase")
    ap.add_argument("--bd-size", type=int, default=32)
    ap.add_argument("--max-shard-bytes", type=int, default=2 * 1024 ** 3)
    args = ap.parse_args()
    import torch
    ck = torch.load(args.ckpt, map_location="cpu")
    arch = args.arch or ("dllm" if ck.get("phase") == "dllm" else "ar")
    n = export(ck["model"], ck["config"], args.tok, args.out, arch, args.bd_size, args.max_shard_bytes)
    print(f"exported {arch} ({n} bytes of BF16 weights) -> {args.out}")


if __name__ == "__main__":
    main()
