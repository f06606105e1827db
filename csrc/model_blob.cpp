#include "model_blob.hpp"

#include <cstring>

#include "crc32.hpp"
#include "errors.hpp"

namespace jpegai {
namespace {

constexpr char kMagic[8] = {'J', 'A', 'I', 'F', 'M', 'D', 'L', '\0'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHeaderSize = 24, kEntrySize = 88, kNameSize = 48, kMaxDims = 4, kAlign = 16;
constexpr uint32_t kMaxSections = 4096;

uint64_t le(const uint8_t* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

size_t item_size(BlobType t) {
  switch (t) {
    case BlobType::kInt8: case BlobType::kUInt8: return 1;
    case BlobType::kInt16: case BlobType::kUInt16: return 2;
    case BlobType::kInt32: case BlobType::kUInt32: case BlobType::kFloat32: return 4;
  }
  return 0;
}

[[noreturn]] void bad(const std::string& what) { throw ArgumentError("model.bin: " + what); }

}  // namespace

size_t BlobSection::count() const {
  size_t n = 1;
  for (uint32_t d : shape) n *= d;
  return n;
}

ModelBlob::ModelBlob(std::vector<uint8_t> bytes) : bytes_(std::move(bytes)) {
  const size_t size = bytes_.size();
  const uint8_t* b = bytes_.data();
  if (size < kHeaderSize + 4 || !std::equal(kMagic, kMagic + 8, reinterpret_cast<const char*>(b)))
    bad("not a jpegai_fast model file (magic)");
  if (le(b + 8, 4) != kVersion) bad("unsupported version " + std::to_string(le(b + 8, 4)));
  const uint64_t count = le(b + 12, 4);
  if (le(b + 16, 8) != size) bad("total_size does not match the file length (truncated?)");
  if (crc32(b, size - 4) != le(b + size - 4, 4)) bad("CRC-32 mismatch");
  if (count > kMaxSections || kHeaderSize + count * kEntrySize > size - 4) bad("section table out of range");
  for (uint64_t i = 0; i < count; ++i) {
    const uint8_t* e = b + kHeaderSize + i * kEntrySize;
    size_t len = 0;
    while (len < kNameSize && e[len]) ++len;
    const std::string name(reinterpret_cast<const char*>(e), len);
    BlobSection s;
    const uint64_t type = le(e + 48, 4), ndim = le(e + 52, 4);
    if (type < 1 || type > 7) bad(name + ": unknown dtype");
    s.type = BlobType(type);
    if (ndim > kMaxDims) bad(name + ": too many dimensions");
    uint64_t elems = 1;
    for (uint64_t d = 0; d < ndim; ++d) {
      const uint32_t dim = uint32_t(le(e + 56 + 4 * d, 4));
      s.shape.push_back(dim);
      elems *= dim;
      if (elems > size) bad(name + ": shape larger than the file");
    }
    const uint64_t offset = le(e + 72, 8), nbytes = le(e + 80, 8);  // name dtype ndim shape[4] offset nbytes
    s.offset = size_t(offset);
    s.nbytes = size_t(nbytes);
    if (nbytes != elems * item_size(s.type)) bad(name + ": nbytes does not match the shape");
    if (offset % kAlign || offset < kHeaderSize + count * kEntrySize || offset > size - 4 ||
        s.nbytes > size - 4 - offset)
      bad(name + ": data offset out of range");
    if (!sections_.emplace(name, std::move(s)).second) bad("duplicate section " + name);
  }
}

const BlobSection& ModelBlob::section(const std::string& name) const {
  const auto it = sections_.find(name);
  if (it == sections_.end()) bad("missing section " + name);
  return it->second;
}

const BlobSection& ModelBlob::typed(const std::string& name, BlobType type, const std::vector<uint32_t>& shape) const {
  const BlobSection& s = section(name);
  if (s.type != type) bad(name + ": unexpected dtype");
  if (!shape.empty() && s.shape != shape) bad(name + ": unexpected shape");
  return s;
}

std::vector<int8_t> ModelBlob::int8(const std::string& name, const std::vector<uint32_t>& shape) const {
  const BlobSection& s = typed(name, BlobType::kInt8, shape);
  const auto* p = bytes_.data() + s.offset;
  return std::vector<int8_t>(p, p + s.nbytes);
}

std::vector<uint16_t> ModelBlob::uint16(const std::string& name, const std::vector<uint32_t>& shape) const {
  const BlobSection& s = typed(name, BlobType::kUInt16, shape);
  std::vector<uint16_t> v(s.count());
  for (size_t i = 0; i < v.size(); ++i) v[i] = uint16_t(le(bytes_.data() + s.offset + 2 * i, 2));
  return v;
}

std::vector<int32_t> ModelBlob::int32(const std::string& name, const std::vector<uint32_t>& shape) const {
  const BlobSection& s = typed(name, BlobType::kInt32, shape);
  std::vector<int32_t> v(s.count());
  for (size_t i = 0; i < v.size(); ++i) v[i] = int32_t(uint32_t(le(bytes_.data() + s.offset + 4 * i, 4)));
  return v;
}

std::vector<float> ModelBlob::float32(const std::string& name, const std::vector<uint32_t>& shape) const {
  const BlobSection& s = typed(name, BlobType::kFloat32, shape);
  std::vector<float> v(s.count());
  for (size_t i = 0; i < v.size(); ++i) {
    const uint32_t bits = uint32_t(le(bytes_.data() + s.offset + 4 * i, 4));
    std::memcpy(&v[i], &bits, 4);
  }
  return v;
}

}  // namespace jpegai
