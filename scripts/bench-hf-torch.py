#!/usr/bin/env python3
"""PyTorch peer for `weft bench` on a Hugging Face checkpoint folder, as a user runs it: transformers loads it in
bfloat16 on the GPU (attention 'sdpa') and the same figures as weft's row are timed.

  prefill   one forward over N token ids (weft bench's prompt), no cache kept, the last position's logits (as
            generate's prefill asks for them)
  decode    N greedy steps after a one-token prompt against a DynamicCache, eager: each step feeds the argmax,
            which stays on the GPU (no readback per step, as generate's deferred stop check)
  decode, static cache + CUDA graphs   the same steps against a StaticCache of 1 + N positions through
            torch.compile(mode='reduce-overhead'), the prompt step eager (generate's cache_implementation='static')

Timing as weft bench's: the clock is read after torch.cuda.synchronize(); warm-ups of at least three runs, those
after the first lasting at least a second, then the median of --runs. Prints one line per figure and writes a
list of one row, as `weft bench --json` does.

  python3 scripts/bench-hf-torch.py DIR [--prompt-tokens 128,512] [--decode-tokens 64] [--runs 5] [--json FILE]
"""
import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import transformers
from transformers import AutoModelForCausalLM, DynamicCache, StaticCache

WARMUP_RUNS = 3  # src/peers/peer.ts: WARMUP_RUNS, WARMUP_SECONDS
WARMUP_SECONDS = 1.0


def time_runs(once, runs):
    """The median of `runs` timings of `once` (seconds), after warm-ups: at least WARMUP_RUNS, those after the first
    lasting at least WARMUP_SECONDS (src/peers/peer.ts: timeRuns)."""
    once()
    start, r = time.perf_counter(), 1
    while r < WARMUP_RUNS or time.perf_counter() - start < WARMUP_SECONDS:
        once()
        r += 1
    return statistics.median(once() for _ in range(runs))


def bench_prompt(n, vocab, first):
    """weft bench's prompt of n tokens (src/peers/peer.ts: benchPrompt)."""
    return [first if i == 0 else 3 + (i * 7919) % (vocab - 3) for i in range(n)]


class Clock:
    """Host seconds between two points at which all queued device work has finished."""

    def __init__(self, device):
        self.sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def start(self):
        self.sync()
        self.t0 = time.perf_counter()

    def stop(self):
        self.sync()
        return time.perf_counter() - self.t0


@torch.no_grad()
def prefill_seconds(model, ids, clock):
    clock.start()
    model(input_ids=ids, use_cache=False, logits_to_keep=1)
    return clock.stop()


@torch.no_grad()
def decode_seconds(prompt_step, step, cache, first, steps, clock):
    """Mean seconds per greedy step after a one-token prompt; `cache` is empty or reset."""
    # no step's logits outlive it: a CUDA graph's replay overwrites its outputs
    token = prompt_step(input_ids=first, past_key_values=cache, use_cache=True, logits_to_keep=1).logits[:, -1].argmax(-1, keepdim=True)
    clock.start()
    for _ in range(steps):
        token = step(input_ids=token, past_key_values=cache, use_cache=True, logits_to_keep=1).logits[:, -1].argmax(-1, keepdim=True)
    return clock.stop() / steps


def bench(folder, prompt_tokens, decode_tokens, runs, device):
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16, device_map=device.type, attn_implementation="sdpa")
    model.eval()
    config, clock = model.config, Clock(device)
    first = config.bos_token_id if isinstance(config.bos_token_id, int) else 0
    row = {
        "engine": "pytorch bf16",
        "model": Path(folder).resolve().name,
        "device": (torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu")
        + f" (torch {torch.__version__}, transformers {transformers.__version__}, attention sdpa)",
        "prefill_tokens_per_s": {},
    }
    for n in prompt_tokens:
        ids = torch.tensor([bench_prompt(n, config.vocab_size, first)], device=device)
        row["prefill_tokens_per_s"][str(n)] = n / time_runs(lambda: prefill_seconds(model, ids, clock), runs)
        print(f"prefill {n}: {row['prefill_tokens_per_s'][str(n)]:.1f} tok/s", flush=True)

    first_ids = torch.tensor([[first]], device=device)
    row["decode_tokens_per_s"] = 1 / time_runs(
        lambda: decode_seconds(model, model, DynamicCache(config=config), first_ids, decode_tokens, clock), runs
    )
    print(f"decode: {row['decode_tokens_per_s']:.1f} tok/s (DynamicCache, eager)", flush=True)

    # one cache for every run, reset in place: its tensors keep the addresses the CUDA graphs were recorded with
    cache = StaticCache(config=config, max_cache_len=1 + decode_tokens)
    compiled = torch.compile(model, mode="reduce-overhead")

    def static_run():
        cache.reset()
        return decode_seconds(model, compiled, cache, first_ids, decode_tokens, clock)

    try:
        row["decode_static_compiled_tokens_per_s"] = 1 / time_runs(static_run, runs)
        print(f"decode: {row['decode_static_compiled_tokens_per_s']:.1f} tok/s (StaticCache, torch.compile reduce-overhead)", flush=True)
    except Exception as e:  # the eager figures stand without it
        row["decode_static_compiled_error"] = str(e).split("\n")[0]
        print(f"decode (StaticCache, torch.compile reduce-overhead): did not run: {row['decode_static_compiled_error']}", flush=True)
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", help="a checkpoint folder: config.json and safetensors")
    ap.add_argument("--prompt-tokens", default="128,512")
    ap.add_argument("--decode-tokens", type=int, default=64)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", help="also write the row to FILE")
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="cpu: a smoke test of this script only")
    a = ap.parse_args()
    row = bench(a.folder, [int(x) for x in a.prompt_tokens.split(",")], a.decode_tokens, a.runs, torch.device(a.device))
    if a.json:
        Path(a.json).write_text(json.dumps([row], indent=2) + "\n")


if __name__ == "__main__":
    main()
