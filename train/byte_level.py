"""GPT-2's byte-level alphabet, standard library only (shared by bpe.py and bench/make_gguf.py,
which runs on a python3 without the `regex` package)."""


def bytes_to_unicode():
    """GPT-2's reversible byte -> printable code point map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))
