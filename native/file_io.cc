// One pass per record: pread the record's byte span into a staging buffer (or,
// when nothing needs converting, straight into a CPU tensor's storage), then
// gather it in logical order while converting, so a transposed or narrowed
// record costs one copy. Range checks (int64 -> int32, a finite float becoming
// infinite) fail the tensor with the first offending value and its index.
#include "file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <algorithm>
#include <cstring>
#include <limits>

#include "backend.h"
#include "cpu/allocator.h"
#include "error.h"
#include "queue.h"

namespace perceiver {

namespace {

struct TypeInfo {
  const char* name;
  SourceType type;
  size_t size;
  bool is_float;
};

const TypeInfo kTypes[] = {
    {"F64", SourceType::F64, 8, true},         {"F32", SourceType::F32, 4, true},
    {"F16", SourceType::F16, 2, true},         {"BF16", SourceType::BF16, 2, true},
    {"F8_E4M3", SourceType::F8_E4M3, 1, true}, {"F8_E5M2", SourceType::F8_E5M2, 1, true},
    {"I64", SourceType::I64, 8, false},        {"I32", SourceType::I32, 4, false},
    {"I16", SourceType::I16, 2, false},        {"I8", SourceType::I8, 1, false},
    {"U64", SourceType::U64, 8, false},        {"U32", SourceType::U32, 4, false},
    {"U16", SourceType::U16, 2, false},        {"U8", SourceType::U8, 1, false},
    {"BOOL", SourceType::BOOL, 1, false},
};

const TypeInfo& info(SourceType t) {
  for (const TypeInfo& e : kTypes)
    if (e.type == t) return e;
  return kTypes[0];
}

template <class T>
T load_le(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));  // unaligned-safe; the engine only builds for little-endian hosts
  return v;
}

// float8 e4m3 "fn" (torch.float8_e4m3fn, safetensors F8_E4M3): bias 7, no
// infinities, S.1111.111 is NaN.
float f8_e4m3_to_float(uint8_t b) {
  uint32_t sign = b >> 7, exp = (b >> 3) & 0xf, mant = b & 0x7;
  float v;
  if (exp == 0xf && mant == 0x7) return std::numeric_limits<float>::quiet_NaN();
  if (exp == 0) v = std::ldexp((float)mant, -9);  // subnormal: mant/8 * 2^-6
  else v = std::ldexp(1.f + (float)mant / 8.f, (int)exp - 7);
  return sign ? -v : v;
}

double read_float(SourceType t, const uint8_t* p) {
  switch (t) {
    case SourceType::F64: return load_le<double>(p);
    case SourceType::F32: return load_le<float>(p);
    case SourceType::F16: return half_to_float(load_le<uint16_t>(p));
    case SourceType::BF16: return bf16_to_float(load_le<uint16_t>(p));
    case SourceType::F8_E4M3: return f8_e4m3_to_float(*p);
    case SourceType::F8_E5M2: return half_to_float((uint16_t)(*p) << 8);
    default: return 0;
  }
}

// Integers travel as int64, except U64 values above INT64_MAX, which saturate
// (they fail every range check the engine's types need anyway).
int64_t read_int(SourceType t, const uint8_t* p) {
  switch (t) {
    case SourceType::I64: return load_le<int64_t>(p);
    case SourceType::I32: return load_le<int32_t>(p);
    case SourceType::I16: return load_le<int16_t>(p);
    case SourceType::I8: return (int8_t)*p;
    case SourceType::U64: {
      uint64_t v = load_le<uint64_t>(p);
      return v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v;
    }
    case SourceType::U32: return load_le<uint32_t>(p);
    case SourceType::U16: return load_le<uint16_t>(p);
    case SourceType::U8: return *p;
    case SourceType::BOOL: return *p != 0;
    default: return 0;
  }
}

std::string flat_index_str(int64_t i) { return std::to_string(i); }

// Visits every element of a strided view once: fn(flat row-major index, byte
// offset of the element in the source). When some axis steps through the source
// more finely than the last one (a transposed Linear, an HWIO -> OIHW conv
// kernel), the two axes are walked in 32 x 32 tiles, so the source lines a tile
// reads stay in cache while the destination is written in runs; a plain
// row-major walk would miss cache on nearly every read of a large transpose.
template <class Fn>
void for_each_element(const Shape& shape, const Shape& strides, size_t item, Fn fn) {
  int nd = (int)shape.size();
  if (shape_numel(shape) == 0) return;
  if (nd == 0) {
    fn(0, 0);
    return;
  }
  Shape dst = contiguous_strides(shape);
  int a = nd - 1, b = -1;
  for (int d = 0; d < nd - 1; d++)
    if (shape[d] > 1 && (b < 0 || strides[d] < strides[b])) b = d;
  bool tiled = b >= 0 && shape[a] > 1 && strides[b] < strides[a];
  // The odometer runs over every axis but the inner one(s).
  int outer[kMaxDims], no = 0;
  for (int d = 0; d < nd; d++)
    if (d != a && !(tiled && d == b)) outer[no++] = d;
  int64_t idx[kMaxDims] = {0};
  const int64_t sa = strides[a] * (int64_t)item, na = shape[a];
  const int64_t sb = tiled ? strides[b] * (int64_t)item : 0, nb = tiled ? shape[b] : 1, db = tiled ? dst[b] : 0;
  const int64_t T = 32;
  int64_t base = 0, flat = 0;
  for (;;) {
    if (!tiled) {
      int64_t off = base;
      for (int64_t j = 0; j < na; j++, off += sa) fn(flat + j, off);
    } else {
      for (int64_t b0 = 0; b0 < nb; b0 += T)
        for (int64_t a0 = 0; a0 < na; a0 += T) {
          int64_t b1 = std::min(nb, b0 + T), a1 = std::min(na, a0 + T);
          for (int64_t ib = b0; ib < b1; ib++) {
            int64_t f = flat + ib * db + a0, off = base + ib * sb + a0 * sa;
            for (int64_t ia = a0; ia < a1; ia++, f++, off += sa) fn(f, off);
          }
        }
    }
    int k = no - 1;
    for (; k >= 0; k--) {
      int d = outer[k];
      base += strides[d] * (int64_t)item;
      flat += dst[d];
      if (++idx[d] < shape[d]) break;
      base -= strides[d] * (int64_t)item * shape[d];
      flat -= dst[d] * shape[d];
      idx[d] = 0;
    }
    if (k < 0) return;
  }
}

[[noreturn]] void fail(const std::string& prefix, const std::string& problem) {
  throw Error(ErrorKind::Runtime, prefix + problem);
}

// Converts the staged source (strided) into dense `out` of dtype dst.
void convert(const std::string& prefix, const uint8_t* src, SourceType type, const Shape& shape,
             const Shape& strides, DType dst, void* out) {
  size_t item = source_type_size(type);
  const char* tname = source_type_name(type);
  if (source_type_is_float(type)) {
    auto check = [&](double v, float f, int64_t i) {
      if (std::isfinite(v) && !std::isfinite(f))
        fail(prefix, std::string(tname) + " value " + std::to_string(v) + " at flat index " +
                         flat_index_str(i) + " is outside the range of " + dtype_name(dst));
    };
    switch (dst) {
      case DType::Float32: {
        float* o = static_cast<float*>(out);
        if (type == SourceType::F32) {
          for_each_element(shape, strides, item, [&](int64_t i, int64_t off) { o[i] = load_le<float>(src + off); });
        } else {
          for_each_element(shape, strides, item, [&](int64_t i, int64_t off) {
            double v = read_float(type, src + off);
            float f = (float)v;
            check(v, f, i);
            o[i] = f;
          });
        }
        return;
      }
      case DType::Float16:
      case DType::BFloat16: {
        uint16_t* o = static_cast<uint16_t*>(out);
        bool half = dst == DType::Float16;
        SourceType same = half ? SourceType::F16 : SourceType::BF16;
        if (type == same) {
          for_each_element(shape, strides, item, [&](int64_t i, int64_t off) { o[i] = load_le<uint16_t>(src + off); });
          return;
        }
        for_each_element(shape, strides, item, [&](int64_t i, int64_t off) {
          double v = read_float(type, src + off);
          float f = (float)v;
          uint16_t h = half ? float_to_half(f) : float_to_bf16(f);
          check(v, half ? half_to_float(h) : bf16_to_float(h), i);
          o[i] = h;
        });
        return;
      }
      default: break;
    }
  } else {
    int64_t lo = dst == DType::Int32 ? INT32_MIN : 0;
    int64_t hi = dst == DType::Int32 ? INT32_MAX : 255;
    auto check = [&](int64_t v, int64_t i, const uint8_t* p) {
      if (v < lo || v > hi) {
        std::string shown = type == SourceType::U64 ? std::to_string(load_le<uint64_t>(p)) : std::to_string(v);
        fail(prefix, std::string(tname) + " value " + shown + " at flat index " + flat_index_str(i) +
                         " does not fit in " + dtype_name(dst) + " (the engine's " +
                         (dst == DType::Int32 ? "integer" : "byte") + " type)");
      }
    };
    if (dst == DType::Int32) {
      int32_t* o = static_cast<int32_t*>(out);
      for_each_element(shape, strides, item, [&](int64_t i, int64_t off) {
        int64_t v = read_int(type, src + off);
        check(v, i, src + off);
        o[i] = (int32_t)v;
      });
      return;
    }
    if (dst == DType::UInt8) {
      uint8_t* o = static_cast<uint8_t*>(out);
      for_each_element(shape, strides, item, [&](int64_t i, int64_t off) {
        int64_t v = read_int(type, src + off);
        check(v, i, src + off);
        o[i] = (uint8_t)v;
      });
      return;
    }
  }
  fail(prefix, std::string("cannot convert ") + tname + " to " + dtype_name(dst));
}

void pread_fully(const std::string& prefix, int fd, uint8_t* dst, uint64_t bytes, uint64_t offset,
                 const std::string& path) {
  uint64_t done = 0;
  while (done < bytes) {
    size_t chunk = (size_t)std::min<uint64_t>(bytes - done, uint64_t(1) << 30);
    ssize_t r = ::pread(fd, dst + done, chunk, (off_t)(offset + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      fail(prefix, "reading " + path + " at byte " + std::to_string(offset + done) + " failed (" +
                       std::strerror(errno) + ")");
    }
    if (r == 0)
      fail(prefix, "the file ends at byte " + std::to_string(offset + done) + " but the tensor needs bytes [" +
                       std::to_string(offset) + ", " + std::to_string(offset + bytes) + ") (file truncated?)");
    done += (uint64_t)r;
  }
}

// Staging memory from the engine's host allocator: its cached blocks are warm,
// where a fresh multi-MiB allocation faults once per page (slower than the read).
struct Staging {
  uint8_t* p = nullptr;
  size_t n = 0;
  explicit Staging(size_t bytes) : n(bytes) {
    if (n) p = static_cast<uint8_t*>(cpu::host_alloc(n));
  }
  ~Staging() {
    if (p) cpu::host_free(p, n);
  }
  Staging(const Staging&) = delete;
  Staging& operator=(const Staging&) = delete;
};

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

bool natural(SourceType t, DType d) {
  return (t == SourceType::F32 && d == DType::Float32) || (t == SourceType::F16 && d == DType::Float16) ||
         (t == SourceType::BF16 && d == DType::BFloat16) || (t == SourceType::I32 && d == DType::Int32) ||
         (t == SourceType::U8 && d == DType::UInt8);
}

}  // namespace

std::shared_ptr<const RecordFile> RecordFile::open(const std::string& path) {
  // O_NONBLOCK: opening a FIFO for reading otherwise waits for a writer, on the JS
  // thread, before the check below can refuse it. Reads of regular files ignore it.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw Error(ErrorKind::Runtime, path + ": cannot read (" + std::strerror(errno) + ")");
  struct stat st;
  const bool stated = ::fstat(fd, &st) == 0;
  if (!stated || !S_ISREG(st.st_mode)) {
    const std::string why = stated ? "not a regular file" : std::strerror(errno);
    ::close(fd);
    throw Error(ErrorKind::Runtime, path + ": cannot read (" + why + ")");
  }
  return std::shared_ptr<const RecordFile>(new RecordFile(path, fd, (uint64_t)st.st_size));
}

RecordFile::~RecordFile() { ::close(fd_); }

std::string RecordFile::version() const {
  struct stat st;
  if (::fstat(fd_, &st) != 0) throw Error(ErrorKind::Runtime, path_ + ": cannot stat (" + std::strerror(errno) + ")");
  const unsigned long long mtime_ns =
      (unsigned long long)st.st_mtim.tv_sec * 1000000000ull + (unsigned long long)st.st_mtim.tv_nsec;
  return std::to_string((unsigned long long)st.st_dev) + ":" + std::to_string((unsigned long long)st.st_ino) + ":" +
         std::to_string((unsigned long long)st.st_size) + ":" + std::to_string(mtime_ns);
}

bool source_type_from_name(const std::string& s, SourceType* out) {
  for (const TypeInfo& e : kTypes)
    if (s == e.name) {
      *out = e.type;
      return true;
    }
  return false;
}
const char* source_type_name(SourceType t) { return info(t).name; }
size_t source_type_size(SourceType t) { return info(t).size; }
bool source_type_is_float(SourceType t) { return info(t).is_float; }

Tensor load_record(const std::string& name, const std::string& where, const RecordSource& src,
                   SourceType type, const Shape& shape, const Shape& strides_in, DType dst,
                   Device device) {
  std::string prefix = where + ": tensor '" + name + "': ";
  bool is_int_dst = dst == DType::Int32 || dst == DType::UInt8;
  if (source_type_is_float(type) == is_int_dst)
    throw_type(prefix + source_type_name(type) + " cannot be loaded as " + dtype_name(dst) +
               (is_int_dst ? " (a float checkpoint tensor needs a float dtype)"
                           : " (an integer checkpoint tensor loads as int32 or uint8)"));
  Shape strides = strides_in.empty() ? contiguous_strides(shape) : strides_in;
  if (strides.size() != shape.size())
    throw_range(prefix + "strides " + shape_str(strides_in) + " do not match shape " + shape_str(shape));
  int64_t n = checked_numel("load", "shape", shape);
  size_t item = source_type_size(type);
  // Bytes from the first element to the end of the last, checked in 128 bits so
  // hostile strides cannot wrap around.
  unsigned __int128 span = 0;
  if (n > 0) {
    unsigned __int128 last = 0;
    for (size_t i = 0; i < shape.size(); i++) {
      if (strides[i] < 0)
        throw_range(prefix + "strides " + shape_str(strides) + " must be non-negative");
      last += (unsigned __int128)(shape[i] - 1) * (unsigned __int128)strides[i];
    }
    span = (last + 1) * item;
  }
  uint64_t available = src.bytes ? src.bytes->size() : src.byte_length;
  if (span > available)
    throw_range(prefix + "shape " + shape_str(shape) + " of " + source_type_name(type) + " at strides " +
                shape_str(strides) + " needs " + std::to_string((uint64_t)std::min<unsigned __int128>(span, UINT64_MAX)) +
                " bytes but the source holds " + std::to_string(available));
  if (!src.bytes && src.offset > UINT64_MAX - (uint64_t)span)
    throw_range(prefix + "byte range overflows");

  Tensor t = empty(shape, dst, device, "load");
  if (n == 0) return t;
  bool contiguous = strides == contiguous_strides(shape) || n == 1;
  bool direct = contiguous && natural(type, dst) && device.type == DeviceType::CPU;
  Backend* backend = backend_for(device);
  StoragePtr storage = t.storage;
  RecordSource source = src;
  uint64_t span_bytes = (uint64_t)span;
  Tensor view = t;
  backend->queue(device.index).submit([=] {
    try {
      const uint8_t* staged = nullptr;
      std::unique_ptr<Staging> staging;
      if (source.bytes) {
        staged = source.bytes->data();
      } else {
        Fd own;
        int fd = source.file ? source.file->fd() : -1;
        if (!source.file) {
          own.fd = fd = ::open(source.path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);  // as RecordFile::open
          if (fd < 0) fail(prefix, "cannot open " + source.path + " (" + std::strerror(errno) + ")");
          struct stat st;
          if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
            fail(prefix, "cannot read " + source.path + " (not a regular file)");
        }
        if (direct) {
          pread_fully(prefix, fd, static_cast<uint8_t*>(view.data()), span_bytes, source.offset, source.path);
          return;
        }
        staging.reset(new Staging(span_bytes));
        pread_fully(prefix, fd, staging->p, span_bytes, source.offset, source.path);
        staged = staging->p;
      }
      if (device.type == DeviceType::CPU) {
        convert(prefix, staged, type, view.shape, strides, dst, view.data());
      } else {
        Staging host(view.nbytes());
        convert(prefix, staged, type, view.shape, strides, dst, host.p);
        backend->copy_from_host(view.data(), host.p, view.nbytes());
      }
    } catch (const std::exception& e) {
      storage->set_error(e.what());
    } catch (...) {
      storage->set_error(prefix + "unknown error while loading");
    }
  });
  return t;
}

}  // namespace perceiver
