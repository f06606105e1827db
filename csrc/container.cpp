#include "container.hpp"

#include <cstdio>
#include <string>

#include "bitio.hpp"
#include "crc32.hpp"
#include "errors.hpp"

namespace jpegai {
namespace {

constexpr int32_t kMaxGainLog = (1 << 13) - 1;

// Checks the fields a writer and a reader both must agree on; `fail` raises the right error type.
template <class Fail, class FailLimit>
void check_header(const PictureHeader& h, uint64_t max_pixels, Fail fail, FailLimit fail_limit) {
  if (h.width < 1 || h.height < 1) fail("width/height", "picture size must be at least 1x1");
  if (h.width > kMaxDimension) fail_limit("width", "above 65535");
  if (h.height > kMaxDimension) fail_limit("height", "above 65535");
  if (uint64_t(h.width) * h.height > max_pixels)
    fail_limit("width*height", "picture has " + std::to_string(uint64_t(h.width) * h.height) +
                                   " pixels, limit is " + std::to_string(max_pixels));
  if (h.bit_depth != 8) fail("bit_depth", "only 8-bit output in format version 1");
  if (h.chroma_format > 1) fail("chroma_format", "must be 0 (4:0:0, monochrome) or 1 (4:2:0)");
  if (h.chroma_format == 0 && (h.coded_channels_chroma != 0 || h.gain_log_chroma != 0))
    fail("chroma_format", "a 4:0:0 (monochrome) header has coded_channels_chroma = 0 and gain_log_chroma = 0");
  if (h.colour_transform > 1) fail("colour_transform", "must be 0 (none) or 1 (BT.709)");
  if (h.operating_point > 2) fail("operating_point", "must be 0 (SOP), 1 (BOP) or 2 (HOP)");
  if (h.gain_log_luma < -kMaxGainLog || h.gain_log_luma > kMaxGainLog) fail("gain_log_luma", "|gain| >= 2^13");
  if (h.gain_log_chroma < -kMaxGainLog || h.gain_log_chroma > kMaxGainLog) fail("gain_log_chroma", "|gain| >= 2^13");
  if (h.latent_channels_luma < 1 || h.latent_channels_luma > kMaxLatentChannels)
    fail("latent_channels_luma", "must be in [1, 1024]");
  if (h.latent_channels_chroma < 1 || h.latent_channels_chroma > kMaxLatentChannels)
    fail("latent_channels_chroma", "must be in [1, 1024]");
  if (h.coded_channels_luma > h.latent_channels_luma) fail("coded_channels_luma", "above latent_channels_luma");
  if (h.coded_channels_chroma > h.latent_channels_chroma)
    fail("coded_channels_chroma", "above latent_channels_chroma");
  if (h.tile_size % 16 || h.tile_overlap % 16) fail("tile_size/tile_overlap", "must be multiples of 16");
  if (h.tile_size > 65536) fail("tile_size", "above 65536");
  if (h.tile_size == 0 ? h.tile_overlap != 0 : h.tile_overlap >= h.tile_size)
    fail("tile_overlap", "must be below tile_size (and 0 without tiling)");
}

void check_for_writing(const PictureHeader& h) {
  check_header(
      h, UINT64_MAX, [](const std::string& f, const std::string& m) { throw ArgumentError(f + ": " + m); },
      [](const std::string& f, const std::string& m) { throw LimitError(f, m); });
}

uint32_t read_bounded(BitReader& r, const char* field, uint32_t max) {
  const uint32_t v = r.get_ue(field);
  if (v > max) throw BitstreamError(field, "value " + std::to_string(v) + " above " + std::to_string(max));
  return v;
}

void put_segment(std::vector<uint8_t>& out, uint16_t marker, const std::vector<uint8_t>& payload) {
  const size_t begin = out.size();
  out.push_back(uint8_t(marker >> 8));
  out.push_back(uint8_t(marker));
  if (payload.size() >= UINT32_MAX) throw LimitError(marker_name(marker), "segment above 4 GiB");
  BitWriter size;
  size.put_ue(static_cast<uint32_t>(payload.size()));
  const std::vector<uint8_t> size_bytes = size.finish();
  out.insert(out.end(), size_bytes.begin(), size_bytes.end());
  out.insert(out.end(), payload.begin(), payload.end());
  const uint32_t crc = crc32(out.data() + begin, out.size() - begin);
  for (int s = 24; s >= 0; s -= 8) out.push_back(uint8_t(crc >> s));
}

}  // namespace

const char* marker_name(uint16_t marker) {
  switch (static_cast<Marker>(marker)) {
    case Marker::kPIH: return "PIH";
    case Marker::kSOZ: return "SOZ";
    case Marker::kSORP: return "SORP";
    case Marker::kSORS: return "SORS";
    case Marker::kUDI: return "UDI";
    case Marker::kMDS: return "MDS";
    case Marker::kDWS: return "DWS";
    default: return nullptr;
  }
}

std::vector<uint8_t> write_metadata(const std::vector<std::pair<uint8_t, std::vector<uint8_t>>>& entries) {
  if (entries.empty()) throw ArgumentError("MDS: no metadata entries (omit the segment instead)");
  std::vector<uint8_t> out;
  bool seen[4] = {};
  for (const auto& [type, bytes] : entries) {
    if (type < uint8_t(MetadataType::kExif) || type > uint8_t(MetadataType::kXmp))
      throw ArgumentError("MDS: unknown metadata type " + std::to_string(type) + " (1 EXIF, 2 ICC, 3 XMP)");
    if (seen[type]) throw ArgumentError("MDS: duplicate metadata type " + std::to_string(type));
    seen[type] = true;
    if (bytes.empty()) throw ArgumentError("MDS: empty metadata entry (omit it instead)");
    if (bytes.size() > kMaxMetadataEntry) throw ArgumentError("MDS: metadata entry above 16 MiB");
    out.push_back(type);
    for (int s = 24; s >= 0; s -= 8) out.push_back(uint8_t(bytes.size() >> s));
    out.insert(out.end(), bytes.begin(), bytes.end());
  }
  return out;
}

std::map<uint8_t, std::pair<size_t, size_t>> parse_metadata(const uint8_t* data, size_t size) {
  std::map<uint8_t, std::pair<size_t, size_t>> entries;
  if (size == 0) throw BitstreamError("MDS", "no metadata entries");
  size_t pos = 0;
  while (pos < size) {
    if (size - pos < 5) throw BitstreamError("MDS", "truncated entry header");
    const uint8_t type = data[pos];
    uint32_t length = 0;
    for (int i = 1; i <= 4; ++i) length = (length << 8) | data[pos + i];
    pos += 5;
    if (type < uint8_t(MetadataType::kExif) || type > uint8_t(MetadataType::kXmp))
      throw BitstreamError("MDS", "unknown metadata type " + std::to_string(type));
    if (length == 0) throw BitstreamError("MDS", "empty metadata entry");
    if (length > kMaxMetadataEntry)
      throw BitstreamError("MDS", "metadata entry of " + std::to_string(length) + " bytes, above 16 MiB");
    if (length > size - pos) throw BitstreamError("MDS", "metadata entry truncated");
    if (!entries.emplace(type, std::make_pair(pos, size_t(length))).second)
      throw BitstreamError("MDS", "duplicate metadata type " + std::to_string(type));
    pos += length;
  }
  return entries;
}

std::vector<uint8_t> write_picture_header(const PictureHeader& h) {
  check_for_writing(h);
  BitWriter w;
  w.put_bits(kFormatVersion, 8);
  w.put_ue(h.width - 1);
  w.put_ue(h.height - 1);
  w.put_bits(h.bit_depth - 8, 3);
  w.put_bits(h.chroma_format, 2);
  w.put_bits(h.colour_transform, 2);
  w.put_bits(h.model_id, 8);
  w.put_bits(h.operating_point, 2);
  w.put_bits(h.rate_point, 8);
  w.put_se(h.gain_log_luma);
  w.put_se(h.gain_log_chroma);
  w.put_ue(h.latent_channels_luma);
  w.put_ue(h.latent_channels_chroma);
  w.put_ue(h.coded_channels_luma);
  w.put_ue(h.coded_channels_chroma);
  w.put_ue(h.tile_size / 16);
  w.put_ue(h.tile_overlap / 16);
  return w.finish();
}

PictureHeader read_picture_header(const uint8_t* data, size_t size, uint64_t max_pixels) {
  BitReader r(data, size);
  const uint32_t version = r.get_bits(8, "format_version");
  if (version != kFormatVersion)
    throw BitstreamError("format_version", "version " + std::to_string(version) + " is not supported (1 is)");
  PictureHeader h;
  h.width = read_bounded(r, "width", kMaxDimension - 1) + 1;
  h.height = read_bounded(r, "height", kMaxDimension - 1) + 1;
  h.bit_depth = uint8_t(8 + r.get_bits(3, "bit_depth"));
  h.chroma_format = uint8_t(r.get_bits(2, "chroma_format"));
  h.colour_transform = uint8_t(r.get_bits(2, "colour_transform"));
  h.model_id = uint8_t(r.get_bits(8, "model_id"));
  h.operating_point = uint8_t(r.get_bits(2, "operating_point"));
  h.rate_point = uint8_t(r.get_bits(8, "rate_point"));
  h.gain_log_luma = r.get_se("gain_log_luma");
  h.gain_log_chroma = r.get_se("gain_log_chroma");
  h.latent_channels_luma = read_bounded(r, "latent_channels_luma", kMaxLatentChannels);
  h.latent_channels_chroma = read_bounded(r, "latent_channels_chroma", kMaxLatentChannels);
  h.coded_channels_luma = read_bounded(r, "coded_channels_luma", kMaxLatentChannels);
  h.coded_channels_chroma = read_bounded(r, "coded_channels_chroma", kMaxLatentChannels);
  h.tile_size = read_bounded(r, "tile_size", 4096) * 16;
  h.tile_overlap = read_bounded(r, "tile_overlap", 4096) * 16;
  r.align("PIH");
  if (r.bits_left() != 0) throw BitstreamError("PIH", "bytes after the last header field");
  check_header(
      h, max_pixels, [](const std::string& f, const std::string& m) { throw BitstreamError(f, m); },
      [](const std::string& f, const std::string& m) { throw LimitError(f, m); });
  return h;
}

std::vector<uint8_t> write_codestream(const PictureHeader& h,
                                      const std::vector<std::pair<uint16_t, std::vector<uint8_t>>>& segments) {
  std::vector<uint8_t> out = {0xFF, 0x80};
  put_segment(out, uint16_t(Marker::kPIH), write_picture_header(h));
  std::map<uint16_t, bool> seen;
  for (const auto& [marker, payload] : segments) {
    const char* name = marker_name(marker);
    if (!name || marker == uint16_t(Marker::kPIH))
    {
      char hex[8];
      std::snprintf(hex, sizeof hex, "%04X", unsigned(marker));
      throw ArgumentError(std::string("unknown segment marker 0x") + hex);
    }
    if (seen[marker]) throw ArgumentError(std::string("duplicate segment ") + name);
    seen[marker] = true;
    if (marker == uint16_t(Marker::kSORS) && h.chroma_format == 0)
      throw ArgumentError("SORS: a 4:0:0 (monochrome) stream has no chroma residual");
    if (marker == uint16_t(Marker::kMDS) || marker == uint16_t(Marker::kDWS)) {
      try {
        if (marker == uint16_t(Marker::kMDS))
          parse_metadata(payload.data(), payload.size());
        else
          parse_display_window(payload.data(), payload.size(), h);
      } catch (const BitstreamError& e) {
        throw ArgumentError(e.what());
      }
    }
    put_segment(out, marker, payload);
  }
  out.push_back(0xFF);
  out.push_back(0x81);
  return out;
}

std::vector<uint8_t> write_display_window(const PictureHeader& h, const DisplayWindow& w) {
  if (w.width < 1 || w.width > h.width || w.height < 1 || w.height > h.height)
    throw ArgumentError("DWS: the display window must lie inside the coded picture");
  BitWriter bw;
  bw.put_ue(w.width - 1);
  bw.put_ue(w.height - 1);
  return bw.finish();
}

DisplayWindow parse_display_window(const uint8_t* data, size_t size, const PictureHeader& h) {
  BitReader r(data, size);
  DisplayWindow w;
  w.width = read_bounded(r, "DWS", kMaxDimension - 1) + 1;
  w.height = read_bounded(r, "DWS", kMaxDimension - 1) + 1;
  r.align("DWS");
  if (r.bits_left() != 0) throw BitstreamError("DWS", "bytes after the display window");
  if (w.width > h.width || w.height > h.height)
    throw BitstreamError("DWS", "the display window is larger than the coded picture");
  return w;
}

Codestream parse_codestream(const uint8_t* data, size_t size, uint64_t max_pixels) {
  if (size < 2 || data[0] != 0xFF || data[1] != 0x80)
    throw BitstreamError("SOC", "not a jpegai_fast codestream (no start-of-codestream marker)");
  Codestream cs;
  size_t pos = 2;
  bool have_header = false;
  for (;;) {
    if (size - pos < 2) throw BitstreamError("EOC", "truncated: no end-of-codestream marker");
    const uint16_t marker = uint16_t((data[pos] << 8) | data[pos + 1]);
    const size_t segment_begin = pos;
    pos += 2;
    if (marker == uint16_t(Marker::kEOC)) {
      if (!have_header) throw BitstreamError("PIH", "missing picture header");
      if (pos != size) throw BitstreamError("EOC", "data after the end-of-codestream marker");
      return cs;
    }
    const char* name = marker_name(marker);
    if (!name) throw BitstreamError("marker", "unknown or misplaced marker at byte " + std::to_string(segment_begin));
    if (have_header == (marker == uint16_t(Marker::kPIH)))
      throw BitstreamError(name, have_header ? "duplicate picture header" : "the picture header must come first");
    BitReader size_reader(data + pos, size - pos);
    const uint32_t payload_size = size_reader.get_ue(name);
    size_reader.align(name);
    pos += size_reader.byte_position();
    if (uint64_t(payload_size) + 4 > size - pos) throw BitstreamError(name, "segment truncated");
    const size_t payload_at = pos;
    pos += payload_size;
    uint32_t stored = 0;
    for (int i = 0; i < 4; ++i) stored = (stored << 8) | data[pos + i];
    if (crc32(data + segment_begin, pos - segment_begin) != stored) throw BitstreamError(name, "CRC-32 mismatch");
    pos += 4;
    if (marker == uint16_t(Marker::kPIH)) {
      cs.header = read_picture_header(data + payload_at, payload_size, max_pixels);
      cs.window = {cs.header.width, cs.header.height};
      have_header = true;
      continue;
    }
    if (!cs.payloads.emplace(marker, std::make_pair(payload_at, size_t(payload_size))).second)
      throw BitstreamError(name, "duplicate segment");
    if (marker == uint16_t(Marker::kSORS) && cs.header.chroma_format == 0)
      throw BitstreamError(name, "a 4:0:0 (monochrome) stream has no chroma residual");
    if (marker == uint16_t(Marker::kDWS)) cs.window = parse_display_window(data + payload_at, payload_size, cs.header);
    if (marker == uint16_t(Marker::kMDS)) {
      for (const auto& [type, span] : parse_metadata(data + payload_at, payload_size))
        cs.metadata.emplace(type, std::make_pair(payload_at + span.first, span.second));
    }
  }
}

}  // namespace jpegai
