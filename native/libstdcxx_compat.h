// Keeps the prebuilt binaries loadable on older Linux distributions' libstdc++.
// GCC 12 re-exported std::condition_variable::wait at GLIBCXX_3.4.30, only so that a
// thread cancelled inside it can unwind (PR libstdc++/103382); the engine never
// cancels threads. Bound to the original version (GLIBCXX_3.4.11, in every libstdc++
// since GCC 4.4), the addon needs nothing newer than GCC 11's libstdc++, which the
// distributions with glibc 2.34 ship (RHEL/Rocky/Alma 9, Amazon Linux 2023), where
// GCC 12's would shut them out. test/package.test.ts checks the versions the addon needs.
#pragma once
#include <condition_variable>

#if defined(__GLIBCXX__) && defined(__linux__) && defined(__ELF__)
__asm__(".symver _ZNSt18condition_variable4waitERSt11unique_lockISt5mutexE,"
        "_ZNSt18condition_variable4waitERSt11unique_lockISt5mutexE@GLIBCXX_3.4.11");
#endif
