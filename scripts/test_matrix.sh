#!/usr/bin/env bash
# `make test-matrix`: the fast test tiers and a real-kernel smoke on other Pythons.
#
# For each version in MATRIX_PYTHONS (e.g. "3.10 3.12 3.13"): find the interpreter
# (pythonX.Y on PATH, else the newest X.Y.* under `pyenv root`/versions), make
# .venv-X.Y with it, install the package with its `test` extra (never torch: tests
# that need it skip), write nothing outside the checkout, and run pytest with the
# markers in PYTEST_MARKERS. A version below the project's requires-python, or one
# not found, is skipped with a note. Exit status 1 if any interpreter's run failed.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

VERSIONS=${MATRIX_PYTHONS:-3.12 3.13}
MARKERS=${PYTEST_MARKERS:-(not kernel and not browser) or smoke}
# requires-python = ">=3.X" in pyproject.toml
FLOOR=$(sed -n 's/^requires-python *= *">= *\([0-9][0-9.]*\)".*/\1/p' pyproject.toml)

# The interpreter for version $1, or nothing.
find_python() {
    local version=$1 candidate root
    candidate=$(command -v "python$version" 2>/dev/null) &&
        "$candidate" -c 'import sys' >/dev/null 2>&1 && { echo "$candidate"; return; }
    root=$(pyenv root 2>/dev/null) || root=${PYENV_ROOT:-$HOME/.pyenv}
    for candidate in $(ls -d "$root/versions/$version".* 2>/dev/null | sort -V -r); do
        if [[ -x "$candidate/bin/python$version" ]]; then
            echo "$candidate/bin/python$version"
            return
        fi
    done
}

# True if version $1 is below version $2.
below() {
    [[ "$1" != "$2" && "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n 1)" == "$1" ]]
}

declare -a SUMMARY=()
status=0
for version in $VERSIONS; do
    if [[ -n "$FLOOR" ]] && below "$version" "$FLOOR"; then
        echo "test-matrix: Python $version skipped: below requires-python >=$FLOOR"
        SUMMARY+=("$version  skipped (below requires-python >=$FLOOR)")
        continue
    fi
    python=$(find_python "$version")
    if [[ -z "$python" ]]; then
        echo "test-matrix: Python $version skipped: no python$version on PATH or under pyenv"
        SUMMARY+=("$version  skipped (interpreter not found)")
        continue
    fi
    venv=".venv-$version"
    start=$SECONDS
    echo "test-matrix: Python $version ($python) in $venv"
    if [[ ! -f "$venv/.installed" || pyproject.toml -nt "$venv/.installed" ]]; then
        rm -rf "$venv"
        if ! { "$python" -m venv "$venv" &&
            "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[test]" &&
            touch "$venv/.installed"; }; then
            echo "test-matrix: Python $version: installing failed" >&2
            SUMMARY+=("$version  FAILED to install ($((SECONDS - start)) s)")
            status=1
            continue
        fi
    fi
    installed=$((SECONDS - start))
    if "$venv/bin/python" -m pytest -q -m "$MARKERS"; then
        result=passed
    else
        result=FAILED
        status=1
    fi
    SUMMARY+=("$version  $result (install $installed s, total $((SECONDS - start)) s)")
done

echo
echo "test-matrix (markers: $MARKERS):"
for line in "${SUMMARY[@]}"; do
    echo "  Python $line"
done
exit $status
