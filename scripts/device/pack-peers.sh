#!/usr/bin/env bash
# Adds to .device/ (written by ../shared/device/pack) what `weft bench --backend vulkan --peers ...` needs
# on the GPU machine: the peer engines' packages (tfjs-webgpu; onnxruntime-node and onnxruntime-web pruned
# to linux-x64 and the WebAssembly build their WebGPU entry loads), Debian's Vulkan loader, and
# .device/vulkan-run. The production node_modules and the peers are carried as one xz archive, which keeps
# .device under the device tool's 64 MiB carry limit.
#   npm run build && ../shared/device/pack dist && bash scripts/device/pack-peers.sh
# then carry [".device", "dist"] and run `bash .device/vulkan-run node dist/src/cli.js bench --backend vulkan ...`.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ ! -x .device/run ] || [ ! -d .device/node_modules ]; then
  echo "pack-peers: .device/ has no node_modules: run ../shared/device/pack dist first" >&2
  exit 1
fi
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/node_modules"
cp -a .device/node_modules/. "$stage/node_modules/"
peers=(
  @tensorflow/tfjs-core/package.json @tensorflow/tfjs-core/dist/tf-core.node.js
  @tensorflow/tfjs-backend-cpu/package.json @tensorflow/tfjs-backend-cpu/dist/tf-backend-cpu.node.js
  @tensorflow/tfjs-backend-webgpu/package.json @tensorflow/tfjs-backend-webgpu/dist/tf-backend-webgpu.node.js
  seedrandom long
  onnxruntime-common/package.json onnxruntime-common/dist
  onnxruntime-node/package.json onnxruntime-node/dist onnxruntime-node/bin/napi-v6/linux/x64
  onnxruntime-web/package.json onnxruntime-web/dist/ort.webgpu.min.js onnxruntime-web/dist/ort.webgpu.min.mjs
  onnxruntime-web/dist/ort.webgpu.bundle.min.mjs onnxruntime-web/dist/ort-wasm-simd-threaded.asyncify.mjs
  onnxruntime-web/dist/ort-wasm-simd-threaded.asyncify.wasm
)
for p in "${peers[@]}"; do
  [ -e "node_modules/$p" ] || { echo "pack-peers: node_modules/$p is missing: npm install first" >&2; exit 1; }
done
(cd node_modules && cp -a --parents "${peers[@]}" "$stage/node_modules/")
tar -C "$stage" -cf - node_modules | xz -T0 -6 > .device/modules.tar.xz.part
mv .device/modules.tar.xz.part .device/modules.tar.xz
rm -rf .device/node_modules
mkdir -p .device/vulkan
(cd .device/vulkan && rm -f ./*.deb && apt-get -qq -oAPT::Architecture=amd64 -oAPT::Sandbox::User=root download libvulkan1)
cp scripts/device/vulkan-run .device/vulkan-run
chmod +x .device/vulkan-run
du -sh .device
