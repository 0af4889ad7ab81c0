#!/usr/bin/env bash
# GPU check of the CUDA backend, in two halves (docs/DEVICE.md):
#
#   bash scripts/device-check.sh --prepare   on the build machine (nvcc, node, no GPU):
#       compiles TypeScript, builds perceiver_cuda.so for sm_90 only (PERCEIVER_CUDA_ARCHS
#       overrides) plus the native/cuda/*_check.cu harnesses, and packs what the device
#       machine lacks into .device/ (git-ignored): node (xz), the test runner's
#       node_modules closure (xz), the addon and the CUDA library. Carry ".device" and
#       "dist".
#   bash scripts/device-check.sh             on the device machine (GPU, CUDA 13, python3
#       with torch + transformers, no node, no network), in one call: unpacks, finds
#       cuBLASLt in the python env, runs the CUDA harnesses, the whole ava suite with
#       PERCEIVER_TEST_DEVICE=cuda, then scripts/bench-gpu (vs torch). Logs go to $OUT (default /tmp/perceiver-device-out);
#       a short table is printed last. Each step has its own time limit so the whole
#       run stays under 6 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DEV=$ROOT/.device

prepare() {
  set -e
  local archs=${PERCEIVER_CUDA_ARCHS:-90}
  mkdir -p "$DEV/bin"
  echo "== TypeScript"; npx tsc -p tsconfig.json
  [ -f build/Release/perceiver.node ] || { echo "build/Release/perceiver.node is missing: run npx node-gyp rebuild"; exit 1; }
  echo "== perceiver_cuda.so and harnesses for CUDA architectures $archs"
  cmake -S . -B build/cuda-device -DCMAKE_BUILD_TYPE=Release -DPERCEIVER_CPU=OFF "-DPERCEIVER_CUDA_ARCHS=$archs" > /dev/null
  local targets
  targets=$(ls native/cuda/*_check.cu 2>/dev/null | sed 's#native/cuda/\(.*\)\.cu#cuda_\1#' | tr '\n' ' ')
  # shellcheck disable=SC2086
  cmake --build build/cuda-device -j "$(nproc)" --target perceiver_cuda $targets
  cp build/cuda-device/perceiver_cuda.so "$DEV/perceiver_cuda.so"
  for t in $targets; do cp "build/cuda-device/$t" "$DEV/bin/$t"; done
  strip --strip-unneeded "$DEV/perceiver_cuda.so" "$DEV"/bin/* 2>/dev/null || true
  cp build/Release/perceiver.node "$DEV/perceiver.node"
  echo "== node and the test runner's dependencies"
  [ -f "$DEV/node.xz" ] || xz -T2 -c "$(command -v node)" > "$DEV/node.xz"
  node -e '
    const { readFileSync, existsSync } = require("node:fs");
    const seen = new Set(), stack = ["ava", "node-gyp-build"];
    while (stack.length) {
      const n = stack.pop();
      if (seen.has(n) || !existsSync(`node_modules/${n}/package.json`)) continue;
      seen.add(n);
      const p = JSON.parse(readFileSync(`node_modules/${n}/package.json`, "utf8"));
      stack.push(...Object.keys({ ...p.dependencies, ...p.optionalDependencies }));
    }
    console.log([...seen].map((n) => `node_modules/${n}`).join("\n"));' > "$DEV/node_modules.list"
  tar -chf - -T "$DEV/node_modules.list" | xz -T2 > "$DEV/node_modules.tar.xz"
  du -ch "$DEV" dist | tail -1
  echo "carry: [\".device\", \"dist\"] (must stay under 64 MiB with the tracked files)"
}

# ---------------------------------------------------------------- device side
OUT=${OUT:-/tmp/perceiver-device-out}
mkdir -p "$OUT"
declare -a SUMMARY=()
step() {  # step NAME SECONDS CMD... : runs CMD with a time limit, logs to $OUT/NAME.log
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  timeout --kill-after=10 "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  SUMMARY+=("$(printf '%-22s rc=%-4s %4ss  %s' "$name" "$rc" "$((SECONDS - t0))" "$(grep -E 'PASSED|FAILED|tests? (passed|failed)|known failure|skipped|CUDA unavailable' "$OUT/$name.log" | tail -2 | tr '\n' ' ' | cut -c1-110)")")
  return $rc
}

device() {
  echo "== unpack"
  if [ ! -x "$DEV/bin/node" ]; then
    mkdir -p "$DEV/bin"
    if command -v xz > /dev/null; then xz -dc "$DEV/node.xz" > "$DEV/bin/node"
    else python3 -c 'import lzma,sys; sys.stdout.buffer.write(lzma.open(sys.argv[1]).read())' "$DEV/node.xz" > "$DEV/bin/node"; fi
    chmod +x "$DEV/bin/node"
  fi
  export PATH=$DEV/bin:$PATH
  if [ ! -d node_modules/ava ]; then
    rm -rf node_modules
    if command -v xz > /dev/null; then xz -dc "$DEV/node_modules.tar.xz" | tar -xf -
    else python3 -c 'import lzma,sys; sys.stdout.buffer.write(lzma.open(sys.argv[1]).read())' "$DEV/node_modules.tar.xz" | tar -xf -; fi
  fi
  mkdir -p build/Release
  cp "$DEV/perceiver.node" "$DEV/perceiver_cuda.so" build/Release/
  node --version

  echo "== cuBLAS from the python env"
  local cublas
  cublas=$(python3 -c 'import nvidia.cublas as c, os; print(os.path.join(list(c.__path__)[0], "lib"))' 2>/dev/null || true)
  if [ -n "$cublas" ] && [ -d "$cublas" ]; then
    export PERCEIVER_CUBLAS_PATH=$cublas
    export LD_LIBRARY_PATH=$cublas${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  fi
  echo "PERCEIVER_CUBLAS_PATH=${PERCEIVER_CUBLAS_PATH:-unset}"
  nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || true
  node -e 'import("./dist/lib/index.js").then((P) => console.log(JSON.stringify(P.backends(), null, 1)))' | tee "$OUT/backends.json"
  if ! grep -q '"available": true' <(sed -n '/"cuda"/,$p' "$OUT/backends.json"); then
    echo "CUDA is unavailable here (see $OUT/backends.json); stopping"
    exit 1
  fi

  echo "== harnesses"
  for h in "$DEV"/bin/cuda_*_check; do
    [ -x "$h" ] || continue
    # The training-kernel harness is small (a few seconds); the others time GEMMs and attention.
    local limit=60
    [ "$(basename "$h")" = cuda_train_check ] && limit=30
    step "$(basename "$h")" "$limit" "$h"
  done

  echo "== ava with PERCEIVER_TEST_DEVICE=cuda"
  # package.test needs npm and a C++ toolchain, which the device machine lacks.
  local files
  files=$(ls dist/test/*.test.js | grep -v '/package\.test\.js$')
  # shellcheck disable=SC2086
  step ava-cuda 200 env PERCEIVER_TEST_DEVICE=cuda node node_modules/ava/entrypoints/cli.mjs --concurrency 6 --timeout 2m $files

  echo "== bench-gpu"
  step bench-gpu 110 env PERCEIVER_DEVICE=cuda node dist/scripts/bench-gpu.js --out "$OUT"

  echo
  echo "== summary (logs in $OUT)"
  printf '%s\n' "${SUMMARY[@]}"
  echo
  grep -A40 '^measurement' "$OUT/bench-gpu.log" || tail -5 "$OUT/bench-gpu.log"
}

case "${1:-}" in
  --prepare) prepare ;;
  "") device ;;
  *) echo "usage: $0 [--prepare]"; exit 2 ;;
esac
