// rANS primitives: 32-bit states, 16-bit renormalisation words, 12-bit probabilities, 8 lanes.
//
// Read me first (the traps):
//  * rANS is LIFO.  The encoder walks the symbols backwards and writes words backwards (from the end
//    of its buffer towards the front), so the decoder walks symbols and words forwards.
//  * Lanes are interleaved by coded-symbol number: coded symbol j uses lane j % kLanes.  Lanes share
//    one word stream; the order of the word reads is fixed by the symbol order, which is what keeps
//    lanes decodable in a SIMD register later.
//  * States live in [kStateLow, kStateLow << 16).  With 12-bit probabilities a decode step leaves the
//    state >= 2^4, so ONE 16-bit word always restores the range: renormalisation is a single
//    conditional read, never a loop.
//  * The encoder starts every lane at kStateLow, and a correct decode ends with every lane at
//    kStateLow again.  The decoder checks it: a free integrity check on every substream.
//  * Words are little-endian 16-bit in the byte stream, assembled explicitly (no type punning).
#pragma once

#include <cstddef>
#include <cstdint>

#include "sigma_tables.hpp"

namespace jpegai::rans {

constexpr int kLanes = 8;                 // one AVX2 register of 32-bit states
constexpr int kWordBits = 16;
constexpr uint32_t kStateLow = 1u << 16;  // L
constexpr int kProbBits = tables::kProbBits;
constexpr uint32_t kSlotMask = (1u << kProbBits) - 1;
constexpr size_t kFlushWords = 2 * kLanes;  // each lane's final state: high word, then low word

static_assert(kStateLow >> kProbBits >= 1, "a decode step must keep the state above zero");

// Encodes one symbol of (cumulative start, frequency) into state x, pushing at most one word.
inline void encode_step(uint32_t& x, uint16_t*& words_front, uint32_t start, uint32_t freq) {
  const uint32_t x_max = ((kStateLow >> kProbBits) << kWordBits) * freq;
  if (x >= x_max) {
    *--words_front = static_cast<uint16_t>(x);
    x >>= kWordBits;
  }
  x = ((x / freq) << kProbBits) + (x % freq) + start;
}

// Decodes the slot of state x with its packed entry (freq | cum << 12 | ...); no renormalisation.
inline uint32_t decode_advance(uint32_t x, uint32_t entry) {
  const uint32_t freq = entry & tables::kEntryFreqMask;
  const uint32_t cum = (entry >> tables::kEntryCumShift) & tables::kEntryFreqMask;
  return freq * (x >> kProbBits) + (x & kSlotMask) - cum;
}

inline uint32_t load_word(const uint8_t* p) { return uint32_t(p[0]) | (uint32_t(p[1]) << 8); }

}  // namespace jpegai::rans
