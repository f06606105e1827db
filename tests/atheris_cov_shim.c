/* Preloaded ahead of libasan/libubsan: their no-op __sanitizer_cov_* stubs would otherwise take atheris's coverage
   callbacks (first definition wins), leaving libFuzzer blind.  Each entry point forwards (a tail call, so the
   caller's PC is kept) to the definition inside atheris's core_with_libfuzzer, looked up once it is loaded. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <stdint.h>
#include <string.h>

static void *core;

static int find_core(struct dl_phdr_info *info, size_t size, void *out) {
  (void)size;
  if (info->dlpi_name && strstr(info->dlpi_name, "atheris/core_with_libfuzzer")) {
    *(void **)out = dlopen(info->dlpi_name, RTLD_NOLOAD | RTLD_LAZY);
    return 1;
  }
  return 0;
}

static void *real(const char *name) {
  if (!core) dl_iterate_phdr(find_core, &core);
  return core ? dlsym(core, name) : 0;
}

#define FWD(name, params, args)                                        \
  void name params {                                                   \
    static void (*fp) params;                                          \
    if (!fp) fp = (void (*) params)real(#name);                        \
    if (fp) fp args;                                                   \
  }

FWD(__sanitizer_cov_8bit_counters_init, (uint8_t *a, uint8_t *b), (a, b))
FWD(__sanitizer_cov_pcs_init, (const uintptr_t *a, const uintptr_t *b), (a, b))
FWD(__sanitizer_cov_trace_cmp1, (uint8_t a, uint8_t b), (a, b))
FWD(__sanitizer_cov_trace_cmp2, (uint16_t a, uint16_t b), (a, b))
FWD(__sanitizer_cov_trace_cmp4, (uint32_t a, uint32_t b), (a, b))
FWD(__sanitizer_cov_trace_cmp8, (uint64_t a, uint64_t b), (a, b))
FWD(__sanitizer_cov_trace_const_cmp1, (uint8_t a, uint8_t b), (a, b))
FWD(__sanitizer_cov_trace_const_cmp2, (uint16_t a, uint16_t b), (a, b))
FWD(__sanitizer_cov_trace_const_cmp4, (uint32_t a, uint32_t b), (a, b))
FWD(__sanitizer_cov_trace_const_cmp8, (uint64_t a, uint64_t b), (a, b))
FWD(__sanitizer_cov_trace_div4, (uint32_t a), (a))
FWD(__sanitizer_cov_trace_div8, (uint64_t a), (a))
FWD(__sanitizer_cov_trace_gep, (uintptr_t a), (a))
FWD(__sanitizer_cov_trace_switch, (uint64_t a, uint64_t *b), (a, b))
FWD(__sanitizer_cov_trace_pc_indir, (uintptr_t a), (a))
FWD(__sanitizer_cov_trace_pc_guard, (uint32_t *a), (a))
FWD(__sanitizer_cov_trace_pc_guard_init, (uint32_t *a, uint32_t *b), (a, b))
