#!/usr/bin/env bash
# Runs test files under an older glibc and libstdc++ than this machine's: Debian 11's
# (glibc 2.31, GCC 10's libstdc++), from before glibc 2.34 moved libdl and libpthread
# into libc. test/package.test.ts checks the symbol versions the built files need;
# this loads and runs them there, which catches what a version list cannot (a pinned
# call that resolves to nothing, a library the loader cannot find).
#
# Needs network access to deb.debian.org (apt-get download) and patchelf. It copies
# node, points the copy's loader and library path at the old libraries, and runs ava
# with it (ava's workers are forked from that copy, so they run there too).
#
#   bash scripts/old-glibc-check.sh                      the suite, less 4 files (below)
#   bash scripts/old-glibc-check.sh dist/test/x.test.js  these
#
# The addon and CUDA library under test are the ones node-gyp-build picks
# (build/Release first, then prebuilds/): run `npm run build` or the package test first.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="${OLD_GLIBC_DIR:-/tmp/perceiver-old-glibc}"
SUITE="${OLD_GLIBC_SUITE:-bullseye}"

command -v patchelf >/dev/null || { echo "old-glibc-check: patchelf is needed (apt-get install patchelf)" >&2; exit 2; }
mkdir -p "$WORK/state/lists/partial" "$WORK/cache/archives/partial" "$WORK/debs"
touch "$WORK/state/status"
echo "deb [trusted=yes] http://deb.debian.org/debian $SUITE main" > "$WORK/sources.list"
APT=(-o "Dir::Etc::SourceList=$WORK/sources.list" -o Dir::Etc::SourceParts=- -o "Dir::State=$WORK/state"
     -o "Dir::State::status=$WORK/state/status" -o "Dir::Cache=$WORK/cache" -o APT::Architecture=amd64)
if [ ! -x "$WORK/node" ]; then
  apt-get "${APT[@]}" update >/dev/null
  (cd "$WORK/debs" && apt-get "${APT[@]}" download libc6 libstdc++6 libgcc-s1 2>/dev/null)
  rm -rf "$WORK/root"
  for d in "$WORK"/debs/*.deb; do dpkg-deb -x "$d" "$WORK/root"; done
  L="$WORK/root/lib/x86_64-linux-gnu" U="$WORK/root/usr/lib/x86_64-linux-gnu"
  cp "$(command -v node)" "$WORK/node.tmp"
  # DT_RPATH (--force-rpath), not RUNPATH: it also applies to the libraries the addon
  # needs, which would otherwise come from this machine's newer glibc.
  patchelf --set-interpreter "$L/ld-linux-x86-64.so.2" --force-rpath --set-rpath "$L:$U" "$WORK/node.tmp"
  mv "$WORK/node.tmp" "$WORK/node"
fi
GLIBC="$("$WORK/node" -p 'process.report.getReport().header.glibcVersionRuntime')"
echo "old-glibc-check: node $("$WORK/node" -v) on glibc $GLIBC (Debian $SUITE), $(ls "$WORK"/debs/libstdc++6_*.deb | sed 's/.*libstdc++6_\([^_]*\)_.*/libstdc++ \1/')"
cd "$ROOT"
FILES=("$@")
if [ ${#FILES[@]} -eq 0 ]; then
  # Every test file but those that decode images with sharp: its libvips carries a
  # RUNPATH, so the loader looks for libvips' own dependencies (libresolv) on this
  # machine rather than through the copy's library path, and finds the newer glibc's.
  for f in dist/test/*.test.js; do
    case "$f" in dist/test/cli-classify.test.js|dist/test/cli-flow.test.js|dist/test/image-io.test.js|dist/test/image-pipeline.test.js) ;; *) FILES+=("$f") ;; esac
  done
fi
exec "$WORK/node" node_modules/ava/entrypoints/cli.mjs "${FILES[@]}"
