#!/usr/bin/env python3
"""Weighted average of exported model folders of one shape (checkpoint averaging, "model soups").

  python3 train/average.py --out DIR FOLDER:WEIGHT FOLDER:WEIGHT ...

Writes DIR as a copy of the first folder (config, tokenizer) whose model.safetensors holds
sum(w_i * W_i) / sum(w_i) for every tensor, rounded to BF16 like any export. train/README.md
("Experiments") shows it averaging the shipped dLLM with the conversion checkpoint it continued from.
Reads single-file folders (the demo models) through export.load_hf.
"""
import argparse
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export import hf_tensors, load_hf, write_safetensors  # noqa: E402


def load(folder):
    """(model config fields, {tensor name: float32 numpy array}) of an exported folder."""
    if not os.path.exists(os.path.join(folder, "model.safetensors")):
        sys.exit(f"average.py: {folder}/model.safetensors not found (sharded folders are not supported)")
    state, cfg = load_hf(folder)
    return cfg, {n: t.numpy() for n, t in state.items()}


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
    cfg, acc = None, None
    for folder, w in parts:
        c, t = load(folder)
        if acc is None:
            cfg, acc = c, {n: v * (w / total) for n, v in t.items()}
            continue
        if c != cfg or set(t) != set(acc) or any(t[n].shape != acc[n].shape for n in acc):
            sys.exit(f"average.py: {folder} does not have the shape of {parts[0][0]}")
        for n in acc:
            acc[n] = acc[n] + t[n] * (w / total)
    import torch
    shutil.copytree(parts[0][0], args.out, dirs_exist_ok=True)
    # The exporter's tensor list and metadata, so the folder reads like any export.
    tensors = hf_tensors({n: torch.from_numpy(v) for n, v in acc.items()}, cfg)
    write_safetensors(os.path.join(args.out, "model.safetensors"), tensors, {"format": "pt"})
    print(f"average.py: {len(parts)} folders -> {args.out}")


if __name__ == "__main__":
    main()
