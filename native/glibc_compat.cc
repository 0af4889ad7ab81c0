// Keeps the prebuilt binaries loadable on glibc 2.28 (RHEL/Rocky/Alma 8, Debian 10,
// Ubuntu 20.04: the oldest systems Node's own binaries run on) although they are
// built against a newer glibc.
//
// glibc gives a function a new symbol version whenever it moves or changes it: the
// libdl and libpthread functions moved into libc at 2.34, log/pow lost their SVID
// error handling at 2.29. The static linker binds every call to the newest version,
// and the loader of an older glibc then refuses the whole file. Every older version
// is still exported, so the link is pointed at them: with -Wl,--wrap=NAME (given by
// binding.gyp and CMakeLists.txt for every PIN and REPLACE line below, which they read
// from this file) every call to NAME, in our objects and in the static archives
// linked in (libstdc++, the CUDA runtime), goes to __wrap_NAME, defined here, which
// jumps to NAME at the pinned version. A PIN's old version is the same function
// under its old name (libpthread's pthread_create is libc's), so nothing changes
// at run time; the one difference is pthread_kill's answer for a thread that has
// exited but not been joined (ESRCH, where 2.34's says 0), which is what the systems
// the CUDA runtime is built for (the only caller) always answered. What has no older
// version (stat and fstat64 were inline wrappers before 2.33; arc4random and
// __libc_single_threaded are new) is REPLACEd by code here with the same meaning.
//
// x86-64 and arm64 glibc only: the prebuilt binaries are for linux-x64 and
// linux-arm64; elsewhere binding.gyp and CMakeLists.txt give no --wrap, so nothing
// here is used. The PIN lines give x86-64's versions; arm64's glibc port began at
// 2.17, so there every one of them is GLIBC_2.17. test/package.test.ts reads the
// versions the built files need, so a new call that needs something newer fails the
// suite rather than a user's require().
#if defined(__linux__)
#include <features.h>  // defines __GLIBC__ (or not)
#endif

#if defined(__linux__) && (defined(__x86_64__) || defined(__aarch64__)) && defined(__GLIBC__) && defined(__ELF__)

#include <sys/random.h>
#include <sys/stat.h>

#include <cstdlib>

// Each PIN line sends the calls to a name to the name at that version (x86-64's;
// GLIBC_2.17 on arm64).
#define PERCEIVER_GLIBC_PINS(PIN)                                                   \
  PIN(dladdr, GLIBC_2.2.5)                                                          \
  PIN(dlclose, GLIBC_2.2.5)                                                         \
  PIN(dlerror, GLIBC_2.2.5)                                                         \
  PIN(dlmopen, GLIBC_2.3.4)                                                         \
  PIN(dlopen, GLIBC_2.2.5)                                                          \
  PIN(dlsym, GLIBC_2.2.5)                                                           \
  PIN(dlvsym, GLIBC_2.2.5)                                                          \
  PIN(log, GLIBC_2.2.5)                                                             \
  PIN(pow, GLIBC_2.2.5)                                                             \
  PIN(__pthread_key_create, GLIBC_2.2.5)                                            \
  PIN(pthread_condattr_setpshared, GLIBC_2.2.5)                                     \
  PIN(pthread_create, GLIBC_2.2.5)                                                  \
  PIN(pthread_detach, GLIBC_2.2.5)                                                  \
  PIN(pthread_getspecific, GLIBC_2.2.5)                                             \
  PIN(pthread_join, GLIBC_2.2.5)                                                    \
  PIN(pthread_key_create, GLIBC_2.2.5)                                              \
  PIN(pthread_key_delete, GLIBC_2.2.5)                                              \
  PIN(pthread_kill, GLIBC_2.2.5)                                                    \
  PIN(pthread_mutex_trylock, GLIBC_2.2.5)                                           \
  PIN(pthread_mutexattr_destroy, GLIBC_2.2.5)                                       \
  PIN(pthread_mutexattr_init, GLIBC_2.2.5)                                          \
  PIN(pthread_mutexattr_setpshared, GLIBC_2.2.5)                                    \
  PIN(pthread_mutexattr_settype, GLIBC_2.2.5)                                       \
  PIN(pthread_once, GLIBC_2.2.5)                                                    \
  PIN(pthread_rwlock_destroy, GLIBC_2.2.5)                                          \
  PIN(pthread_rwlock_init, GLIBC_2.2.5)                                             \
  PIN(pthread_rwlock_rdlock, GLIBC_2.2.5)                                           \
  PIN(pthread_rwlock_timedrdlock, GLIBC_2.2.5)                                      \
  PIN(pthread_rwlock_timedwrlock, GLIBC_2.2.5)                                      \
  PIN(pthread_rwlock_tryrdlock, GLIBC_2.2.5)                                        \
  PIN(pthread_rwlock_trywrlock, GLIBC_2.2.5)                                        \
  PIN(pthread_rwlock_unlock, GLIBC_2.2.5)                                           \
  PIN(pthread_rwlock_wrlock, GLIBC_2.2.5)                                           \
  PIN(pthread_rwlockattr_destroy, GLIBC_2.2.5)                                      \
  PIN(pthread_rwlockattr_init, GLIBC_2.2.5)                                         \
  PIN(pthread_rwlockattr_setpshared, GLIBC_2.2.5)                                   \
  PIN(pthread_setname_np, GLIBC_2.12)                                               \
  PIN(pthread_sigmask, GLIBC_2.2.5)                                                 \
  PIN(pthread_setspecific, GLIBC_2.2.5)                                             \
  PIN(pthread_spin_destroy, GLIBC_2.2.5)                                            \
  PIN(pthread_spin_init, GLIBC_2.2.5)                                               \
  PIN(pthread_spin_lock, GLIBC_2.2.5)                                               \
  PIN(pthread_spin_trylock, GLIBC_2.2.5)                                            \
  PIN(pthread_spin_unlock, GLIBC_2.2.5)                                             \
  PIN(sem_destroy, GLIBC_2.2.5)                                                     \
  PIN(sem_init, GLIBC_2.2.5)                                                        \
  PIN(sem_post, GLIBC_2.2.5)                                                        \
  PIN(sem_timedwait, GLIBC_2.2.5)                                                   \
  PIN(sem_trywait, GLIBC_2.2.5)                                                     \
  PIN(sem_wait, GLIBC_2.2.5)                                                        \
  PIN(shm_open, GLIBC_2.2.5)                                                        \
  PIN(shm_unlink, GLIBC_2.2.5)

// A jump, not a call: the arguments and the return are the pinned function's own,
// whatever its signature. endbr64 (x86-64) and bti c (arm64, written as the hint it is: a no-op on cores
// without BTI) keep it a valid indirect-branch target where that is enforced.
#if defined(__x86_64__)
#define PERCEIVER_PINNED_VERSION(x86_64_version) #x86_64_version
#define PERCEIVER_JUMP(target) "  endbr64\n  jmp " target "@PLT\n"
#define PERCEIVER_STAT_VER 1  // _STAT_VER_LINUX of x86-64's struct stat
#else
#define PERCEIVER_PINNED_VERSION(x86_64_version) "GLIBC_2.17"
#define PERCEIVER_JUMP(target) "  hint 34\n  b " target "\n"  // hint 34: bti c
#define PERCEIVER_STAT_VER 0  // the generic struct stat's
#endif
#define PERCEIVER_TRAMPOLINE(name, version)                                         \
  __asm__(".pushsection .text.__wrap_" #name ",\"ax\",%progbits\n"                  \
          ".globl __wrap_" #name "\n"                                               \
          ".hidden __wrap_" #name "\n"                                              \
          ".type __wrap_" #name ",%function\n"                                      \
          ".symver __perceiver_pinned_" #name "," #name "@" PERCEIVER_PINNED_VERSION(version) "\n" \
          "__wrap_" #name ":\n"                                                     \
          PERCEIVER_JUMP("__perceiver_pinned_" #name)                               \
          ".size __wrap_" #name ",.-__wrap_" #name "\n"                             \
          ".popsection\n");
PERCEIVER_GLIBC_PINS(PERCEIVER_TRAMPOLINE)

// The stat family before 2.33: versioned entry points taking the struct layout's
// version, which <sys/stat.h> then wrapped inline.
extern "C" int __perceiver_pinned___xstat(int, const char*, struct stat*);
extern "C" int __perceiver_pinned___fxstat64(int, int, struct stat64*);
__asm__(".symver __perceiver_pinned___xstat,__xstat@" PERCEIVER_PINNED_VERSION(GLIBC_2.2.5));
__asm__(".symver __perceiver_pinned___fxstat64,__fxstat64@" PERCEIVER_PINNED_VERSION(GLIBC_2.2.5));

#define PERCEIVER_GLIBC_HIDDEN extern "C" __attribute__((visibility("hidden")))

// REPLACE(stat)
PERCEIVER_GLIBC_HIDDEN int __wrap_stat(const char* path, struct stat* buf) {
  return __perceiver_pinned___xstat(PERCEIVER_STAT_VER, path, buf);
}

// REPLACE(fstat64)
PERCEIVER_GLIBC_HIDDEN int __wrap_fstat64(int fd, struct stat64* buf) {
  return __perceiver_pinned___fxstat64(PERCEIVER_STAT_VER, fd, buf);
}

// REPLACE(arc4random): only std::random_device's code names it (the static libstdc++
// carries it; the engine never calls it). getentropy (2.25) draws from the same
// kernel source; a failure there has no error to return, as arc4random has none.
PERCEIVER_GLIBC_HIDDEN unsigned __wrap_arc4random() {
  unsigned v;
  if (getentropy(&v, sizeof v) != 0) std::abort();
  return v;
}

// REPLACE(__libc_single_threaded): GCC 12's headers read it to skip atomic reference
// counting while a process has one thread. 0 says "maybe several threads", which is
// always correct: the counts stay atomic.
extern "C" {
__attribute__((visibility("hidden"))) char __wrap___libc_single_threaded = 0;
}

#endif
