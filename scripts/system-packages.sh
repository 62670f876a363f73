#!/usr/bin/env bash
# Debian packages the demo and the tests need: the Noto Color Emoji font (product artwork) and, with
# --browser, Chromium for the browser test. Idempotent; installs only what is missing.
set -euo pipefail
wanted=()
[ -f /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || wanted+=(fonts-noto-color-emoji)
if [ "${1:-}" = "--browser" ] && [ ! -x /usr/bin/chromium ]; then
    wanted+=(chromium chromium-driver)
fi
[ ${#wanted[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "Missing Debian packages: ${wanted[*]}. Install them with:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y ${wanted[*]}" >&2
    exit 1
fi
echo "Installing ${wanted[*]} with apt-get ..."
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${wanted[@]}" >/dev/null
