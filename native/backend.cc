// Backend lookup, and the loader of the CUDA backend library. perceiver_cuda.so
// is looked for next to the file that holds this code (the addon's .node, found
// with dladdr), then in the package's prebuilds/<platform>-<arch>/, so a source
// build (build/Release) and an installed prebuild both find their own copy;
// PERCEIVER_CUDA_LIBRARY names a file explicitly. It is loaded once, on first
// use; every failure is kept as the reason backends() reports.
#include "backend.h"

#include <exception>

#include <dlfcn.h>

#include <atomic>
#include <cstdlib>
#include <mutex>

#include "cuda/api.h"
#include "error.h"
#include "queue.h"

namespace perceiver {
namespace {

struct CudaLib {
  CudaStatus status;
  const CudaApi* api = nullptr;
  std::mutex mu;
  std::vector<Backend*> backends;  // created so far, index = device
};

std::string dir_of(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

std::vector<std::string> library_candidates() {
  std::vector<std::string> c;
  if (const char* env = std::getenv("PERCEIVER_CUDA_LIBRARY"); env && *env) {
    c.push_back(env);
    return c;
  }
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&cuda_status), &info) && info.dli_fname) {
    std::string dir = dir_of(info.dli_fname);
    c.push_back(dir + "/perceiver_cuda.so");
    // build/Release/x.node -> <package>/prebuilds/linux-x64/
    std::string pkg = dir_of(dir_of(dir));
#if defined(__x86_64__)
    c.push_back(pkg + "/prebuilds/linux-x64/perceiver_cuda.so");
#elif defined(__aarch64__)
    c.push_back(pkg + "/prebuilds/linux-arm64/perceiver_cuda.so");
#endif
  }
  return c;
}

// Set once the loader has run, so exit-time and memory() queries do not load
// the library just to learn that no CUDA backend was ever used.
std::atomic<CudaLib*> g_loaded{nullptr};

CudaLib& cuda_lib() {
  static CudaLib* lib = [] {
    CudaLib* l = new CudaLib();  // leaked: backends may run during exit
    std::string tried;
    void* handle = nullptr;
    for (const std::string& path : library_candidates()) {
      handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (handle) {
        l->status.library_path = path;
        break;
      }
      const char* e = dlerror();
      tried += "\n    " + path + ": " + (e ? e : "could not be loaded");
    }
    if (!handle) {
      l->status.reason = "the CUDA backend library (perceiver_cuda.so) was not found; it is built when nvcc is "
                         "on PATH at install time (npm rebuild), or ships in the prebuilt package; tried:" + tried;
      return l;
    }
    auto entry = reinterpret_cast<perceiver_cuda_api_fn>(dlsym(handle, "perceiver_cuda_api"));
    if (!entry) {
      const char* e = dlerror();
      l->status.reason = l->status.library_path + " does not export perceiver_cuda_api (" + (e ? e : "") + ")";
      return l;
    }
    char err[2048] = {0};
    const CudaApi* api = entry(kCudaAbiVersion, err, sizeof(err));
    if (!api || api->abi_version != kCudaAbiVersion || api->table_size != sizeof(CudaApi)) {
      l->status.reason = l->status.library_path + ": " + (err[0] ? err : "backend ABI mismatch; rebuild it");
      return l;
    }
    if (api->layout != kCudaAbiLayout) {
      l->status.reason = l->status.library_path + " was built from other headers than this addon (their shared "
                         "types differ in layout, ABI version " + std::to_string(kCudaAbiVersion) +
                         " on both sides); rebuild both from the same sources";
      return l;
    }
    l->status.library_loaded = true;
    l->api = api;
    int n = api->init(err, sizeof(err));
    l->status.device_count = n;
    if (n == 0) l->status.reason = err;
    l->backends.assign((size_t)n, nullptr);
    return l;
  }();
  g_loaded.store(lib, std::memory_order_release);
  return *lib;
}

}  // namespace

const CudaStatus& cuda_status() { return cuda_lib().status; }

bool cuda_device_info(int device, CudaDeviceInfo* info, std::string* err) {
  CudaLib& l = cuda_lib();
  if (!l.api || l.status.device_count == 0) {
    *err = l.status.reason;
    return false;
  }
  char buf[1024] = {0};
  if (l.api->device_info(device, info, buf, sizeof(buf)) != 0) {
    *err = buf;
    return false;
  }
  return true;
}

std::vector<Backend*> cuda_backends_in_use() {
  std::vector<Backend*> r;
  CudaLib* l = g_loaded.load(std::memory_order_acquire);
  if (!l) return r;
  std::lock_guard<std::mutex> lock(l->mu);
  for (Backend* b : l->backends)
    if (b) r.push_back(b);
  return r;
}

void synchronize_all() {
  // Every queue drains even when one GPU has faulted: teardown relies on no task
  // still writing into host buffers afterwards. The first device error is rethrown.
  cpu_backend()->queue(0).synchronize();
  std::vector<Backend*> gpus = cuda_backends_in_use();
  for (Backend* b : gpus) b->queue(0).synchronize();
  std::exception_ptr first;
  for (Backend* b : gpus) {
    try {
      b->synchronize();
    } catch (...) {
      if (!first) first = std::current_exception();
    }
  }
  if (first) std::rethrow_exception(first);
}

Backend* backend_for(Device device) {
  if (device.type == DeviceType::CPU) return cpu_backend();
  CudaLib& l = cuda_lib();
  if (l.status.device_count == 0)
    throw_value("device " + device.str() + " is not available: " + l.status.reason);
  if (device.index < 0 || device.index >= l.status.device_count)
    throw_range("device " + device.str() + " does not exist: this machine has " +
                std::to_string(l.status.device_count) + " CUDA device" +
                (l.status.device_count == 1 ? "" : "s"));
  std::lock_guard<std::mutex> lock(l.mu);
  Backend*& b = l.backends[(size_t)device.index];
  if (!b) {
    char err[2048] = {0};
    b = l.api->backend(device.index, err, sizeof(err));
    if (!b) throw Error(ErrorKind::Runtime, "device " + device.str() + " could not be initialised: " + err);
  }
  return b;
}

}  // namespace perceiver
