#!/usr/bin/env bash
# Adds to .device/ (written by ../shared/device/pack) what `weft bench --backend vulkan --peers ...` needs
# on the GPU machine: the peer engines' packages (tfjs-webgpu; onnxruntime-node and onnxruntime-web pruned
# to linux-x64 and the WebAssembly build their WebGPU entry loads; node-llama-cpp with its production
# dependencies and its prebuilt linux-x64 Vulkan binaries, without the llama.cpp source bundle it builds
# from), Debian's Vulkan loader, and .device/vulkan-run. The production node_modules and the peers are carried
# as one xz archive at xz's strongest setting, and node is recompressed at it, which keeps .device, dist and
# the tracked files under the device tool's 64 MiB carry limit.
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
# node-llama-cpp and the packages its `dependencies` need, each where Node resolves it from its dependant (a
# nested copy where one is nested), one path per line relative to node_modules; none the stage holds already
llama_cpp=$(node -e '
  const { existsSync, readFileSync } = require("node:fs");
  const { dirname, join, relative } = require("node:path");
  const root = join(process.cwd(), "node_modules");
  const found = new Set();
  const visit = (dir) => {
    if (found.has(dir)) return;
    found.add(dir);
    for (const dep of Object.keys(JSON.parse(readFileSync(join(dir, "package.json"), "utf8")).dependencies ?? {})) {
      let from = dir;
      while (!existsSync(join(from, "node_modules", dep, "package.json"))) {
        if (from === dirname(root)) throw new Error(`${relative(root, dir)} needs ${dep}, which is not installed`);
        from = dirname(from);
      }
      visit(join(from, "node_modules", dep));
    }
  };
  visit(join(root, "node-llama-cpp"));
  for (const dir of found) console.log(relative(root, dir));
')
for p in $llama_cpp; do
  [ -e "$stage/node_modules/$p" ] && continue
  mkdir -p "$stage/node_modules/$(dirname "$p")"
  # its own nested node_modules comes with it
  cp -a "node_modules/$p" "$stage/node_modules/$p"
done
rm -f "$stage/node_modules/node-llama-cpp/llama/gitRelease.bundle"
# the Vulkan build alone: weft runs on Vulkan there, and the CPU build would not fit the carry limit beside it
vulkan=@node-llama-cpp/linux-x64-vulkan
[ -e "node_modules/$vulkan/package.json" ] || { echo "pack-peers: node_modules/$vulkan is missing: npm install first" >&2; exit 1; }
mkdir -p "$stage/node_modules/@node-llama-cpp"
cp -a "node_modules/$vulkan" "$stage/node_modules/$vulkan"
tar -C "$stage" -cf - node_modules | xz -T0 -9e > .device/modules.tar.xz.part
mv .device/modules.tar.xz.part .device/modules.tar.xz
# pack writes node at xz -3; -9e takes 3 MiB off
xz -dc .device/node.xz | xz -T0 -9e > .device/node.xz.part
mv .device/node.xz.part .device/node.xz
rm -rf .device/node_modules
mkdir -p .device/vulkan
(cd .device/vulkan && rm -f ./*.deb && apt-get -qq -oAPT::Architecture=amd64 -oAPT::Sandbox::User=root download libvulkan1)
cp scripts/device/vulkan-run .device/vulkan-run
chmod +x .device/vulkan-run
du -sh .device
