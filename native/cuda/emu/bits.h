// 16-bit float bit patterns to and from float, on the host, and elements of float32 /
// 16-bit arrays by dtype: shared by the emulated tensor-core blocks
// (attention_mma_emu.h), the runtime stand-ins (host.cc) and the checks (check.h).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "../../dtype.h"

namespace perceiver::emu {

using perceiver::DType;

// x rounded to T (bfloat16 or half), as its 16 bits.
template <class T>
uint16_t float_to_bits(float x) {
  T h;
  if constexpr (std::is_same_v<T, __half>) h = __float2half_rn(x);
  else h = __float2bfloat16_rn(x);
  uint16_t u;
  std::memcpy(&u, &h, 2);
  return u;
}

template <class T>
float bits_to_float(uint16_t bits) {
  if constexpr (std::is_same_v<T, __half>) {
    __half_raw r;
    r.x = bits;
    return __half2float(__half(r));
  } else {
    const uint32_t u = (uint32_t)bits << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
}

// Element i of a float32, bfloat16 or float16 array, as float.
inline float load(const void* p, DType dt, int64_t i) {
  if (dt == DType::Float32) return static_cast<const float*>(p)[i];
  const uint16_t u = static_cast<const uint16_t*>(p)[i];
  return dt == DType::BFloat16 ? bits_to_float<__nv_bfloat16>(u) : bits_to_float<__half>(u);
}

// x stored as element i of such an array, rounded to nearest even.
inline void store(void* p, DType dt, int64_t i, float x) {
  if (dt == DType::Float32) static_cast<float*>(p)[i] = x;
  else static_cast<uint16_t*>(p)[i] = dt == DType::BFloat16 ? float_to_bits<__nv_bfloat16>(x) : float_to_bits<__half>(x);
}

}  // namespace perceiver::emu
