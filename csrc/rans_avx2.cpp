#include "rans_avx2.hpp"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#include <array>
#include <cstring>

namespace jpegai::avx2 {
namespace {

// kWordRank[m][i]: for lane i with bit i set in m, how many lower lanes also need a word, i.e. which
// of the loaded words is lane i's.
constexpr std::array<std::array<uint8_t, 8>, 256> make_word_rank() {
  std::array<std::array<uint8_t, 8>, 256> t{};
  for (int m = 0; m < 256; ++m) {
    int rank = 0;
    for (int i = 0; i < 8; ++i)
      if (m & (1 << i)) t[m][i] = uint8_t(rank++);
  }
  return t;
}
alignas(64) constexpr std::array<std::array<uint8_t, 8>, 256> kWordRank = make_word_rank();

constexpr uint8_t kSkip = tables::kSkipIndex;

}  // namespace

__attribute__((target("avx2,bmi2,popcnt"))) void decode_residual_groups(
    const uint32_t* decode_table, const uint8_t* index, int bias, detail::RunCursor& c, size_t coded, size_t n,
    BitReader& bypass, EscapeReader escape, const void* ctx, int16_t* out) {
  static_assert(rans::kLanes == 8, "one AVX2 register of lanes");
  const __m256i slot_mask = _mm256_set1_epi32(int(rans::kSlotMask));
  const __m256i field_mask = _mm256_set1_epi32(int(tables::kEntryFreqMask));
  const __m256i below_low = _mm256_set1_epi32(int(rans::kStateLow - 1));
  const __m256i bias_v = _mm256_set1_epi32(bias);
  const __m256i zero = _mm256_setzero_si256();
  const int* table = reinterpret_cast<const int*>(decode_table);

  __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c.x));
  size_t pos[8];
  alignas(32) int32_t levels[8];
  while (coded - c.j >= 8 && c.wend - c.wp >= 16) {
    // The next 8 coded positions: contiguous (the common case) or gathered past skipped ones.
    bool contiguous = false;
    __m256i level;
    if (n - c.p >= 8) {
      uint64_t idx8;
      std::memcpy(&idx8, index + c.p, 8);
      const uint64_t is_skip = ~idx8;  // a skip byte (0xFF) becomes 0x00
      contiguous = ((is_skip - 0x0101010101010101ull) & ~is_skip & 0x8080808080808080ull) == 0;
      if (contiguous) level = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(int64_t(idx8)));
    }
    if (!contiguous) {
      size_t q = c.p;
      for (int k = 0; k < 8; ++q) {
        if (q >= n) throw BitstreamError("residual", "run extends past the tensor");
        if (index[q] == kSkip) continue;
        pos[k] = q;
        levels[k++] = index[q];
      }
      level = _mm256_load_si256(reinterpret_cast<const __m256i*>(levels));
    }

    // Decode step for all lanes: x = freq * (x >> 12) + slot - cum.
    const __m256i slot = _mm256_and_si256(x, slot_mask);
    const __m256i entry =
        _mm256_i32gather_epi32(table, _mm256_add_epi32(_mm256_slli_epi32(level, rans::kProbBits), slot), 4);
    const __m256i freq = _mm256_and_si256(entry, field_mask);
    const __m256i cum = _mm256_and_si256(_mm256_srli_epi32(entry, tables::kEntryCumShift), field_mask);
    x = _mm256_sub_epi32(_mm256_add_epi32(_mm256_mullo_epi32(freq, _mm256_srli_epi32(x, rans::kProbBits)), slot),
                         cum);

    // Renormalise the lanes below L with the next words, in lane order.
    const __m256i needs = _mm256_cmpeq_epi32(_mm256_min_epu32(x, below_low), x);
    const unsigned need_mask = unsigned(_mm256_movemask_ps(_mm256_castsi256_ps(needs)));
    const __m256i words = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(c.wp)));
    uint64_t rank8;
    std::memcpy(&rank8, kWordRank[need_mask].data(), 8);
    const __m256i lane_words = _mm256_permutevar8x32_epi32(words, _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(int64_t(rank8))));
    x = _mm256_blendv_epi8(x, _mm256_or_si256(_mm256_slli_epi32(x, 16), lane_words), needs);
    c.wp += 2 * size_t(_mm_popcnt_u32(need_mask));

    // Symbols: byte - bias; escapes (byte 0) read their value from the bypass bits in lane order.
    const __m256i byte = _mm256_srli_epi32(entry, tables::kEntrySymbolShift);
    const unsigned escapes = unsigned(_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(byte, zero))));
    const __m256i value = _mm256_sub_epi32(byte, bias_v);
    const __m128i packed = _mm_packs_epi32(_mm256_castsi256_si128(value), _mm256_extracti128_si256(value, 1));
    if (contiguous) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + c.p), packed);
      for (unsigned e = escapes; e; e &= e - 1) {
        const size_t p = c.p + size_t(__builtin_ctz(e));
        out[p] = int16_t(escape(ctx, p, bypass));
      }
      c.p += 8;
    } else {
      alignas(16) int16_t v[8];
      _mm_store_si128(reinterpret_cast<__m128i*>(v), packed);
      for (int k = 0; k < 8; ++k)
        out[pos[k]] = (escapes >> k) & 1 ? int16_t(escape(ctx, pos[k], bypass)) : v[k];
      c.p = pos[7] + 1;
    }
    c.j += 8;
  }
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(c.x), x);
}

}  // namespace jpegai::avx2

#else  // not x86-64: never called (cpu_features() reports no AVX2)

namespace jpegai::avx2 {
void decode_residual_groups(const uint32_t*, const uint8_t*, int, detail::RunCursor&, size_t, size_t, BitReader&,
                            EscapeReader, const void*, int16_t*) {}
}  // namespace jpegai::avx2

#endif
