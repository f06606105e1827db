// Tensor <-> entropy-coded payload, generic over the symbol model.  Used by residual_coder.cpp and
// factorized_coder.cpp; not part of the public C++ API.
//
// Payload layout (docs/bitstream.md, "Entropy-coded tensor payload"):
//   ue(substream_count - 1)  ue(coded_symbol_count)
//   for each substream: ue(rans_word_count) ue(bypass_byte_count)
//   zero bits to a byte boundary, then per substream: rANS words (LE16), bypass bytes
// Coded symbols (positions the model does not skip), in flattened order, are split into
// substream_count contiguous runs of near-equal length; run j holds coded symbols
// [j*M/S, (j+1)*M/S).  Every run is an independent rANS stream with kLanes states.
//
// Read me first:
//  * Decoding a run touches only its own words, bypass bytes and output positions, so runs decode in
//    parallel with bit-identical results for every thread count.
//  * Every count in the directory is checked against what the caller's model implies and against the
//    payload size before any decoding; every word/bit read is bounds-checked; each run must end with
//    all lanes back at kStateLow, all words consumed and only zero padding left in its bypass bytes.
#pragma once

#include <algorithm>
#include <cstring>
#include <vector>

#include "bitio.hpp"
#include "errors.hpp"
#include "rans.hpp"
#include "residual_coder.hpp"
#include "thread_pool.hpp"

namespace jpegai::detail {


// Model concept:
//   static constexpr bool kHasSkip, kHasEscape;  int bias;  const char* field;
//   bool coded(size_t p) const;                      // only consulted if kHasSkip
//   const uint32_t* decode_table(size_t p) const;    // kProbScale packed entries
//   void symbol(size_t p, int v, uint32_t& start, uint32_t& freq, bool& escape) const;
//   void put_escape(size_t p, int v, BitWriter&) const;
//   int read_escape(size_t p, BitReader&) const;
//   void decode_fast(RunCursor&, size_t coded, size_t n, BitReader&, int16_t* out) const;  // may do nothing

struct Run {
  size_t start_pos = 0;   // first position the run may touch
  size_t coded = 0;       // coded symbols in the run
};

template <class Model>
std::vector<Run> split_runs(const Model& model, size_t n, size_t total_coded, uint32_t substreams) {
  std::vector<Run> runs(substreams);
  std::vector<size_t> first(substreams + 1);
  for (uint32_t j = 0; j <= substreams; ++j) first[j] = size_t(uint64_t(total_coded) * j / substreams);
  for (uint32_t j = 0; j < substreams; ++j) runs[j].coded = first[j + 1] - first[j];
  if constexpr (!Model::kHasSkip) {
    for (uint32_t j = 0; j < substreams; ++j) runs[j].start_pos = first[j];
  } else {
    uint32_t j = 0;
    size_t seen = 0;
    for (size_t p = 0; p < n && j < substreams; ++p) {
      if (!model.coded(p)) continue;
      while (j < substreams && first[j] == seen) runs[j++].start_pos = p;
      ++seen;
    }
    for (; j < substreams; ++j) runs[j].start_pos = n;
  }
  return runs;
}

struct EncodedRun {
  std::vector<uint8_t> words;   // LE16 words, already in decode order
  std::vector<uint8_t> bypass;
};

template <class Model>
EncodedRun encode_run(const Model& model, const int16_t* symbols, size_t n, const Run& run) {
  // Positions of this run's coded symbols, so the backward rANS pass needs no search.
  std::vector<size_t> pos;
  pos.reserve(run.coded);
  for (size_t p = run.start_pos; pos.size() < run.coded && p < n; ++p)
    if (!Model::kHasSkip || model.coded(p)) pos.push_back(p);

  EncodedRun out;
  BitWriter bypass;
  std::vector<uint32_t> start(pos.size()), freq(pos.size());
  for (size_t j = 0; j < pos.size(); ++j) {  // forward: escapes go to the bypass bits in order
    bool escape = false;
    model.symbol(pos[j], symbols[pos[j]], start[j], freq[j], escape);
    if (Model::kHasEscape && escape) model.put_escape(pos[j], symbols[pos[j]], bypass);
  }
  out.bypass = bypass.finish();

  std::vector<uint16_t> buffer(pos.size() + rans::kFlushWords);
  uint16_t* front = buffer.data() + buffer.size();
  uint32_t x[rans::kLanes];
  std::fill(x, x + rans::kLanes, rans::kStateLow);
  for (size_t j = pos.size(); j-- > 0;) rans::encode_step(x[j % rans::kLanes], front, start[j], freq[j]);
  for (int lane = rans::kLanes - 1; lane >= 0; --lane) {
    *--front = static_cast<uint16_t>(x[lane]);
    *--front = static_cast<uint16_t>(x[lane] >> 16);
  }
  const size_t count = size_t(buffer.data() + buffer.size() - front);
  out.words.resize(2 * count);
  for (size_t i = 0; i < count; ++i) {
    out.words[2 * i] = static_cast<uint8_t>(front[i]);
    out.words[2 * i + 1] = static_cast<uint8_t>(front[i] >> 8);
  }
  return out;
}

template <class Model>
std::vector<uint8_t> encode_tensor(const Model& model, const int16_t* symbols, size_t n,
                                   size_t total_coded, uint32_t substreams, unsigned threads) {
  if (substreams < 1 || substreams > kMaxSubstreams)
    throw ArgumentError("substreams must be in [1, 64]");
  if (total_coded >= UINT32_MAX) throw LimitError(model.field, "too many symbols for one tensor");
  const std::vector<Run> runs = split_runs(model, n, total_coded, substreams);
  std::vector<EncodedRun> encoded(substreams);
  global_pool().parallel_for(substreams, threads,
                             [&](size_t j) { encoded[j] = encode_run(model, symbols, n, runs[j]); });
  BitWriter dir;
  dir.put_ue(substreams - 1);
  dir.put_ue(static_cast<uint32_t>(total_coded));
  for (const EncodedRun& e : encoded) {
    dir.put_ue(static_cast<uint32_t>(e.words.size() / 2));
    dir.put_ue(static_cast<uint32_t>(e.bypass.size()));
  }
  std::vector<uint8_t> out = dir.finish();
  for (const EncodedRun& e : encoded) {
    out.insert(out.end(), e.words.begin(), e.words.end());
    out.insert(out.end(), e.bypass.begin(), e.bypass.end());
  }
  return out;
}

// Where a run's decode stands: lane states, word pointer, next position and coded-symbol number.
struct RunCursor {
  uint32_t x[rans::kLanes];
  const uint8_t* wp;
  const uint8_t* wend;
  size_t p = 0;  // next position to look at
  size_t j = 0;  // coded symbols decoded so far
};

// Reads the lanes' initial states.  The directory guarantees at least kFlushWords words.
inline RunCursor start_run(const uint8_t* words, size_t word_count, size_t start_pos, const char* field) {
  RunCursor c;
  c.wp = words;
  c.wend = words + 2 * word_count;
  for (int lane = 0; lane < rans::kLanes; ++lane, c.wp += 4) {
    c.x[lane] = (rans::load_word(c.wp) << 16) | rans::load_word(c.wp + 2);
    if (c.x[lane] < rans::kStateLow) throw BitstreamError(field, "invalid initial rANS state");
  }
  c.p = start_pos;
  return c;
}

// The scalar reference decoder: continues a run from the cursor to its last coded symbol.
// Output positions the run does not code keep their value (the caller zero-fills).
template <class Model>
void decode_symbols_scalar(const Model& model, RunCursor& c, size_t coded, size_t n, BitReader& bypass,
                           int16_t* out) {
  using namespace rans;
  // Work on locals: the cursor is reached through a reference, and the compiler cannot prove that
  // the output stores leave it alone, so it would reload it every symbol.
  uint32_t x[kLanes];
  std::memcpy(x, c.x, sizeof x);
  const uint8_t* wp = c.wp;
  const uint8_t* const wend = c.wend;
  size_t p = c.p, j = c.j;
  for (; j < coded; ++p) {
    if (p >= n) throw BitstreamError(model.field, "run extends past the tensor");
    if (Model::kHasSkip && !model.coded(p)) continue;
    uint32_t& s = x[j % kLanes];
    const uint32_t entry = model.decode_table(p)[s & kSlotMask];
    s = decode_advance(s, entry);
    if (s < kStateLow) {
      if (wp >= wend) throw BitstreamError(model.field, "truncated rANS words");
      s = (s << kWordBits) | load_word(wp);
      wp += 2;
    }
    const int byte = int(entry >> tables::kEntrySymbolShift);
    out[p] = static_cast<int16_t>((Model::kHasEscape && byte == tables::kEscapeByte)
                                      ? model.read_escape(p, bypass)
                                      : byte - model.bias);
    ++j;
  }
  std::memcpy(c.x, x, sizeof x);
  c.wp = wp;
  c.p = p;
  c.j = j;
}

// The end-of-run integrity checks (see the read-me-first above).
inline void finish_run(const RunCursor& c, BitReader& bypass, const char* field) {
  for (int lane = 0; lane < rans::kLanes; ++lane)
    if (c.x[lane] != rans::kStateLow) throw BitstreamError(field, "rANS state check failed (corrupt data)");
  if (c.wp != c.wend) throw BitstreamError(field, "unused rANS words");
  bypass.align(field);
  if (bypass.bits_left() != 0) throw BitstreamError(field, "unused bypass bytes");
}

// Decodes one run.  Model::decode_fast (optional) may advance the cursor first with a SIMD kernel;
// the scalar reference finishes the run, so both must leave identical states behind.
template <class Model>
void decode_run(const Model& model, const uint8_t* words, size_t word_count, const uint8_t* bypass_bytes,
                size_t bypass_size, const Run& run, size_t n, int16_t* out) {
  RunCursor c = start_run(words, word_count, run.start_pos, model.field);
  BitReader bypass(bypass_bytes, bypass_size);
  model.decode_fast(c, run.coded, n, bypass, out);
  decode_symbols_scalar(model, c, run.coded, n, bypass, out);
  finish_run(c, bypass, model.field);
}

template <class Model>
void decode_tensor(const Model& model, const uint8_t* data, size_t size, size_t n, size_t total_coded,
                   int16_t* out, unsigned threads) {
  const char* field = model.field;
  BitReader dir(data, size);
  const uint32_t substreams = dir.get_ue(field) + 1u;
  if (substreams > kMaxSubstreams) throw BitstreamError(field, "substream count above 64");
  if (dir.get_ue(field) != total_coded)
    throw BitstreamError(field, "coded symbol count does not match the scale map");
  const std::vector<Run> runs = split_runs(model, n, total_coded, substreams);
  std::vector<uint64_t> words(substreams), bypass(substreams), offset(substreams);
  for (uint32_t j = 0; j < substreams; ++j) {
    words[j] = dir.get_ue(field);
    bypass[j] = dir.get_ue(field);
    // A step pushes at most one word; flushing adds 2 per lane.  More cannot come from our encoder.
    if (words[j] < rans::kFlushWords || words[j] > runs[j].coded + rans::kFlushWords)
      throw BitstreamError(field, "rANS word count out of range");
  }
  dir.align(field);
  uint64_t at = dir.byte_position();
  for (uint32_t j = 0; j < substreams; ++j) {
    offset[j] = at;
    at += 2 * words[j] + bypass[j];
    if (at > size) throw BitstreamError(field, "substream sizes exceed the payload (truncated?)");
  }
  if (at != size) throw BitstreamError(field, "payload longer than its substreams");
  if (total_coded < n) std::fill(out, out + n, int16_t{0});  // every position is written otherwise
  global_pool().parallel_for(substreams, threads, [&](size_t j) {
    const uint8_t* base = data + offset[j];
    decode_run(model, base, size_t(words[j]), base + 2 * words[j], size_t(bypass[j]), runs[j], n, out);
  });
}

}  // namespace jpegai::detail
