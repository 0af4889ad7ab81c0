// dlopen of cuBLASLt (see cublaslt.h for why there are no cuBLAS headers here).
#include "cublaslt.h"

#include <cuda_runtime_api.h>
#include <dlfcn.h>

#include <cstdlib>
#include <mutex>
#include <sys/stat.h>
#include <vector>

namespace perceiver {
namespace cuda {
namespace lt {
namespace {

bool is_dir(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

template <class F>
bool bind(void* h, const char* name, F* fn, std::string* missing) {
  *fn = reinterpret_cast<F>(dlsym(h, name));
  if (!*fn) *missing += std::string(missing->empty() ? "" : ", ") + name;
  return *fn != nullptr;
}

}  // namespace

const Api* load(std::string* reason) {
  static std::once_flag once;
  static Api* api = nullptr;
  static std::string why;
  std::call_once(once, [] {
    std::vector<std::string> candidates;
    // The runtime's own major first: a library built with CUDA 12 may run on a driver
    // too old for a CUDA 13 cuBLASLt that happens to be on the path.
#if CUDART_VERSION >= 13000
    const char* sonames[] = {"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"};
#else
    const char* sonames[] = {"libcublasLt.so.12", "libcublasLt.so.13", "libcublasLt.so"};
#endif
    // An override is the only place looked in: one that fails to load must say so,
    // not leave the process on another cuBLASLt found on the path.
    const char* env = std::getenv("PERCEIVER_CUBLAS_PATH");
    const bool override = env && *env;
    if (override) {
      std::string p = env;
      if (is_dir(p)) {
        for (const char* s : sonames) candidates.push_back(p + "/" + s);
      } else {
        candidates.push_back(p);
      }
    } else {
      for (const char* s : sonames) candidates.push_back(s);
    }
    std::string errors;
    for (const std::string& c : candidates) {
      void* h = dlopen(c.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (!h) {
        const char* e = dlerror();
        errors += "\n    " + c + ": " + (e ? e : "not found");
        continue;
      }
      Api* a = new Api();
      std::string missing;
      bind(h, "cublasLtCreate", &a->create, &missing);
      bind(h, "cublasLtDestroy", &a->destroy, &missing);
      bind(h, "cublasLtGetVersion", &a->get_version, &missing);
      bind(h, "cublasLtMatmulDescCreate", &a->desc_create, &missing);
      bind(h, "cublasLtMatmulDescDestroy", &a->desc_destroy, &missing);
      bind(h, "cublasLtMatmulDescSetAttribute", &a->desc_set, &missing);
      bind(h, "cublasLtMatrixLayoutCreate", &a->layout_create, &missing);
      bind(h, "cublasLtMatrixLayoutDestroy", &a->layout_destroy, &missing);
      bind(h, "cublasLtMatrixLayoutSetAttribute", &a->layout_set, &missing);
      bind(h, "cublasLtMatmulPreferenceCreate", &a->pref_create, &missing);
      bind(h, "cublasLtMatmulPreferenceDestroy", &a->pref_destroy, &missing);
      bind(h, "cublasLtMatmulPreferenceSetAttribute", &a->pref_set, &missing);
      bind(h, "cublasLtMatmulAlgoGetHeuristic", &a->heuristic, &missing);
      bind(h, "cublasLtMatmul", &a->matmul, &missing);
      if (!missing.empty()) {
        errors += "\n    " + c + ": missing symbols " + missing;
        delete a;
        dlclose(h);
        continue;
      }
      std::string optional;  // the search's: their absence only turns the search off
      bind(h, "cublasLtMatmulAlgoGetIds", &a->algo_get_ids, &optional);
      bind(h, "cublasLtMatmulAlgoInit", &a->algo_init, &optional);
      bind(h, "cublasLtMatmulAlgoCheck", &a->algo_check, &optional);
      bind(h, "cublasLtMatmulAlgoCapGetAttribute", &a->algo_cap_get, &optional);
      bind(h, "cublasLtMatmulAlgoConfigSetAttribute", &a->algo_config_set, &optional);
      bind(h, "cublasLtMatmulAlgoConfigGetAttribute", &a->algo_config_get, &optional);
      a->path = c;
      api = a;  // the handle stays open for the life of the process
      return;
    }
    why = override ? "cuBLAS not found: PERCEIVER_CUBLAS_PATH=" + std::string(env) +
                         " could not be loaded (unset it to search the loader's path); tried:" + errors
                   : "cuBLAS not found: could not load cuBLASLt (set PERCEIVER_CUBLAS_PATH to the file or "
                     "its folder, or add it to LD_LIBRARY_PATH); tried:" + errors;
  });
  if (!api && reason) *reason = why;
  return api;
}

}  // namespace lt
}  // namespace cuda
}  // namespace perceiver
