#!/usr/bin/env bash
# Rebuilds vendor/burn-flex from the published crate plus vendor/patches/*.patch, applied in
# name order, and fails on any difference: the folder is exactly the crate and its patches.
#   bash scripts/vendor_check.sh
# The crate comes from cargo's registry cache when it is there, else from crates.io, and must
# have the checksum Cargo.lock recorded before the patch (vendor/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
crate=burn-flex-0.22.1
sha=7e05d08ef48d738fadf13f8689b634f8b396d5a8cbb27d0a87f61e163d241846
die() { echo "vendor_check: $*" >&2; exit 1; }

mkdir -p target/vendor-check
file=target/vendor-check/$crate.crate
if [ ! -f "$file" ]; then
  cached=$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/"$crate.crate" 2>/dev/null | head -1 || true)
  if [ -n "$cached" ]; then
    cp "$cached" "$file"
  else
    curl -sSfL --retry 3 --max-time 120 "https://static.crates.io/crates/burn-flex/$crate.crate" -o "$file.part" \
      || die "could not download $crate.crate from crates.io"
    mv "$file.part" "$file"
  fi
fi
if ! echo "$sha  $file" | sha256sum -c --quiet - >/dev/null 2>&1; then
  rm -f "$file"
  die "$crate.crate does not have the recorded checksum $sha"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar xzf "$file" -C "$work"
rebuilt=$work/rebuilt
mkdir "$rebuilt"
# What vendor/ keeps of the package (vendor/README.md).
cp -r "$work/$crate/src" "$work/$crate/Cargo.toml" "$work/$crate/README.md" "$work/$crate/ACKNOWLEDGMENTS.md" "$rebuilt/"
patches=(vendor/patches/*.patch)
[ -e "${patches[0]}" ] || die "no patches in vendor/patches"
for p in "${patches[@]}"; do
  # Outside any git repository, `git apply` patches plain files (and refuses fuzzy hunks).
  (cd "$rebuilt" && git apply -p1 "$OLDPWD/$p") || die "$p does not apply"
done
if ! diff -r "$rebuilt" vendor/burn-flex >"$work/diff.txt"; then
  head -50 "$work/diff.txt" >&2
  die "vendor/burn-flex differs from $crate plus vendor/patches (above: the rebuilt folder first)"
fi
echo "vendor/burn-flex is $crate plus ${#patches[@]} patches"
