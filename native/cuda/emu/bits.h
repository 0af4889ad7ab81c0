// 16-bit float bit patterns to and from float, on the host: shared by the emulated
// tensor-core blocks (attention_mma_emu.h) and the checks (emu_check.cc).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

namespace perceiver::emu {

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

}  // namespace perceiver::emu
