#!/usr/bin/env python3
"""Aggregate decoding throughput of `fastdllm serve` with 1, 2, 4 and 8 concurrent clients.

Starts the server on a free loopback port, then for each decoding mode and client count runs that
many clients at once, each sending the same number of chat requests one after another, and prints
a Markdown table: completion tokens of all clients over the wall time, and its ratio to one
client's. Requests decoded at once share their forward passes (--parallel): a one-token pass is
bound by reading the weights, so several AR streams cost little more than one.

  python3 bench/server_throughput.py                        # the demo dLLM (and demo-ar beside it)
  python3 bench/server_throughput.py --shape qwen2.5-1.5b   # random weights in the published shape

With --shape, a random-weight checkpoint of that shape is written first (fastdllm mkmodel, with
the Qwen2.5 tokenizer of the test fixtures) to --workdir; its answers are noise that rarely hits
a stop token, so every request decodes --max-tokens tokens.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PROMPTS = [
    "What is 12 + 30?", "Spell the word garden.", "Reverse the word table.", "Sort these numbers: 41, 7, 19.",
    "What is 7 * 8?", "Spell the word river.", "Reverse the word lamp.", "What is 93 - 27?",
]


def start_server(binary, model, parallel, threads):
    cmd = [binary, "serve", "--port", "0", "--parallel", str(parallel), "-m", model, "--max-queue", "1000"]
    if threads:
        cmd += ["-t", str(threads)]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 600
    while time.time() < deadline:
        line = proc.stderr.readline()
        if not line:
            raise SystemExit("the server exited: " + " ".join(cmd))
        m = re.search(r"on http://[^:]+:(\d+)/", line)
        if m:
            threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep its log drained
            return proc, int(m.group(1))
    raise SystemExit("the server did not start in time")


def chat(port, prompt, mode, max_tokens):
    body = {"messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens, "mode": mode}
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=3600) as r:
        return json.loads(r.read())


def run(port, clients, requests, mode, max_tokens):
    tokens = [0] * clients
    errors = []

    def client(k):
        try:
            for i in range(requests):
                out = chat(port, PROMPTS[(k * requests + i) % len(PROMPTS)], mode, max_tokens)
                tokens[k] += out["usage"]["completion_tokens"]
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.time() - t0
    if errors:
        raise SystemExit("request failed: " + errors[0])
    return sum(tokens), wall


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "fastdllm"))
    ap.add_argument("--model", default=os.path.join(ROOT, "assets", "models", "demo-dllm"))
    ap.add_argument("--shape", help="write and serve a random-weight model of this published shape")
    ap.add_argument("--workdir", default="/tmp/fastdllm-throughput")
    ap.add_argument("--clients", default="1,2,4,8")
    ap.add_argument("--modes", default="ar,diffusion")
    ap.add_argument("--requests", type=int, default=4, help="requests per client")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--parallel", type=int, default=8, help="the server's --parallel")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()

    model = args.model
    if args.shape:
        model = os.path.join(args.workdir, args.shape)
        if not os.path.exists(os.path.join(model, "config.json")):
            tok = os.path.join(ROOT, "tests", "fixtures", "tokenizer-qwen2.5", "tokenizer.json")
            subprocess.run([args.bin, "mkmodel", "--shape", args.shape, "--tokenizer", tok, model], check=True)
    proc, port = start_server(args.bin, model, args.parallel, args.threads)
    try:
        chat(port, PROMPTS[0], "ar", 8)  # warm: threads started, buffers allocated
        head = (f"`fastdllm serve --parallel {args.parallel}` on {os.path.basename(model.rstrip('/'))}, "
                f"{args.requests} requests per client, max_tokens {args.max_tokens}")
        print(head + "\n")
        print("| mode | clients | tokens | wall s | aggregate tok/s | vs 1 client |")
        print("|---|---:|---:|---:|---:|---:|")
        for mode in args.modes.split(","):
            base = None
            for c in [int(x) for x in args.clients.split(",")]:
                tokens, wall = run(port, c, args.requests, mode, args.max_tokens)
                rate = tokens / wall
                base = base or rate
                print(f"| {mode} | {c} | {tokens} | {wall:.2f} | {rate:.1f} | {rate / base:.2f}x |", flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
