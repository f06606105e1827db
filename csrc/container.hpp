// The codestream container: marker segments modelled on JPEG AI (ISO/IEC 6048-1), with a CRC-32 on
// every segment.  Spec: docs/bitstream.md.
//
//   SOC | PIH | segments (SOZ, SORP, SORS, UDI, MDS, DWS; each at most once, any order) | EOC
//   segment = marker (2 bytes, big-endian) | ue(v) payload size, zero-padded to a byte |
//             payload | CRC-32 of everything from the marker to the payload end (4 bytes, BE)
//
// Read me first:
//  * parse_codestream validates every size against the bytes that remain before using it, every
//    header field against its range, the picture size against max_pixels, and the CRCs; it never
//    reads outside the buffer.  Unknown markers, duplicates, a missing PIH/EOC and bytes after EOC
//    are errors (a decoder that skips what it does not understand decodes garbage silently).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <vector>

namespace jpegai {

enum class Marker : uint16_t {
  kSOC = 0xFF80,   // start of codestream (no payload)
  kEOC = 0xFF81,   // end of codestream (no payload)
  kPIH = 0xFF82,   // picture header
  kSOZ = 0xFF88,   // hyper-latent z, luma then chroma
  kSORP = 0xFF89,  // residual, primary component (luma)
  kSORS = 0xFF8A,  // residual, secondary component (chroma)
  kUDI = 0xFF8C,   // user-defined data (opaque metadata)
  kMDS = 0xFF8D,   // metadata entries: EXIF, ICC profile, XMP (never affect decoded samples)
  kDWS = 0xFF8E,   // display window: the decoder outputs the top-left part of the coded picture
};

constexpr uint8_t kFormatVersion = 1;
// 2^26 = 67 MP: every common camera (61 MP and below); one decode of that size stays near 2 GB (measured: 50 MP,
// 1.5 GB peak).  A 16384^2 stream (268 MP, ~7 GB, 150 s of CPU) is refused at the header.
constexpr uint64_t kDefaultMaxPixels = uint64_t{1} << 26;
constexpr uint32_t kMaxDimension = 65535;
constexpr uint32_t kMaxLatentChannels = 1024;

struct PictureHeader {
  uint32_t width = 0, height = 0;       // displayed picture size, 1..65535
  uint8_t bit_depth = 8;                // of the decoded samples; 8 only in version 1
  uint8_t chroma_format = 1;            // 0 = 4:0:0 (monochrome: no chroma coded), 1 = 4:2:0
  uint8_t colour_transform = 1;         // 0 = none (YUV out), 1 = BT.709 full range YCbCr -> RGB
  uint8_t model_id = 0;                 // which trained model
  uint8_t operating_point = 1;          // default synthesis: 0 SOP, 1 BOP, 2 HOP
  uint8_t rate_point = 0;               // the model's rate point (gain vector) the encoder used
  int32_t gain_log_luma = 0;            // Q7 log-domain gain displacement, |x| < 2^13
  int32_t gain_log_chroma = 0;
  uint32_t latent_channels_luma = 160, latent_channels_chroma = 96;
  uint32_t coded_channels_luma = 160, coded_channels_chroma = 96;  // rest: zero residual
  uint32_t tile_size = 0, tile_overlap = 0;  // synthesis tiling in luma samples, multiples of 16; 0 = none
};

// MDS entries (docs/bitstream.md §1.1): type u(8) | length u(32) big-endian | length bytes, until the payload
// ends.  At least one entry, each 1 .. kMaxMetadataEntry bytes, every type at most once, unknown types refused
// (so the payload is at most 3 * (5 + 16 MiB)).
enum class MetadataType : uint8_t { kExif = 1, kIcc = 2, kXmp = 3 };
constexpr uint32_t kMaxMetadataEntry = uint32_t{1} << 24;  // 16 MiB per entry

// DWS (docs/bitstream.md §1.2): ue(display_width - 1) ue(display_height - 1), zero bits to a byte.  The PIH
// sizes are the coded picture's; the decoder crops its output to the top-left display window (1 .. the coded
// size on each side).  Why: a picture only a few pixels high lies entirely on the codec's border; the encoder
// codes it reflected into a larger picture (measured: 1x64 at rate point 7, 30.1 dB alone, 42 dB reflected).
struct DisplayWindow {
  uint32_t width = 0, height = 0;
};
std::vector<uint8_t> write_display_window(const PictureHeader& h, const DisplayWindow& w);
// Validates a DWS payload against the header (BitstreamError, field "DWS").
DisplayWindow parse_display_window(const uint8_t* data, size_t size, const PictureHeader& h);

struct Codestream {
  PictureHeader header;
  DisplayWindow window;  // the header's size when the stream has no DWS
  // marker -> (offset, size) of the payload inside the parsed buffer (PIH, SOC, EOC excluded).
  std::map<uint16_t, std::pair<size_t, size_t>> payloads;
  // MDS entry type -> (offset, size) of its bytes inside the parsed buffer (validated; empty without MDS).
  std::map<uint8_t, std::pair<size_t, size_t>> metadata;
};

// The MDS payload of the given entries (ArgumentError on an unknown type, a duplicate, an empty or oversize entry).
std::vector<uint8_t> write_metadata(const std::vector<std::pair<uint8_t, std::vector<uint8_t>>>& entries);
// Validates an MDS payload (BitstreamError, field "MDS") -> type -> (offset, size) inside [data, data + size).
std::map<uint8_t, std::pair<size_t, size_t>> parse_metadata(const uint8_t* data, size_t size);

std::vector<uint8_t> write_picture_header(const PictureHeader& h);
PictureHeader read_picture_header(const uint8_t* data, size_t size, uint64_t max_pixels);

// Validates h (throws ArgumentError/LimitError) and writes a complete codestream.
std::vector<uint8_t> write_codestream(const PictureHeader& h,
                                      const std::vector<std::pair<uint16_t, std::vector<uint8_t>>>& segments);

Codestream parse_codestream(const uint8_t* data, size_t size, uint64_t max_pixels = kDefaultMaxPixels);

const char* marker_name(uint16_t marker);  // "SOZ", ... or nullptr if not a payload marker of ours

}  // namespace jpegai
