// Element types the engine stores. float32 is the compute type on the CPU;
// float16/bfloat16 are storage types here (converted at the edges) and compute
// types on CUDA with float32 accumulation.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

namespace perceiver {

enum class DType : int32_t { Float32 = 0, Float16 = 1, BFloat16 = 2, Int32 = 3, UInt8 = 4 };

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::Float32: return 4;
    case DType::Float16: return 2;
    case DType::BFloat16: return 2;
    case DType::Int32: return 4;
    case DType::UInt8: return 1;
  }
  return 0;
}

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::Float32: return "float32";
    case DType::Float16: return "float16";
    case DType::BFloat16: return "bfloat16";
    case DType::Int32: return "int32";
    case DType::UInt8: return "uint8";
  }
  return "unknown";
}

// Returns false for an unknown name.
inline bool dtype_from_name(const std::string& s, DType* out) {
  static const struct { const char* n; DType t; } names[] = {
      {"float32", DType::Float32}, {"float16", DType::Float16}, {"bfloat16", DType::BFloat16},
      {"int32", DType::Int32},     {"uint8", DType::UInt8}};
  for (auto& e : names)
    if (s == e.n) { *out = e.t; return true; }
  return false;
}

inline bool dtype_is_float(DType t) {
  return t == DType::Float32 || t == DType::Float16 || t == DType::BFloat16;
}

// IEEE binary16 <-> binary32, round to nearest even, with subnormals, inf and NaN.
inline float half_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: renormalise
      int e = -1;
      do { e++; mant <<= 1; } while ((mant & 0x400) == 0);
      mant &= 0x3ff;
      bits = sign | ((uint32_t)(127 - 15 - e) << 23) | (mant << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline uint16_t float_to_half(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000;
  uint32_t absx = x & 0x7fffffffu;
  if (absx >= 0x7f800000u)  // inf or NaN (keep NaN quiet)
    return (uint16_t)(sign | 0x7c00 | (absx > 0x7f800000u ? 0x200 | ((absx >> 13) & 0x3ff) : 0));
  if (absx >= 0x477ff000u) return (uint16_t)(sign | 0x7c00);  // rounds to inf
  if (absx < 0x38800000u) {  // result is subnormal or zero
    if (absx < 0x33000000u) return (uint16_t)sign;
    uint32_t mant = (absx & 0x7fffff) | 0x800000;
    int shift = 113 - (int)(absx >> 23) + 13;  // 126 - e, plus the 13 dropped bits
    uint32_t r = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1);
    uint32_t halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (r & 1))) r++;
    return (uint16_t)(sign | r);
  }
  uint32_t r = ((absx - 0x38000000u) >> 13);
  uint32_t rem = absx & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (r & 1))) r++;
  return (uint16_t)(sign | r);
}

inline float bf16_to_float(uint16_t h) {
  uint32_t bits = (uint32_t)h << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline uint16_t float_to_bf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40);  // quiet NaN
  uint32_t lsb = (x >> 16) & 1;
  return (uint16_t)((x + 0x7fff + lsb) >> 16);
}

// v as a float rounded to odd (toward zero, then the last bit set where inexact): a
// 16-bit type's rounding of that is v's own, where rounding to nearest float first
// could land on the 16-bit halfway point and round again the wrong way (fill of
// 1 + 2^-11 + 2^-30 in float16 gave 1).
inline float float_rounded_to_odd(double v) {
  float f = (float)v;
  if (!std::isfinite(f) || (double)f == v) return f;
  if (std::fabs((double)f) > std::fabs(v)) f = std::nextafter(f, 0.f);
  uint32_t b;
  std::memcpy(&b, &f, 4);
  b |= 1u;
  std::memcpy(&f, &b, 4);
  return f;
}

// v as dtype t holds it, widened to float (exact for every float dtype): what a
// fill of v writes, so that a kernel computing in float32 writes the same bits.
inline float value_in_dtype(double v, DType t) {
  switch (t) {
    case DType::Float16: return half_to_float(float_to_half(float_rounded_to_odd(v)));
    case DType::BFloat16: return bf16_to_float(float_to_bf16(float_rounded_to_odd(v)));
    default: return (float)v;
  }
}

}  // namespace perceiver
