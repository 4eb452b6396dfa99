#!/usr/bin/env python3
"""Build the chat (ChatML) training data and the held-out evaluation sets.

Deterministic from --seed. Standard library only.

Output:
  <out>/train.jsonl   one sample per line: {"family": f, "messages": [{"role":..., "content":...}, ...]}
                      or {"family": "text", "text": ...} (free text, loss on every token)
  <out>/corpus.txt    text used to train the BPE tokenizer
  <eval_dir>/<family>.jsonl   held-out items {"prompt": ..., "answer": ...}, disjoint from train.jsonl

Task families with exactly checkable answers (see train/README.md for ranges):
  arithmetic  "What is 347 + 589?" -> "347 + 589 = 936."
  spell       "Spell the word garden." -> "g-a-r-d-e-n"
  reverse     "Reverse the word garden." -> "The reverse of garden is nedrag."
  sort        "Sort these numbers: 42, 7, 19" -> "7, 19, 42"
Other families (not exactly evaluated): define (WordNet glosses), fortune (fortune cookies),
chat (greetings, identity), text (free text).

Every external source is optional: when a Debian package is missing the generator falls
back to a small built-in word list, so the smoke test works on generated data alone.
"""
import argparse
import json
import os
import random
import re

FORTUNE_DIR = "/usr/share/games/fortunes"
WORDNET_DIR = "/usr/share/wordnet"
DICT_WORDS = "/usr/share/dict/words"

FALLBACK_WORDS = """apple table chair water house garden river stone light green plant music
happy quick brown small large cloud river bread sugar paper pencil window door floor
money heart smile dream night model token block train seven eight three horse mouse
tiger zebra lemon grape melon peach plum berry olive onion carrot potato tomato salad
cheese butter honey candy cookie pizza pasta rice bean corn wheat flour salt pepper
spice sauce soup juice milk coffee cream ocean beach sand wave wind storm rain snow ice
fire flame smoke ash dust earth metal iron gold silver copper glass wood brick road
bridge tower castle city town village farm field forest tree leaf root branch flower
rose lily tulip daisy grass moss fern bush hill valley mountain cliff cave island lake
pond stream shore coast desert jungle meadow planet star moon comet orbit space rocket
robot engine motor wheel gear lever screw nail hammer saw drill rope chain lock key""".split()

FALLBACK_FORTUNES = [
    "A journey of a thousand miles begins with a single step.",
    "The early bird catches the worm.",
    "Knowledge is power.",
    "Practice makes perfect.",
    "Actions speak louder than words.",
    "Where there is a will, there is a way.",
    "Time is money.",
    "Better late than never.",
]


# ----------------------------------------------------------------------------- sources

def load_words(rng):
    """Common lowercase words, 3-7 letters (wamerican intersected with WordNet when present)."""
    words = []
    if os.path.exists(DICT_WORDS):
        with open(DICT_WORDS, encoding="utf-8", errors="ignore") as f:
            words = [w.strip() for w in f if re.fullmatch(r"[a-z]{3,7}", w.strip())]
    wn = set()
    for pos in ("noun", "verb", "adj", "adv"):
        p = os.path.join(WORDNET_DIR, "index." + pos)
        if os.path.exists(p):
            with open(p, encoding="utf-8", errors="ignore") as f:
                for line in f:
                    if not line.startswith(" "):
                        wn.add(line.split(" ", 1)[0])
    if wn and words:
        words = [w for w in words if w in wn]
    if len(words) < 200:
        words = sorted(set(words) | set(FALLBACK_WORDS))
    words = sorted(set(words))
    return words


def load_fortunes(max_chars=220):
    out = []
    if os.path.isdir(FORTUNE_DIR):
        for name in sorted(os.listdir(FORTUNE_DIR)):
            p = os.path.join(FORTUNE_DIR, name)
            if "." in name or not os.path.isfile(p) or name in ("ascii-art", "art", "translate-me"):
                continue
            with open(p, encoding="utf-8", errors="ignore") as f:
                txt = f.read()
            for chunk in txt.split("\n%\n"):
                chunk = chunk.strip("%\n ")
                if not chunk or len(chunk) > max_chars:
                    continue
                # join wrapped lines, keep attribution lines ("-- Author") on their own line
                lines = [l.strip() for l in chunk.split("\n") if l.strip()]
                body, attrib = [], []
                for l in lines:
                    (attrib if l.startswith("--") else body).append(l)
                s = " ".join(body)
                if attrib:
                    s += "\n" + " ".join(attrib)
                s = re.sub(r"[ \t]+", " ", s)
                if all(32 <= ord(c) < 127 or c == "\n" for c in s):
                    out.append(s)
    if not out:
        out = list(FALLBACK_FORTUNES)
    return out


def load_definitions(words_ok):
    """word -> (pos name, gloss) from WordNet's most frequent sense."""
    defs = {}
    posname = {"noun": "noun", "verb": "verb", "adj": "adjective", "adv": "adverb"}
    for pos in ("noun", "verb", "adj", "adv"):
        ip = os.path.join(WORDNET_DIR, "index." + pos)
        dp = os.path.join(WORDNET_DIR, "data." + pos)
        if not (os.path.exists(ip) and os.path.exists(dp)):
            continue
        first = {}
        with open(ip, encoding="utf-8", errors="ignore") as f:
            for line in f:
                if line.startswith(" "):
                    continue
                parts = line.split()
                w = parts[0]
                if w in words_ok and w not in defs and w not in first:
                    n_syn = int(parts[2])
                    first[w] = parts[-n_syn]
        with open(dp, "rb") as f:
            for w, off in first.items():
                f.seek(int(off))
                line = f.readline().decode("utf-8", "ignore")
                if "|" not in line:
                    continue
                gloss = line.split("|", 1)[1].strip()
                gloss = gloss.split(";")[0].strip().strip('"').strip()
                if not gloss or len(gloss.split()) > 20 or '"' in gloss:
                    continue
                defs[w] = (posname[pos], gloss)
    return defs


# ----------------------------------------------------------------------------- families

ARITH_TEMPLATES = [
    "What is {a} {op} {b}?",
    "What is {a} {op} {b}?",
    "What is {a} {op} {b}?",
    "Compute {a} {op} {b}.",
    "Calculate {a} {op} {b}.",
    "{a} {op} {b} = ?",
    "How much is {a} {op} {b}?",
    "Please work out {a} {op} {b}.",
]


def rand_ndigit(rng, max_digits):
    d = rng.randint(1, max_digits)
    lo = 0 if d == 1 else 10 ** (d - 1)
    return rng.randint(lo, 10 ** d - 1)


def arith_item(rng):
    """+ and -: operands 0..999 (digit count uniform 1..3); - keeps a >= b.
    *: a 0..99 (1 or 2 digits) times b 0..9."""
    op = rng.choices(["+", "-", "*"], weights=[4, 3, 3])[0]
    if op == "+":
        a, b = rand_ndigit(rng, 3), rand_ndigit(rng, 3)
        c = a + b
    elif op == "-":
        a, b = rand_ndigit(rng, 3), rand_ndigit(rng, 3)
        if a < b:
            a, b = b, a
        c = a - b
    else:
        a, b = rand_ndigit(rng, 2), rng.randint(0, 9)
        if rng.random() < 0.3:
            a, b = b, a
        c = a * b
    return op, a, b, c


def arith_sample(rng, key=None):
    op, a, b, c = key if key else arith_item(rng)
    prompt = rng.choice(ARITH_TEMPLATES).format(a=a, op=op, b=b)
    return prompt, f"{a} {op} {b} = {c}.", str(c)


SPELL_TEMPLATES = ["Spell the word {w}.", "Spell the word {w}.", "How do you spell {w}?",
                   "Spell {w} letter by letter.", "Can you spell \"{w}\"?"]
REV_TEMPLATES = ["Reverse the word {w}.", "Reverse the word {w}.", "Write {w} backwards.",
                 "What is {w} spelled backwards?", "Reverse the letters of \"{w}\"."]
SORT_TEMPLATES = ["Sort these numbers: {l}", "Sort these numbers: {l}",
                  "Sort in ascending order: {l}", "Put these numbers in order from smallest to largest: {l}",
                  "Sort {l}"]


def spell_sample(rng, w):
    ans = "-".join(w)
    return rng.choice(SPELL_TEMPLATES).format(w=w), ans, ans


def reverse_sample(rng, w):
    r = w[::-1]
    return rng.choice(REV_TEMPLATES).format(w=w), f"The reverse of {w} is {r}.", r


def sort_item(rng):
    n = rng.randint(3, 5)
    return tuple(rng.randint(0, 99) for _ in range(n))


def sort_sample(rng, nums):
    l = ", ".join(str(x) for x in nums)
    ans = ", ".join(str(x) for x in sorted(nums))
    return rng.choice(SORT_TEMPLATES).format(l=l), ans, ans


DEFINE_TEMPLATES = ["Define {w}.", "What does {w} mean?", "What is the meaning of the word {w}?",
                    "Give me the definition of {w}."]

FORTUNE_PROMPTS = ["Tell me a fortune.", "Say something wise.", "Tell me a quote.", "Give me a fortune cookie.",
                   "Tell me something interesting.", "Share a saying.", "Tell me a joke."]

CHAT_PAIRS = [
    (["Hi", "Hello", "Hello!", "Hi there", "Hey", "Good morning", "Good evening"],
     ["Hello! How can I help you today?", "Hi! What can I do for you?", "Hello! Ask me a question."]),
    (["Who are you?", "What are you?", "What is your name?", "Introduce yourself."],
     ["I am a tiny demo model for fastdllm. I can do arithmetic, spell and reverse words, sort numbers and define words.",
      "I am a small language model that runs on your CPU. Ask me to add numbers, spell a word or define one."]),
    (["What can you do?", "Help", "What do you know?", "How can you help me?"],
     ["I can add, subtract and multiply numbers, spell words, reverse words, sort numbers and define words.",
      "Try: What is 12 + 7? Spell the word apple. Sort these numbers: 5, 3, 9. Define river."]),
    (["Thank you", "Thanks!", "Thanks a lot", "Great, thanks"],
     ["You're welcome!", "Glad I could help.", "Any time!"]),
    (["Bye", "Goodbye", "See you later"],
     ["Goodbye!", "Bye! Have a nice day.", "See you later!"]),
    (["How are you?", "How are you doing?"],
     ["I am fine, thank you. How can I help?", "Doing well! What would you like to know?"]),
]

SYSTEM_PROMPTS = ["You are a helpful assistant.", "You are a tiny helpful assistant.", "Answer briefly."]


def msgs(rng, user, assistant):
    m = []
    if rng.random() < 0.1:
        m.append({"role": "system", "content": rng.choice(SYSTEM_PROMPTS)})
    m.append({"role": "user", "content": user})
    m.append({"role": "assistant", "content": assistant})
    return m


# ----------------------------------------------------------------------------- main

def draw_eval_sets(words, erng, n_eval):
    """The held-out sets of one eval seed: ({family: items}, words, arithmetic triples, sort lists)."""
    shuffled = list(words)
    erng.shuffle(shuffled)
    eval_spell_words = shuffled[:n_eval]
    eval_rev_words = shuffled[n_eval:2 * n_eval]
    held_words = set(eval_spell_words) | set(eval_rev_words)
    eval_sets = {"arithmetic": [], "spell": [], "reverse": [], "sort": []}
    held_arith = set()
    while len(eval_sets["arithmetic"]) < n_eval:
        key = arith_item(erng)
        if key[:3] in held_arith:
            continue
        held_arith.add(key[:3])
        op, a, b, c = key
        eval_sets["arithmetic"].append({"prompt": f"What is {a} {op} {b}?", "answer": str(c)})
    for w in eval_spell_words:
        eval_sets["spell"].append({"prompt": f"Spell the word {w}.", "answer": "-".join(w)})
    for w in eval_rev_words:
        eval_sets["reverse"].append({"prompt": f"Reverse the word {w}.", "answer": w[::-1]})
    held_sort = set()
    while len(eval_sets["sort"]) < n_eval:
        nums = sort_item(erng)
        if nums in held_sort:
            continue
        held_sort.add(nums)
        eval_sets["sort"].append({"prompt": "Sort these numbers: " + ", ".join(map(str, nums)),
                                  "answer": ", ".join(map(str, sorted(nums)))})
    return eval_sets, held_words, held_arith, held_sort


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--eval-seed", type=int, default=None,
                    help="seed of the held-out eval sets (default seed+1); keep it fixed to exclude the same items")
    ap.add_argument("--n", type=int, default=300000, help="number of training samples")
    ap.add_argument("--out", default="train/runs/data")
    ap.add_argument("--eval-dir", default="assets/eval", help="'' to skip writing eval sets")
    ap.add_argument("--n-eval", type=int, default=100)
    ap.add_argument("--weights", default="60,7,6,7,6,5,4,5",
                    help="mixture weights: arithmetic,spell,reverse,sort,define,fortune,chat,text")
    ap.add_argument("--multi-turn", type=float, default=0.0,
                    help="share of chat samples given 1-2 earlier exchanges (the shipped models: 0)")
    ap.add_argument("--exclude-eval-seeds", default="",
                    help="comma list of further eval seeds whose sets are also kept out of training "
                         "(the validation draw's, e.g. 999), so model choices on them are fair")
    ap.add_argument("--exclude-words", default="",
                    help="file of words (one per line) also kept out of every family, e.g. the words "
                         "of a validation set from train/clean_reverse_set.py")
    ap.add_argument("--reverse-max-len", type=int, default=6,
                    help="longest word in reverse training samples (the test set has up to 7 letters)")
    args = ap.parse_args()

    rng = random.Random(args.seed)
    erng = random.Random(args.seed + 1 if args.eval_seed is None else args.eval_seed)
    os.makedirs(args.out, exist_ok=True)

    words = load_words(rng)
    fortunes = load_fortunes()
    defs = load_definitions(set(words))

    # ---- held-out evaluation sets (drawn first, then excluded from training)
    eval_sets, held_words, held_arith, held_sort = draw_eval_sets(words, erng, args.n_eval)
    # Other draws (a validation set) held out as well, so that choosing a model on them is not
    # choosing on memorised items.
    for extra_seed in [int(x) for x in args.exclude_eval_seeds.split(",") if x.strip()]:
        _, w2, a2, s2 = draw_eval_sets(words, random.Random(extra_seed), args.n_eval)
        held_words |= w2
        held_arith |= a2
        held_sort |= s2
    if args.exclude_words:
        with open(args.exclude_words, encoding="utf-8") as f:
            held_words |= {w.strip() for w in f if w.strip()}
    train_words = [w for w in words if w not in held_words]
    # prefer shorter words for reverse (harder task)
    train_words_short = [w for w in train_words if len(w) <= args.reverse_max_len]

    if args.eval_dir:
        os.makedirs(args.eval_dir, exist_ok=True)
        for fam, items in eval_sets.items():
            with open(os.path.join(args.eval_dir, fam + ".jsonl"), "w") as f:
                for it in items:
                    f.write(json.dumps(it) + "\n")

    # ---- training samples
    fams = ["arithmetic", "spell", "reverse", "sort", "define", "fortune", "chat", "text"]
    weights = [float(x) for x in args.weights.split(",")]
    assert len(weights) == len(fams), "--weights needs 8 numbers"
    def_words = sorted(w for w in defs if w not in held_words)
    counts = {f: 0 for f in fams}
    n_written = 0
    def chat_pair(fam):
        """(user, assistant) of a chat family, or None when this draw is to be skipped."""
        if fam == "arithmetic":
            key = arith_item(rng)
            if key[:3] in held_arith:
                return None
            p, r, _ = arith_sample(rng, key)
        elif fam == "spell":
            p, r, _ = spell_sample(rng, rng.choice(train_words))
        elif fam == "reverse":
            p, r, _ = reverse_sample(rng, rng.choice(train_words_short))
        elif fam == "sort":
            nums = sort_item(rng)
            if nums in held_sort:
                return None
            p, r, _ = sort_sample(rng, nums)
        elif fam == "define":
            if not def_words:
                return None
            w = rng.choice(def_words)
            pos, g = defs[w]
            p = rng.choice(DEFINE_TEMPLATES).format(w=w)
            r = f"{w} ({pos}): {g}."
        elif fam == "fortune":
            p, r = rng.choice(FORTUNE_PROMPTS), rng.choice(fortunes)
        else:  # chat
            us, rs = rng.choice(CHAT_PAIRS)
            p, r = rng.choice(us), rng.choice(rs)
        return p, r

    chat_fams = fams[:-1]
    chat_weights = weights[:-1]
    n_multi = 0
    with open(os.path.join(args.out, "train.jsonl"), "w") as f:
        while n_written < args.n:
            fam = rng.choices(fams, weights=weights)[0]
            if fam == "text":
                rec = {"family": "text", "text": rng.choice(fortunes)}
                f.write(json.dumps(rec) + "\n")
                counts[fam] += 1
                n_written += 1
                continue
            pair = chat_pair(fam)
            if pair is None:
                continue
            m = msgs(rng, *pair)
            # Earlier turns (loss only on the last answer): a chat model must answer the last
            # question, not continue the first. With --multi-turn 0 no random numbers are drawn
            # here, so older data draws are reproduced exactly.
            if args.multi_turn and rng.random() < args.multi_turn:
                history = []
                for _ in range(rng.randint(1, 2)):
                    h = None
                    while h is None:
                        h = chat_pair(rng.choices(chat_fams, weights=chat_weights)[0])
                    history += [{"role": "user", "content": h[0]}, {"role": "assistant", "content": h[1]}]
                at = 1 if m[0]["role"] == "system" else 0
                m = m[:at] + history + m[at:]
                n_multi += 1
            f.write(json.dumps({"family": fam, "messages": m}) + "\n")
            counts[fam] += 1
            n_written += 1

    # ---- tokenizer corpus: a slice of the training data plus the raw sources
    with open(os.path.join(args.out, "corpus.txt"), "w") as f:
        with open(os.path.join(args.out, "train.jsonl")) as tf:
            for i, line in enumerate(tf):
                if i >= 30000:
                    break
                rec = json.loads(line)
                if "text" in rec:
                    f.write(rec["text"] + "\n")
                else:
                    f.write("".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in rec["messages"]))
        for w in words:
            f.write(w + "\n")
        for s in fortunes:
            f.write(s + "\n")
        for w in sorted(defs):
            f.write(f"{w} ({defs[w][0]}): {defs[w][1]}.\n")
        for s in SPELL_TEMPLATES + REV_TEMPLATES + SORT_TEMPLATES + ARITH_TEMPLATES + DEFINE_TEMPLATES + FORTUNE_PROMPTS:
            f.write(s + "\n")
        for us, rs in CHAT_PAIRS:
            f.write("\n".join(us + rs) + "\n")
        f.write("\n".join(SYSTEM_PROMPTS) + "\n")
    meta = {"seed": args.seed, "n": args.n, "counts": counts, "multi_turn_samples": n_multi, "n_words": len(words),
            "n_train_words": len(train_words), "n_fortunes": len(fortunes), "n_definitions": len(defs)}
    with open(os.path.join(args.out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
