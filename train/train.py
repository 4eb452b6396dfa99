#!/usr/bin/env python3
"""AR pre-training + Fast-dLLM v2 block-diffusion conversion, with a wall-clock budget.

  /usr/bin/python3 train/train.py --data train/runs/data/train.jsonl --tok train/runs/tok \
      --runs train/runs --export-ar assets/models/demo-ar --export-dllm assets/models/demo-dllm \
      --budget-min 80 --ar-frac 0.45

Phase 1 (ar): causal LM on the chat data, loss on response tokens (all tokens of free text).
Phase 2 (dllm): initialised from the AR weights; blocks of B=32; per block t ~ U(eps, 1);
input [xt ; x0] with the three-part mask; logits on the xt half; cross-entropy with the AR
shift on masked response positions; complementary masks. Both phases: AdamW, warmup then
cosine decay over the phase's wall-clock budget (so the run stops on time), grad clip.
Checkpoints every --ckpt-min minutes (train/runs/{ar,dllm}.pt) and exports at phase ends
(and at every dLLM checkpoint), so a killed run still leaves models.

GPU: --device cuda (bf16 autocast). Multi-GPU: torchrun --nproc_per_node N train/train.py ...
(DistributedDataParallel when WORLD_SIZE > 1; rank 0 logs, checkpoints and exports).
"""
import argparse
import json
import math
import os
import random
import sys
import time

# Passive OpenMP waiting: on a shared, oversubscribed CPU the default spin-waiting makes
# torch's 2-thread GEMMs up to 10x slower (measured). Must be set before torch loads libgomp.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch
import torch.nn.functional as F
import torch.utils.data

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bpe import Tokenizer  # noqa: E402
import docs as docstore  # noqa: E402
from docs import render_chat  # noqa: E402
from model import Config, Qwen2, causal_doc_mask, block_diffusion_mask  # noqa: E402
import export as exporter  # noqa: E402

IGNORE = -100


# ----------------------------------------------------------------------------- data

class Packer:
    """Endless stream of packed rows. align=1: AR packing; align=B: each doc padded with
    <|endoftext|> to a multiple of B (pads count as response in the dLLM phase)."""

    def __init__(self, docs, seq, align, pad_id, seed, rank=0, world=1):
        self.docs, self.seq, self.align, self.pad = docs, seq, align, pad_id
        self.rng = random.Random(seed + 1000 * rank)
        self.order, self.i = [], 0
        self.rank, self.world = rank, world
        self.epoch = 0

    def _next_doc(self):
        if self.i >= len(self.order):
            self.order = list(range(self.rank, len(self.docs), self.world))
            self.rng.shuffle(self.order)
            self.i = 0
            self.epoch += 1
        d = self.docs[self.order[self.i]]
        self.i += 1
        return d

    def row(self):
        ids, resp, seg, pos = [], [], [], []
        s = 0
        pending = getattr(self, "_pending", None)
        self._pending = None
        while True:
            d = pending or self._next_doc()
            pending = None
            di, dr = list(d[0]), list(d[1])
            if self.align > 1:
                n = (-len(di)) % self.align
                di += [self.pad] * n
                dr += [1] * n
            if len(ids) + len(di) > self.seq:
                if not ids:
                    di, dr = di[:self.seq], dr[:self.seq]
                else:
                    self._pending = d
                    break
            ids += di
            resp += dr
            seg += [s] * len(di)
            pos += list(range(len(di)))
            s += 1
            if len(ids) >= self.seq:
                break
        n = self.seq - len(ids)
        ids += [self.pad] * n
        resp += [0] * n
        seg += [-1] * n
        pos += list(range(n))
        return ids, resp, seg, pos

    def batch(self, bs):
        rows = [self.row() for _ in range(bs)]
        return [torch.tensor([r[k] for r in rows]) for k in range(4)]


class PackedBatches(torch.utils.data.IterableDataset):
    """Endless batches from Packers in data-loader worker processes (--workers N): on a GPU the
    Python packing (about 9k rows/s per process) would otherwise limit a step. Worker w of rank r
    reads the shard r*N+w of world*N, so no two processes see the same document in an epoch."""

    def __init__(self, docs, seq, align, pad_id, seed, rank, world, workers, bs):
        super().__init__()
        self.args = (docs, seq, align, pad_id, seed)
        self.rank, self.world, self.workers, self.bs = rank, world, workers, bs

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        wid = info.id if info else 0
        docs, seq, align, pad_id, seed = self.args
        packer = Packer(docs, seq, align, pad_id, seed, self.rank * self.workers + wid, self.world * self.workers)
        while True:
            yield packer.batch(self.bs)


def batch_stream(docs, seq, align, pad_id, seed, rank, world, workers, bs, pin):
    if workers <= 0:  # iterated in this process: one packer on the rank's own shard
        return iter(PackedBatches(docs, seq, align, pad_id, seed, rank, world, 1, bs))
    ds = PackedBatches(docs, seq, align, pad_id, seed, rank, world, workers, bs)
    return iter(torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers, pin_memory=pin,
                                            prefetch_factor=4, persistent_workers=False))


# ----------------------------------------------------------------------------- losses

def ar_loss(model, ids, resp, seg, pos, dev):
    ids, resp, seg, pos = ids.to(dev), resp.to(dev), seg.to(dev), pos.to(dev)
    mask = causal_doc_mask(seg)
    ok = (resp[:, 1:] == 1) & (seg[:, 1:] == seg[:, :-1]) & (seg[:, 1:] >= 0)
    # logits only where there is a target (saves the lm_head + softmax on prompt positions)
    logits = model(ids, pos, mask, select=ok)
    loss = F.cross_entropy(logits.float(), ids[:, 1:][ok])
    return loss, int(ok.sum())


def dllm_loss(model, ids, resp, seg, pos, dev, mask_id, bsize, eps=1e-3, gen=None):
    """Fast-dLLM v2 block-diffusion loss with complementary masks. ids [B,T] packed with every
    document aligned to bsize (so block index = position // bsize within the row)."""
    ids, resp, seg, pos = ids.to(dev), resp.to(dev), seg.to(dev), pos.to(dev)
    B, T = ids.shape
    nb = T // bsize
    blk = (torch.arange(T, device=dev) // bsize)[None].expand(B, T)
    t = torch.rand(B, nb, device=dev, generator=gen) * (1 - eps) + eps
    u = torch.rand(B, T, device=dev, generator=gen)
    maskable = (resp == 1) & (seg >= 0)
    m1 = (u < t.repeat_interleave(bsize, dim=1)) & maskable
    m2 = (~m1) & maskable
    # the first token of a document has no predecessor in its document: never a target
    first = torch.ones_like(maskable)
    first[:, 1:] = seg[:, 1:] != seg[:, :-1]
    m1 &= ~first
    m2 &= ~first
    x0 = torch.cat([ids, ids], 0)
    mm = torch.cat([m1, m2], 0)
    xt = torch.where(mm, torch.full_like(x0, mask_id), x0)
    seg2, pos2, blk2 = torch.cat([seg, seg], 0), torch.cat([pos, pos], 0), torch.cat([blk, blk], 0)
    inp = torch.cat([xt, x0], 1)
    p = torch.cat([pos2, pos2], 1)
    amask = block_diffusion_mask(seg2, blk2)
    ok = mm[:, 1:]  # logit at i (xt half) scores token i+1 when i+1 is masked
    sel = torch.cat([ok, torch.zeros(2 * B, T + 1, dtype=torch.bool, device=dev)], 1)
    logits = model(inp, p, amask, select=sel)
    loss = F.cross_entropy(logits.float(), x0[:, 1:][ok])
    return loss, int(ok.sum())


# ----------------------------------------------------------------------------- reference decoding (for logging)

@torch.no_grad()
def ar_generate(model, tok, prompt_ids, max_new, dev):
    stop = {tok.special["<|im_end|>"], tok.special["<|endoftext|>"]}
    ids = list(prompt_ids)
    for _ in range(max_new):
        x = torch.tensor([ids], device=dev)
        nxt = int(model(x)[0, -1].float().argmax())
        if nxt in stop:
            break
        ids.append(nxt)
    return ids[len(prompt_ids):]


def block_causal(T, bsize, dev):
    b = torch.arange(T, device=dev) // bsize
    return b[None, :] <= b[:, None]


@torch.no_grad()
def diffusion_generate(model, tok, prompt_ids, max_new, dev, bsize=32, sub=8, tau=0.9):
    """Exact (no cache) block-diffusion decoding, as in docs/design.md with the caches off."""
    mask_id = tok.special["|<MASK>|"]
    stop = tok.special["<|im_end|>"]
    V = model.config.vocab_size
    seq = list(prompt_ids)
    L = len(seq)
    nfe = 0
    if L >= bsize:  # prefill (counted as one forward; without caches only its last logit matters)
        nfe += 1
        if L % bsize == 0:
            lg = model(torch.tensor([seq], device=dev), None, block_causal(L, bsize, dev))
            seq.append(int(lg[0, -1].float().argmax()))
    for _ in range(max(1, max_new // bsize)):
        n = (-len(seq)) % bsize
        start = len(seq) + n - bsize
        seq += [mask_id] * n
        finished = False
        for s0 in range(start, start + bsize, sub):
            while True:
                masked = [p for p in range(s0, s0 + sub) if seq[p] == mask_id]
                if not masked:
                    break
                x = torch.tensor([seq], device=dev)
                lg = model(x, None, block_causal(len(seq), bsize, dev))[0].float()
                nfe += 1
                lg[:, mask_id] = -float("inf")
                pr = torch.softmax(lg, -1)
                conf, arg = pr.max(-1)
                cands = [(float(conf[p - 1]), p, int(arg[p - 1])) for p in masked]
                best = max(cands)
                for c, p, t in cands:
                    if c > tau or p == best[1]:
                        seq[p] = t
                if stop in seq[L:]:
                    k = seq.index(stop, L)
                    if all(seq[q] != mask_id for q in range(L, k)):
                        finished = True
                        break
            if finished:
                break
        if finished:
            break
        lg = model(torch.tensor([seq], device=dev), None, block_causal(len(seq), bsize, dev))
        nfe += 1
        seq.append(int(lg[0, -1].float().argmax()))
    out = seq[L:]
    if stop in out:
        out = out[:out.index(stop)]
    return out, nfe


def quick_eval(model, tok, items, dev, mode):
    import re
    model.eval()
    ok, ntok, nfe_all = 0, 0, 0
    samples = []
    for it in items:
        p, _ = render_chat([{"role": "user", "content": it["prompt"]}, {"role": "assistant", "content": ""}])
        pid = tok.encode(p)
        if mode == "ar":
            out = ar_generate(model, tok, pid, 40, dev)
            nfe = len(out) + 1
        else:
            out, nfe = diffusion_generate(model, tok, pid, 64, dev)
        text = tok.decode([i for i in out if i < tok.special["<|endoftext|>"]])
        nums = re.findall(r"-?\d+", text)
        ok += int(bool(nums) and nums[-1] == it["answer"])
        ntok += len(out)
        nfe_all += nfe
        if len(samples) < 3:
            samples.append(text)
    model.train()
    return ok / max(1, len(items)), ntok / max(1, nfe_all), samples


# ----------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="train/runs/data/train.jsonl",
                    help="make_data.py's train.jsonl, or a pre-tokenized .tok.xz from train/docs.py")
    ap.add_argument("--tok", default="train/runs/tok")
    ap.add_argument("--runs", default="train/runs")
    ap.add_argument("--export-ar", default="assets/models/demo-ar")
    ap.add_argument("--export-dllm", default="assets/models/demo-dllm")
    ap.add_argument("--eval-arith", default="assets/eval/arithmetic.jsonl")
    ap.add_argument("--budget-min", type=float, default=80.0, help="wall-clock budget for both phases")
    ap.add_argument("--ar-frac", type=float, default=0.45, help="share of the budget for the AR phase")
    ap.add_argument("--phases", default="ar,dllm")
    ap.add_argument("--ar-steps", type=int, default=0, help="cap on AR steps (0 = budget only)")
    ap.add_argument("--dllm-steps", type=int, default=0)
    ap.add_argument("--init", default="",
                    help="checkpoint to start from (e.g. train/runs/ar.pt for dllm only), or an exported model folder")
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16, help="rows per step (AR)")
    ap.add_argument("--dllm-batch", type=int, default=4, help="rows per step (dLLM; each becomes 2 rows of 2*seq)")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--dllm-lr", type=float, default=1e-3)
    ap.add_argument("--min-lr-frac", type=float, default=0.1)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--wd", type=float, default=0.1)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--bd-size", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--inter", type=int, default=688)
    ap.add_argument("--rope-theta", type=float, default=10000.0)
    ap.add_argument("--max-pos", type=int, default=2048)
    ap.add_argument("--untied", action="store_true")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit-docs", type=int, default=0)
    ap.add_argument("--workers", type=int, default=0,
                    help="data-loader processes packing batches (0 = in the training process; 4-8 on a GPU)")
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--ckpt-min", type=float, default=8.0)
    ap.add_argument("--eval-min", type=float, default=10.0, help="quick arithmetic eval every N minutes (0=off)")
    ap.add_argument("--eval-n", type=int, default=30)
    args = ap.parse_args()

    t_start = time.time()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    ddp = world > 1
    dev = torch.device(args.device)
    if ddp:
        import torch.distributed as dist
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if args.device.startswith("cuda"):
            dev = torch.device("cuda", local)
            torch.cuda.set_device(dev)
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    main_proc = rank == 0
    os.makedirs(args.runs, exist_ok=True)
    logf = open(os.path.join(args.runs, "metrics.jsonl"), "a") if main_proc else None

    def log(**kw):
        kw["t"] = round(time.time() - t_start, 1)
        if main_proc:
            print(json.dumps(kw), flush=True)
            logf.write(json.dumps(kw) + "\n")
            logf.flush()

    tok = Tokenizer(os.path.join(args.tok, "tokenizer.json"))
    pad_id, mask_id = tok.special["<|endoftext|>"], tok.special["|<MASK>|"]
    t0 = time.time()
    docs = docstore.load(args.data, tok, args.tok, args.seq, args.limit_docs)
    ntok = docs.num_tokens()
    log(event="data", docs=len(docs), tokens=ntok, resp_tokens=docs.num_response_tokens(),
        secs=round(time.time() - t0, 1))
    eval_items = []
    if args.eval_arith and os.path.exists(args.eval_arith):
        with open(args.eval_arith) as f:
            eval_items = [json.loads(l) for l in f][:args.eval_n]

    cfg = Config(vocab_size=tok.vocab_size, hidden_size=args.hidden, intermediate_size=args.inter,
                 num_hidden_layers=args.layers, num_attention_heads=args.heads, num_key_value_heads=args.kv_heads,
                 max_position_embeddings=args.max_pos, rope_theta=args.rope_theta,
                 tie_word_embeddings=not args.untied)
    model = Qwen2(cfg).to(dev)
    if args.init:
        if os.path.isdir(args.init):  # an exported model folder (BF16 weights)
            state, icfg = exporter.load_hf(args.init)
            if icfg != cfg.to_dict():
                raise SystemExit(f"--init {args.init}: its config {icfg} differs from this run's {cfg.to_dict()}")
        else:
            state = torch.load(args.init, map_location="cpu")["model"]
        model.load_state_dict(state)
        log(event="init", path=args.init)
    log(event="model", params=model.num_params(), config=cfg.to_dict())
    net = model
    if ddp:
        from torch.nn.parallel import DistributedDataParallel as DDP
        net = DDP(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    amp = (lambda: torch.autocast(device_type="cuda", dtype=torch.bfloat16)) if dev.type == "cuda" else None

    phases = [p for p in args.phases.split(",") if p]
    budget = args.budget_min * 60.0
    deadline = t_start + budget
    train_info = {}

    def save(phase, step, extra):
        if not main_proc:
            return
        path = os.path.join(args.runs, phase + ".pt")
        torch.save({"model": model.state_dict(), "config": cfg.to_dict(), "phase": phase, "step": step,
                    "extra": extra}, path + ".tmp")
        os.replace(path + ".tmp", path)

    def do_export(phase):
        if not main_proc:
            return
        out = args.export_ar if phase == "ar" else args.export_dllm
        if not out:
            return
        n = exporter.export(model.state_dict(), cfg.to_dict(), args.tok, out, phase, args.bd_size,
                            extra=train_info.get(phase))
        log(event="export", phase=phase, out=out, bytes=n)

    for pi, phase in enumerate(phases):
        now = time.time()
        if len(phases) == 2 and pi == 0:
            phase_end = t_start + budget * args.ar_frac
        else:
            phase_end = deadline
        phase_budget = max(1.0, phase_end - now)
        align = 1 if phase == "ar" else args.bd_size
        batches = batch_stream(docs, args.seq, align, pad_id, args.seed + 17 * pi, rank, world, args.workers,
                               args.batch if phase == "ar" else args.dllm_batch, dev.type == "cuda")
        lr_peak = args.lr if phase == "ar" else args.dllm_lr
        opt = torch.optim.AdamW(model.parameters(), lr=lr_peak, betas=(0.9, 0.95), weight_decay=args.wd)
        bs = args.batch if phase == "ar" else args.dllm_batch
        max_steps = args.ar_steps if phase == "ar" else args.dllm_steps
        warm = args.warmup if phase == "ar" else max(10, args.warmup // 2)
        gen = torch.Generator(device=dev)
        gen.manual_seed(args.seed + 99 + rank)
        step, seen_tok, seen_tgt, tl = 0, 0, 0, time.time()
        last_ck, last_ev = time.time(), time.time()
        loss_acc, n_acc = 0.0, 0
        log(event="phase", phase=phase, budget_s=round(phase_budget), batch=bs, lr=lr_peak, world=world)
        ph_t0 = time.time()
        while True:
            frac_t = (time.time() - ph_t0) / phase_budget
            frac = max(frac_t, step / max_steps) if max_steps else frac_t
            stop = frac >= 1.0 or time.time() >= deadline
            if ddp:
                flag = torch.tensor([1.0 if stop else 0.0], device=dev)
                torch.distributed.all_reduce(flag)
                stop = flag.item() > 0
            if stop:
                break
            if step < warm:
                lr = lr_peak * (step + 1) / warm
            else:
                lr = lr_peak * (args.min_lr_frac + (1 - args.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))
            for g in opt.param_groups:
                g["lr"] = lr
            ids, resp, seg, pos = next(batches)
            ctx = amp() if amp else None
            if ctx:
                ctx.__enter__()
            if phase == "ar":
                loss, ntgt = ar_loss(net, ids, resp, seg, pos, dev)
                ftok = ids.numel()
            else:
                loss, ntgt = dllm_loss(net, ids, resp, seg, pos, dev, mask_id, args.bd_size, gen=gen)
                ftok = ids.numel() * 4
            if ctx:
                ctx.__exit__(None, None, None)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            gn = torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            opt.step()
            step += 1
            seen_tok += ids.numel()
            seen_tgt += ntgt
            loss_acc += float(loss)
            n_acc += 1
            if step % args.log_every == 0:
                dt = time.time() - tl
                log(event="step", phase=phase, step=step, loss=round(loss_acc / n_acc, 4), lr=round(lr, 6),
                    gnorm=round(float(gn), 3), tok_s=round(args.log_every * ids.numel() * world / dt),
                    fwd_tok_s=round(args.log_every * ftok * world / dt), seen_tok=seen_tok * world,
                    epochs=round(seen_tok * world / max(1, ntok), 2))
                loss_acc, n_acc, tl = 0.0, 0, time.time()
            if main_proc and time.time() - last_ck > args.ckpt_min * 60:
                save(phase, step, {})
                if phase == "dllm":
                    do_export(phase)
                last_ck = time.time()
            if main_proc and args.eval_min and eval_items and time.time() - last_ev > args.eval_min * 60:
                te = time.time()
                acc, tpf, smp = quick_eval(model, tok, eval_items[:10], dev, phase)
                log(event="quick_eval", phase=phase, step=step, arith_acc=acc, tok_per_fwd=round(tpf, 2),
                    samples=smp, secs=round(time.time() - te, 1))
                last_ev = time.time()
        el = time.time() - ph_t0
        train_info[phase] = {"steps": step, "tokens": seen_tok * world, "wall_s": round(el),
                             "target_tokens": seen_tgt * world}
        log(event="phase_done", phase=phase, steps=step, tokens=seen_tok * world, wall_s=round(el),
            tok_s=round(seen_tok * world / max(el, 1e-9)))
        save(phase, step, train_info[phase])
        do_export(phase)
        if main_proc and eval_items:
            te = time.time()
            acc, tpf, smp = quick_eval(model, tok, eval_items, dev, phase)
            log(event="phase_eval", phase=phase, arith_acc=acc, n=len(eval_items), tok_per_fwd=round(tpf, 2),
                samples=smp, secs=round(time.time() - te, 1))
    log(event="done", wall_s=round(time.time() - t_start))
    if ddp:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
