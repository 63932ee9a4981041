#!/usr/bin/env bash
# scripts/release.sh on a throw-away clone of HEAD: what it refuses and
# what it changes (every manifest, the lock files, the header's version
# macros, the changelog).
#   tests/release.sh
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fail() { echo "tests/release.sh: $*" >&2; exit 1; }
git clone --quiet "$repo" "$work/shmq"
cd "$work/shmq"
git config user.email ci@example.invalid
git config user.name ci
old="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)"
IFS=. read -r major minor _ <<<"$old"
new="$major.$((minor + 1)).0"

refused() { # refused WHAT ARGS...: release.sh must fail, saying WHAT
    local what="$1" out
    shift
    if out="$(bash scripts/release.sh "$@" 2>&1)"; then
        fail "release.sh $* ran; it should refuse ($what)"
    fi
    grep -q "$what" <<<"$out" || fail "release.sh $* did not say '$what': $out"
}
refused "usage" 1.2
refused "usage" "v$new"
refused "is not newer" "$old"
refused "is not newer" 0.0.1
echo dirt >> README.md
refused "the tree has changes" "$new"
git checkout --quiet README.md
[ -z "$(git status --porcelain)" ] || fail "release.sh changed files while refusing"

bash scripts/release.sh "$new"
for f in Cargo.toml python/Cargo.toml python/pyproject.toml benches/peers/Cargo.toml; do
    grep -q "^version = \"$new\"" "$f" || fail "$f does not say $new"
done
grep -q "^shmq = { path = \"core\", version = \"$new\" }" Cargo.toml || fail "the shmq dependency is not $new"
for lock in Cargo.lock python/Cargo.lock benches/peers/Cargo.lock core/fuzz/Cargo.lock; do
    grep -A1 '^name = "shmq"$' "$lock" | grep -q "^version = \"$new\"" || fail "$lock has shmq at another version"
done
grep -A1 '^name = "shmq-cli"$' Cargo.lock | grep -q "^version = \"$new\"" || fail "Cargo.lock has shmq-cli at another version"
IFS=. read -r a b c <<<"$new"
grep -q "^#define SHMQ_VERSION_MAJOR $a$" include/shmq.h &&
    grep -q "^#define SHMQ_VERSION_MINOR $b$" include/shmq.h &&
    grep -q "^#define SHMQ_VERSION_PATCH $c$" include/shmq.h &&
    grep -q "^#define SHMQ_VERSION_STRING \"$new\"$" include/shmq.h || fail "the header's version macros are not $new"
grep -q "^## \[$new\] - $(date -u +%Y-%m-%d)$" CHANGELOG.md || fail "CHANGELOG.md has no dated $new section"
[ "$(grep -m1 '^## ' CHANGELOG.md)" = "## [Unreleased]" ] || fail "CHANGELOG.md does not start with [Unreleased]"
if git grep -q "version = \"$old\"" -- '*Cargo.toml' '*pyproject.toml'; then
    fail "a manifest still says $old: $(git grep -n "version = \"$old\"" -- '*Cargo.toml' '*pyproject.toml')"
fi
# Committed, a second release with nothing new is refused.
git commit --quiet -am "shmq $new"
refused "section is empty" "$major.$((minor + 2)).0"
echo "tests/release.sh: release.sh refuses what it should and moves $old to $new everywhere"
