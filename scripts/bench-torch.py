#!/usr/bin/env python3
"""PyTorch CUDA fp32 eager peer for `weft bench`: the same llama shapes (110M, 1B), random weights,
prefill over a prompt and decode one token at a time against a preallocated KV cache.

Timing matches weft bench: one warm-up, then the median of --runs timed runs; each run ends by copying
the last logits to the host, so all GPU work is counted. Prints one JSON row per model (a list, as
`weft bench --json` writes), optionally to --json FILE.
"""
import argparse
import json
import math
import statistics
import time

import torch

CONFIGS = {
    "110M": dict(dim=768, hidden=2048, layers=12, heads=12, kv_heads=12, vocab=32000, seq_len=1024),
    "1B": dict(dim=2048, hidden=8192, layers=16, heads=32, kv_heads=8, vocab=32000, seq_len=1024),
}


class Llama:
    """llama2.c's model in plain torch ops: RMSNorm, adjacent-pair RoPE, grouped-query attention, SwiGLU."""

    def __init__(self, c, device, eps=1e-5, theta=10000.0):
        g = torch.Generator(device="cpu").manual_seed(0)
        self.c, self.eps = c, eps
        dim, hidden, hs = c["dim"], c["hidden"], c["dim"] // c["heads"]
        kv = c["kv_heads"] * hs
        self.hs, self.kv = hs, kv

        def mat(n, k):
            return ((torch.rand(n, k, generator=g) * 2 - 1) / math.sqrt(k)).to(device)

        def norm(n):
            return (1 + (torch.rand(n, generator=g) * 2 - 1) * 0.1).to(device)

        self.emb = (torch.rand(c["vocab"], dim, generator=g) * 2 - 1).to(device)
        self.layers = []
        for _ in range(c["layers"]):
            self.layers.append(
                dict(
                    an=norm(dim), wqkv=torch.cat([mat(dim, dim), mat(kv, dim), mat(kv, dim)]), wo=mat(dim, dim),
                    fn=norm(dim), w13=torch.cat([mat(hidden, dim), mat(hidden, dim)]), w2=mat(dim, hidden),
                )
            )
        self.norm, self.out = norm(dim), mat(c["vocab"], dim)
        freqs = 1.0 / theta ** (torch.arange(0, hs, 2, dtype=torch.float32) / hs)
        angles = torch.outer(torch.arange(c["seq_len"], dtype=torch.float32), freqs)
        self.cos, self.sin = angles.cos().to(device), angles.sin().to(device)
        self.k_cache = torch.zeros(c["layers"], c["seq_len"], kv, device=device)
        self.v_cache = torch.zeros(c["layers"], c["seq_len"], kv, device=device)

    def rmsnorm(self, x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * w

    def rope(self, x, pos, heads):
        t = x.shape[0]
        x = x.view(t, heads, self.hs // 2, 2)
        c, s = self.cos[pos].unsqueeze(1), self.sin[pos].unsqueeze(1)
        x0, x1 = x[..., 0], x[..., 1]
        return torch.stack([x0 * c - x1 * s, x0 * s + x1 * c], -1).view(t, heads * self.hs)

    @torch.no_grad()
    def forward(self, tokens, start):
        c, hs, kv = self.c, self.hs, self.kv
        t = tokens.shape[0]
        pos = torch.arange(start, start + t, device=tokens.device)
        x = self.emb[tokens]
        heads, kvh = c["heads"], c["kv_heads"]
        for i, l in enumerate(self.layers):
            h = self.rmsnorm(x, l["an"])
            q, k, v = (h @ l["wqkv"].T).split([c["dim"], kv, kv], -1)
            q, k = self.rope(q, pos, heads), self.rope(k, pos, kvh)
            self.k_cache[i, start : start + t] = k
            self.v_cache[i, start : start + t] = v
            keys = self.k_cache[i, : start + t].view(-1, kvh, hs).transpose(0, 1)
            vals = self.v_cache[i, : start + t].view(-1, kvh, hs).transpose(0, 1)
            qh = q.view(t, heads, hs).transpose(0, 1)
            rep = heads // kvh
            keys, vals = keys.repeat_interleave(rep, 0), vals.repeat_interleave(rep, 0)
            att = torch.nn.functional.scaled_dot_product_attention(
                qh.unsqueeze(0), keys.unsqueeze(0), vals.unsqueeze(0),
                attn_mask=(pos.unsqueeze(1) >= torch.arange(start + t, device=x.device).unsqueeze(0)),
            )[0]
            x = x + att.transpose(0, 1).reshape(t, c["dim"]) @ l["wo"].T
            f = self.rmsnorm(x, l["fn"])
            g, u = (f @ l["w13"].T).split(c["hidden"], -1)
            x = x + (torch.nn.functional.silu(g) * u) @ l["w2"].T
        return self.rmsnorm(x, self.norm) @ self.out.T


def median(xs):
    return statistics.median(xs)


def bench(name, prompt_tokens, decode_tokens, runs):
    dev = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    m = Llama(CONFIGS[name], dev)
    vocab = CONFIGS[name]["vocab"]
    prefill = {}
    for n in prompt_tokens:
        tokens = torch.tensor([1] + [3 + (i * 7919) % (vocab - 3) for i in range(1, n)], device=dev)
        times = []
        for r in range(runs + 1):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            logits = m.forward(tokens, 0)
            logits[-1].argmax().item()
            if r > 0:
                times.append(time.perf_counter() - t0)
        prefill[str(n)] = n / median(times)
    per_token = []
    for r in range(runs + 1):
        tok = torch.tensor([1], device=dev)
        logits = m.forward(tok, 0)
        nxt = logits[-1].argmax().item()
        t0 = time.perf_counter()
        for p in range(1, decode_tokens + 1):
            logits = m.forward(torch.tensor([nxt], device=dev), p)
            nxt = logits[-1].argmax().item()
        if r > 0:
            per_token.append((time.perf_counter() - t0) / decode_tokens)
    return {
        "engine": "pytorch-cuda-fp32-eager",
        "model": name,
        "device": f"{torch.cuda.get_device_name(0)} (torch {torch.__version__}, CUDA {torch.version.cuda}, TF32 off)",
        "prefill_tokens_per_s": prefill,
        "decode_tokens_per_s": 1 / median(per_token),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", action="append", choices=sorted(CONFIGS), required=True)
    ap.add_argument("--prompt-tokens", default="128")
    ap.add_argument("--decode-tokens", type=int, default=64)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json")
    a = ap.parse_args()
    rows = [bench(m, [int(x) for x in a.prompt_tokens.split(",")], a.decode_tokens, a.runs) for m in a.model]
    text = json.dumps(rows, indent=2)
    print(text)
    if a.json:
        with open(a.json, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
