#!/usr/bin/env python3
"""Weighted average of exported model folders of one shape (checkpoint averaging, "model soups").

  python3 train/average.py --out DIR FOLDER:WEIGHT FOLDER:WEIGHT ...

Writes DIR as a copy of the first folder (config, tokenizer) whose model.safetensors holds
sum(w_i * W_i) / sum(w_i) for every tensor, rounded to BF16 like any export. Run 7
(train/README.md) averaged the shipped dLLM with the conversion checkpoint it continued from.
Reads single-file folders (the demo models); numpy only.
"""
import argparse
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export import bf16_bytes_to_f32, read_safetensors_header, write_safetensors  # noqa: E402


def load(folder):
    path = os.path.join(folder, "model.safetensors")
    if not os.path.exists(path):
        sys.exit(f"average.py: {path} not found (sharded folders are not supported)")
    header, base = read_safetensors_header(path)
    tensors = {}
    with open(path, "rb") as f:
        for name, t in header.items():
            if name == "__metadata__":
                continue
            if t["dtype"] != "BF16":
                sys.exit(f"average.py: {path}: {name} is {t['dtype']}, BF16 expected")
            a, b = t["data_offsets"]
            f.seek(base + a)
            tensors[name] = bf16_bytes_to_f32(f.read(b - a), t["shape"])
    return header, tensors


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("parts", nargs="+", help="FOLDER:WEIGHT")
    args = ap.parse_args()
    parts = []
    for p in args.parts:
        folder, _, w = p.rpartition(":")
        if not folder:
            sys.exit(f"average.py: '{p}' is not FOLDER:WEIGHT")
        parts.append((folder, float(w)))
    total = sum(w for _, w in parts)
    if total <= 0:
        sys.exit("average.py: the weights must sum to more than 0")
    header, acc = None, None
    for folder, w in parts:
        h, t = load(folder)
        if header is None:
            header, acc = h, {n: v * (w / total) for n, v in t.items()}
            continue
        if set(t) != set(acc) or any(t[n].shape != acc[n].shape for n in acc):
            sys.exit(f"average.py: {folder} does not have the tensors of {parts[0][0]}")
        for n in acc:
            acc[n] = acc[n] + t[n] * (w / total)
    order = sorted((t["data_offsets"][0], n) for n, t in header.items() if n != "__metadata__")
    shutil.copytree(parts[0][0], args.out, dirs_exist_ok=True)
    write_safetensors(os.path.join(args.out, "model.safetensors"), [(n, acc[n]) for _, n in order],
                      header.get("__metadata__"))
    print(f"average.py: {len(parts)} folders -> {args.out}")


if __name__ == "__main__":
    main()
