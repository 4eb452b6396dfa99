"""A Qwen2 decoder in plain PyTorch (works on torch 1.13 CPU and recent torch on GPU).

Same math and parameter names as transformers' Qwen2ForCausalLM: RMSNorm (eps 1e-6),
rotary embeddings with the rotate_half convention, grouped-query attention with biases on
q/k/v and none on o, SwiGLU MLP, optional tied lm_head. forward() takes an arbitrary boolean
attention mask (True = may attend) of shape [T, T] or [batch, T, T] and explicit position ids,
which is what the block-diffusion recipe needs.
"""
import math
from dataclasses import dataclass, asdict

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class Config:
    vocab_size: int = 4096
    hidden_size: int = 256
    intermediate_size: int = 688
    num_hidden_layers: int = 6
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    max_position_embeddings: int = 2048
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    tie_word_embeddings: bool = True

    @property
    def head_dim(self):
        return self.hidden_size // self.num_attention_heads

    def to_dict(self):
        return asdict(self)


class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        dt = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dt)


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def rope_cos_sin(pos, head_dim, theta, dtype):
    """pos: [B, T] long -> cos, sin [B, 1, T, head_dim] (HF layout: freqs duplicated, not interleaved)."""
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=pos.device, dtype=torch.float32) / head_dim))
    f = pos.float()[..., None] * inv  # B,T,hd/2
    emb = torch.cat((f, f), dim=-1)
    return emb.cos()[:, None].to(dtype), emb.sin()[:, None].to(dtype)


class Attention(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.nh, self.nkv, self.hd = c.num_attention_heads, c.num_key_value_heads, c.head_dim
        self.q_proj = nn.Linear(c.hidden_size, self.nh * self.hd, bias=True)
        self.k_proj = nn.Linear(c.hidden_size, self.nkv * self.hd, bias=True)
        self.v_proj = nn.Linear(c.hidden_size, self.nkv * self.hd, bias=True)
        self.o_proj = nn.Linear(self.nh * self.hd, c.hidden_size, bias=False)

    def forward(self, x, cos, sin, mask):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.nh, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.nkv, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.nkv, self.hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        # under bf16 autocast the fp32 rope factors promote q, k to fp32 while v stays bf16;
        # attention wants one dtype
        q, k = q.to(v.dtype), k.to(v.dtype)
        rep = self.nh // self.nkv
        if rep > 1:
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
        m = mask[:, None] if mask.dim() == 3 else mask  # B,1,T,T or T,T
        if hasattr(F, "scaled_dot_product_attention"):
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=m)
        else:
            att = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(self.hd))
            att = att.masked_fill(~m, float("-inf"))
            att = torch.softmax(att.float(), dim=-1).to(q.dtype)
            y = att @ v
        y = y.transpose(1, 2).reshape(B, T, self.nh * self.hd)
        return self.o_proj(y)


class MLP(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.gate_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.up_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.down_proj = nn.Linear(c.intermediate_size, c.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.self_attn = Attention(c)
        self.mlp = MLP(c)
        self.input_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)

    def forward(self, x, cos, sin, mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class Backbone(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.embed_tokens = nn.Embedding(c.vocab_size, c.hidden_size)
        self.layers = nn.ModuleList([Layer(c) for _ in range(c.num_hidden_layers)])
        self.norm = RMSNorm(c.hidden_size, c.rms_norm_eps)


class Qwen2(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.config = c
        self.model = Backbone(c)
        self.lm_head = nn.Linear(c.hidden_size, c.vocab_size, bias=False)
        if c.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        self.apply(self._init)

    @staticmethod
    def _init(m):
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)

    def num_params(self):
        return sum(p.numel() for p in self.parameters())

    def hidden(self, ids, pos, mask):
        x = self.model.embed_tokens(ids)
        cos, sin = rope_cos_sin(pos, self.config.head_dim, self.config.rope_theta, x.dtype)
        for layer in self.model.layers:
            x = layer(x, cos, sin, mask)
        return self.model.norm(x)

    def forward(self, ids, pos=None, mask=None, logits_slice=None, select=None):
        """ids [B,T]; pos [B,T] (default 0..T-1); mask bool [B,T,T] or [T,T] (default causal).
        logits_slice: optional slice over T to compute logits for (e.g. the xt half).
        select: optional bool [B,T'] (T' <= T, a prefix): return logits [N, V] for the selected
        positions only."""
        B, T = ids.shape
        if pos is None:
            pos = torch.arange(T, device=ids.device)[None].expand(B, T)
        if mask is None:
            mask = torch.ones(T, T, dtype=torch.bool, device=ids.device).tril()
        h = self.hidden(ids, pos, mask)
        if logits_slice is not None:
            h = h[:, logits_slice]
        if select is not None:
            h = h[:, :select.shape[1]][select]
        return self.lm_head(h)


# ----------------------------------------------------------------------------- masks

def causal_doc_mask(seg):
    """seg [B,T] segment ids (documents packed in a row): causal within each segment."""
    T = seg.shape[1]
    same = seg[:, :, None] == seg[:, None, :]
    causal = torch.ones(T, T, dtype=torch.bool, device=seg.device).tril()
    return same & causal[None]


def block_diffusion_mask(seg, blk):
    """Mask for the [xt ; x0] input of length 2T (Fast-dLLM v2 training).

    seg [B,T]: segment (document) id per position; blk [B,T]: block index of each position
    (within its document; blocks never straddle documents). Returns bool [B, 2T, 2T]:
      xt -> xt : same block (block-diagonal)
      xt -> x0 : x0 blocks strictly before (offset block-causal)
      x0 -> x0 : blocks <= own block (block-causal)
      x0 -> xt : never
    all restricted to the same document.
    """
    same = seg[:, :, None] == seg[:, None, :]
    bi, bj = blk[:, :, None], blk[:, None, :]
    diag = same & (bi == bj)
    offset = same & (bj < bi)
    bcaus = same & (bj <= bi)
    top = torch.cat([diag, offset], dim=2)
    bottom = torch.cat([torch.zeros_like(diag), bcaus], dim=2)
    return torch.cat([top, bottom], dim=1)
