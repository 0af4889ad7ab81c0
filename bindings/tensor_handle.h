// The handle functions JS calls on its tensors (meta, strides, dispose, read) and
// the lookup of tensor arguments. Handles themselves are numbers (HandleTable in
// addon.h).
#pragma once
#include <napi.h>

#include "addon.h"

namespace pio {

// The tensor argument v as a live handle of this environment, or null.
const Tensor* tensor_of(const Napi::Value& v);

}  // namespace pio
