#!/usr/bin/env python3
"""Write a random-weight GGUF file in the Qwen2 architecture, for timing llama.cpp.

No published weights can be downloaded here, and the speed of a forward pass does not depend on
the values of the weights, so this writes the published *shapes* of Qwen2.5-0.5B / 1.5B with small
random (finite) values, as F32, F16, Q8_0 or Q4_0, plus a synthetic tokenizer (llama.cpp refuses
to load a model without one).

    python3 bench/make_gguf.py --shape qwen2.5-0.5b --dtype f16 -o /tmp/fastdllm-gguf/qwen2.5-0.5b-f16.gguf

--weights random (the default; Python standard library only) repeats a random piece of about
1 MiB of already-quantised blocks. --weights engine (needs numpy) writes the very weights that
`fastdllm bench --shape NAME` builds in memory (engine/testing/random_weights.cpp: splitmix64 draws
from seed 1, in the same order), quantised as llama.cpp's reference quantisers do: Q8_0 and Q4_0
(per 32 weights: d = amax / 127, or d = m / -8 with m the value of largest magnitude, as f16). A
Q4_0 file keeps the tied embedding, which is also the output matrix, in Q6_K, as llama-quantize
does for Q4_0 (a plain per-16 scale and per-256 scale here, not llama-quantize's search).

Format (GGUF version 3, little-endian), as in ggml's docs/gguf.md:
    header:  "GGUF", u32 version, u64 tensor_count, u64 metadata_kv_count
    metadata: key (u64 length + UTF-8), u32 value type, value
    tensor infos: name, u32 n_dims, u64 ne[n_dims] (innermost dimension first, so a [out, in]
                  matrix has ne = [in, out]), u32 ggml type, u64 offset into the data section
    padding to general.alignment (32), then the tensor data, each tensor aligned to 32.
"""
import argparse
import os
import random
import struct
import sys
from array import array

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train"))
from byte_level import bytes_to_unicode  # noqa: E402

# Published shapes (config.json of Qwen/Qwen2.5-0.5B and Qwen/Qwen2.5-1.5B); both tie the
# embedding and the output matrix and have q/k/v biases.
SHAPES = {
    "qwen2.5-0.5b": dict(hidden=896, layers=24, heads=14, kv_heads=2, ff=4864, vocab=151936),
    "qwen2.5-1.5b": dict(hidden=1536, layers=28, heads=12, kv_heads=2, ff=8960, vocab=151936),
}
ROPE_THETA = 1e6
RMS_EPS = 1e-6
CONTEXT_LENGTH = 32768
ALIGNMENT = 32

# ggml tensor types and the matching general.file_type (llama_ftype) values.
GGML_F32, GGML_F16, GGML_Q4_0, GGML_Q8_0, GGML_Q6_K = 0, 1, 2, 8, 14
DTYPES = {"f32": (GGML_F32, 0), "f16": (GGML_F16, 1), "q8_0": (GGML_Q8_0, 7), "q4_0": (GGML_Q4_0, 2)}
QK8_0 = 32                # weights per Q8_0 / Q4_0 block
Q8_0_BLOCK_BYTES = 2 + 32  # one f16 scale, then 32 int8
Q4_0_BLOCK_BYTES = 2 + 16  # one f16 scale, then 32 4-bit codes
QK_K = 256                 # weights per Q6_K block
Q6_K_BLOCK_BYTES = 128 + 64 + 16 + 2  # low 4 bits, high 2 bits, 16 int8 scales, one f16 scale

# GGUF metadata value types.
T_UINT32, T_INT32, T_FLOAT32, T_BOOL, T_STRING, T_ARRAY = 4, 5, 6, 7, 8, 9

# llama.cpp token types.
TOK_NORMAL, TOK_CONTROL = 1, 3

CHUNK_BYTES = 64 << 20  # write in 64 MiB pieces: the 1.5B F32 file is ~6 GB


def gguf_string(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def gguf_kv(key, vtype, value):
    """One metadata entry. Arrays are (element type, list)."""
    out = gguf_string(key) + struct.pack("<I", vtype)
    if vtype == T_ARRAY:
        etype, items = value
        out += struct.pack("<IQ", etype, len(items))
        if etype == T_STRING:
            out += b"".join(gguf_string(x) for x in items)
        elif etype == T_INT32:
            out += array("i", items).tobytes()  # native int32; this script assumes little-endian
        else:
            raise ValueError("unsupported array type")
    elif vtype == T_STRING:
        out += gguf_string(value)
    elif vtype == T_UINT32:
        out += struct.pack("<I", value)
    elif vtype == T_FLOAT32:
        out += struct.pack("<f", value)
    elif vtype == T_BOOL:
        out += struct.pack("<?", value)
    else:
        raise ValueError("unsupported type")
    return out


def tokenizer_metadata(vocab):
    """A synthetic 'gpt2' (byte-level BPE) tokenizer with Qwen2's special-token ids.
    The benchmark feeds token ids directly, so only loadability matters."""
    n_regular = 151643  # Qwen2.5: ids below this are BPE tokens; <|endoftext|> = 151643
    # llama.cpp looks up the newline token as "\u010a" ("Ċ") and aborts if it is missing.
    b2u = bytes_to_unicode()
    tokens = [b2u[b] for b in range(256)]
    tokens.append("\u0120\u0120")  # "ĠĠ", the result of the one merge below
    tokens += ["tok%d" % i for i in range(len(tokens), n_regular)]
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tokens += specials
    tokens += ["[PAD%d]" % i for i in range(len(tokens), vocab)]  # padding up to 151936, as Qwen's
    assert len(tokens) == vocab and len(set(tokens)) == vocab
    types = [TOK_NORMAL] * vocab
    for i in range(n_regular, n_regular + len(specials)):
        types[i] = TOK_CONTROL
    return [
        gguf_kv("tokenizer.ggml.model", T_STRING, "gpt2"),
        gguf_kv("tokenizer.ggml.pre", T_STRING, "qwen2"),
        gguf_kv("tokenizer.ggml.tokens", T_ARRAY, (T_STRING, tokens)),
        gguf_kv("tokenizer.ggml.token_type", T_ARRAY, (T_INT32, types)),
        # llama.cpp requires the merges key for gpt2 vocabs; one merge is enough.
        gguf_kv("tokenizer.ggml.merges", T_ARRAY, (T_STRING, ["\u0120 \u0120"])),
        gguf_kv("tokenizer.ggml.bos_token_id", T_UINT32, 151643),
        gguf_kv("tokenizer.ggml.eos_token_id", T_UINT32, 151645),
        gguf_kv("tokenizer.ggml.padding_token_id", T_UINT32, 151643),
        gguf_kv("tokenizer.ggml.add_bos_token", T_BOOL, False),
    ]


def tensor_list(cfg, wtype):
    """(name, ne innermost-first, ggml type, kind) in the order llama.cpp's converter writes them.
    kind: 'w' random weight, 'one' norm weight (1.0), 'bias' small random F32."""
    h, ff, v = cfg["hidden"], cfg["ff"], cfg["vocab"]
    hd = h // cfg["heads"]
    q_out, kv_out = cfg["heads"] * hd, cfg["kv_heads"] * hd
    etype = GGML_Q6_K if wtype == GGML_Q4_0 else wtype  # llama-quantize's choice for a Q4_0 file
    t = [("token_embd.weight", [h, v], etype, "w")]  # tied: no output.weight, llama.cpp reuses this
    for i in range(cfg["layers"]):
        p = "blk.%d." % i
        t += [
            (p + "attn_norm.weight", [h], GGML_F32, "one"),
            (p + "attn_q.weight", [h, q_out], wtype, "w"),
            (p + "attn_q.bias", [q_out], GGML_F32, "bias"),
            (p + "attn_k.weight", [h, kv_out], wtype, "w"),
            (p + "attn_k.bias", [kv_out], GGML_F32, "bias"),
            (p + "attn_v.weight", [h, kv_out], wtype, "w"),
            (p + "attn_v.bias", [kv_out], GGML_F32, "bias"),
            (p + "attn_output.weight", [q_out, h], wtype, "w"),
            (p + "ffn_norm.weight", [h], GGML_F32, "one"),
            (p + "ffn_gate.weight", [h, ff], wtype, "w"),
            (p + "ffn_up.weight", [h, ff], wtype, "w"),
            (p + "ffn_down.weight", [ff, h], wtype, "w"),
        ]
    t.append(("output_norm.weight", [h], GGML_F32, "one"))
    return t


def nbytes(ne, gtype):
    n = 1
    for d in ne:
        n *= d
    if gtype == GGML_F32:
        return 4 * n
    if gtype == GGML_F16:
        return 2 * n
    if gtype == GGML_Q6_K:
        assert ne[0] % QK_K == 0, "Q6_K rows must be a multiple of 256"
        return n // QK_K * Q6_K_BLOCK_BYTES
    assert ne[0] % QK8_0 == 0, "Q8_0 and Q4_0 rows must be a multiple of 32"
    return n // QK8_0 * (Q4_0_BLOCK_BYTES if gtype == GGML_Q4_0 else Q8_0_BLOCK_BYTES)


def pad(n):
    return (ALIGNMENT - n % ALIGNMENT) % ALIGNMENT


def random_chunk(gtype, rng, scale):
    """One random piece of about 1 MiB; tensors are filled by repeating it. The piece length is not
    a multiple of any row length, so rows still differ. Values are uniform in [-scale, scale]."""
    if gtype == GGML_Q8_0:
        nblocks = 30011  # prime, ~1 MiB
        d = struct.pack("<e", scale / 127.0)
        q = rng.randbytes(nblocks * 32)  # int8 in [-128, 127]
        return b"".join(d + q[i * 32:(i + 1) * 32] for i in range(nblocks))
    if gtype == GGML_Q4_0:
        nblocks = 58013  # prime, ~1 MiB
        d = struct.pack("<e", scale / 8.0)
        q = rng.randbytes(nblocks * 16)  # two codes in [0, 15] per byte
        return b"".join(d + q[i * 16:(i + 1) * 16] for i in range(nblocks))
    if gtype == GGML_Q6_K:
        nblocks = 4993  # prime, ~1 MiB
        d = struct.pack("<e", scale / 32.0 / 127.0)
        out = []
        for _ in range(nblocks):  # codes, then scales in [1, 127]
            out.append(rng.randbytes(192) + bytes(rng.randrange(1, 128) for _ in range(16)) + d)
        return b"".join(out)
    n = 262139  # prime
    vals = [rng.uniform(-scale, scale) for _ in range(n)]
    if gtype == GGML_F32:
        return array("f", vals).tobytes()
    return struct.pack("<%de" % n, *vals)


def write_repeated(f, piece, total):
    """Write `total` bytes made of `piece` repeated, in big writes."""
    big = piece * max(1, CHUNK_BYTES // len(piece))
    while total >= len(big):
        f.write(big)
        total -= len(big)
    while total > 0:
        k = min(total, len(piece))
        f.write(piece[:k])
        total -= k

# ---- --weights engine: the engine's own random weights (engine/testing/random_weights.cpp) ----

ENGINE_WEIGHT, ENGINE_BIAS = 0.035, 0.003  # kWeight, kBias there


def engine_draw_plan(cfg):
    """{tensor name: (first draw, scale)}: where each GGUF tensor's values start in the engine's
    stream of splitmix64 draws (random_model: the embedding, then per layer q/k/v stacked, their
    biases, o, gate/up stacked, down; norms are 1 and take no draws)."""
    h, ff, v = cfg["hidden"], cfg["ff"], cfg["vocab"]
    hd = h // cfg["heads"]
    q, kv = cfg["heads"] * hd, cfg["kv_heads"] * hd
    plan, at = {"token_embd.weight": (0, ENGINE_WEIGHT)}, v * h
    for i in range(cfg["layers"]):
        p = "blk.%d." % i
        for name, n in (("attn_q.weight", q * h), ("attn_k.weight", kv * h), ("attn_v.weight", kv * h)):
            plan[p + name] = (at, ENGINE_WEIGHT)
            at += n
        for name, n in (("attn_q.bias", q), ("attn_k.bias", kv), ("attn_v.bias", kv)):
            plan[p + name] = (at, ENGINE_BIAS)
            at += n
        for name, n in (("attn_output.weight", h * q), ("ffn_gate.weight", ff * h), ("ffn_up.weight", ff * h),
                        ("ffn_down.weight", h * ff)):
            plan[p + name] = (at, ENGINE_WEIGHT)
            at += n
    return plan


def engine_draws(np, seed, start, n, scale):
    """Draws start .. start + n - 1 of the engine's stream, as float32: the i-th draw comes from
    splitmix64 state seed + (i + 1) * golden, uniform in [-scale, scale)."""
    i = np.arange(start + 1, start + n + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + i * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    u = ((z ^ (z >> np.uint64(31))) >> np.uint64(40)).astype(np.float32)
    return np.float32(scale) * (u * np.float32(2.0 / 16777216.0) - np.float32(1.0))


def quantize(np, x, gtype):
    """x (float32, a whole number of rows) in ggml's layout for gtype, as bytes."""
    if gtype == GGML_F32:
        return x.astype("<f4").tobytes()
    if gtype == GGML_F16:
        return x.astype("<f2").tobytes()
    if gtype in (GGML_Q8_0, GGML_Q4_0):
        b = x.reshape(-1, QK8_0)
        if gtype == GGML_Q8_0:  # quantize_row_q8_0_ref: d = amax / 127, q = roundf(x / d)
            d = np.abs(b).max(axis=1) / np.float32(127)
            inv = np.where(d != 0, np.float32(1) / np.where(d != 0, d, 1), np.float32(0)).astype(np.float32)
            v = b * inv[:, None]
            q = (np.sign(v) * np.floor(np.abs(v) + np.float32(0.5))).astype(np.int8).view(np.uint8)
        else:  # quantize_row_q4_0_ref: d = m / -8 (m: the value of largest magnitude)
            m = b[np.arange(len(b)), np.abs(b).argmax(axis=1)]
            d = (m / np.float32(-8)).astype(np.float32)
            inv = np.where(d != 0, np.float32(1) / np.where(d != 0, d, 1), np.float32(0)).astype(np.float32)
            c = np.minimum(15, (b * inv[:, None] + np.float32(8.5)).astype(np.int8)).astype(np.uint8)
            q = c[:, :16] | (c[:, 16:] << np.uint8(4))
        return np.concatenate([d.astype("<f2").view(np.uint8).reshape(-1, 2), q], axis=1).tobytes()
    assert gtype == GGML_Q6_K
    b = x.reshape(-1, 16, 16)  # blocks of 256, sub-blocks of 16
    m = np.take_along_axis(b, np.abs(b).argmax(axis=2)[:, :, None], axis=2)[:, :, 0]
    s = m / np.float32(-32)  # each sub-block's scale, its largest weight at code -32
    d = (np.abs(s).max(axis=1) / np.float32(127)).astype(np.float16).astype(np.float32)
    sc = np.where(d[:, None] != 0, np.round(s / np.where(d != 0, d, 1)[:, None]), 0).clip(-127, 127).astype(np.int8)
    step = d[:, None] * sc.astype(np.float32)
    c = np.where(step[:, :, None] != 0, np.round(b / np.where(step != 0, step, 1)[:, :, None]), 0)
    c = (c + 32).clip(0, 63).astype(np.uint8).reshape(-1, 2, 4, 32)  # [block, half, k, l]: y[128 half + 32 k + l]
    ql = np.concatenate([(c[:, :, 0] & 15) | ((c[:, :, 2] & 15) << 4), (c[:, :, 1] & 15) | ((c[:, :, 3] & 15) << 4)],
                        axis=2).reshape(-1, 128)
    qh = ((c[:, :, 0] >> 4) | ((c[:, :, 1] >> 4) << 2) | ((c[:, :, 2] >> 4) << 4) | ((c[:, :, 3] >> 4) << 6)).reshape(-1, 64)
    return np.concatenate([ql, qh, sc.view(np.uint8), d.astype("<f2").view(np.uint8).reshape(-1, 2)], axis=1).tobytes()


def write_engine_tensor(np, f, plan, name, ne, gtype, kind, seed):
    """One tensor from the engine's draws, quantised rows at a time."""
    if kind == "one":
        f.write(np.ones(ne[0], dtype="<f4").tobytes())
        return
    start, scale = plan[name]
    rows, cols = (ne[1], ne[0]) if len(ne) == 2 else (1, ne[0])
    step = max(1, (4 << 20) // cols)
    for r in range(0, rows, step):
        k = min(step, rows - r)
        f.write(quantize(np, engine_draws(np, seed, start + r * cols, k * cols, scale), gtype if kind == "w" else GGML_F32))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", required=True, choices=sorted(SHAPES))
    ap.add_argument("--dtype", required=True, choices=sorted(DTYPES))
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--seed", type=int, default=None,
                    help="random: the random piece's seed (default 0); engine: the engine's seed (default 1)")
    ap.add_argument("--weights", choices=["random", "engine"], default="random",
                    help="random pieces (standard library) or the engine's own random weights (numpy)")
    a = ap.parse_args()
    np = None
    if a.weights == "engine":
        try:
            import numpy as np  # noqa: F811
        except ImportError:
            sys.exit("make_gguf.py: --weights engine needs numpy (python3 -m pip install numpy)")
    if sys.byteorder != "little":
        sys.exit("make_gguf.py: needs a little-endian machine")

    cfg = SHAPES[a.shape]
    wtype, ftype = DTYPES[a.dtype]
    tensors = tensor_list(cfg, wtype)

    kv = [
        gguf_kv("general.architecture", T_STRING, "qwen2"),
        gguf_kv("general.name", T_STRING, "%s %s %s (fastdllm bench)" % (a.shape, a.weights, a.dtype)),
        gguf_kv("general.file_type", T_UINT32, ftype),
        gguf_kv("general.alignment", T_UINT32, ALIGNMENT),
        gguf_kv("qwen2.context_length", T_UINT32, CONTEXT_LENGTH),
        gguf_kv("qwen2.embedding_length", T_UINT32, cfg["hidden"]),
        gguf_kv("qwen2.block_count", T_UINT32, cfg["layers"]),
        gguf_kv("qwen2.feed_forward_length", T_UINT32, cfg["ff"]),
        gguf_kv("qwen2.attention.head_count", T_UINT32, cfg["heads"]),
        gguf_kv("qwen2.attention.head_count_kv", T_UINT32, cfg["kv_heads"]),
        gguf_kv("qwen2.rope.freq_base", T_FLOAT32, ROPE_THETA),
        gguf_kv("qwen2.attention.layer_norm_rms_epsilon", T_FLOAT32, RMS_EPS),
    ] + tokenizer_metadata(cfg["vocab"])

    header = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kv)) + b"".join(kv)
    offset = 0
    infos = []
    for name, ne, gtype, _ in tensors:
        infos.append(gguf_string(name) + struct.pack("<I", len(ne))
                     + struct.pack("<%dQ" % len(ne), *ne) + struct.pack("<IQ", gtype, offset))
        offset += nbytes(ne, gtype)
        offset += pad(offset)
    header += b"".join(infos)
    header += b"\0" * pad(len(header))
    total = len(header) + offset

    rng = random.Random(a.seed or 0)
    plan = engine_draw_plan(cfg) if np else None
    # Scale 0.02 keeps activations small through the residual stream (F16 activations stay
    # finite); norm weights are 1 as in a fresh model.
    pieces = {} if np else {"w": random_chunk(wtype, rng, 0.02), "bias": random_chunk(GGML_F32, rng, 0.02),
                            "one": array("f", [1.0] * 4096).tobytes()}
    if not np and wtype == GGML_Q4_0:
        pieces["embd"] = random_chunk(GGML_Q6_K, rng, 0.02)

    os.makedirs(os.path.dirname(os.path.abspath(a.output)), exist_ok=True)
    tmp = a.output + ".part"  # renamed at the end, so an interrupted run leaves no usable-looking file
    with open(tmp, "wb") as f:
        f.write(header)
        for name, ne, gtype, kind in tensors:
            n = nbytes(ne, gtype)
            if np:
                at = f.tell()
                write_engine_tensor(np, f, plan, name, ne, gtype, kind, 1 if a.seed is None else a.seed)
                assert f.tell() - at == n, (name, f.tell() - at, n)
            else:
                write_repeated(f, pieces["embd" if gtype == GGML_Q6_K else kind], n)
            f.write(b"\0" * pad(n))
        assert f.tell() == total, (f.tell(), total)
    os.replace(tmp, a.output)
    nparams = sum(nbytes(ne, GGML_F32) // 4 for _, ne, _, _ in tensors)
    print("wrote %s: %s %s, %d tensors, %.3f B parameters, %.3f GB" %
          (a.output, a.shape, a.dtype, len(tensors), nparams / 1e9, total / 1e9))


if __name__ == "__main__":
    main()
