#!/usr/bin/env bash
# Install the system libraries that the allocator tests need: Debian's jemalloc
# (libjemalloc2) and gperftools' tcmalloc (libtcmalloc-minimal4). The tests
# (tests/unit/test_allocators.py, tests/kernel/test_kernel_allocators.py) preload them with
# LD_PRELOAD into a child Python and into real kernels; they find the shared
# objects with ldconfig and are skipped, saying so, where a library is missing.
#
# Idempotent: does nothing when everything is already there. Installs with apt
# when run as root; otherwise says what to install and exits 1.
set -euo pipefail
# shellcheck source=scripts/apt_install.sh
source "$(dirname "${BASH_SOURCE[0]}")/apt_install.sh"

# package name, and the soname that ldconfig lists once it is installed
declare -A SONAMES=(
    [libjemalloc2]=libjemalloc.so.2
    [libtcmalloc-minimal4]=libtcmalloc_minimal.so.4
)
PACKAGES=()

have() { ldconfig -p 2>/dev/null | grep -q "^[[:space:]]*$1 "; }

for package in "${!SONAMES[@]}"; do
    have "${SONAMES[$package]}" || PACKAGES+=("$package")
done

if [[ ${#PACKAGES[@]} -eq 0 ]]; then
    echo "test deps: ${SONAMES[*]} already installed"
    exit 0
fi

apt_install "test deps" "jemalloc and gperftools' minimal tcmalloc" "${PACKAGES[@]}"

for package in "${PACKAGES[@]}"; do
    if ! have "${SONAMES[$package]}"; then
        echo "test deps: apt installed $package but ${SONAMES[$package]} is still missing" >&2
        exit 1
    fi
done
echo "test deps: installed ${PACKAGES[*]}"
