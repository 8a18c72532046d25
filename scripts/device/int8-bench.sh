#!/usr/bin/env bash
# On the GPU machine: the int8 matmuls (dot4 and subgroup-matrix tiles) against the float32 path and against
# llama.cpp's Vulkan build on the same GGUF files, and the cold start of the 260K demo. One step a call (each
# within the device tool's 10 minutes); figures and logs go to $OUT. Usage, after packing here
# (npm run build && ../shared/device/pack dist && bash scripts/device/pack-peers.sh, then
# cp ../shared/fixtures/llama2c/{aidreams260K.bin,tok512-aidreams.bin} .device/), carrying [".device", "dist"]:
#   bash .device/vulkan-run bash scripts/device/int8-bench.sh probe cold accuracy
#   bash .device/vulkan-run bash scripts/device/int8-bench.sh q8_0
#   bash .device/vulkan-run bash scripts/device/int8-bench.sh q4_k_m
#   bash .device/vulkan-run bash scripts/device/int8-bench.sh f32 f16 dispatch
#   bash .device/vulkan-run bash scripts/device/int8-bench.sh gemv rate
#   bash .device/vulkan-run bash scripts/device/int8-bench.sh dot4 l2
# Each bench row says where a decode step's time goes (host recording and submit, the GPU's pass beside its kernels).
set -uo pipefail
out=${OUT:-/tmp/int8-bench}
mkdir -p "$out"
# HBM bandwidth of the card the call got: an H200's 4.8 TB/s, an H100 SXM's 3.35
peak=4800
nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | grep -q H100 && peak=3350
bench=(node dist/src/cli.js bench --backend vulkan --model 1B --prompt-tokens 128,512 --decode-tokens 64
  --matmul float,int8,int8-matrix --peers llama.cpp --peak-tflops 67 --peak-gbps $peak)
for step in "$@"; do
  echo "== $step"
  case "$step" in
    probe)
      # how the subgroup matrix loads read packed int8 (units, sources, workgroup sizes) against the CPU's products
      node scripts/device/subgroup-matrix-probe.mjs --out "$out/probe.json" | tee "$out/probe.txt"
      ;;
    cold)
      # the whole process and its own account of the first token, five times
      for i in 1 2 3 4 5; do
        /usr/bin/time -f "whole process %e s" node dist/src/cli.js run .device/aidreams260K.bin --tokenizer .device/tok512-aidreams.bin \
          --temperature 0 --steps 1 --json 2>&1 | tee -a "$out/cold.txt"
      done
      ;;
    accuracy)
      node scripts/matmul-accuracy.mjs 1B --prompt-tokens 128 --backend vulkan | tee "$out/accuracy-1B.jsonl"
      node scripts/matmul-accuracy.mjs .device/aidreams260K.bin --prompt-tokens 128 --backend vulkan | tee "$out/accuracy-aidreams.jsonl"
      ;;
    q8_0 | q4_k_m)
      # the file is written first on a fresh machine (on every core), then weft's rows and llama.cpp's run it
      "${bench[@]}" --weights "$step" --json "$out/bench-1B-$step.json" 2>&1 | tee "$out/bench-1B-$step.txt"
      ;;
    f32)
      # float32 weights and matmuls: decode against the bandwidth roofline
      node dist/src/cli.js bench --backend vulkan --model 1B --prompt-tokens 128,512 --decode-tokens 64 --weights f32 \
        --peak-tflops 67 --peak-gbps $peak --json "$out/bench-1B-f32.json" 2>&1 | tee "$out/bench-1B-f32.txt"
      ;;
    f16)
      # an F16 file for both engines (the table has llama.cpp's F16 row); halves have no int8 form
      node dist/src/cli.js bench --backend vulkan --model 1B --prompt-tokens 128,512 --decode-tokens 64 --weights f16 \
        --peers llama.cpp --peak-tflops 67 --peak-gbps $peak --json "$out/bench-1B-f16.json" 2>&1 | tee "$out/bench-1B-f16.txt"
      ;;
    dispatch)
      # a step of 99 dispatches with next to no GPU work: the host alone (Dawn's null backend), then on the GPU —
      # the floor a 1B-shaped decode step cannot go below
      for backend in null vulkan; do node scripts/decode-host-cost.mjs --backend $backend | tee -a "$out/dispatch.txt"; done
      # the GPU's own cost of a dispatch in a pass, by what consecutive dispatches share (barriers or none)
      node scripts/device/dispatch-cost.mjs --backend vulkan | tee -a "$out/dispatch.txt"
      ;;
    gemv)
      # each decode GEMV shape alone, by layout (invocations, pairs of dots a group)
      node scripts/device/gemv-rate.mjs | tee "$out/gemv.jsonl"
      ;;
    rate)
      # a plain int8 GEMM on the subgroup matrices, no scales: what the tensor cores give through Dawn at all
      node scripts/device/int8-matrix-rate.mjs | tee "$out/int8-matrix-rate.jsonl"
      ;;
    dot4)
      # dot4I8Packed, i32 multiply-adds and f32 fma alone: the ceiling of the int8 and float tiles' arithmetic
      node scripts/device/dot4-rate.mjs | tee "$out/dot4-rate.jsonl"
      ;;
    l2)
      # decode GEMVs over weights L2 holds or not, and a read of the next weights beside the q_k_v GEMV
      node scripts/device/l2-warm.mjs | tee "$out/l2-warm.jsonl"
      ;;
    *)
      echo "int8-bench.sh: unknown step '$step' (probe, cold, accuracy, q8_0, q4_k_m, f32, f16, dispatch, gemv, rate, dot4, l2)" >&2
      exit 2
      ;;
  esac
done
