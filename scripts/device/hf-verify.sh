#!/usr/bin/env bash
# On the GPU machine, for each model named (scripts/hf-checkpoints.py's names): transformers builds the
# checkpoint from its published config with random bf16 weights and records float32 reference logits; weft runs
# the same prompt on it (its peak resident memory recorded), scripts/compare-logits.mjs compares the two, and
# weft bench times it, then scripts/bench-hf-torch.py times the same folder in transformers (bf16 on the GPU).
# Figures and logs go to $OUT. Usage:
#   bash .device/vulkan-run bash scripts/device/hf-verify.sh llama-3.2-1b qwen2.5-0.5b
set -uo pipefail
out=${OUT:-/tmp/hf-verify}
work=${HF_WORK:-/tmp/hf-checkpoints}
tolerance=${TOLERANCE:-5e-3}
mkdir -p "$out" "$work"
for m in "$@"; do
  dir=$work/$m
  echo "== $m"
  python3 scripts/hf-checkpoints.py "$m" "$work" 2>&1 | tail -4
  ids=$(python3 -c "import json,sys; print(','.join(map(str, json.load(open(sys.argv[1]))['prompt'])))" "$dir/reference.json")
  du -sh "$dir" | cut -f1 | sed 's/^/checkpoint size: /'
  # getrusage of the child: weft's own peak resident memory over the load and the run
  python3 - "$dir" "$ids" <<'PY'
import json, resource, subprocess, sys, time
d, ids = sys.argv[1], sys.argv[2]
t = time.time()
with open(f"{d}/weft.json", "w") as f:
    r = subprocess.run(["node", "dist/src/cli.js", "run", d, "--prompt-ids", ids, "--steps", "23", "--context", "32",
                        "--temperature", "0", "--json", "--dump-logits", f"{d}/weft-logits.f32"], stdout=f, stderr=subprocess.PIPE, text=True)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
print(f"weft run: exit {r.returncode}, {time.time() - t:.1f} s, peak resident {peak:.2f} GiB {r.stderr.strip()[-300:]}")
PY
  node scripts/compare-logits.mjs --tolerance "$tolerance" "$dir" | tee -a "$out/compare.txt"
  node dist/src/cli.js inspect "$dir" --memory --context 1024 --backend vulkan 2>&1 | tail -12
  node dist/src/cli.js bench --backend vulkan --model "$dir" --context 1024 --prompt-tokens 128,512 --decode-tokens 64 \
    --peak-tflops 67 --peak-gbps 4800 --json "$out/bench-$m.json" 2>&1 | head -40
  python3 scripts/bench-hf-torch.py "$dir" --prompt-tokens 128,512 --decode-tokens 64 --json "$out/bench-torch-$m.json" 2>&1 | tail -20
  rm -rf "$dir"
done
