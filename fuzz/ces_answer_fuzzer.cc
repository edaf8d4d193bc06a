// Fuzzes how the CES client reads an HTTP answer's body (adapters/ces/ces_client.h): the
// metadata and status answers (ParseCesMetadataAnswer, ParseCesStatusAnswer) and the error text
// of a failed call (CesErrorText). A parser returns a value or kInternal, never throws or crashes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "adapters/ces/ces_client.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  const auto metadata = pwrcell::adapters::ParseCesMetadataAnswer(body);
  if (!metadata.ok() && metadata.status().code() != pwrcell::StatusCode::kInternal) std::abort();
  if (metadata.ok() && metadata->system_id.empty() && body.find("\"systemId\"") == std::string::npos) std::abort();
  const auto statuses = pwrcell::adapters::ParseCesStatusAnswer(body);
  if (!statuses.ok() && statuses.status().code() != pwrcell::StatusCode::kInternal) std::abort();
  if (pwrcell::adapters::CesErrorText(body).size() > 303) std::abort();
  return 0;
}
