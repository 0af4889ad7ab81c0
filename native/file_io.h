// Checkpoint tensors straight from a file byte range (or from bytes a caller
// already holds) into an engine tensor. The read runs on the device's queue
// thread with pread, so a multi-GiB checkpoint never passes through the JS heap;
// dtype narrowing (int64 -> int32, float64 -> float32, with range checks) and
// the gather of a strided (transposed) record happen here, in one pass over a
// staging buffer, instead of per element in JavaScript.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tensor.h"

namespace perceiver {

// Element types of checkpoint formats, in safetensors' spelling.
enum class SourceType : int32_t {
  F64, F32, F16, BF16, F8_E4M3, F8_E5M2,
  I64, I32, I16, I8, U64, U32, U16, U8, BOOL,
};

// Returns false for a name the engine does not know.
bool source_type_from_name(const std::string& s, SourceType* out);
const char* source_type_name(SourceType t);
size_t source_type_size(SourceType t);
bool source_type_is_float(SourceType t);

// A checkpoint file opened once for every record of a load: a file renamed over it
// meanwhile (an atomic save, as save.ts does) is not seen, so the tensors of one
// load all come from one file. The descriptor closes when the last read holding it
// and the caller have let go.
class RecordFile {
 public:
  // Throws an Error naming the path when it cannot be opened or is not a regular file.
  static std::shared_ptr<const RecordFile> open(const std::string& path);
  ~RecordFile();
  RecordFile(const RecordFile&) = delete;
  RecordFile& operator=(const RecordFile&) = delete;

  const std::string& path() const { return path_; }
  int fd() const { return fd_; }
  uint64_t size() const { return size_; }
  // "device:inode:size:mtime in ns" as fstat gives them now; the same string as
  // lib/io/records.ts's fileVersion() for the same file.
  std::string version() const;

 private:
  RecordFile(std::string path, int fd, uint64_t size) : path_(std::move(path)), fd_(fd), size_(size) {}
  std::string path_;
  int fd_;
  uint64_t size_;
};

struct RecordSource {
  // A file byte range when `bytes` is null (read through `file` where set, else by
  // opening `path`); otherwise the in-memory bytes.
  std::string path;
  std::shared_ptr<const RecordFile> file;
  std::shared_ptr<const std::vector<uint8_t>> bytes;
  uint64_t offset = 0;       // of the first element, in the file (ignored for bytes)
  uint64_t byte_length = 0;  // bytes available from the first element on
};

// A tensor of `shape` and dtype `dst` on `device`, filled on the device's queue
// from `src`, whose elements of type `type` lie at element `strides` (row-major
// when empty) from its first byte. Layout and conversion are validated here (a
// RangeError/TypeError naming `name` and `where`); a read or range failure while
// loading (short file, int64 value outside int32) marks the tensor failed with a
// message naming both, which the next read of the tensor reports.
Tensor load_record(const std::string& name, const std::string& where, const RecordSource& src,
                   SourceType type, const Shape& shape, const Shape& strides, DType dst,
                   Device device);

}  // namespace perceiver
