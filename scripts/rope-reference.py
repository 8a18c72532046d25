#!/usr/bin/env python3
"""Reference RoPE inverse frequencies from transformers for test/rope.test.ts: the default, linear and
llama3 rope types of a head of 64 (theta 500000), as transformers' LlamaRotaryEmbedding holds them.
Prints one JSON object: the transformers version and each type's inverse frequencies (float32 values)."""
import json

import transformers
from transformers import LlamaConfig
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

TYPES = {
    "default": {"rope_type": "default"},
    "linear": {"rope_type": "linear", "factor": 2.0},
    "llama3": {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
}


def config(params):
    sizes = dict(hidden_size=2048, num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=131072)
    try:
        return LlamaConfig(**sizes, rope_parameters={**params, "rope_theta": 500000.0})
    except TypeError:
        return LlamaConfig(**sizes, rope_theta=500000.0, rope_scaling=None if params["rope_type"] == "default" else params)


out = {"transformers": transformers.__version__}
for name, params in TYPES.items():
    rotary = LlamaRotaryEmbedding(config=config(params))
    out[name] = {"inv_freq": [float(x) for x in rotary.inv_freq.float()], "attention_factor": float(rotary.attention_scaling)}
print(json.dumps(out))
