#pragma once

#include <cstddef>

namespace musafarm::coordinator {

// The dashboard's files, embedded at build time (web/embed.cmake turns
// coordinator/web/* into web_assets.cc): nothing is read from disk or fetched
// from elsewhere. index.html is served at "/", the others at "/<name>".
struct WebAsset {
  const char* path;
  const char* type;
  const unsigned char* data;
  size_t size;
};
extern const WebAsset kWebAssets[];
extern const size_t kWebAssetCount;

}  // namespace musafarm::coordinator
