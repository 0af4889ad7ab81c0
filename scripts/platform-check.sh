#!/usr/bin/env bash
# Runs the test suite on a platform this machine is not, with Debian's packages of
# that platform's C library and Node (downloaded from deb.debian.org; needs network
# access there, and root for the arm64 mode's binfmt_misc registration).
#
#   bash scripts/platform-check.sh old-glibc [test files]
#       Debian 11's glibc 2.31 and GCC 10's libstdc++, from before glibc 2.34 moved
#       libdl and libpthread into libc, with this machine's node (a copy, its loader
#       and library path pointed at them: patchelf). test/package.test.ts checks the
#       symbol versions the built files need; this loads and runs them there, which
#       catches what a version list cannot (a pinned call that resolves to nothing, a
#       library the loader cannot find). It tests the addon and CUDA library that
#       node-gyp-build picks (build/Release first, then prebuilds/).
#   bash scripts/platform-check.sh arm64 [test files]
#       linux-arm64 (AWS Graviton, Ampere): the addon cross-compiled through
#       binding.gyp as a source build makes it there (node-gyp --arch=arm64
#       with aarch64-linux-gnu-g++, in a staging copy: build/ is left alone), run by
#       Debian 13's arm64 node 20.19 under qemu-aarch64. Emulation is 10-30 times
#       slower than the machine, so tests that time a child process fail (listed below).
#       ARM64_ADDON=prebuilds/linux-arm64/perceiver-io.glibc.node tests that file (the
#       prebuild, scripts/prebuild-arm64.mjs) instead of building one.
#   bash scripts/platform-check.sh arm64-old-glibc [addon]
#       Whether the arm64 prebuild (default prebuilds/linux-arm64/perceiver-io.glibc.node)
#       loads on Debian 11's arm64 glibc 2.31 and GCC 10's libgcc. No Node 20 runs
#       there (Debian 11's is 12; nodejs.org is out of reach), so a small arm64 program
#       takes Node's place: it loads stubs of the Node API functions the addon imports
#       (napi_*, uv_*), then the addon with RTLD_NOW, which binds every import (glibc's
#       pinned versions included) or fails naming the one missing, and runs the addon's
#       static constructors. Nothing of the engine runs: the arm64 mode does that, on
#       Debian 13's glibc.
#
# Without test files: the suite, less the files that cannot run there (below).
# ava's workers are forked from the foreign node, so they run there too.
# Under arm64 emulation up to four tests fail by their child processes' time limits,
# more of them the busier the machine (a zero-size broadcast run isolated; the
# process exiting by itself, a Worker terminated mid-read, a pending read keeping the
# process alive): each starts node again, which takes seconds there; they say
# "took ... ms", SIGTERM or SIGKILL. The default run took 14 min on 2 cores.
# Needs: apt-get, dpkg-deb; patchelf (old-glibc); g++-aarch64-linux-gnu and qemu-user (arm64).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
MODE="${1:-}"
shift || true
WORK="${PLATFORM_CHECK_DIR:-/tmp/perceiver-platform-check}/$MODE"
say() { echo "platform-check: $*" >&2; }
# need TOOL PACKAGE: exit 2 naming the Debian package when TOOL is missing.
need() { command -v "$1" >/dev/null || { say "$1 is needed (apt-get install $2)"; exit 2; }; }
# This machine's node install, whose headers a build for another node takes.
NODE_PREFIX="$(dirname "$(dirname "$(command -v node)")")"

# fetch SUITE ARCH PACKAGES...: the packages' files, unpacked into $WORK/root.
fetch() {
  local suite="$1" arch="$2"
  shift 2
  mkdir -p "$WORK/apt/lists/partial" "$WORK/apt/archives/partial" "$WORK/debs"
  touch "$WORK/apt/status"
  echo "deb [trusted=yes arch=$arch] http://deb.debian.org/debian $suite main" > "$WORK/apt/sources.list"
  local apt=(-o "Dir::Etc::SourceList=$WORK/apt/sources.list" -o Dir::Etc::SourceParts=- -o "Dir::State=$WORK/apt"
             -o "Dir::State::status=$WORK/apt/status" -o "Dir::Cache=$WORK/apt" -o "APT::Architecture=$arch"
             -o "APT::Architectures::=$arch")
  apt-get "${apt[@]}" update >/dev/null
  # The packages and everything they depend on (a fresh status file: nothing is installed).
  local all
  all=$(apt-cache "${apt[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
          --no-replaces --no-enhances "$@" | grep -v '^ ' | grep -v '<' | sort -u)
  (cd "$WORK/debs" && apt-get "${apt[@]}" download $all >/dev/null 2>&1)
  rm -rf "$WORK/root"
  for d in "$WORK"/debs/*.deb; do dpkg-deb -x "$d" "$WORK/root"; done
  # Merged /usr (Debian 12 on): the loader's path /lib/... is a link in base-files.
  [ -e "$WORK/root/lib" ] || ln -s usr/lib "$WORK/root/lib"
}

# The staging package: the compiled JS and the sources the tests read, this addon.
stage() {
  local pkg="$WORK/pkg"
  rm -rf "$pkg" && mkdir -p "$pkg/build/Release"
  cp "$ROOT/package.json" "$ROOT/binding.gyp" "$pkg/"
  cp -r "$ROOT/dist" "$pkg/dist"
  for d in test scripts native bindings docs models README.md CMakeLists.txt node_modules; do ln -s "$ROOT/$d" "$pkg/$d"; done
  cp "$1" "$pkg/build/Release/perceiver.node"
  echo "$pkg"
}

FILES=("$@")
SKIP=()
case "$MODE" in
  old-glibc)
    need patchelf patchelf
    if [ ! -x "$WORK/node" ]; then
      fetch bullseye amd64 libc6 libstdc++6 libgcc-s1
      L="$WORK/root/lib/x86_64-linux-gnu" U="$WORK/root/usr/lib/x86_64-linux-gnu"
      cp "$(command -v node)" "$WORK/node.tmp"
      # DT_RPATH (--force-rpath), not RUNPATH: it also applies to the libraries the addon
      # needs, which would otherwise come from this machine's newer glibc.
      patchelf --set-interpreter "$L/ld-linux-x86-64.so.2" --force-rpath --set-rpath "$L:$U" "$WORK/node.tmp"
      mv "$WORK/node.tmp" "$WORK/node"
    fi
    NODE="$WORK/node"
    # The copy has no headers beside it: a test that compiles the addon (the package
    # test's prebuild) takes the real node's.
    [ -f "$NODE_PREFIX/include/node/node_api.h" ] && export npm_config_nodedir="$NODE_PREFIX"
    # sharp's libvips carries a RUNPATH, so the loader looks for libvips' own
    # dependencies (libresolv) on this machine rather than through the copy's library
    # path, and finds the newer glibc's: the files that decode images cannot run here.
    SKIP=(cli-classify cli-flow image-io image-pipeline)
    cd "$ROOT"
    ;;
  arm64)
    need aarch64-linux-gnu-g++ g++-aarch64-linux-gnu
    need qemu-aarch64 qemu-user
    [ -x "$WORK/root/usr/bin/node" ] || fetch trixie arm64 nodejs
    NODE="$WORK/root/usr/bin/node"
    export QEMU_LD_PREFIX="$WORK/root"
    # No CUDA library is built for arm64 here: without nvcc on PATH the device test
    # expects none (this machine's nvcc makes x86-64 code).
    PATH="$(printf '%s\n' "$PATH" | tr ':' '\n' | while IFS= read -r d; do [ -x "$d/nvcc" ] || printf '%s:' "$d"; done)"
    export PATH="${PATH%:}"
    # Children are started by path (process.execPath): the kernel must hand arm64 ELF
    # files to qemu.
    if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
      mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || { say "cannot mount binfmt_misc (needs root)"; exit 2; }
    fi
    if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
      printf '%s' ':qemu-aarch64:M::\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:'"$(command -v qemu-aarch64)"':F' \
        > /proc/sys/fs/binfmt_misc/register || { say "cannot register qemu-aarch64 with binfmt_misc (needs root)"; exit 2; }
    fi
    if [ -n "${ARM64_ADDON:-}" ]; then
      [ -f "$ARM64_ADDON" ] || { say "ARM64_ADDON: no file $ARM64_ADDON"; exit 2; }
      addon="$(realpath "$ARM64_ADDON")"
      say "testing $ARM64_ADDON: $(file -b "$addon" | cut -d, -f1-2)"
    else
      # The addon as binding.gyp builds it for arm64, in a staging copy of the sources.
      build="$WORK/build-src"
      rm -rf "$build" && mkdir -p "$build/scripts"
      cp "$ROOT/binding.gyp" "$ROOT/package.json" "$build/" && cp "$ROOT/scripts/link-flags.mjs" "$build/scripts/"
      cp -r "$ROOT/native" "$ROOT/bindings" "$build/" && ln -s "$ROOT/node_modules" "$build/node_modules"
      (cd "$build" && CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++ npm_config_nodedir="$NODE_PREFIX" \
         "$ROOT/node_modules/.bin/node-gyp" rebuild --arch=arm64 -j "$(nproc)" >"$WORK/build.log" 2>&1) \
        || { say "the arm64 build failed: $WORK/build.log"; tail -20 "$WORK/build.log" >&2; exit 1; }
      addon="$build/build/Release/perceiver.node"
      say "built $(file -b "$addon" | cut -d, -f1-2)"
    fi
    cd "$(stage "$addon")"
    # Files that start child processes or build binaries for this machine: the package
    # test packs and compiles x86-64 binaries; the native and CUDA harnesses compile
    # x86-64 code; image decoding needs sharp's arm64 build, not installed here; the
    # demos, the CLI, convert and training runs start many children, each seconds of
    # emulated start-up (the CLI files alone took most of an hour).
    SKIP=(package native-checks cuda-emu cuda-wgmma cuda-attention-backward cli cli-info cli-fill-mask bench-gc
          cli-classify cli-flow convert image-io image-pipeline randaugment readme demo demo-classify
          demo-engine demo-fill-mask demo-flow demo-video-autoencode train bench-train-gpu bench-attention
          bench-dispatch bench-load)
    ;;
  arm64-old-glibc)
    need aarch64-linux-gnu-gcc g++-aarch64-linux-gnu
    need qemu-aarch64 qemu-user
    addon="${FILES[0]:-$ROOT/prebuilds/linux-arm64/perceiver-io.glibc.node}"
    [ -f "$addon" ] || { say "no arm64 addon at $addon (node scripts/prebuild-arm64.mjs builds it)"; exit 2; }
    addon="$(realpath "$addon")"
    [ -e "$WORK/root/lib/ld-linux-aarch64.so.1" ] || fetch bullseye arm64 libc6 libgcc-s1
    # Every Node API import of the addon as a function that returns 0 (by name: the
    # C library's imports must come from the C library).
    aarch64-linux-gnu-nm -D --undefined-only "$addon" | awk '$1 == "U" && $2 ~ /^(napi_|node_api_|uv_)/ { print "int " $2 "(void) { return 0; }" }' > "$WORK/stubs.c"
    [ -s "$WORK/stubs.c" ] || { say "read no Node API imports from $addon"; exit 1; }
    aarch64-linux-gnu-gcc -shared -fPIC -o "$WORK/libnodestubs.so" "$WORK/stubs.c"
    # The loader is built against this machine's newer arm64 glibc, so its own calls
    # are pinned to their 2.17 versions, as the addon's are.
    printf '%s\n' \
      '#include <stdio.h>' \
      '/* This machine'"'"'s glibc would bind these to their 2.34 versions: the old ones instead. */' \
      'void* dlopen_old(const char*, int);' \
      'char* dlerror_old(void);' \
      '__asm__(".symver dlopen_old,dlopen@GLIBC_2.17");' \
      '__asm__(".symver dlerror_old,dlerror@GLIBC_2.17");' \
      '/* The start-up code calls __libc_start_main (-Wl,--wrap): on to its old version, which' \
      '   takes the same arguments and skips the init function 2.34'"'"'s start-up passes as null. */' \
      '__asm__(".symver start_main_old,__libc_start_main@GLIBC_2.17\n"' \
      '        ".globl __wrap___libc_start_main\n__wrap___libc_start_main:\n  b start_main_old");' \
      'int main(int argc, char** argv) {' \
      '  if (argc != 3) return 2;' \
      '  if (!dlopen_old(argv[1], 2 | 0x100)) { printf("stubs: %s\n", dlerror_old()); return 1; }  /* RTLD_NOW | RTLD_GLOBAL */' \
      '  if (!dlopen_old(argv[2], 2)) { printf("addon: %s\n", dlerror_old()); return 1; }            /* RTLD_NOW */' \
      '  printf("loaded, every import bound\n");' \
      '  return 0;' \
      '}' \
      > "$WORK/load.c"
    # libdl named: glibc before 2.34 keeps dlopen there.
    aarch64-linux-gnu-gcc -Wl,--wrap=__libc_start_main -o "$WORK/load" "$WORK/load.c" -Wl,--no-as-needed -l:libdl.so.2
    say "$(basename "$addon") on Debian 11 arm64, glibc $(basename "$(ls "$WORK"/root/lib/aarch64-linux-gnu/libc-*.so)" .so | cut -d- -f2)"
    QEMU_LD_PREFIX="$WORK/root" qemu-aarch64 "$WORK/load" "$WORK/libnodestubs.so" "$addon"
    exit $?
    ;;
  *)
    say "usage: bash scripts/platform-check.sh old-glibc|arm64 [test files] | arm64-old-glibc [addon]"
    exit 2
    ;;
esac

if [ ${#FILES[@]} -eq 0 ]; then
  for f in dist/test/*.test.js; do
    name="$(basename "$f" .test.js)"
    [[ " ${SKIP[*]} " == *" $name "* ]] || FILES+=("$f")
  done
  say "${#FILES[@]} test files; left out: ${SKIP[*]}"
fi
say "node $("$NODE" -v) ($("$NODE" -p process.arch)) on glibc $("$NODE" -p 'process.report.getReport().header.glibcVersionRuntime')"
exec "$NODE" "$ROOT/node_modules/ava/entrypoints/cli.mjs" --timeout 30m "${FILES[@]}"
