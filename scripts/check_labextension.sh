#!/usr/bin/env bash
# Check the JupyterLab extension (labextension/) as CI does: install its JavaScript
# dependencies from the lockfile, run its jest tests, eslint and prettier, build it,
# and fail when the build differs from the one committed in greed_kernel/labextension
# (which the wheel ships): a TypeScript change must be built, tested and committed.
#
# The build runs in a fixed directory ($LABEXT_BUILD_ROOT, default
# /tmp/greed-labext-build), into which the extension's sources are copied: the
# bundler's module ids depend on the absolute path of the sources, so a build made in
# one checkout never matched one made in another (CI clones to a path of its own).
# The result is copied into greed_kernel/labextension.
#
# Runs from any directory. Needs Node.js (20.19+) and the project's virtual
# environment with the `lab` extra (`make install`), whose jlpm it uses; set VENV to
# use another one.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
SOURCE="$ROOT/labextension"
BUILT="greed_kernel/labextension"
BUILD_ROOT="${LABEXT_BUILD_ROOT:-/tmp/greed-labext-build}"

step() { printf '\n==> %s\n' "$*"; }
fail() {
    printf '\ncheck_labextension: FAILED: %s\n' "$*" >&2
    exit 1
}

[[ -x "$VENV/bin/jlpm" ]] ||
    fail "$VENV/bin/jlpm not found: run \`make install\` (the venv with the lab extra)"
command -v node >/dev/null || fail "node not found: install Node.js 20.19 or newer"
git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1 ||
    fail "$ROOT is not a git checkout: the build is compared with the committed one"
export PATH="$VENV/bin:$PATH"
export CI=true FORCE_COLOR=0

cd "$SOURCE"

step "jlpm install --immutable (the JavaScript dependencies, from yarn.lock)"
jlpm install --immutable || fail "jlpm install --immutable: yarn.lock is out of date with package.json (run \`jlpm install\` in labextension/ and commit yarn.lock)"

step "jest"
jlpm test --ci || fail "the jest tests failed"

step "eslint"
jlpm eslint:check || fail "eslint found problems (\`jlpm eslint\` in labextension/ fixes some)"

step "prettier"
jlpm prettier:check || fail "prettier: files not formatted (run \`jlpm prettier\` in labextension/)"

step "jlpm build:prod in $BUILD_ROOT (a fixed path), copied into $BUILT"
rm -rf "$BUILD_ROOT"
mkdir -p "$BUILD_ROOT/greed_kernel"
# the sources as they are in this working tree (tracked and new files, not ignored ones)
(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard -- labextension |
    xargs -0 cp --parents -t "$BUILD_ROOT") || fail "copying the sources to $BUILD_ROOT failed"
(cd "$BUILD_ROOT/labextension" && jlpm install --immutable >/dev/null && jlpm build:prod) ||
    fail "the build failed"
rm -rf "${ROOT:?}/$BUILT"
cp -r "$BUILD_ROOT/$BUILT" "$ROOT/$BUILT"

step "the build against the committed one"
cd "$ROOT"
changes="$(git status --porcelain --untracked-files=all -- "$BUILT")"
if [[ -n "$changes" ]]; then
    printf '%s\n' "$changes" >&2
    git --no-pager diff --stat -- "$BUILT" >&2 || true
    fail "the build in $BUILT differs from the committed one (listed above): the TypeScript, style or schema sources changed without the build being committed. Commit $BUILT as this build made it."
fi
echo "check_labextension: OK (tests, lint, formatting; the committed build is up to date)"
