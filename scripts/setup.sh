#!/usr/bin/env bash
# Prepares a fresh Debian machine for weft: the Vulkan loader and SwiftShader (Debian's chromium) so Dawn
# runs without a GPU, Python's jinja2 (the reference renderer of the chat-template tests), then the npm dependencies
# and the build. Logs go to stderr; stdout stays clean.
set -euo pipefail
exec 1>&2
cd "$(dirname "$0")/.."

if ! command -v node >/dev/null || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  echo "setup: weft needs Node.js 20 or newer" >&2
  exit 1
fi

missing=()
[ -f /usr/lib/chromium/vk_swiftshader_icd.json ] || missing+=(chromium)
ldconfig -p | grep -q 'libvulkan\.so\.1' || missing+=(libvulkan1)
/usr/bin/python3 -c 'import jinja2' 2>/dev/null || missing+=(python3-jinja2)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

npm ci --no-audit --no-fund
npm run build
