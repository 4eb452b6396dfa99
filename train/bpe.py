#!/usr/bin/env python3
"""Byte-level BPE in the Qwen2 / Hugging Face `tokenizers` format.

  python3 train/bpe.py --corpus train/runs/data/corpus.txt --vocab-size 4096 --out train/runs/tok

writes tokenizer.json, tokenizer_config.json and generation_config.json. The `Tokenizer`
class below loads any such tokenizer.json (ours or Qwen2.5's) and encodes/decodes text;
train.py uses it. Needs Python's `regex` module (Debian python3-regex) for \\p{L}.
"""
import argparse
import collections
import json
import os
import unicodedata

import regex

from byte_level import bytes_to_unicode

QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "|<MASK>|"]
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


B2U = bytes_to_unicode()
U2B = {v: k for k, v in B2U.items()}


def to_symbols(piece):
    return "".join(B2U[b] for b in piece.encode("utf-8"))


# ----------------------------------------------------------------------------- training

def train_bpe(texts, vocab_size, pattern=QWEN2_PATTERN, specials=SPECIAL_TOKENS, min_freq=2):
    pat = regex.compile(pattern)
    wc = collections.Counter()
    for t in texts:
        t = unicodedata.normalize("NFC", t)
        for m in pat.findall(t):
            wc[to_symbols(m)] += 1
    words = [list(w) for w in wc]
    freqs = [wc[w] for w in wc]
    base = [B2U[b] for b in range(256)]
    vocab = {s: i for i, s in enumerate(base)}
    n_merges = vocab_size - len(base) - len(specials)
    pair_counts = collections.Counter()
    where = collections.defaultdict(set)
    for wi, w in enumerate(words):
        for a, b in zip(w, w[1:]):
            pair_counts[(a, b)] += freqs[wi]
            where[(a, b)].add(wi)
    merges = []
    import heapq
    heap = [(-c, p) for p, c in pair_counts.items()]
    heapq.heapify(heap)
    while len(merges) < n_merges and heap:
        negc, best = heapq.heappop(heap)
        cnt = pair_counts.get(best, 0)
        if cnt != -negc:
            if cnt > 0:
                heapq.heappush(heap, (-cnt, best))
            continue
        if cnt < min_freq:
            break
        merges.append(best)
        new = best[0] + best[1]
        vocab[new] = len(vocab)
        touched = set()
        for wi in list(where[best]):
            w = words[wi]
            f = freqs[wi]
            for a, b in zip(w, w[1:]):
                pair_counts[(a, b)] -= f
                if pair_counts[(a, b)] <= 0:
                    del pair_counts[(a, b)]
                where[(a, b)].discard(wi)
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and w[i] == best[0] and w[i + 1] == best[1]:
                    out.append(new)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            words[wi] = out
            for a, b in zip(out, out[1:]):
                pair_counts[(a, b)] += f
                where[(a, b)].add(wi)
                touched.add((a, b))
        where.pop(best, None)
        pair_counts.pop(best, None)
        for p in touched:
            if p in pair_counts:
                heapq.heappush(heap, (-pair_counts[p], p))
    return vocab, merges


def build_tokenizer_json(vocab, merges, specials=SPECIAL_TOKENS, pattern=QWEN2_PATTERN):
    n = len(vocab)
    added = [{"id": n + i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, s in enumerate(specials)]
    bl = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": False}, bl]},
        "post_processor": dict(bl),
        "decoder": dict(bl),
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False,
                  "ignore_merges": False, "vocab": vocab, "merges": [a + " " + b for a, b in merges]},
    }


def write_tokenizer_files(tok_json, out):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tok_json, f, ensure_ascii=False)
    ids = {t["content"]: t["id"] for t in tok_json["added_tokens"]}
    cfg = {
        "add_prefix_space": False,
        "added_tokens_decoder": {str(t["id"]): {k: t[k] for k in ("content", "lstrip", "normalized", "rstrip",
                                                                   "single_word", "special")}
                                 for t in tok_json["added_tokens"]},
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>", "|<MASK>|"],
        "bos_token": None,
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "errors": "replace",
        "mask_token": "|<MASK>|",
        "model_max_length": 4096,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }
    with open(os.path.join(out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=2, ensure_ascii=False)
    gen = {"bos_token_id": ids["<|endoftext|>"], "eos_token_id": [ids["<|im_end|>"], ids["<|endoftext|>"]],
           "pad_token_id": ids["<|endoftext|>"], "do_sample": False, "temperature": 1.0, "top_p": 1.0,
           "max_new_tokens": 128}
    with open(os.path.join(out, "generation_config.json"), "w", encoding="utf-8") as f:
        json.dump(gen, f, indent=2)


# ----------------------------------------------------------------------------- encoding

class Tokenizer:
    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
        self.vocab = d["model"]["vocab"]
        merges = d["model"]["merges"]
        merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in merges]
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.special = {t["content"]: t["id"] for t in d.get("added_tokens", [])}
        self.id2tok = {i: t for t, i in self.vocab.items()}
        for t, i in self.special.items():
            self.id2tok[i] = t
        pat = None
        pre = d.get("pre_tokenizer") or {}
        for p in pre.get("pretokenizers", [pre]):
            if p.get("type") == "Split":
                pat = p["pattern"].get("Regex")
        self.pat = regex.compile(pat or QWEN2_PATTERN)
        self.sp_pat = regex.compile("|".join(regex.escape(s) for s in sorted(self.special, key=len, reverse=True))) \
            if self.special else None
        self.cache = {}
        self.vocab_size = max(self.id2tok) + 1

    def token_id(self, s):
        return self.special.get(s, self.vocab.get(s))

    def _bpe(self, sym):
        if sym in self.cache:
            return self.cache[sym]
        parts = list(sym)
        while len(parts) > 1:
            best, bi = None, -1
            for i in range(len(parts) - 1):
                r = self.ranks.get((parts[i], parts[i + 1]))
                if r is not None and (best is None or r < best):
                    best, bi = r, i
            if best is None:
                break
            a, b = parts[bi], parts[bi + 1]
            out, i = [], 0
            while i < len(parts):
                if i + 1 < len(parts) and parts[i] == a and parts[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(parts[i])
                    i += 1
            parts = out
        ids = [self.vocab[p] for p in parts]
        if len(self.cache) < 500000:
            self.cache[sym] = ids
        return ids

    def _encode_plain(self, text):
        out = []
        text = unicodedata.normalize("NFC", text)
        for m in self.pat.findall(text):
            out.extend(self._bpe(to_symbols(m)))
        return out

    def encode(self, text, allow_special=True):
        if not allow_special or not self.sp_pat:
            return self._encode_plain(text)
        out, pos = [], 0
        for m in self.sp_pat.finditer(text):
            if m.start() > pos:
                out.extend(self._encode_plain(text[pos:m.start()]))
            out.append(self.special[m.group(0)])
            pos = m.end()
        if pos < len(text):
            out.extend(self._encode_plain(text[pos:]))
        return out

    def decode(self, ids):
        bs = bytearray()
        for i in ids:
            t = self.id2tok.get(int(i))
            if t is None:
                continue
            if t in self.special:
                bs.extend(t.encode("utf-8"))
            else:
                bs.extend(U2B[c] for c in t)
        return bs.decode("utf-8", errors="replace")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", required=True, nargs="+")
    ap.add_argument("--vocab-size", type=int, default=4096, help="total, including the 4 special tokens")
    ap.add_argument("--out", required=True)
    ap.add_argument("--max-lines", type=int, default=0)
    args = ap.parse_args()
    texts = []
    for p in args.corpus:
        with open(p, encoding="utf-8") as f:
            for i, line in enumerate(f):
                if args.max_lines and i >= args.max_lines:
                    break
                texts.append(line)
    vocab, merges = train_bpe(texts, args.vocab_size)
    tj = build_tokenizer_json(vocab, merges)
    write_tokenizer_files(tj, args.out)
    print(f"vocab {len(vocab)} + {len(SPECIAL_TOKENS)} special, {len(merges)} merges -> {args.out}")


if __name__ == "__main__":
    main()
