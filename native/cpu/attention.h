// Fused multi-head attention for the CPU backend (see AttentionArgs in backend.h).
#pragma once
#include "../backend.h"

namespace perceiver {
namespace cpu {

void attention(const AttentionArgs& a);

}  // namespace cpu
}  // namespace perceiver
