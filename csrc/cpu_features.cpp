#include "cpu_features.hpp"

#include <cstdlib>
#include <cstring>

namespace jpegai {
namespace {

CpuFeatures detect() {
  CpuFeatures f;
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  f.avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi2");
  f.avx512 = f.avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl");
  f.avx512vnni = f.avx512 && __builtin_cpu_supports("avx512vnni");
#endif
  if (const char* cap = std::getenv("JPEGAI_FAST_SIMD")) {
    if (std::strcmp(cap, "scalar") == 0) {
      f = CpuFeatures{};
      f.baseline_only = true;
    }
    if (std::strcmp(cap, "avx2") == 0) f.avx512 = f.avx512vnni = false;
    if (std::strcmp(cap, "avx512") == 0) f.avx512vnni = false;
  }
  return f;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

std::string cpu_feature_string() {
  const CpuFeatures& f = cpu_features();
  if (f.baseline_only) return "scalar (forced baseline)";
  if (f.avx512) return "avx512";
  if (f.avx2) return "avx2";
  return "scalar";
}

}  // namespace jpegai
