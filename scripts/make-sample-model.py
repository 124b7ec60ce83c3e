#!/usr/bin/env python3
"""Writes a tiny model into DIR: the shipped sample files plus a generated model.safetensors.

The weights are deterministic pseudo-random bytes (seeded), so every run and machine produces the
same files and therefore the same image digest. Usage: make-sample-model.py DIR [SIZE_MIB]
"""
import json, os, random, shutil, struct, sys

here = os.path.dirname(os.path.abspath(__file__))
sample = os.path.join(here, "..", "samples", "tiny-model")
dest = sys.argv[1]
extra_mib = int(sys.argv[2]) if len(sys.argv) > 2 else 0
os.makedirs(dest, exist_ok=True)
for name in sorted(os.listdir(sample)):
    shutil.copyfile(os.path.join(sample, name), os.path.join(dest, name))

cfg = json.load(open(os.path.join(sample, "config.json")))
h, inter, vocab, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"], cfg["num_hidden_layers"]
kv = h * cfg["num_key_value_heads"] // cfg["num_attention_heads"]
shapes = {"model.embed_tokens.weight": [vocab, h], "lm_head.weight": [vocab, h], "model.norm.weight": [h]}
for i in range(layers):
    p = f"model.layers.{i}."
    shapes.update({
        p + "self_attn.q_proj.weight": [h, h], p + "self_attn.k_proj.weight": [kv, h],
        p + "self_attn.v_proj.weight": [kv, h], p + "self_attn.o_proj.weight": [h, h],
        p + "mlp.gate_proj.weight": [inter, h], p + "mlp.up_proj.weight": [inter, h],
        p + "mlp.down_proj.weight": [h, inter],
        p + "input_layernorm.weight": [h], p + "post_attention_layernorm.weight": [h],
    })
if extra_mib:  # optional padding tensor to make the file as big as a benchmark needs
    shapes["extra.padding"] = [extra_mib * 1024 * 1024 // 2]
header, offset = {"__metadata__": {"format": "pt"}}, 0
for name in sorted(shapes):
    n = 1
    for d in shapes[name]:
        n *= d
    header[name] = {"dtype": "BF16", "shape": shapes[name], "data_offsets": [offset, offset + 2 * n]}
    offset += 2 * n
raw = json.dumps(header, separators=(",", ":")).encode()
raw += b" " * (-len(raw) % 8)
rng = random.Random(2501)
with open(os.path.join(dest, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(raw)))
    f.write(raw)
    left = offset
    while left:
        n = min(left, 1 << 20)
        f.write(rng.randbytes(n))
        left -= n
