#!/usr/bin/env bash
# Install what tests/browser/test_browser.py needs to drive JupyterLab in a real browser:
# Debian's Chromium (/usr/bin/chromium) and a font for readable screenshots.
# Playwright for Python comes from the package's `test` extra; it drives this
# Chromium through `executable_path`, so `playwright install` is never needed.
#
# Idempotent: does nothing when everything is already there. Installs with apt
# when run as root; otherwise says what to install and exits 1.
set -euo pipefail
# shellcheck source=scripts/apt_install.sh
source "$(dirname "${BASH_SOURCE[0]}")/apt_install.sh"

CHROMIUM=/usr/bin/chromium
FONT_DIR=/usr/share/fonts/truetype/dejavu
PACKAGES=()

[[ -x "$CHROMIUM" ]] || PACKAGES+=(chromium)
[[ -d "$FONT_DIR" ]] || PACKAGES+=(fonts-dejavu-core)

if [[ ${#PACKAGES[@]} -eq 0 ]]; then
    echo "browser deps: $CHROMIUM and fonts already installed"
    exit 0
fi

apt_install "browser deps" "the test expects Chromium at $CHROMIUM or on PATH" "${PACKAGES[@]}"

if [[ ! -x "$CHROMIUM" ]]; then
    echo "browser deps: apt installed ${PACKAGES[*]} but $CHROMIUM is still missing" >&2
    exit 1
fi
echo "browser deps: installed ${PACKAGES[*]}"
