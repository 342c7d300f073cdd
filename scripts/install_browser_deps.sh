#!/usr/bin/env bash
# Install what tests/browser/test_browser.py needs to drive JupyterLab in a real browser:
# Debian's Chromium (/usr/bin/chromium) and a font for readable screenshots.
# Playwright for Python comes from the package's `test` extra; it drives this
# Chromium through `executable_path`, so `playwright install` is never needed.
#
# Idempotent: does nothing when everything is already there. Installs with apt
# when run as root; otherwise says what to install and exits 1.
set -euo pipefail

CHROMIUM=/usr/bin/chromium
FONT_DIR=/usr/share/fonts/truetype/dejavu
PACKAGES=()

[[ -x "$CHROMIUM" ]] || PACKAGES+=(chromium)
[[ -d "$FONT_DIR" ]] || PACKAGES+=(fonts-dejavu-core)

if [[ ${#PACKAGES[@]} -eq 0 ]]; then
    echo "browser deps: $CHROMIUM and fonts already installed"
    exit 0
fi

if [[ "$(id -u)" -ne 0 ]]; then
    echo "browser deps: missing ${PACKAGES[*]}" >&2
    echo "install them as root: apt-get update && apt-get install -y ${PACKAGES[*]}" >&2
    exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "browser deps: apt-get not found; install ${PACKAGES[*]} with this system's" \
        "package manager (the test expects Chromium at $CHROMIUM or on PATH)" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# another apt-get (an unattended upgrade, a second checkout's install) may hold the
# lock for a while: wait for it rather than fail
apt-get -o DPkg::Lock::Timeout=300 update
apt-get -o DPkg::Lock::Timeout=300 install -y "${PACKAGES[@]}"

if [[ ! -x "$CHROMIUM" ]]; then
    echo "browser deps: apt installed ${PACKAGES[*]} but $CHROMIUM is still missing" >&2
    exit 1
fi
echo "browser deps: installed ${PACKAGES[*]}"
