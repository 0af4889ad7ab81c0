// Fused multi-head attention for the CPU backend (see AttentionArgs in backend.h).
#pragma once
#include "../backend.h"

namespace perceiver {
namespace cpu {

void attention(const AttentionArgs& a);
// Its gradient (attention_backward.cc): float32, q, k, v and out strided as `a.a` says.
void attention_backward(const AttentionBackwardArgs& a);

}  // namespace cpu
}  // namespace perceiver
