#!/usr/bin/env python3
"""Draw a reversal validation set whose words the given training data never reverses.

The test set's words are kept out of training by make_data.py, but a validation draw made
after a model was trained usually is not: most 3-6 letter words occur in its reversal samples,
so a model can answer them from memory. This script lists, from make_data.py's word list, the
words that none of the given train.jsonl files reverses and that the test set does not hold,
and draws items with the test set's share of 7-letter words (training reverses 3-6 letters
unless --reverse-max-len says otherwise, so 7-letter words are unseen as reversals anyway).

  /usr/bin/python3 train/clean_reverse_set.py --train train/runs/data_g/train.jsonl \\
      --test assets/eval/reverse.jsonl --out /tmp/val-rev --words-out /tmp/val-rev-words.txt

Pass --words-out's file to make_data.py --exclude-words so later training keeps them out too.
"""
import argparse
import json
import os
import random
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_data  # noqa: E402  (the word list)


def reversed_words(path):
    """Words that the assistant turns of a train.jsonl reverse."""
    seen = set()
    pat = re.compile(r"The reverse of (\w+) is")
    with open(path, encoding="utf-8") as f:
        for line in f:
            if '"reverse"' not in line:
                continue
            for m in json.loads(line).get("messages", []):
                if m["role"] == "assistant":
                    seen.update(pat.findall(m["content"]))
    return seen


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", action="append", required=True, help="train.jsonl (repeatable)")
    ap.add_argument("--test", default="assets/eval/reverse.jsonl")
    ap.add_argument("--out", required=True, help="folder for reverse.jsonl")
    ap.add_argument("--words-out", required=True)
    ap.add_argument("--seed", type=int, default=4242)
    args = ap.parse_args()

    words = make_data.load_words(random.Random(0))
    test = [json.loads(line)["answer"][::-1] for line in open(args.test, encoding="utf-8")]
    seen = set(test)
    for path in args.train:
        seen |= reversed_words(path)
    short = [w for w in words if len(w) < 7 and w not in seen]
    long_share = sum(len(w) == 7 for w in test) / len(test)
    n_long = round(len(short) * long_share / (1 - long_share))
    rng = random.Random(args.seed)
    longs = rng.sample([w for w in words if len(w) == 7 and w not in seen], n_long)
    items = short + longs
    rng.shuffle(items)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "reverse.jsonl"), "w") as f:
        for w in items:
            f.write(json.dumps({"prompt": f"Reverse the word {w}.", "answer": w[::-1]}) + "\n")
    with open(args.words_out, "w") as f:
        f.write("".join(w + "\n" for w in sorted(items)))
    print(f"{len(items)} items: {len(short)} words of 3-6 letters never reversed in training, "
          f"{n_long} of 7 letters ({long_share:.0%} as in the test set)")


if __name__ == "__main__":
    main()
