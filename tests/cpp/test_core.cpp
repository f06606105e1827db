// Self-contained tests of the C++ core (no framework): bit I/O, CRC-32, the frozen tables, the
// residual and factorized rANS coders, the container, the thread pool, and a corruption sweep that
// asserts only our exception types ever escape.  Built by CMake with -DJPEGAI_BUILD_TESTS=ON
// (target test_core, registered with ctest); run it under -DJPEGAI_SANITIZE=ON for ASan + UBSan.
// Exit code 0 iff every check passed; prints "N passed, M failed".  See docs/testing.md.
#include <algorithm>
#include <atomic>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "bitio.hpp"
#include "container.hpp"
#include "crc32.hpp"
#include "errors.hpp"
#include "factorized_coder.hpp"
#include "rans.hpp"
#include "residual_coder.hpp"
#include "sigma_tables.hpp"
#include "thread_pool.hpp"

#if __has_include("rans_avx2.hpp")
#include "cpu_features.hpp"
#define JPEGAI_TEST_KERNELS 1
#endif

#include "check.hpp"

using namespace jpegai;

namespace {

using jpegai_test::g_failed;
using jpegai_test::g_passed;

// Runs f and reports which exception type escaped: "none", "bitstream", "limit", "argument", "other".
std::string outcome(const std::function<void()>& f, std::string* what = nullptr) {
  try {
    f();
    return "none";
  } catch (const LimitError& e) {
    if (what) *what = e.what();
    return e.field().empty() ? "other" : "limit";
  } catch (const BitstreamError& e) {
    if (what) *what = e.what();
    return e.field().empty() ? "other" : "bitstream";
  } catch (const ArgumentError& e) {
    if (what) *what = e.what();
    return "argument";
  } catch (const std::exception& e) {
    if (what) *what = e.what();
    return "other";
  } catch (...) {
    return "other";
  }
}

// An exactly-sized heap copy, so that ASan flags a read one byte past the end.
struct ExactBuffer {
  explicit ExactBuffer(const std::vector<uint8_t>& v) : size(v.size()), data(new uint8_t[v.size()]) {
    if (size) std::memcpy(data.get(), v.data(), size);
  }
  size_t size;
  std::unique_ptr<uint8_t[]> data;
};

// ------------------------------------------------------------------------------------------------
void test_bitio() {
  // put_bits / get_bits, MSB first
  {
    BitWriter w;
    w.put_bits(0b101, 3);
    w.put_bits(0x1F, 5);
    w.put_bits(0xABCD, 16);
    w.put_bit(true);
    CHECK(w.bit_count() == 25);
    auto bytes = w.finish();
    CHECK(bytes.size() == 4);
    CHECK(bytes[0] == 0xBF && bytes[1] == 0xAB && bytes[2] == 0xCD && bytes[3] == 0x80);
    BitReader r(bytes.data(), bytes.size());
    CHECK(r.get_bits(3, "a") == 5);
    CHECK(r.get_bits(5, "b") == 0x1F);
    CHECK(r.get_bits(16, "c") == 0xABCD);
    CHECK(r.get_bit("d"));
    CHECK(r.bits_left() == 7);
    CHECK(outcome([&] { r.align("pad"); }) == "none");
    CHECK(r.bits_left() == 0);
    CHECK(outcome([&] { r.get_bits(1, "past"); }) == "bitstream");
  }
  // ue(v) known codes
  {
    BitWriter w;
    for (uint32_t v : {0u, 1u, 2u, 3u, 4u, 7u}) w.put_ue(v);
    // 1 | 010 | 011 | 00100 | 00101 | 0001000  -> 27 bits
    CHECK(w.bit_count() == 1 + 3 + 3 + 5 + 5 + 7);
    auto b = w.finish();
    CHECK(b[0] == 0xA6);  // 1010 0110
  }
  // ue / se / eg round trips over boundaries
  std::vector<uint32_t> ues = {0, 1, 2, 3, 6, 7, 8, 254, 255, 256, 65534, 65535, 65536};
  for (int k = 1; k < 32; ++k) {
    ues.push_back((1u << k) - 2);
    ues.push_back((1u << k) - 1);
    ues.push_back(1u << k);
  }
  ues.push_back(0xFFFFFFFEu);
  std::mt19937 rng(1);
  for (int i = 0; i < 2000; ++i) ues.push_back(rng() >> (rng() % 32));
  std::vector<int32_t> ses = {0, 1, -1, 2, -2, 4095, -4095, 8191, -8191, 2147483647, -2147483647};
  for (int i = 0; i < 2000; ++i) ses.push_back(static_cast<int32_t>(rng()) / int32_t(1 + rng() % 1000));
  std::replace(ses.begin(), ses.end(), INT32_MIN, -2147483647);
  {
    BitWriter w;
    for (uint32_t v : ues) w.put_ue(v);
    for (int32_t v : ses) w.put_se(v);
    for (int order = 0; order <= 15; ++order)
      for (uint32_t v : {0u, 1u, 5u, 1000u, 32767u, 65535u, 1u << 20}) w.put_eg(v, order);
    w.put_bits(0x5, 3);
    auto b = w.finish();
    BitReader r(b.data(), b.size());
    bool ok = true;
    for (uint32_t v : ues) ok &= r.get_ue("ue") == v;
    CHECK(ok);
    ok = true;
    for (int32_t v : ses) ok &= r.get_se("se") == v;
    CHECK(ok);
    ok = true;
    for (int order = 0; order <= 15; ++order)
      for (uint32_t v : {0u, 1u, 5u, 1000u, 32767u, 65535u, 1u << 20}) ok &= r.get_eg(order, "eg") == v;
    CHECK(ok);
    CHECK(r.get_bits(3, "tail") == 5);
    CHECK(outcome([&] { r.align("pad"); }) == "none");
    CHECK(r.bits_left() == 0);
  }
  // every truncation of a ue/se/eg sequence throws BitstreamError naming the field
  {
    BitWriter w;
    w.put_ue(123456);
    w.put_se(-77);
    w.put_eg(99999, 3);
    const size_t bits = w.bit_count();
    auto b = w.finish();
    for (size_t cut = 0; cut < b.size(); ++cut) {
      ExactBuffer eb(std::vector<uint8_t>(b.begin(), b.begin() + cut));
      std::string what;
      const std::string o = outcome(
          [&] {
            BitReader r(eb.data.get(), eb.size);
            r.get_ue("f1");
            r.get_se("f2");
            r.get_eg(3, "f3");
          },
          &what);
      CHECK_MSG(o == "bitstream", "cut %zu: %s (%s)", cut, o.c_str(), what.c_str());
    }
    CHECK(bits > 8 * (b.size() - 1));
  }
  // a run of zeros: the ue prefix is refused after 31 zeros, never loops or overflows
  {
    std::vector<uint8_t> zeros(64, 0);
    BitReader r(zeros.data(), zeros.size());
    std::string what;
    CHECK(outcome([&] { r.get_ue("zeros"); }, &what) == "bitstream");
    CHECK(what.find("zeros") == 0);
    // 31 zeros, 1, 31 ones = 2^32 - 2: the largest ue(v)
    BitWriter w;
    w.put_bits(0, 31);
    w.put_bit(true);
    w.put_bits(0x7FFFFFFF, 31);
    auto b = w.finish();
    BitReader r2(b.data(), b.size());
    CHECK(r2.get_ue("max") == 0xFFFFFFFEu);
    // order-15 Exp-Golomb with a huge prefix: out of uint32 range -> error, not wrap-around
    BitWriter w3;
    w3.put_ue(0xFFFFFFFEu);
    w3.put_bits(0x7FFF, 15);
    auto b3 = w3.finish();
    BitReader r3(b3.data(), b3.size());
    CHECK(outcome([&] { r3.get_eg(15, "eg"); }) == "bitstream");
  }
  // non-zero padding is an error
  {
    const uint8_t byte = 0x81;  // '1' (ue = 0), then padding 0000001
    BitReader r(&byte, 1);
    CHECK(r.get_ue("v") == 0);
    CHECK(outcome([&] { r.align("pad"); }) == "bitstream");
  }
}

// ------------------------------------------------------------------------------------------------
void test_crc32() {
  auto crc_of = [](const std::string& s, uint32_t init = 0) {
    return crc32(reinterpret_cast<const uint8_t*>(s.data()), s.size(), init);
  };
  CHECK(crc_of("123456789") == 0xCBF43926u);
  CHECK(crc_of("") == 0u);
  CHECK(crc_of("a") == 0xE8B7BE43u);
  CHECK(crc_of("The quick brown fox jumps over the lazy dog") == 0x414FA339u);
  CHECK(crc_of("6789", crc_of("12345")) == 0xCBF43926u);  // continuation, as zlib.crc32
  std::vector<uint8_t> zeros(32, 0);
  CHECK(crc32(zeros.data(), zeros.size()) == 0x190A55ADu);
}

// ------------------------------------------------------------------------------------------------
void test_tables() {
  CHECK(tables::table_hash() == 3089795567334253282ull);
  const auto& t = tables::residual_tables();
  CHECK(t.decode.size() == size_t(tables::kNumLevels) * tables::kProbScale);
  bool sums = true, positive = true, slots = true, radius_ok = true;
  for (int k = 0; k < tables::kNumLevels; ++k) {
    const int r = t.radius(k);
    radius_ok &= r >= 0 && r <= tables::kMaxRadius && t.escape_order(k) >= 0 && t.escape_order(k) <= 15;
    uint32_t sum = 0;
    for (int i = 0; i < 2 * r + 2; ++i) {
      sum += t.freqs(k)[i];
      positive &= t.freqs(k)[i] >= 1;
      slots &= t.cums(k)[i] == sum - t.freqs(k)[i];
    }
    sums &= sum == tables::kProbScale;
    // every slot's packed entry covers the slot and names the right symbol byte
    for (uint32_t s = 0; s < tables::kProbScale; ++s) {
      const uint32_t e = t.decode[size_t(k) * tables::kProbScale + s];
      const uint32_t freq = e & tables::kEntryFreqMask, cum = (e >> tables::kEntryCumShift) & tables::kEntryFreqMask;
      const int byte = int(e >> tables::kEntrySymbolShift);
      const int i = byte == tables::kEscapeByte ? 2 * r + 1 : byte - tables::kResidualSymbolBias + r;
      slots &= cum <= s && s < cum + freq && i >= 0 && i < 2 * r + 2 && t.freqs(k)[i] == freq && t.cums(k)[i] == cum;
    }
  }
  CHECK(sums);
  CHECK(positive);
  CHECK(slots);
  CHECK(radius_ok);
  CHECK(std::abs(tables::sigma_level(0) - 0.11) < 1e-15);
  CHECK(std::abs(tables::sigma_level(63) - 60.0) < 1e-12);
  // q7 index = clamp((s + 64) >> 7, 0, 63)
  bool q7 = true;
  for (int32_t s = -5000; s <= 20000; ++s) {
    int32_t k = (s + 64) >> 7;
    k = k < 0 ? 0 : (k > 63 ? 63 : k);
    q7 &= tables::index_from_q7(s) == k;
  }
  CHECK(q7);
  CHECK(tables::index_from_q7(128 * 5) == 5 && tables::index_from_q7(128 * 5 + 63) == 5 &&
        tables::index_from_q7(128 * 5 + 64) == 6 && tables::index_from_q7(-65) == 0);
  static_assert(tables::index_from_q7(-64) == 0 && tables::index_from_q7(8064) == 63, "constexpr");
}

// ------------------------------------------------------------------------------------------------
struct Residual {
  std::vector<int16_t> sym;
  std::vector<uint8_t> idx;
};

Residual make_residual(size_t n, uint32_t seed, int skip_per_16 = 3) {
  std::mt19937 rng(seed);
  Residual r;
  r.sym.resize(n);
  r.idx.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const int k = int(rng() % 64);
    std::normal_distribution<double> g(0.0, tables::sigma_level(k));
    double v = std::round(g(rng));
    if (rng() % 16 < unsigned(skip_per_16)) {
      r.idx[i] = tables::kSkipIndex;
      r.sym[i] = 0;
      continue;
    }
    switch (rng() % 40) {  // extremes and escape boundaries
      case 0: v = 32767; break;
      case 1: v = -32768; break;
      case 2: v = -32767; break;
      case 3: v = tables::residual_tables().radius(k) + 1; break;
      case 4: v = -tables::residual_tables().radius(k); break;
      default: break;
    }
    r.idx[i] = uint8_t(k);
    r.sym[i] = int16_t(std::max(-32768.0, std::min(32767.0, v)));
  }
  return r;
}

std::vector<Kernel> kernels() {
#ifdef JPEGAI_TEST_KERNELS
  std::vector<Kernel> k = {Kernel::kAuto, Kernel::kScalar};
  if (cpu_features().avx2) k.push_back(Kernel::kAvx2);
  return k;
#else
  return {};
#endif
}

void decode_with(const std::vector<uint8_t>& data, const Residual& r, std::vector<int16_t>& out, unsigned threads,
                 int kernel_slot) {
  ExactBuffer eb(data);
  out.assign(r.idx.size(), 12345);
#ifdef JPEGAI_TEST_KERNELS
  const auto ks = kernels();
  decode_residual(eb.data.get(), eb.size, r.idx.data(), r.idx.size(), out.data(), threads,
                  ks[size_t(kernel_slot) % ks.size()]);
#else
  (void)kernel_slot;
  decode_residual(eb.data.get(), eb.size, r.idx.data(), r.idx.size(), out.data(), threads);
#endif
}

const char* kernel_name(int slot) {
#ifdef JPEGAI_TEST_KERNELS
  const Kernel k = kernels()[size_t(slot) % kernels().size()];
  return k == Kernel::kAuto ? "auto" : k == Kernel::kScalar ? "scalar" : "avx2";
#else
  (void)slot;
  return "default";
#endif
}

int kernel_count() {
  const size_t n = kernels().size();
  return n ? int(n) : 1;
}

void test_residual_roundtrip() {
  const Residual r = make_residual(3000, 7);
  std::vector<uint8_t> first;
  for (uint32_t substreams = 1; substreams <= 64; ++substreams) {
    std::vector<uint8_t> data;
    for (unsigned threads = 1; threads <= 4; ++threads) {
      auto d = encode_residual(r.sym.data(), r.idx.data(), r.sym.size(), substreams, threads);
      if (threads == 1) data = d;
      CHECK_MSG(d == data, "encoder output depends on threads (substreams %u, threads %u)", substreams, threads);
      for (int k = 0; k < kernel_count(); ++k) {
        std::vector<int16_t> out;
        decode_with(data, r, out, threads, k);
        CHECK_MSG(out == r.sym, "round trip failed: substreams %u threads %u kernel %d", substreams, threads, k);
      }
    }
    if (substreams == 1) first = data;
  }
  // size close to the ideal for one substream
  const double ideal = residual_information_bits(r.sym.data(), r.idx.data(), r.sym.size());
  CHECK(first.size() * 8.0 >= ideal && first.size() * 8.0 <= ideal * 1.01 + 8 * 64);

  // edge shapes: empty, one symbol, all skipped, more substreams than symbols
  for (size_t n : {size_t(0), size_t(1), size_t(2), size_t(9), size_t(17)}) {
    for (int skip : {0, 8, 16}) {
      const Residual e = make_residual(n, uint32_t(100 + n + skip), skip);
      for (uint32_t substreams : {1u, 2u, 8u, 63u, 64u}) {
        auto data = encode_residual(e.sym.data(), e.idx.data(), n, substreams, 2);
        for (int k = 0; k < kernel_count(); ++k) {
          std::vector<int16_t> out;
          decode_with(data, e, out, 3, k);
          CHECK_MSG(out == e.sym, "edge round trip n=%zu skip=%d substreams=%u", n, skip, substreams);
        }
      }
    }
  }
  // every value at every level
  {
    Residual all;
    for (int k = 0; k < 64; ++k)
      for (int v : {-32768, -32767, -1000, -128, -127, -1, 0, 1, 127, 128, 1000, 32766, 32767}) {
        all.idx.push_back(uint8_t(k));
        all.sym.push_back(int16_t(v));
      }
    for (uint32_t substreams : {1u, 5u, 64u}) {
      auto data = encode_residual(all.sym.data(), all.idx.data(), all.sym.size(), substreams, 1);
      for (int k = 0; k < kernel_count(); ++k) {
        std::vector<int16_t> out;
        decode_with(data, all, out, 2, k);
        CHECK(out == all.sym);
      }
    }
  }
  // argument errors
  {
    const Residual e = make_residual(10, 3, 0);
    CHECK(outcome([&] { encode_residual(e.sym.data(), e.idx.data(), 10, 0, 1); }) == "argument");
    CHECK(outcome([&] { encode_residual(e.sym.data(), e.idx.data(), 10, 65, 1); }) == "argument");
    auto bad = e.idx;
    bad[3] = 64;
    CHECK(outcome([&] { encode_residual(e.sym.data(), bad.data(), 10, 1, 1); }) == "argument");
    bad[3] = 254;
    CHECK(outcome([&] { count_coded(bad.data(), 10); }) == "argument");
    auto sym = e.sym;
    auto idx = e.idx;
    idx[4] = tables::kSkipIndex;
    sym[4] = 1;
    CHECK(outcome([&] { encode_residual(sym.data(), idx.data(), 10, 1, 1); }) == "argument");
  }
}

// ------------------------------------------------------------------------------------------------
std::vector<uint16_t> make_cdf(size_t channels, size_t symbols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint16_t> cdf(channels * (symbols + 1));
  for (size_t c = 0; c < channels; ++c) {
    std::vector<uint32_t> f(symbols);
    uint32_t total = 0;
    for (auto& x : f) total += x = 1 + rng() % 100;
    uint32_t acc = 0;
    for (size_t i = 0; i < symbols; ++i) {
      f[i] = std::max<uint32_t>(1, f[i] * (4096 - uint32_t(symbols)) / total);
      acc += f[i];
    }
    f[symbols / 2] += 4096 - acc;
    cdf[c * (symbols + 1)] = 0;
    for (size_t i = 0; i < symbols; ++i) cdf[c * (symbols + 1) + i + 1] = uint16_t(cdf[c * (symbols + 1) + i] + f[i]);
  }
  return cdf;
}

void test_factorized() {
  const size_t channels = 5, symbols = 23, plane = 37;
  const auto cdf = make_cdf(channels, symbols, 9);
  FactorizedModel model(cdf.data(), channels, symbols, 11);
  std::mt19937 rng(2);
  std::vector<int16_t> v(channels * plane);
  for (auto& x : v) x = int16_t(int(rng() % symbols) - 11);
  for (uint32_t substreams : {1u, 2u, 7u, 64u}) {
    auto data = model.encode(v.data(), plane, substreams, 2);
    for (unsigned threads : {1u, 2u, 3u, 4u}) {
      CHECK(model.encode(v.data(), plane, substreams, threads) == data);
      ExactBuffer eb(data);
      std::vector<int16_t> out(v.size(), 999);
      model.decode(eb.data.get(), eb.size, plane, out.data(), threads);
      CHECK(out == v);
    }
  }
  auto bad = v;
  bad[0] = int16_t(symbols);  // index symbols + 11: outside
  CHECK(outcome([&] { model.encode(bad.data(), plane, 1, 1); }) == "argument");
  auto bad_cdf = cdf;
  bad_cdf[3] = bad_cdf[2];
  CHECK(outcome([&] { FactorizedModel m(bad_cdf.data(), channels, symbols, 11); }) == "argument");
  CHECK(outcome([&] { FactorizedModel m(cdf.data(), channels, symbols, int(symbols)); }) == "argument");
}

// ------------------------------------------------------------------------------------------------
PictureHeader sample_header() {
  PictureHeader h;
  h.width = 1920;
  h.height = 1080;
  h.colour_transform = 0;
  h.model_id = 7;
  h.operating_point = 2;
  h.rate_point = 200;
  h.gain_log_luma = -8191;
  h.gain_log_chroma = 4000;
  h.latent_channels_luma = 1024;
  h.latent_channels_chroma = 1;
  h.coded_channels_luma = 1000;
  h.coded_channels_chroma = 0;
  h.tile_size = 65536;
  h.tile_overlap = 65520;
  return h;
}

bool same_header(const PictureHeader& a, const PictureHeader& b) {
  return a.width == b.width && a.height == b.height && a.bit_depth == b.bit_depth &&
         a.chroma_format == b.chroma_format && a.colour_transform == b.colour_transform &&
         a.model_id == b.model_id && a.operating_point == b.operating_point && a.rate_point == b.rate_point &&
         a.gain_log_luma == b.gain_log_luma && a.gain_log_chroma == b.gain_log_chroma &&
         a.latent_channels_luma == b.latent_channels_luma && a.latent_channels_chroma == b.latent_channels_chroma &&
         a.coded_channels_luma == b.coded_channels_luma && a.coded_channels_chroma == b.coded_channels_chroma &&
         a.tile_size == b.tile_size && a.tile_overlap == b.tile_overlap;
}

void test_container() {
  const PictureHeader h = sample_header();
  std::vector<uint8_t> big(70000);
  for (size_t i = 0; i < big.size(); ++i) big[i] = uint8_t(i * 31 + 7);
  const std::vector<std::pair<uint16_t, std::vector<uint8_t>>> segs = {
      {uint16_t(Marker::kSORS), {1, 2, 3}}, {uint16_t(Marker::kUDI), {}}, {uint16_t(Marker::kSORP), big},
      {uint16_t(Marker::kSOZ), {0xFF, 0x81}}};
  const auto cs = write_codestream(h, segs);
  CHECK(cs[0] == 0xFF && cs[1] == 0x80 && cs[cs.size() - 2] == 0xFF && cs[cs.size() - 1] == 0x81);
  ExactBuffer eb(cs);
  const Codestream p = parse_codestream(eb.data.get(), eb.size);
  CHECK(same_header(p.header, h));
  CHECK(p.payloads.size() == 4);
  for (const auto& [marker, payload] : segs) {
    auto it = p.payloads.find(marker);
    CHECK(it != p.payloads.end() && it->second.second == payload.size() &&
          std::equal(payload.begin(), payload.end(), cs.begin() + long(it->second.first)));
  }
  // CRC of the PIH segment = crc32(marker .. payload end), big-endian after the payload
  {
    const auto pih = write_picture_header(h);
    // PIH marker at 2, then ue(size) in one byte (size < 127 -> at most 13 bits... check generally)
    BitWriter sz;
    sz.put_ue(uint32_t(pih.size()));
    const auto szb = sz.finish();
    const size_t end = 2 + 2 + szb.size() + pih.size();
    const uint32_t crc = crc32(cs.data() + 2, end - 2);
    const uint32_t stored = uint32_t(cs[end]) << 24 | uint32_t(cs[end + 1]) << 16 | uint32_t(cs[end + 2]) << 8 | cs[end + 3];
    CHECK(crc == stored);
    CHECK(std::equal(pih.begin(), pih.end(), cs.begin() + long(end - pih.size())));
    PictureHeader back = read_picture_header(pih.data(), pih.size(), kDefaultMaxPixels);
    CHECK(same_header(back, h));
  }
  // limits
  {
    PictureHeader huge;
    huge.width = huge.height = 65535;
    const auto hs = write_codestream(huge, {});
    std::string what;
    LimitError* none = nullptr;
    (void)none;
    CHECK(outcome([&] { parse_codestream(hs.data(), hs.size()); }, &what) == "limit");
    CHECK(what.rfind("width*height", 0) == 0);
    CHECK(outcome([&] { parse_codestream(hs.data(), hs.size(), uint64_t(65535) * 65535); }) == "none");
    PictureHeader zero;
    zero.width = 0;
    zero.height = 5;
    CHECK(outcome([&] { write_codestream(zero, {}); }) == "argument");
    PictureHeader wide;
    wide.width = 65536;
    wide.height = 1;
    CHECK(outcome([&] { write_codestream(wide, {}); }) == "limit");
    CHECK(outcome([&] { write_codestream(h, {{uint16_t(Marker::kPIH), {}}}); }) == "argument");
    CHECK(outcome([&] { write_codestream(h, {{0xFF99, {}}}); }) == "argument");
    CHECK(outcome([&] { write_codestream(h, {{uint16_t(Marker::kSOZ), {}}, {uint16_t(Marker::kSOZ), {}}}); }) ==
          "argument");
  }
  // framing errors name their field
  {
    auto field_of = [](const std::vector<uint8_t>& v) {
      ExactBuffer b(v);
      try {
        parse_codestream(b.data.get(), b.size);
      } catch (const CodecError& e) {
        return e.field();
      }
      return std::string("<none>");
    };
    CHECK(field_of({}) == "SOC");
    CHECK(field_of({0xFF, 0x80}) == "EOC");
    CHECK(field_of({0xFF, 0x80, 0xFF, 0x81}) == "PIH");
    auto trailing = cs;
    trailing.push_back(0);
    CHECK(field_of(trailing) == "EOC");
    auto no_eoc = cs;
    no_eoc.resize(cs.size() - 2);
    CHECK(field_of(no_eoc) == "EOC");
    auto unknown = write_codestream(h, {});
    unknown.insert(unknown.end() - 2, {0xFF, 0x99, 0x80, 0, 0, 0, 0});
    CHECK(field_of(unknown) == "marker");
  }
}

// The MDS payload (docs/bitstream.md 1.1) and 4:0:0 headers: every truncation and every byte value at every
// position of a valid payload, each in a buffer of its exact size, only ever parses or throws BitstreamError.
void test_metadata() {
  const std::vector<std::pair<uint8_t, std::vector<uint8_t>>> entries = {
      {3, {'<', 'x', '/', '>'}}, {1, {'E', 'x', 'i', 'f', 0, 0, 'M', 'M'}}, {2, std::vector<uint8_t>(300, 7)}};
  const std::vector<uint8_t> payload = write_metadata(entries);
  CHECK(payload.size() == 3 * 5 + 4 + 8 + 300 && payload[0] == 3 && payload[4] == 4);
  {
    ExactBuffer b(payload);
    const auto got = parse_metadata(b.data.get(), b.size);
    CHECK(got.size() == 3 && got.at(2).second == 300 && got.at(1).first == 5 + 4 + 5);
  }
  for (size_t cut = 0; cut < payload.size(); ++cut) {
    ExactBuffer b(std::vector<uint8_t>(payload.begin(), payload.begin() + long(cut)));
    const std::string o = outcome([&] { parse_metadata(b.data.get(), b.size); });
    const bool boundary = cut == 5 + 4 || cut == 5 + 4 + 5 + 8;  // one or two whole entries: valid
    CHECK_MSG(o == (boundary ? "none" : "bitstream"), "cut %zu: %s", cut, o.c_str());
  }
  for (size_t i = 0; i < 40; ++i)
    for (int v = 0; v < 256; ++v) {
      std::vector<uint8_t> m = payload;
      m[i] = uint8_t(v);
      ExactBuffer b(m);
      const std::string o = outcome([&] { parse_metadata(b.data.get(), b.size); });
      CHECK_MSG(o == "none" || o == "bitstream", "byte %zu = %d: %s", i, v, o.c_str());
    }
  const std::vector<uint8_t> oversize = {1, 0x01, 0x00, 0x00, 0x01, 'x'};  // 2^24 + 1 declared
  CHECK(outcome([&] { parse_metadata(oversize.data(), oversize.size()); }) == "bitstream");
  CHECK(outcome([&] { write_metadata({}); }) == "argument");
  CHECK(outcome([&] { write_metadata({{1, {1}}, {1, {2}}}); }) == "argument");
  CHECK(outcome([&] { write_metadata({{4, {1}}}); }) == "argument");
  CHECK(outcome([&] { write_metadata({{2, {}}}); }) == "argument");
  CHECK(outcome([&] { write_metadata({{2, std::vector<uint8_t>(kMaxMetadataEntry + 1)}}); }) == "argument");
  // in a codestream: parsed and located; a bad payload is refused by the writer and the parser
  PictureHeader h;
  h.width = h.height = 8;
  const auto cs = write_codestream(h, {{uint16_t(Marker::kMDS), payload}});
  const Codestream p = parse_codestream(cs.data(), cs.size());
  CHECK(p.metadata.size() == 3 && cs[p.metadata.at(1).first] == 'E' && p.metadata.at(1).second == 8);
  CHECK(outcome([&] { write_codestream(h, {{uint16_t(Marker::kMDS), {9}}}); }) == "argument");
  // 4:0:0: chroma fields 0, no SORS
  PictureHeader mono = h;
  mono.chroma_format = 0;
  CHECK(outcome([&] { write_codestream(mono, {}); }) == "argument");  // coded_channels_chroma 96
  mono.coded_channels_chroma = 0;
  const auto ms = write_codestream(mono, {{uint16_t(Marker::kSOZ), {1}}});
  CHECK(parse_codestream(ms.data(), ms.size()).header.chroma_format == 0);
  CHECK(outcome([&] { write_codestream(mono, {{uint16_t(Marker::kSORS), {}}}); }) == "argument");
  mono.chroma_format = 2;
  CHECK(outcome([&] { write_codestream(mono, {}); }) == "argument");
}

// ------------------------------------------------------------------------------------------------
void test_thread_pool() {
  ThreadPool pool(3);
  for (unsigned threads : {0u, 1u, 2u, 4u, 9u}) {
    std::vector<std::atomic<int>> hits(100);
    pool.parallel_for(hits.size(), threads, [&](size_t i) { hits[i]++; });
    bool once = true;
    for (auto& h : hits) once &= h.load() == 1;
    CHECK(once);
  }
  // the first exception is rethrown after every claimed task ended
  std::atomic<int> ran{0};
  bool threw = false;
  try {
    pool.parallel_for(50, 4, [&](size_t i) {
      ran++;
      if (i == 7) throw BitstreamError("x", "boom");
    });
  } catch (const BitstreamError& e) {
    threw = e.field() == "x";
  }
  CHECK(threw);
  CHECK(ran.load() >= 1 && ran.load() <= 50);
  // nested parallel_for completes even when every worker is busy
  std::atomic<int> inner{0};
  pool.parallel_for(8, 4, [&](size_t) { pool.parallel_for(8, 4, [&](size_t) { inner++; }); });
  CHECK(inner.load() == 64);
  pool.parallel_for(0, 4, [&](size_t) { CHECK(false); });
  CHECK(hardware_threads() >= 1);
}

// ------------------------------------------------------------------------------------------------
// Corruption sweep: truncations, single/multi bit flips and random bytes; only our errors may escape,
// and an accepted residual/hyper-latent payload must have filled every output value.
struct Sweep {
  const char* name;
  int total = 0, detected = 0, foreign = 0;
  void run(const std::function<void()>& f, const std::string& label) {
    ++total;
    std::string what;
    const std::string o = outcome(f, &what);
    if (o == "bitstream" || o == "limit") {
      ++detected;
    } else if (o != "none") {
      ++foreign;
      if (foreign <= 5) std::fprintf(stderr, "%s %s: foreign outcome %s: %s\n", name, label.c_str(), o.c_str(), what.c_str());
    }
  }
};

void mutate_and_run(Sweep& s, const std::vector<uint8_t>& valid, std::mt19937& rng, int multi, int randoms,
                    const std::function<void(const ExactBuffer&)>& consume) {
  for (size_t cut = 0; cut < valid.size(); ++cut) {
    ExactBuffer b(std::vector<uint8_t>(valid.begin(), valid.begin() + long(cut)));
    s.run([&] { consume(b); }, "truncate " + std::to_string(cut));
  }
  for (size_t bit = 0; bit < valid.size() * 8; ++bit) {
    auto v = valid;
    v[bit >> 3] ^= uint8_t(0x80 >> (bit & 7));
    ExactBuffer b(v);
    s.run([&] { consume(b); }, "flip " + std::to_string(bit));
  }
  for (int i = 0; i < multi; ++i) {
    auto v = valid;
    const int k = 2 + int(rng() % 15);
    for (int j = 0; j < k; ++j) v[rng() % v.size()] ^= uint8_t(1u << (rng() % 8));
    ExactBuffer b(v);
    s.run([&] { consume(b); }, "multi " + std::to_string(i));
  }
  for (int i = 0; i < randoms; ++i) {
    std::vector<uint8_t> v(rng() % (2 * valid.size() + 8));
    for (auto& x : v) x = uint8_t(rng());
    ExactBuffer b(v);
    s.run([&] { consume(b); }, "random " + std::to_string(i));
  }
}

void test_corruption_sweep() {
  std::mt19937 rng(77);
  // residual payload, every kernel
  const Residual r = make_residual(240, 11);
  for (uint32_t substreams : {1u, 3u, 64u}) {
    const auto valid = encode_residual(r.sym.data(), r.idx.data(), r.sym.size(), substreams, 1);
    for (int k = 0; k < kernel_count(); ++k) {
      Sweep s{"residual"};
      std::vector<int16_t> out(r.idx.size());
      mutate_and_run(s, valid, rng, substreams == 64 ? 200 : 1500, substreams == 64 ? 200 : 1500,
                     [&](const ExactBuffer& b) {
#ifdef JPEGAI_TEST_KERNELS
                       decode_residual(b.data.get(), b.size, r.idx.data(), r.idx.size(), out.data(), 2, kernels()[size_t(k)]);
#else
                       decode_residual(b.data.get(), b.size, r.idx.data(), r.idx.size(), out.data(), 2);
#endif
                     });
      CHECK_MSG(s.foreign == 0, "residual substreams %u kernel %d: %d foreign outcomes", substreams, k, s.foreign);
      CHECK_MSG(s.detected * 100 >= s.total * 95, "residual detection %d/%d", s.detected, s.total);
      std::printf("  sweep residual s=%-2u kernel %-6s: %d/%d detected\n", substreams, kernel_name(k), s.detected,
                  s.total);
    }
  }
  // hyper-latent payload
  {
    const auto cdf = make_cdf(3, 17, 5);
    FactorizedModel model(cdf.data(), 3, 17, 8);
    std::vector<int16_t> v(3 * 30);
    for (auto& x : v) x = int16_t(int(rng() % 17) - 8);
    const auto valid = model.encode(v.data(), 30, 4, 1);
    Sweep s{"factorized"};
    std::vector<int16_t> out(v.size());
    mutate_and_run(s, valid, rng, 1000, 1000,
                   [&](const ExactBuffer& b) { model.decode(b.data.get(), b.size, 30, out.data(), 2); });
    CHECK(s.foreign == 0);
    CHECK(s.detected * 100 >= s.total * 95);
    std::printf("  sweep factorized: %d/%d detected\n", s.detected, s.total);
  }
  // container: every mutation must be detected (CRC-32 on every segment)
  {
    const Residual small = make_residual(60, 12);
    const auto payload = encode_residual(small.sym.data(), small.idx.data(), 60, 2, 1);
    const auto valid = write_codestream(sample_header(), {{uint16_t(Marker::kSORP), payload},
                                                          {uint16_t(Marker::kUDI), {9, 9, 9}},
                                                          {uint16_t(Marker::kSOZ), {1}}});
    Sweep s{"container"};
    mutate_and_run(s, valid, rng, 2000, 1000, [&](const ExactBuffer& b) {
      Codestream c = parse_codestream(b.data.get(), b.size);
      (void)c;
    });
    CHECK(s.foreign == 0);
    CHECK_MSG(s.detected == s.total, "container: %d of %d mutations accepted", s.total - s.detected, s.total);
    std::printf("  sweep container: %d/%d detected\n", s.detected, s.total);
  }
}

// ------------------------------------------------------------------------------------------------
// Former bugs (also run alone with --known-bugs): BitWriter used to write values that ue(v)/se(v)
// cannot represent instead of refusing them:
//  * put_se(INT32_MIN): 2u * 2^31 wrapped to 0, so the reader got 0;
//  * put_ue(0xFFFFFFFF): needs 32 leading zeros, which BitReader::get_ue refuses (kMaxUeLeadingZeros).
void test_unrepresentable_values() {
  // Fixed means: the writer either refuses the value (throws) or writes a code that reads back.
  {
    std::vector<uint8_t> b;
    const std::string w = outcome([&] {
      BitWriter bw;
      bw.put_se(INT32_MIN);
      b = bw.finish();
    });
    int32_t back = 0;
    std::string o = "n/a";
    if (w == "none") {
      BitReader r(b.data(), b.size());
      o = outcome([&] { back = r.get_se("se"); });
    }
    CHECK_MSG(w != "none" || (o == "none" && back == INT32_MIN),
              "put_se(INT32_MIN) is accepted and reads back as %d (%s)", back, o.c_str());
  }
  {
    std::vector<uint8_t> b;
    const std::string w = outcome([&] {
      BitWriter bw;
      bw.put_ue(0xFFFFFFFFu);
      b = bw.finish();
    });
    uint32_t back = 0;
    std::string o = "n/a";
    if (w == "none") {
      BitReader r(b.data(), b.size());
      o = outcome([&] { back = r.get_ue("ue"); });
    }
    CHECK_MSG(w != "none" || (o == "none" && back == 0xFFFFFFFFu),
              "put_ue(0xFFFFFFFF) is accepted but does not read back (%s)", o.c_str());
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "--known-bugs") {
    test_unrepresentable_values();
    std::printf("known bugs: %d passed, %d failed\n", g_passed, g_failed);
    return g_failed == 0 ? 0 : 1;
  }
  const struct {
    const char* name;
    void (*fn)();
  } suites[] = {{"bitio", test_bitio},       {"crc32", test_crc32},
                {"tables", test_tables},     {"residual", test_residual_roundtrip},
                {"factorized", test_factorized}, {"container", test_container}, {"metadata", test_metadata},
                {"thread_pool", test_thread_pool}, {"corruption_sweep", test_corruption_sweep},
                {"unrepresentable_values", test_unrepresentable_values}};
  for (const auto& s : suites) {
    const int before = g_failed;
    try {
      s.fn();
    } catch (const std::exception& e) {
      ++g_failed;
      std::fprintf(stderr, "suite %s: uncaught exception: %s\n", s.name, e.what());
    }
    std::printf("%-18s %s\n", s.name, g_failed == before ? "ok" : "FAILED");
  }
  std::printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed == 0 ? 0 : 1;
}
