// The C++ tests' tiny harness: CHECK / CHECK_MSG count passes and failures (no framework, no dependency).
// Each test program defines nothing else of it; it prints its counts and exits non-zero on a failure.
#pragma once

#include <cstdio>

namespace jpegai_test {
inline int g_passed = 0, g_failed = 0;
}  // namespace jpegai_test

#define CHECK(cond)                                                                     \
  do {                                                                                  \
    if (cond) {                                                                         \
      ++jpegai_test::g_passed;                                                          \
    } else {                                                                            \
      ++jpegai_test::g_failed;                                                          \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);     \
    }                                                                                   \
  } while (0)

#define CHECK_MSG(cond, ...)                                                            \
  do {                                                                                  \
    if (cond) {                                                                         \
      ++jpegai_test::g_passed;                                                          \
    } else {                                                                            \
      ++jpegai_test::g_failed;                                                          \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);     \
      std::fprintf(stderr, __VA_ARGS__);                                                \
      std::fputc('\n', stderr);                                                         \
    }                                                                                   \
  } while (0)
