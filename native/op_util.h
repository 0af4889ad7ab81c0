// Helpers shared by the op layer: argument checks with uniform messages, Views,
// and launch(), which enqueues a kernel with its storages kept alive and turns a
// failure into an error on its outputs.
#pragma once
#include <functional>
#include <initializer_list>
#include <string>

#include "backend.h"
#include "error.h"
#include "queue.h"
#include "tensor.h"

namespace perceiver {

View view_of(const Tensor& t);

// "op: argument 'name' ..." prefix for messages.
std::string arg_prefix(const char* op, const char* name);

void check_dtype(const char* op, const char* name, const Tensor& t, DType want);
void check_float32(const char* op, const char* name, const Tensor& t);
// A floating tensor: float32, float16 or bfloat16. 16-bit tensors compute in their
// own dtype on CUDA (float32 accumulation); on the CPU the op converts them to
// float32 around the kernel (see cpu_16bit).
void check_float(const char* op, const char* name, const Tensor& t);
// Throws unless every (non-null) tensor has the first one's dtype.
void check_same_dtype(const char* op, std::initializer_list<std::pair<const char*, const Tensor*>> ts);
// A 16-bit float tensor on the CPU: the op runs on float32 copies and rounds its
// result back to this dtype once, so the result is the float32 result rounded.
bool cpu_16bit(const Tensor& t);
void check_ndim(const char* op, const char* name, const Tensor& t, int want);
void check_min_ndim(const char* op, const char* name, const Tensor& t, int want);
void check_shape(const char* op, const char* name, const Tensor& t, const Shape& want);
// Throws unless every tensor lives on the first one's device.
void check_same_device(const char* op, std::initializer_list<std::pair<const char*, const Tensor*>> ts);
// Normalises a possibly negative axis against ndim.
int64_t normalize_axis(const char* op, const char* name, int64_t axis, int ndim);

void launch(const char* op, Device device, std::initializer_list<const Tensor*> inputs,
            std::initializer_list<const Tensor*> outputs, std::function<void(Backend&)> kernel);

}  // namespace perceiver
