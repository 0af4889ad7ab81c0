// Helpers shared by the op layer: argument checks with uniform messages, Views,
// and launch(), which enqueues a kernel with its storages kept alive and turns a
// failure into an error on its outputs.
#pragma once
#include <initializer_list>
#include <memory>
#include <string>
#include <type_traits>

#include "backend.h"
#include "error.h"
#include "profiler.h"
#include "queue.h"
#include "task.h"
#include "tensor.h"

namespace perceiver {

View view_of(const Tensor& t);

// Whether two views can touch a common byte of one storage (by their byte ranges,
// so two interleaved views that share none may still count as overlapping).
bool overlaps(const Tensor& a, const Tensor& b);

// "op: argument 'name' ..." prefix for messages.
std::string arg_prefix(const char* op, const char* name);
// A number for a message as JavaScript writes it (0.9, 1e-12, Infinity, NaN), not
// std::to_string's fixed six decimals ("0.900000", "0.000000" for 1e-12, "inf").
std::string show_number(double v);

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

// A kernel on its device's queue, holding the storages it reads and writes so that
// JS may dispose them meanwhile. When it runs: an input that failed fails the
// outputs with its message instead, and an exception from the kernel fails the
// outputs with "op: message".
class KernelTask : public Task {
 public:
  // op must outlive the task (every caller passes a string literal).
  KernelTask(const char* op, Backend* backend, Device device, std::initializer_list<const Tensor*> inputs,
             std::initializer_list<const Tensor*> outputs);
  void run() final;

 protected:
  virtual void kernel(Backend& b) = 0;

 private:
  static constexpr int kMaxInputs = 7, kMaxOutputs = 4;  // attention_backward reads 7
  const char* op_;
  Backend* backend_;
  Device device_;
  std::unique_ptr<ProfileKey> profile_;  // only while the profiler runs
  StoragePtr in_[kMaxInputs], out_[kMaxOutputs];
  int n_in_ = 0, n_out_ = 0;
};

template <class K>
class KernelTaskOf final : public KernelTask {
 public:
  KernelTaskOf(const char* op, Backend* backend, Device device, std::initializer_list<const Tensor*> inputs,
               std::initializer_list<const Tensor*> outputs, K&& k)
      : KernelTask(op, backend, device, inputs, outputs), k_(std::move(k)) {}

 private:
  void kernel(Backend& b) override { k_(b); }
  K k_;
};

// Queues kernel(backend) on device's queue; null entries of inputs/outputs are skipped.
template <class K>
void launch(const char* op, Device device, std::initializer_list<const Tensor*> inputs,
            std::initializer_list<const Tensor*> outputs, K kernel) {
  Backend* backend = backend_for(device);
  backend->queue(device.index).submit(
      new KernelTaskOf<K>(op, backend, device, inputs, outputs, std::move(kernel)));
}

}  // namespace perceiver
