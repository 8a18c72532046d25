#!/usr/bin/env python3
"""Real-config Hugging Face checkpoints with random weights, and their float32 reference logits from transformers.

For each model of MODELS: its published config.json, the weights drawn at random (seeded) in bfloat16 on the
GPU, saved as the hub ships them (sharded bf16 safetensors with model.safetensors.index.json, the published
config.json and generation_config.json; no tokenizer); then the checkpoint is loaded back in float32 (the bf16
weights widened exactly, eager attention, TF32 off) and run over a seeded prompt of 16 token ids:

  OUT/NAME/config.json, generation_config.json       the hub's files (config.json less auto_map / _name_or_path)
  OUT/NAME/model-0000i-of-0000n.safetensors, model.safetensors.index.json
  OUT/NAME/logits.f32          float32 [16][vocab]: the logits at every prompt position (one prefill pass)
  OUT/NAME/decode_logits.f32   float32 [8][vocab]: row 0 the last prompt position's, row i the logits after
                               feeding greedy token i-1 (decode against the KV cache)
  OUT/NAME/reference.json      prompt, greedy (the argmax of each decode row), the config, shapes, dtype notes

  python3 scripts/hf-checkpoints.py NAME|all OUT [--seed S] [--layers N]

--layers N keeps only the first N layers (every width stays real): a quick check on a CPU, whose references
are for that depth. Then compare weft with scripts/compare-logits.mjs; the command for each model is printed.
"""
import argparse
import gc
import json
import random
import shutil
import time
from pathlib import Path

import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM

PROMPT_LEN = 16
DECODE_ROWS = 8
LEFT_OUT = ("auto_map", "_name_or_path")  # remote-code pointers and the author's local path: no model setting

# The published config.json and generation_config.json of each model, as the hub serves them.
MODELS = {
    "llama-3.2-1b": dict(
        hub="meta-llama/Llama-3.2-1B",
        shard="500MB",  # the hub ships one 2.5 GB file; smaller shards exercise the index
        config={
            "architectures": ["LlamaForCausalLM"],
            "attention_bias": False,
            "attention_dropout": 0.0,
            "bos_token_id": 128000,
            "eos_token_id": 128001,
            "head_dim": 64,
            "hidden_act": "silu",
            "hidden_size": 2048,
            "initializer_range": 0.02,
            "intermediate_size": 8192,
            "max_position_embeddings": 131072,
            "mlp_bias": False,
            "model_type": "llama",
            "num_attention_heads": 32,
            "num_hidden_layers": 16,
            "num_key_value_heads": 8,
            "pretraining_tp": 1,
            "rms_norm_eps": 1e-05,
            "rope_scaling": {
                "factor": 32.0,
                "high_freq_factor": 4.0,
                "low_freq_factor": 1.0,
                "original_max_position_embeddings": 8192,
                "rope_type": "llama3",
            },
            "rope_theta": 500000.0,
            "tie_word_embeddings": True,
            "torch_dtype": "bfloat16",
            "transformers_version": "4.45.0.dev0",
            "use_cache": True,
            "vocab_size": 128256,
        },
        generation={
            "_from_model_config": True,
            "bos_token_id": 128000,
            "do_sample": True,
            "eos_token_id": 128001,
            "temperature": 0.6,
            "top_p": 0.9,
            "transformers_version": "4.45.0.dev0",
        },
    ),
    "qwen2.5-0.5b": dict(
        hub="Qwen/Qwen2.5-0.5B",
        shard="500MB",
        config={
            "architectures": ["Qwen2ForCausalLM"],
            "attention_dropout": 0.0,
            "bos_token_id": 151643,
            "eos_token_id": 151643,
            "hidden_act": "silu",
            "hidden_size": 896,
            "initializer_range": 0.02,
            "intermediate_size": 4864,
            "max_position_embeddings": 32768,
            "max_window_layers": 24,
            "model_type": "qwen2",
            "num_attention_heads": 14,
            "num_hidden_layers": 24,
            "num_key_value_heads": 2,
            "rms_norm_eps": 1e-06,
            "rope_theta": 1000000.0,
            "sliding_window": 32768,
            "tie_word_embeddings": True,
            "torch_dtype": "bfloat16",
            "transformers_version": "4.40.1",
            "use_cache": True,
            "use_mrope": False,
            "use_sliding_window": False,
            "vocab_size": 151936,
        },
        generation={
            "bos_token_id": 151643,
            "do_sample": False,
            "eos_token_id": 151643,
            "max_new_tokens": 2048,
            "transformers_version": "4.37.0",
        },
    ),
    "qwen3-0.6b": dict(
        hub="Qwen/Qwen3-0.6B",
        shard="500MB",
        config={
            "architectures": ["Qwen3ForCausalLM"],
            "attention_bias": False,
            "attention_dropout": 0.0,
            "bos_token_id": 151643,
            "eos_token_id": 151645,
            "head_dim": 128,
            "hidden_act": "silu",
            "hidden_size": 1024,
            "initializer_range": 0.02,
            "intermediate_size": 3072,
            "max_position_embeddings": 40960,
            "max_window_layers": 28,
            "model_type": "qwen3",
            "num_attention_heads": 16,
            "num_hidden_layers": 28,
            "num_key_value_heads": 8,
            "rms_norm_eps": 1e-06,
            "rope_scaling": None,
            "rope_theta": 1000000,
            "sliding_window": None,
            "tie_word_embeddings": True,
            "torch_dtype": "bfloat16",
            "transformers_version": "4.51.0",
            "use_cache": True,
            "use_sliding_window": False,
            "vocab_size": 151936,
        },
        generation={
            "bos_token_id": 151643,
            "do_sample": True,
            "eos_token_id": [151645, 151643],
            "pad_token_id": 151643,
            "temperature": 0.6,
            "top_k": 20,
            "top_p": 0.95,
            "transformers_version": "4.51.0",
        },
    ),
    "phi-3-mini-4k-instruct": dict(
        hub="microsoft/Phi-3-mini-4k-instruct",
        shard="5GB",  # the hub's: two shards
        config={
            "_name_or_path": "Phi-3-mini-4k-instruct",
            "architectures": ["Phi3ForCausalLM"],
            "attention_dropout": 0.0,
            "auto_map": {
                "AutoConfig": "configuration_phi3.Phi3Config",
                "AutoModelForCausalLM": "modeling_phi3.Phi3ForCausalLM",
            },
            "bos_token_id": 1,
            "embd_pdrop": 0.0,
            "eos_token_id": 32000,
            "hidden_act": "silu",
            "hidden_size": 3072,
            "initializer_range": 0.02,
            "intermediate_size": 8192,
            "max_position_embeddings": 4096,
            "model_type": "phi3",
            "num_attention_heads": 32,
            "num_hidden_layers": 32,
            "num_key_value_heads": 32,
            "original_max_position_embeddings": 4096,
            "pad_token_id": 32000,
            "resid_pdrop": 0.0,
            "rms_norm_eps": 1e-05,
            "rope_scaling": None,
            "rope_theta": 10000.0,
            "sliding_window": 2047,
            "tie_word_embeddings": False,
            "torch_dtype": "bfloat16",
            "transformers_version": "4.40.2",
            "use_cache": True,
            "attention_bias": False,
            "vocab_size": 32064,
        },
        generation={
            "_from_model_config": True,
            "bos_token_id": 1,
            "eos_token_id": [32000, 32001, 32007],
            "pad_token_id": 32000,
            "transformers_version": "4.39.3",
        },
    ),
    "llama-3.1-8b": dict(
        hub="meta-llama/Llama-3.1-8B",
        shard="5GB",  # the hub's: four shards
        config={
            "architectures": ["LlamaForCausalLM"],
            "attention_bias": False,
            "attention_dropout": 0.0,
            "bos_token_id": 128000,
            "eos_token_id": 128001,
            "hidden_act": "silu",
            "hidden_size": 4096,
            "initializer_range": 0.02,
            "intermediate_size": 14336,
            "max_position_embeddings": 131072,
            "mlp_bias": False,
            "model_type": "llama",
            "num_attention_heads": 32,
            "num_hidden_layers": 32,
            "num_key_value_heads": 8,
            "pretraining_tp": 1,
            "rms_norm_eps": 1e-05,
            "rope_scaling": {
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192,
                "rope_type": "llama3",
            },
            "rope_theta": 500000.0,
            "tie_word_embeddings": False,
            "torch_dtype": "bfloat16",
            "transformers_version": "4.43.0.dev0",
            "use_cache": True,
            "vocab_size": 128256,
        },
        generation={
            "bos_token_id": 128000,
            "do_sample": True,
            "eos_token_id": 128001,
            "temperature": 0.6,
            "top_p": 0.9,
            "transformers_version": "4.43.0.dev0",
        },
    ),
}


def ids(v):
    return [] if v is None else [v] if isinstance(v, int) else list(v)


def special_ids(m):
    """BOS, EOS and pad ids of config.json and generation_config.json: kept out of the prompt, where a runtime
    that stops at an end-of-sequence id would stop."""
    return {i for src in (m["config"], m["generation"]) for k in ("bos_token_id", "eos_token_id", "pad_token_id") for i in ids(src.get(k))}


def random_prompt(m, seed):
    rng = random.Random(seed)
    vocab, skip = m["config"]["vocab_size"], special_ids(m)
    prompt = []
    while len(prompt) < PROMPT_LEN:
        t = rng.randrange(vocab)
        if t not in skip:
            prompt.append(t)
    return prompt


def write_json(path, obj):
    path.write_text(json.dumps(obj, indent=2) + "\n")


def published_config(m, layers):
    c = {k: v for k, v in m["config"].items() if k not in LEFT_OUT}
    return c if layers is None else {**c, "num_hidden_layers": layers}


@torch.no_grad()
def randomize_norms_and_biases(model):
    """transformers initializes norm weights to 1 and biases to 0; random ones show a wrong mapping of either."""
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if name == "bias" or ("norm" in type(module).__name__.lower() and name == "weight"):
                base = 1.0 if name == "weight" else 0.0
                p.copy_(base + 0.1 * torch.randn(p.shape, device=p.device, dtype=torch.float32))


def build(m, out, device, seed, layers):
    """The model of the published config with random bf16 weights, drawn on the device from the seed."""
    write_json(out / "config.json", published_config(m, layers))
    config = AutoConfig.from_pretrained(out)
    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    randomize_norms_and_biases(model)
    return model


def save(model, m, out, layers):
    model.save_pretrained(out, max_shard_size=m["shard"])
    # the hub's own files, not transformers' re-serialization of them (rope_parameters, dtype, …)
    write_json(out / "config.json", published_config(m, layers))
    write_json(out / "generation_config.json", m["generation"])


@torch.no_grad()
def reference(out, device, prompt):
    """Prefill logits at every prompt position, then greedy decode rows against the KV cache, in float32."""
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32, attn_implementation="eager", device_map=device)
    model.eval()
    step = model(input_ids=torch.tensor([prompt], device=device), use_cache=True)
    prefill = step.logits[0].float()
    rows, greedy = [prefill[-1]], []
    while True:
        greedy.append(int(rows[-1].argmax()))
        if len(rows) == DECODE_ROWS:
            break
        step = model(input_ids=torch.tensor([[greedy[-1]]], device=device), past_key_values=step.past_key_values, use_cache=True)
        rows.append(step.logits[0, -1].float())
    decode = torch.stack(rows)
    attn = model.config._attn_implementation
    del model
    return prefill.cpu(), decode.cpu(), greedy, attn


def check_spread(name, logits):
    """Random weights must still give logits that differ across the vocabulary and across positions."""
    spread = logits.std(dim=-1)
    if not bool(torch.isfinite(logits).all()) or float(spread.min()) < 1e-3 or float((logits[1:] - logits[:-1]).abs().max()) < 1e-3:
        raise SystemExit(f"{name}: degenerate logits (std over the vocabulary {float(spread.min()):.3g})")
    return float(spread.mean())


def write_f32(path, t):
    path.write_bytes(t.to(torch.float32).contiguous().numpy().astype("<f4").tobytes())


def run_model(name, root, device, seed, layers):
    m = MODELS[name]
    out = root / name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    times = {}

    def lap(key, t0):
        if device.type == "cuda":
            torch.cuda.synchronize()
        times[key] = round(time.perf_counter() - t0, 2)

    t0 = time.perf_counter()
    model = build(m, out, device, seed, layers)
    lap("build_s", t0)
    t0 = time.perf_counter()
    save(model, m, out, layers)
    lap("save_s", t0)
    del model
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()

    prompt = random_prompt(m, seed)
    t0 = time.perf_counter()
    prefill, decode, greedy, attn = reference(out, device, prompt)
    lap("load_and_reference_s", t0)
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    spread = check_spread(name, prefill)
    write_f32(out / "logits.f32", prefill)
    write_f32(out / "decode_logits.f32", decode)

    vocab = m["config"]["vocab_size"]
    stops = set(ids(m["generation"].get("eos_token_id", m["config"].get("eos_token_id"))))
    shards = json.loads((out / "model.safetensors.index.json").read_text())["weight_map"] if (out / "model.safetensors.index.json").exists() else {}
    write_json(
        out / "reference.json",
        {
            "model": name,
            "hub": m["hub"],
            "architecture": m["config"]["architectures"][0],
            "config": published_config(m, layers),
            "generation_config": m["generation"],
            "layers_kept": layers,
            "seed": seed,
            "prompt": prompt,
            "greedy": greedy,
            "greedy_stops_at": next((i for i, t in enumerate(greedy) if t in stops), None),
            "shapes": {"logits.f32": [PROMPT_LEN, vocab], "decode_logits.f32": [DECODE_ROWS, vocab]},
            "shards": sorted(set(shards.values())),
            "dtype": (
                "weights drawn and saved in bfloat16 (transformers' init, std 0.02; norm weights 1 + 0.1*N(0,1), "
                "biases 0.1*N(0,1)); references computed in float32 on those weights widened exactly, "
                f"attention '{attn}', TF32 off"
            ),
            "max_abs_logit": {"prefill": float(prefill.abs().max()), "decode": float(decode.abs().max())},
            "mean_std_over_vocab": spread,
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
            "times": times,
        },
    )
    steps = PROMPT_LEN + DECODE_ROWS - 1
    print(
        f"{name}: {len(set(shards.values())) or 1} shard(s), build {times['build_s']} s, save {times['save_s']} s, "
        f"load + reference {times['load_and_reference_s']} s; greedy {greedy}; max |logit| {float(prefill.abs().max()):.3f}",
        flush=True,
    )
    print(
        f"  weft run {out} --prompt-ids {','.join(map(str, prompt))} --steps {steps} --context 32 --temperature 0 --json "
        f"--dump-logits {out / 'weft-logits.f32'} > {out / 'weft.json'}",
        flush=True,
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", choices=[*MODELS, "all"])
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--layers", type=int, default=None, help="keep only the first N layers (a quick check)")
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(f"transformers {transformers.__version__}, torch {torch.__version__}, device {device}", flush=True)
    t0 = time.perf_counter()
    for name in MODELS if a.model == "all" else [a.model]:
        run_model(name, a.out, device, a.seed, a.layers)
    print(f"total {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
