// attention_mma.cuh's building blocks on the CPU (native/cuda/emu): the same fragment
// layouts (PTX ISA, "Matrix fragments for mma.m16n8k16", as attention_mma.cuh lists
// them), computed by the warp's threads together through the exchange slots of emu.h.
// Products accumulate in float, as the tensor cores do, though not in their order.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "bits.h"
#include "emu.h"

namespace perceiver::cuda::attn {

namespace emu_detail {
using ::perceiver::emu::lane;
using ::perceiver::emu::warp_slots;
using ::perceiver::emu::warp_sync;

using ::perceiver::emu::bits_to_float;

// The four 8x8 matrices' row addresses come from lanes 8i..8i+7; `elem(m, row, col)`
// reads element [row][col] of matrix m.
template <class F>
void ldmatrix_x4_impl(uint32_t (&r)[4], const void* p, F&& pick) {
  auto& s = warp_slots();
  const int l = lane();
  ::perceiver::emu::smem_read(p, 16);  // this lane's row
  s[l][0] = reinterpret_cast<uintptr_t>(p);
  warp_sync();
  auto elem = [&](int m, int row, int col) -> uint32_t {
    return reinterpret_cast<const uint16_t*>(s[8 * m + row][0])[col];
  };
  for (int m = 0; m < 4; m++) r[m] = pick(elem, m, l);
  warp_sync();
}
}  // namespace emu_detail

// Register m, per lane: elements [lane/4][2(lane%4) .. +1] of matrix m.
inline void ldmatrix_x4(uint32_t (&r)[4], const void* p) {
  emu_detail::ldmatrix_x4_impl(r, p, [](auto& elem, int m, int l) {
    return elem(m, l / 4, 2 * (l % 4)) | elem(m, l / 4, 2 * (l % 4) + 1) << 16;
  });
}

// Transposed: elements [2(lane%4) .. +1][lane/4] of matrix m.
inline void ldmatrix_x4_trans(uint32_t (&r)[4], const void* p) {
  emu_detail::ldmatrix_x4_impl(r, p, [](auto& elem, int m, int l) {
    return elem(m, 2 * (l % 4), l / 4) | elem(m, 2 * (l % 4) + 1, l / 4) << 16;
  });
}

// This lane's A and B registers of an mma into its exchange slots 0-5, where the
// warp's product reads them after the next warp_sync.
inline void publish_operands(const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  auto& s = emu_detail::warp_slots();
  const int l = emu_detail::lane();
  for (int i = 0; i < 4; i++) s[l][i] = a[i];
  s[l][4] = b0;
  s[l][5] = b1;
}

// d += A B, A 16x16 row-major, B 16x8 "col", C/D 16x8 fp32, in the fragments of
// attention_mma.cuh (g = lane / 4, t = lane % 4).
template <class T>
void mma_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  using namespace emu_detail;
  auto& s = warp_slots();
  const int l = lane();
  publish_operands(a, b0, b1);
  uint32_t c[4];
  std::memcpy(c, d, sizeof c);
  s[l][6] = c[0] | (uint64_t)c[1] << 32;  // C[g][2t], C[g][2t + 1]
  s[l][7] = c[2] | (uint64_t)c[3] << 32;  // C[g + 8][2t], C[g + 8][2t + 1]
  warp_sync();
  auto A = [&](int r, int c) {
    const int reg = (c < 8 ? 0 : 2) + (r >= 8 ? 1 : 0);
    return bits_to_float<T>((uint16_t)(s[(r % 8) * 4 + (c % 8) / 2][reg] >> (16 * (c % 2))));
  };
  auto B = [&](int k, int n) {
    return bits_to_float<T>((uint16_t)(s[n * 4 + (k % 8) / 2][k < 8 ? 4 : 5] >> (16 * (k % 2))));
  };
  auto C = [&](int r, int c) {
    const int i = (r >= 8 ? 2 : 0) + c % 2;  // c0 c1 | c2 c3
    const uint32_t u = (uint32_t)(s[(r % 8) * 4 + c / 2][6 + i / 2] >> (32 * (i % 2)));
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  };
  const int g = l / 4, t = l % 4;
  float out[4];
  for (int i = 0; i < 4; i++) {
    const int r = g + (i >= 2 ? 8 : 0), c = 2 * t + i % 2;
    float acc = C(r, c);
    for (int k = 0; k < 16; k++) acc += A(r, k) * B(k, c);
    out[i] = acc;
  }
  warp_sync();
  for (int i = 0; i < 4; i++) d[i] = out[i];
}

// cvt.rna.tf32.f32: to nearest, ties away from zero (on the magnitude), low 13 bits
// zero; infinities and NaN as they are.
inline uint32_t to_tf32(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7f800000u) == 0x7f800000u) return u;
  return (u + 0x1000u) & 0xffffe000u;
}

// d += A B, A 16x8 and B 8x8 of TF32 (attention_mma.cuh's fragments). The tensor
// cores read only the top 19 bits of each operand; so does this.
inline void mma_1688_tf32(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  using namespace emu_detail;
  auto& s = warp_slots();
  const int l = lane();
  publish_operands(a, b0, b1);
  warp_sync();
  auto f = [](uint64_t bits) {
    const uint32_t u = (uint32_t)bits & 0xffffe000u;
    float x;
    std::memcpy(&x, &u, 4);
    return x;
  };
  auto A = [&](int r, int k) { return f(s[(r % 8) * 4 + k % 4][(r >= 8 ? 1 : 0) + (k >= 4 ? 2 : 0)]); };
  auto B = [&](int k, int n) { return f(s[n * 4 + k % 4][k < 4 ? 4 : 5]); };
  const int g = l / 4, t = l % 4;
  float out[4];
  for (int i = 0; i < 4; i++) {
    const int r = g + (i >= 2 ? 8 : 0), c = 2 * t + i % 2;
    float acc = d[i];
    for (int k = 0; k < 8; k++) acc += A(r, k) * B(k, c);
    out[i] = acc;
  }
  warp_sync();
  for (int i = 0; i < 4; i++) d[i] = out[i];
}

// A 32-bit shared-memory load, watched for races as ldmatrix is.
inline float lds_f32(const float* p) {
  ::perceiver::emu::smem_read(p, 4);
  return *p;
}
// A global store of sizeof(V) bytes: as on a GPU, a misaligned one ends the run.
template <class V>
inline void stg(void* p, V v) {
  ::perceiver::emu::require_aligned(p, sizeof(V), "global store");
  std::memcpy(p, &v, sizeof(V));
}
// A 32-bit store and a 16-byte load of shared memory, watched as well.
inline void sts_u32(void* p, uint32_t v) {
  ::perceiver::emu::smem_write(p, 4);
  std::memcpy(p, &v, 4);
}
inline uint4 lds_u128(const void* p) {
  ::perceiver::emu::require_aligned(p, 16, "shared load");
  ::perceiver::emu::smem_read(p, 16);
  uint4 v;
  std::memcpy(&v, p, 16);
  return v;
}

// Asynchronous as on the GPU (emu.h): src_bytes copied and the rest of the 16
// zero-filled when this thread's wait covers the copy's group, not before.
inline void cp_async_16(void* smem, const void* gmem, int src_bytes) {
  ::perceiver::emu::async_copy16(smem, gmem, src_bytes);
}
inline void cp_async_commit() { ::perceiver::emu::async_commit(); }
template <int n>
inline void cp_async_wait() {
  ::perceiver::emu::async_wait(n);
}

// The GPU's ex2.approx.ftz flushes results below 2^-126 to zero; no check here
// depends on that, so plain exp2 serves.
inline float exp2_ftz(float x) { return std::exp2(x); }

// Two floats rounded to T, the first in the low half.
template <class T>
uint32_t pack2(float lo, float hi) {
  return ::perceiver::emu::float_to_bits<T>(lo) | (uint32_t)::perceiver::emu::float_to_bits<T>(hi) << 16;
}

}  // namespace perceiver::cuda::attn
