#!/usr/bin/env bash
# Sets the one version of the whole project and dates the changelog:
#
#   scripts/release.sh X.Y.Z
#
# - every manifest: the workspace's version (shmq, shmq-cli, shmq-bridge,
#   shmq-ffi, the tests and benches), the workspace's `shmq` dependency,
#   python/Cargo.toml and python/pyproject.toml (the wheel's version),
#   benches/peers; the lock files follow;
# - include/shmq.h's SHMQ_VERSION_* macros (the header drift test,
#   `cargo test -p shmq-ffi --test header`, checks they are what cbindgen
#   writes);
# - CHANGELOG.md: "## [Unreleased]" becomes "## [X.Y.Z] - today", under a
#   new empty "## [Unreleased]".
#
# Refuses to run on a dirty tree (what it changes must be all that the
# release commit holds), on a version that is not X.Y.Z or not newer, and
# on an empty Unreleased section. It commits nothing: review `git diff`,
# then `git commit -am "shmq X.Y.Z" && git tag vX.Y.Z`. What a version
# bump means for queue files, the C ABI and the wheels: docs/versioning.md.
set -euo pipefail
cd "$(dirname "$0")/.."
new="${1:-}"
die() { echo "release.sh: $*" >&2; exit 1; }
[[ "$new" =~ ^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$ ]] ||
    die "usage: scripts/release.sh X.Y.Z (got '${new}')"
[ -z "$(git status --porcelain)" ] ||
    die "the tree has changes; commit or stash them first:
$(git status --short)"
old="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)"
[ -n "$old" ] || die "no workspace version in Cargo.toml"
newest="$(printf '%s\n%s\n' "$old" "$new" | sort -V | tail -n 1)"
[ "$new" != "$old" ] && [ "$newest" = "$new" ] || die "$new is not newer than $old"
awk '/^## \[Unreleased\]/{u=1; next} u && /^## /{exit} u && /[^[:space:]]/{found=1} END{exit !found}' CHANGELOG.md ||
    die "CHANGELOG.md's [Unreleased] section is empty: say what this release changes"

# The manifests: the version lines that carry the project's version.
sed -i "0,/^version = \"$old\"/s//version = \"$new\"/" Cargo.toml
sed -i "s/^shmq = { path = \"core\", version = \"$old\" }/shmq = { path = \"core\", version = \"$new\" }/" Cargo.toml
for f in python/Cargo.toml python/pyproject.toml benches/peers/Cargo.toml; do
    sed -i "0,/^version = \"$old\"/s//version = \"$new\"/" "$f"
done
grep -q "^version = \"$new\"" Cargo.toml python/Cargo.toml python/pyproject.toml benches/peers/Cargo.toml ||
    die "a manifest did not take the new version"
# The lock files record the workspace members' versions.
for m in Cargo.toml python/Cargo.toml benches/peers/Cargo.toml core/fuzz/Cargo.toml; do
    cargo update --workspace --offline --quiet --manifest-path "$m"
done

# The header's version macros.
IFS=. read -r major minor patch <<<"$new"
sed -i -e "s/^#define SHMQ_VERSION_MAJOR .*/#define SHMQ_VERSION_MAJOR $major/" \
    -e "s/^#define SHMQ_VERSION_MINOR .*/#define SHMQ_VERSION_MINOR $minor/" \
    -e "s/^#define SHMQ_VERSION_PATCH .*/#define SHMQ_VERSION_PATCH $patch/" \
    -e "s/^#define SHMQ_VERSION_STRING .*/#define SHMQ_VERSION_STRING \"$new\"/" include/shmq.h

# The changelog.
today="$(date -u +%Y-%m-%d)"
sed -i "0,/^## \[Unreleased\]/s//## [Unreleased]\n\n## [$new] - $today/" CHANGELOG.md

echo "release.sh: $old -> $new. Check it (cargo test -p shmq-ffi --test header checks the header),"
echo "then: git commit -am \"shmq $new\" && git tag v$new"
git status --short
