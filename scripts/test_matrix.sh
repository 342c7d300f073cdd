#!/usr/bin/env bash
# `make test-matrix`: the fast test tiers and a real-kernel smoke on other Pythons.
#
# For each version in MATRIX_PYTHONS (e.g. "3.10 3.12 3.13"): find the interpreter
# (pythonX.Y on PATH, else the newest X.Y.* under `pyenv root`/versions), make
# .venv-X.Y with it (reused while pyproject.toml is unchanged), install the package
# with its `test` extra (never torch: tests that need it skip, saying so), and run
# pytest with the markers in PYTEST_MARKERS. The venvs are installed all at once, then
# the tests run one interpreter after the other. A version below the project's
# requires-python, or one not found, is skipped with a note. Exit status 1 if any
# interpreter's install or tests failed.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

VERSIONS=${MATRIX_PYTHONS:-3.12 3.13}
MARKERS=${PYTEST_MARKERS:-(pure or inprocess) or smoke}
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

# Install (or reuse) the venv of version $1 with interpreter $2; its output goes to
# $venv.log. Exit status 0 when the venv is ready.
install() {
    local version=$1 python=$2 venv=".venv-$1"
    if [[ -f "$venv/.installed" && ! pyproject.toml -nt "$venv/.installed" ]]; then
        return 0
    fi
    rm -rf "$venv"
    "$python" -m venv "$venv" &&
        "$venv/bin/python" -m pip install --disable-pip-version-check -e ".[test]" &&
        touch "$venv/.installed"
}

# First pass: pick the interpreters, and install every venv at once in the background
# (pip waits on the network and the disk more than on a core); each logs to .venv-X.Y.log.
declare -a SUMMARY=() RUN=()
declare -A PID=()
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
    echo "test-matrix: Python $version ($python): installing .venv-$version (log: .venv-$version.log)"
    (
        begin=$SECONDS
        install "$version" "$python"
        code=$?
        echo "test-matrix: install took $((SECONDS - begin)) s"
        exit $code
    ) >".venv-$version.log" 2>&1 &
    PID[$version]=$!
    RUN+=("$version")
done

# Second pass: each interpreter's tests, one after the other.
status=0
for version in "${RUN[@]}"; do
    venv=".venv-$version"
    if ! wait "${PID[$version]}"; then
        tail -n 30 "$venv.log" >&2
        echo "test-matrix: Python $version: installing failed (above: the end of $venv.log)" >&2
        SUMMARY+=("$version  FAILED to install")
        status=1
        continue
    fi
    installed=$(sed -n 's/^test-matrix: install took \([0-9]*\) s$/\1/p' "$venv.log")
    start=$SECONDS
    echo
    echo "test-matrix: Python $version: pytest -m \"$MARKERS\""
    # shellcheck disable=SC2086  # PYTEST_ARGS is a list of words
    if "$venv/bin/python" -m pytest -q ${PYTEST_ARGS:-} -m "$MARKERS"; then
        result=passed
    else
        result=FAILED
        status=1
    fi
    SUMMARY+=("$version  $result (install ${installed:-?} s; tests $((SECONDS - start)) s)")
done

echo
echo "test-matrix (markers: $MARKERS), $SECONDS s in all:"
for line in "${SUMMARY[@]}"; do
    echo "  Python $line"
done
exit $status
