#!/usr/bin/env python3
"""Tokenized training documents in flat arrays, and a file format for them.

A document is its token ids and the index where its response starts (training targets are the
tokens from there on: the assistant turn of a chat sample, or every token but the first of free
text). Flat arrays keep a few million documents in a few hundred MB and make forked data-loader
workers cheap (no per-token Python objects to copy).

Pre-tokenizing once saves every run the tokenization (about 1 minute per million documents on
one core) and gives a small file to carry to a GPU machine (lzma; about 1 MB per 100k documents):

  /usr/bin/python3 train/docs.py --data train/runs/data/train.jsonl --tok train/runs/tok \
      --out train/runs/data/train.tok.xz

train.py --data accepts either the .jsonl or such a .tok.xz file.
"""
import argparse
import array
import hashlib
import json
import lzma
import os
import sys

MAGIC = "fastdllm-docs-v1"


def render_chat(messages):
    """ChatML; returns (prompt_text, response_text) where the response is the last assistant turn."""
    prompt = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages[:-1])
    prompt += "<|im_start|>assistant\n"
    return prompt, messages[-1]["content"] + "<|im_end|>"


def tokenizer_digest(tok_dir):
    with open(os.path.join(tok_dir, "tokenizer.json"), "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]


class Docs:
    """ids: array('H') of all documents back to back; start: array('Q') offsets (n+1);
    resp: array('H') response start per document; fam: array('B') family index."""

    def __init__(self, ids, start, resp, fam, families, tok_digest=""):
        self.ids, self.start, self.resp, self.fam = ids, start, resp, fam
        self.families, self.tok_digest = families, tok_digest

    def __len__(self):
        return len(self.resp)

    def __getitem__(self, i):
        """-> (ids list, response flags list of 0/1, family name)."""
        a, b = self.start[i], self.start[i + 1]
        k = self.resp[i]
        return self.ids[a:b].tolist(), [0] * k + [1] * (b - a - k), self.families[self.fam[i]]

    def subset(self, indices):
        ids, start, resp, fam = array.array("H"), array.array("Q", [0]), array.array("H"), array.array("B")
        for i in indices:
            ids.extend(self.ids[self.start[i]:self.start[i + 1]])
            start.append(len(ids))
            resp.append(self.resp[i])
            fam.append(self.fam[i])
        return Docs(ids, start, resp, fam, self.families, self.tok_digest)

    def num_tokens(self):
        return len(self.ids)

    def num_response_tokens(self):
        return self.num_tokens() - sum(self.resp)

    @staticmethod
    def from_jsonl(path, tok, max_len, limit=0):
        """Tokenizes a make_data.py train.jsonl; documents longer than max_len are dropped."""
        ids, start, resp, fam = array.array("H"), array.array("Q", [0]), array.array("H"), array.array("B")
        families = []
        eot = tok.special["<|endoftext|>"]
        if tok.vocab_size > 65536:
            raise ValueError("Docs stores token ids as 16-bit: vocabulary too large")
        with open(path) as f:
            for i, line in enumerate(f):
                if limit and i >= limit:
                    break
                rec = json.loads(line)
                if "text" in rec:
                    d = [eot] + tok.encode(rec["text"], allow_special=False) + [eot]
                    k = 1
                else:
                    p, r = render_chat(rec["messages"])
                    pi = tok.encode(p)
                    d, k = pi + tok.encode(r), len(pi)
                if len(d) > max_len:
                    continue
                name = rec.get("family", "")
                if name not in families:
                    families.append(name)
                ids.extend(d)
                start.append(len(ids))
                resp.append(k)
                fam.append(families.index(name))
        return Docs(ids, start, resp, fam, families)

    def save(self, path):
        header = {"magic": MAGIC, "docs": len(self), "tokens": self.num_tokens(), "families": self.families,
                  "tokenizer": self.tok_digest}
        tmp = path + ".tmp"
        with lzma.open(tmp, "wb", preset=6) as f:
            f.write((json.dumps(header) + "\n").encode())
            for a in (self.ids, self.start, self.resp, self.fam):
                f.write(_little_endian(a).tobytes())
        os.replace(tmp, path)

    @staticmethod
    def load(path, tok_digest=""):
        with lzma.open(path, "rb") as f:
            header = json.loads(f.readline())
            if header.get("magic") != MAGIC:
                raise ValueError(f"{path}: not a {MAGIC} file")
            if tok_digest and header["tokenizer"] and header["tokenizer"] != tok_digest:
                raise ValueError(f"{path} was tokenized with another tokenizer.json "
                                 f"({header['tokenizer']}, this one is {tok_digest}); re-run train/docs.py")
            n, t = header["docs"], header["tokens"]
            arrays = []
            for code, count in (("H", t), ("Q", n + 1), ("H", n), ("B", n)):
                a = array.array(code)
                raw = f.read(a.itemsize * count)
                if len(raw) != a.itemsize * count:
                    raise ValueError(f"{path}: truncated")
                a.frombytes(raw)
                arrays.append(_little_endian(a))
        return Docs(*arrays, header["families"], header["tokenizer"])


def _little_endian(a):
    if sys.byteorder == "big":
        a = array.array(a.typecode, a)
        a.byteswap()
    return a


def load(path, tok, tok_dir, max_len, limit=0):
    """Docs from a .jsonl (tokenized now) or a .tok.xz (pre-tokenized with the same tokenizer)."""
    if path.endswith(".jsonl"):
        return Docs.from_jsonl(path, tok, max_len, limit)
    d = Docs.load(path, tokenizer_digest(tok_dir))
    n = min(limit, len(d)) if limit else len(d)
    keep = [i for i in range(n) if d.start[i + 1] - d.start[i] <= max_len]  # pre-tokenized for a longer --seq
    return d if len(keep) == len(d) else d.subset(keep)

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="train.jsonl from make_data.py")
    ap.add_argument("--tok", required=True, help="folder with tokenizer.json")
    ap.add_argument("--out", required=True, help="output file (.tok.xz)")
    ap.add_argument("--seq", type=int, default=256, help="drop documents longer than this (train.py --seq)")
    args = ap.parse_args()
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bpe import Tokenizer
    tok = Tokenizer(os.path.join(args.tok, "tokenizer.json"))
    d = Docs.from_jsonl(args.data, tok, args.seq)
    d.tok_digest = tokenizer_digest(args.tok)
    d.save(args.out)
    print(json.dumps({"docs": len(d), "tokens": d.num_tokens(), "response_tokens": d.num_response_tokens(),
                      "bytes": os.path.getsize(args.out), "out": args.out}))


if __name__ == "__main__":
    main()
