// Fixed vectors from the numpy oracle (training/reference_decoder.py) against the C++ core, bit for bit:
// the integer hyper-scale decoder, the fixed-point mean path, decode_latents on a real codestream, and
// the model reader (sections, values, CRC, corrupted copies of model.bin that must be refused).  The
// vectors are written by tools/gen_ctest_vectors.py into tests/cpp/vectors/ (format: its docstring; a
// manifest.txt plus raw little-endian arrays) and are valid for one model.bin, whose SHA-256 the manifest
// records: if the shipped model changed, this program says so and exits 77 (ctest: "Skipped").
//
// Usage: test_vectors <vectors dir> <model.bin>      (CMake target test_vectors, registered with ctest)
// Exit code 0 iff every check passed; prints "N checks passed, M failed".  See docs/testing.md.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "crc32.hpp"
#include "errors.hpp"
#include "hyper_scale_decoder.hpp"
#include "latent_decoder.hpp"
#include "mean_path.hpp"
#include "model_blob.hpp"

#include "check.hpp"

using namespace jpegai;

namespace {

using jpegai_test::g_failed;
using jpegai_test::g_passed;

constexpr int kSkipExitCode = 77;  // SKIP_RETURN_CODE of the ctest test
const unsigned kThreads[] = {1, 2, 4};

// Runs f and reports which exception type escaped: "none", "bitstream", "limit", "argument", "other".
std::string outcome(const std::function<void()>& f, std::string* what = nullptr) {
  try {
    f();
    return "none";
  } catch (const LimitError& e) {
    if (what) *what = e.what();
    return "limit";
  } catch (const BitstreamError& e) {
    if (what) *what = e.what();
    return "bitstream";
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

std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

// ------------------------------------------------------------------------------------------------
// SHA-256 (FIPS 180-4), only to tell whether model.bin is the one the vectors were made for.
std::string sha256_hex(const uint8_t* data, size_t size) {
  static const uint32_t k[64] = {
      0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
      0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
      0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
      0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
      0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
      0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
      0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
      0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
  uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  auto rotr = [](uint32_t x, int n) { return (x >> n) | (x << (32 - n)); };
  std::vector<uint8_t> msg(data, data + size);
  msg.push_back(0x80);
  while (msg.size() % 64 != 56) msg.push_back(0);
  const uint64_t bits = uint64_t(size) * 8;
  for (int i = 7; i >= 0; --i) msg.push_back(uint8_t(bits >> (8 * i)));
  for (size_t blk = 0; blk < msg.size(); blk += 64) {
    uint32_t w[64];
    for (int i = 0; i < 16; ++i)
      w[i] = uint32_t(msg[blk + 4 * i]) << 24 | uint32_t(msg[blk + 4 * i + 1]) << 16 |
             uint32_t(msg[blk + 4 * i + 2]) << 8 | msg[blk + 4 * i + 3];
    for (int i = 16; i < 64; ++i) {
      const uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
      const uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; ++i) {
      const uint32_t t1 = hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + k[i] + w[i];
      const uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
      hh = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
  }
  char out[65];
  for (int i = 0; i < 8; ++i) std::snprintf(out + 8 * i, 9, "%08x", h[i]);
  return std::string(out, 64);
}

std::string sha256_hex(const std::vector<uint8_t>& v) { return sha256_hex(v.data(), v.size()); }

// ------------------------------------------------------------------------------------------------
// The manifest (format: tools/gen_ctest_vectors.py).
struct Array {
  std::string dtype;
  std::vector<size_t> dims;
  std::vector<uint8_t> bytes;
  size_t count() const {
    size_t n = 1;
    for (size_t d : dims) n *= d;
    return n;
  }
};

struct Section {
  std::string name;
  uint32_t dtype = 0;
  std::vector<uint32_t> shape;
  uint64_t offset = 0, nbytes = 0;
  uint32_t crc = 0;
};

struct Corruption {
  std::string name, stage, sha256, keyword;
  size_t length = 0;
  std::vector<std::pair<size_t, std::vector<uint8_t>>> patches;
};

size_t item_size(const std::string& dtype) {
  if (dtype == "int8" || dtype == "uint8") return 1;
  if (dtype == "int16" || dtype == "uint16") return 2;
  if (dtype == "int32" || dtype == "uint32" || dtype == "float32") return 4;
  throw std::runtime_error("manifest: unknown dtype " + dtype);
}

std::vector<uint8_t> from_hex(const std::string& s) {
  if (s.size() % 2) throw std::runtime_error("manifest: odd hex string");
  std::vector<uint8_t> v;
  for (size_t i = 0; i < s.size(); i += 2) v.push_back(uint8_t(std::stoul(s.substr(i, 2), nullptr, 16)));
  return v;
}

struct Manifest {
  std::string model_sha256;
  uint64_t model_size = 0;
  std::map<std::string, Array> arrays;
  std::map<std::string, std::vector<int64_t>> values;
  std::vector<Section> sections;
  std::vector<Corruption> corruptions;

  explicit Manifest(const std::string& dir) {
    std::ifstream f(dir + "/manifest.txt");
    if (!f) throw std::runtime_error("cannot open " + dir + "/manifest.txt (run tools/gen_ctest_vectors.py)");
    std::string line;
    int format = 0;
    while (std::getline(f, line)) {
      if (line.empty() || line[0] == '#') continue;
      std::istringstream in(line);
      std::string kind;
      in >> kind;
      if (kind == "format") {
        in >> format;
      } else if (kind == "model_path") {
      } else if (kind == "model_sha256") {
        in >> model_sha256;
      } else if (kind == "model_size") {
        in >> model_size;
      } else if (kind == "array") {
        std::string key, file;
        Array a;
        size_t ndim = 0;
        in >> key >> a.dtype >> ndim;
        a.dims.resize(ndim);
        for (size_t& d : a.dims) in >> d;
        in >> file;
        a.bytes = read_file(dir + "/" + file);
        if (a.bytes.size() != a.count() * item_size(a.dtype)) throw std::runtime_error(file + ": wrong size");
        arrays[key] = std::move(a);
      } else if (kind == "value") {
        std::string key;
        int64_t v;
        in >> key;
        while (in >> v) values[key].push_back(v);
      } else if (kind == "section") {
        Section s;
        uint32_t ndim = 0;
        in >> s.name >> s.dtype >> ndim;
        s.shape.resize(ndim);
        for (uint32_t& d : s.shape) in >> d;
        in >> s.offset >> s.nbytes >> s.crc;
        sections.push_back(std::move(s));
      } else if (kind == "corrupt") {
        Corruption c;
        in >> c.name >> c.stage >> c.length >> c.sha256 >> std::ws;
        std::getline(in, c.keyword);  // the rest of the line
        corruptions.push_back(std::move(c));
      } else if (kind == "patch") {
        std::string name, hex;
        size_t offset = 0;
        in >> name >> offset >> hex;
        if (corruptions.empty() || corruptions.back().name != name) throw std::runtime_error("manifest: stray patch");
        corruptions.back().patches.emplace_back(offset, from_hex(hex));
      } else {
        throw std::runtime_error("manifest: unknown record " + kind);
      }
      if (in.fail() && !in.eof()) throw std::runtime_error("manifest: bad line: " + line);
    }
    if (format != 1) throw std::runtime_error("manifest: unsupported format " + std::to_string(format));
  }

  const Array& array(const std::string& key, const std::string& dtype) const {
    const auto it = arrays.find(key);
    if (it == arrays.end()) throw std::runtime_error("manifest: no array " + key);
    if (it->second.dtype != dtype) throw std::runtime_error("manifest: " + key + " is not " + dtype);
    return it->second;
  }
  const std::vector<int64_t>& value(const std::string& key) const {
    const auto it = values.find(key);
    if (it == values.end()) throw std::runtime_error("manifest: no value " + key);
    return it->second;
  }
  // Little-endian array contents as T (T's size must match the dtype).
  template <typename T>
  std::vector<T> get(const std::string& key, const std::string& dtype) const {
    const Array& a = array(key, dtype);
    if (item_size(dtype) != sizeof(T)) throw std::runtime_error("manifest: element size of " + key);
    std::vector<T> v(a.count());
    using Bits = std::conditional_t<sizeof(T) == 1, uint8_t, std::conditional_t<sizeof(T) == 2, uint16_t, uint32_t>>;
    for (size_t i = 0; i < v.size(); ++i) {
      uint64_t u = 0;
      for (int b = int(sizeof(T)) - 1; b >= 0; --b) u = (u << 8) | a.bytes[i * sizeof(T) + size_t(b)];
      const Bits bits = Bits(u);
      std::memcpy(&v[i], &bits, sizeof(T));
    }
    return v;
  }
};

const char* const kComp[2] = {"luma", "chroma"};

template <typename T>
size_t mismatches(const std::vector<T>& a, const std::vector<T>& b, size_t* first = nullptr) {
  if (a.size() != b.size()) return std::max(a.size(), b.size()) + 1;
  size_t n = 0;
  for (size_t i = 0; i < a.size(); ++i)
    if (!(a[i] == b[i])) {
      if (n == 0 && first) *first = i;
      ++n;
    }
  return n;
}

#define CHECK_EQUAL_VEC(got, want, ...)                                                              \
  do {                                                                                               \
    size_t first_ = 0;                                                                               \
    const size_t bad_ = mismatches(got, want, &first_);                                              \
    CHECK_MSG(bad_ == 0, "%zu of %zu differ (first at %zu): ", bad_, (want).size(), first_);         \
    if (bad_) std::fprintf(stderr, "    in " __VA_ARGS__), std::fputc('\n', stderr);                  \
  } while (0)

// ------------------------------------------------------------------------------------------------
void test_sha256() {
  const std::string abc = "abc", two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  CHECK(sha256_hex(nullptr, 0) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(sha256_hex(reinterpret_cast<const uint8_t*>(abc.data()), abc.size()) ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(sha256_hex(reinterpret_cast<const uint8_t*>(two.data()), two.size()) ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

// The reader on the shipped file: every section of the table, a few values, the CRC, misuse.
void test_blob(const Manifest& m, const std::vector<uint8_t>& bytes) {
  const ModelBlob blob{std::vector<uint8_t>(bytes)};
  CHECK(int64_t(m.sections.size()) == m.value("blob.section_count").at(0));
  const uint32_t stored = uint32_t(bytes[bytes.size() - 4]) | uint32_t(bytes[bytes.size() - 3]) << 8 |
                          uint32_t(bytes[bytes.size() - 2]) << 16 | uint32_t(bytes[bytes.size() - 1]) << 24;
  CHECK(stored == uint32_t(m.value("blob.crc32").at(0)));
  CHECK(crc32(bytes.data(), bytes.size() - 4) == stored);
  for (const Section& want : m.sections) {
    if (!blob.has(want.name)) {
      CHECK_MSG(false, "section %s missing", want.name.c_str());
      continue;
    }
    const BlobSection& s = blob.section(want.name);
    CHECK_MSG(uint32_t(s.type) == want.dtype && s.shape == want.shape && s.offset == want.offset &&
                  s.nbytes == want.nbytes,
              "section %s: table entry differs", want.name.c_str());
    CHECK_MSG(crc32(bytes.data() + want.offset, want.nbytes) == want.crc, "section %s: data CRC", want.name.c_str());
    // the typed accessors return the same values (serialised back to little-endian bytes)
    std::vector<uint8_t> le;
    auto put = [&](uint32_t v, int n) {
      for (int b = 0; b < n; ++b) le.push_back(uint8_t(v >> (8 * b)));
    };
    switch (BlobType(want.dtype)) {
      case BlobType::kInt8:
        for (int8_t v : blob.int8(want.name, want.shape)) put(uint8_t(v), 1);
        break;
      case BlobType::kUInt16:
        for (uint16_t v : blob.uint16(want.name, want.shape)) put(v, 2);
        break;
      case BlobType::kInt32:
        for (int32_t v : blob.int32(want.name, want.shape)) put(uint32_t(v), 4);
        break;
      case BlobType::kFloat32:
        for (float v : blob.float32(want.name, want.shape)) {
          uint32_t u;
          std::memcpy(&u, &v, 4);
          put(u, 4);
        }
        break;
      default:
        continue;  // no typed accessor for this dtype
    }
    CHECK_MSG(crc32(le.data(), le.size()) == want.crc, "section %s: accessor values", want.name.c_str());
  }
  auto as64 = [](const std::vector<int32_t>& v) { return std::vector<int64_t>(v.begin(), v.end()); };
  CHECK(as64(blob.int32("meta.channels", {2})) == m.value("meta.channels"));
  CHECK(as64(blob.int32("meta.consts", {6})) == m.value("meta.consts"));
  CHECK(as64(blob.int32("mean.y_frac", {2})) == m.value("mean.y_frac"));
  {
    std::vector<int64_t> bits;
    for (float f : blob.float32("meta.rate_lambdas")) {
      uint32_t u;
      std::memcpy(&u, &f, 4);
      bits.push_back(u);
    }
    CHECK(bits == m.value("blob.rate_lambdas_bits"));
  }
  // misuse: a missing section, a wrong dtype, a wrong shape
  CHECK(!blob.has("no.such.section"));
  CHECK(outcome([&] { blob.section("no.such.section"); }) == "argument");
  CHECK(outcome([&] { blob.int8("meta.channels"); }) == "argument");
  CHECK(outcome([&] { blob.int32("meta.channels", {3}); }) == "argument");
  CHECK(outcome([&] { blob.float32("meta.consts", {6}); }) == "argument");
  CHECK(outcome([&] { LatentModel lm(blob); }) == "none");
}

// Corrupted copies of model.bin: rebuilt from the patches, then refused by ModelBlob ("blob") or by
// LatentModel ("model"), with an ArgumentError whose message names the problem.
void test_corrupt(const Manifest& m, const std::vector<uint8_t>& bytes) {
  CHECK(m.corruptions.size() >= 10);
  for (const Corruption& c : m.corruptions) {
    std::vector<uint8_t> b(bytes);
    b.resize(c.length);
    for (const auto& p : c.patches) {
      if (p.first + p.second.size() > b.size()) b.resize(p.first + p.second.size());
      std::copy(p.second.begin(), p.second.end(), b.begin() + std::ptrdiff_t(p.first));
    }
    CHECK_MSG(sha256_hex(b) == c.sha256, "corrupted copy %s: not the generator's file", c.name.c_str());
    std::string what;
    std::string result;
    if (c.stage == "blob") {
      result = outcome([&] { ModelBlob blob(b); }, &what);
    } else {
      std::unique_ptr<ModelBlob> blob;
      CHECK_MSG(outcome([&] { blob = std::make_unique<ModelBlob>(b); }, &what) == "none",
                "%s: the reader should accept it (%s)", c.name.c_str(), what.c_str());
      if (blob) result = outcome([&] { LatentModel lm(*blob); }, &what);
    }
    CHECK_MSG(result == "argument", "%s (%s): %s, expected an ArgumentError", c.name.c_str(), c.stage.c_str(),
              result.c_str());
    CHECK_MSG(what.find(c.keyword) != std::string::npos, "%s: message \"%s\" lacks \"%s\"", c.name.c_str(),
              what.c_str(), c.keyword.c_str());
  }
}

// HSD: z_hat -> Q7 log-sigma (no gain), fast kernel at 1, 2, 4 threads and the scalar reference.
void test_hsd(const Manifest& m, const LatentModel& lm) {
  const std::vector<int64_t>& size = m.value("hsd.size");  // hz wz hl wl
  const int hz = int(size.at(0)), wz = int(size.at(1)), hl = int(size.at(2)), wl = int(size.at(3));
  for (int c = 0; c < 2; ++c) {
    const std::string p = std::string("hsd.") + kComp[c];
    const std::vector<int16_t> z = m.get<int16_t>(p + ".z", "int16");
    const std::vector<int32_t> want = m.get<int32_t>(p + ".s", "int32");
    const HyperScaleDecoder& hsd = *lm.component(c).hsd;
    CHECK(z.size() == size_t(hsd.channels()) * hz * wz && want.size() == size_t(hsd.channels()) * hl * wl);
    for (unsigned t : kThreads)
      for (Kernel k : {Kernel::kAuto, Kernel::kScalar}) {
        std::vector<int32_t> s(want.size(), -1);
        hsd.forward(z.data(), hz, wz, hl, wl, s.data(), t, k);
        CHECK_EQUAL_VEC(s, want, "hsd %s, %u threads, kernel %d", kComp[c], t, int(k));
      }
  }
}

// Mean path: z_hat -> psi (hyper_decoder), and psi + index + offsets + residual -> y_hat (reconstruct).
void test_mean(const Manifest& m, const LatentModel& lm) {
  const MeanPath& mp = lm.mean_path();
  const std::vector<int64_t>& size = m.value("mean.size");
  const int hz = int(size.at(0)), wz = int(size.at(1)), hl = int(size.at(2)), wl = int(size.at(3));
  for (int c = 0; c < 2; ++c) {
    const std::string p = std::string("mean.") + kComp[c];
    CHECK(mp.y_frac(c) == m.value(p + ".y_frac").at(0));
    const std::vector<int16_t> z = m.get<int16_t>(p + ".z", "int16");
    const std::vector<uint8_t> index = m.get<uint8_t>(p + ".index", "uint8");
    const std::vector<int32_t> offsets = m.get<int32_t>(p + ".offsets", "int32");
    const std::vector<int16_t> residual = m.get<int16_t>(p + ".residual", "int16");
    const std::vector<int16_t> psi_chw = m.get<int16_t>(p + ".psi", "int16");
    const std::vector<int16_t> want = m.get<int16_t>(p + ".y_hat", "int16");
    const Array& pa = m.array(p + ".psi", "int16");
    const int pc = int(pa.dims.at(0)), ph = int(pa.dims.at(1)), pw = int(pa.dims.at(2));
    const int C = lm.component(c).channels;
    CHECK(pc == 4 * C && ph == (hl + 1) / 2 && pw == (wl + 1) / 2 && offsets.size() == size_t(C));
    Tensor16 psi;  // the expected psi as HWC, the input of reconstruct
    psi.h = ph, psi.w = pw, psi.c = pc;
    psi.v.resize(psi_chw.size());
    for (int ch = 0; ch < pc; ++ch)
      for (int i = 0; i < ph; ++i)
        for (int j = 0; j < pw; ++j) psi.v[(size_t(i) * pw + j) * pc + ch] = psi_chw[(size_t(ch) * ph + i) * pw + j];
    for (unsigned t : kThreads) {
      const Tensor16 got = mp.hyper_decoder(c, z.data(), hz, wz, hl, wl, t);
      CHECK_MSG(got.h == ph && got.w == pw && got.c == pc, "psi %s: %dx%dx%d", kComp[c], got.h, got.w, got.c);
      CHECK_EQUAL_VEC(got.v, psi.v, "psi %s, %u threads", kComp[c], t);
      std::vector<int16_t> y_hat(want.size(), int16_t(-12345));
      mp.reconstruct(c, psi, index.data(), offsets.data(), hl, wl, residual.data(), nullptr, nullptr, nullptr,
                     y_hat.data(), t);
      CHECK_EQUAL_VEC(y_hat, want, "y_hat %s, %u threads", kComp[c], t);
    }
  }
}

// decode_latents on a real codestream: header, sizes, z, index, residual, y_hat (and log-sigma = HSD + gain,
// against the HSD vectors of the same picture); inspect = false keeps y_hat only; truncations are refused.
void test_latent(const Manifest& m, const LatentModel& lm) {
  const std::vector<uint8_t> stream = m.get<uint8_t>("latent.codestream", "uint8");
  const std::vector<int64_t>& header = m.value("latent.header");  // height width rate_point
  const std::vector<int64_t>& hsd_size = m.value("hsd.size");
  const uint64_t max_pixels = uint64_t(1) << 26;
  for (unsigned t : kThreads) {
    const PictureLatents got = decode_latents(lm, stream.data(), stream.size(), max_pixels, t, true);
    CHECK(got.header.height == header.at(0) && got.header.width == header.at(1) &&
          got.header.rate_point == header.at(2));
    for (int c = 0; c < 2; ++c) {
      const std::string p = std::string("latent.") + kComp[c];
      const ComponentLatents& L = got.comp[c];
      CHECK(L.channels == lm.component(c).channels);
      CHECK(L.size.z_h == hsd_size.at(0) && L.size.z_w == hsd_size.at(1) && L.size.h == hsd_size.at(2) &&
            L.size.w == hsd_size.at(3));
      CHECK_EQUAL_VEC(L.z, m.get<int16_t>(p + ".z", "int16"), "z %s, %u threads", kComp[c], t);
      CHECK_EQUAL_VEC(L.index, m.get<uint8_t>(p + ".index", "uint8"), "index %s, %u threads", kComp[c], t);
      CHECK_EQUAL_VEC(L.residual, m.get<int16_t>(p + ".residual", "int16"), "residual %s, %u threads", kComp[c], t);
      const std::vector<int16_t> q = m.get<int16_t>(p + ".y_hat", "int16");
      std::vector<float> want(q.size());
      const float scale = std::ldexp(1.0f, -lm.mean_path().y_frac(c));
      for (size_t i = 0; i < q.size(); ++i) want[i] = float(q[i]) * scale;
      CHECK_EQUAL_VEC(L.y_hat, want, "y_hat %s, %u threads", kComp[c], t);
      // log_sigma (inspect) = the HSD output of the same z_hat + the rate point's Q7 offsets
      const std::vector<int32_t> s = m.get<int32_t>(std::string("hsd.") + kComp[c] + ".s", "int32");
      const std::vector<int32_t> offsets = lm.offsets(c, uint32_t(header.at(2)), 0);
      std::vector<int32_t> want_sigma(s.size());
      const size_t plane = size_t(L.size.h) * L.size.w;
      for (size_t i = 0; i < s.size(); ++i) want_sigma[i] = s[i] + offsets[i / plane];
      CHECK_EQUAL_VEC(L.log_sigma, want_sigma, "log_sigma %s, %u threads", kComp[c], t);
    }
    const PictureLatents lean = decode_latents(lm, stream.data(), stream.size(), max_pixels, t, false);
    for (int c = 0; c < 2; ++c) {
      CHECK(lean.comp[c].y_hat == got.comp[c].y_hat);
      CHECK(lean.comp[c].z.empty() && lean.comp[c].index.empty() && lean.comp[c].residual.empty() &&
            lean.comp[c].log_sigma.empty());
    }
  }
  // every truncation is a stream error (the container's CRCs), never anything else
  size_t refused = 0;
  for (size_t n = 0; n < stream.size(); ++n) {
    const std::vector<uint8_t> cut(stream.begin(), stream.begin() + std::ptrdiff_t(n));
    const std::string r = outcome([&] { decode_latents(lm, cut.data(), cut.size(), max_pixels, 1, false); });
    refused += (r == "bitstream" || r == "limit");
  }
  CHECK_MSG(refused == stream.size(), "%zu of %zu truncations refused", refused, stream.size());
  CHECK(outcome([&] { decode_latents(lm, stream.data(), stream.size(), 1000, 1, false); }) == "limit");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s <vectors dir> <model.bin>\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1], model_path = argv[2];
  test_sha256();
  std::unique_ptr<Manifest> manifest;
  std::vector<uint8_t> model;
  try {
    manifest = std::make_unique<Manifest>(dir);
    model = read_file(model_path);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "test_vectors: %s\n", e.what());
    return 1;
  }
  const std::string sha = sha256_hex(model);
  if (g_failed == 0 && sha != manifest->model_sha256) {
    std::printf("SKIPPED: %s is not the model the vectors in %s were made for\n"
                "  model.bin sha256 %s (%zu bytes), vectors for %s (%llu bytes)\n"
                "  regenerate them: python tools/gen_ctest_vectors.py\n",
                model_path.c_str(), dir.c_str(), sha.c_str(), model.size(), manifest->model_sha256.c_str(),
                static_cast<unsigned long long>(manifest->model_size));
    return kSkipExitCode;
  }
  std::unique_ptr<ModelBlob> blob;
  std::unique_ptr<LatentModel> lm;
  const struct {
    const char* name;
    std::function<void()> fn;
  } suites[] = {
      {"blob", [&] { test_blob(*manifest, model); }},
      {"corrupt_models", [&] { test_corrupt(*manifest, model); }},
      {"latent_model", [&] {
         blob = std::make_unique<ModelBlob>(model);
         lm = std::make_unique<LatentModel>(*blob);
         CHECK(lm->rate_points() == manifest->value("meta.consts").at(3));
       }},
      {"hsd", [&] { test_hsd(*manifest, *lm); }},
      {"mean_path", [&] { test_mean(*manifest, *lm); }},
      {"decode_latents", [&] { test_latent(*manifest, *lm); }},
  };
  for (const auto& s : suites) {
    const int before = g_failed;
    try {
      if (!lm && (std::string(s.name) == "hsd" || std::string(s.name) == "mean_path" ||
                  std::string(s.name) == "decode_latents"))
        throw std::runtime_error("no LatentModel");
      s.fn();
    } catch (const std::exception& e) {
      ++g_failed;
      std::fprintf(stderr, "suite %s: uncaught exception: %s\n", s.name, e.what());
    }
    std::printf("%-18s %s\n", s.name, g_failed == before ? "ok" : "FAILED");
  }
  std::printf("%d checks passed, %d failed\n", g_passed, g_failed);
  return g_failed == 0 ? 0 : 1;
}
