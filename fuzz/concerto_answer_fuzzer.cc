// Fuzzes how the Concerto client reads an HTTP answer's body (adapters/concerto): the JSON parse,
// the GraphQL errors (ReadGraphqlErrors, StatusCodeForGraphqlError) and, when the answer has a
// `data` object, every operation's parser (concerto_documents.h), as ConcertoClient::Execute and
// its callers do. The parsers must return a value or kInternal, never throw or crash.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include <nlohmann/json.hpp>

#include "adapters/concerto/concerto_documents.h"

namespace {

namespace docs = pwrcell::adapters::concerto_documents;

void Expect(const pwrcell::Status& status) {
  if (!status.ok() && status.code() != pwrcell::StatusCode::kInternal) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  const nlohmann::json answer = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (answer.is_discarded()) return 0;
  if (const auto errors = docs::ReadGraphqlErrors(answer)) {
    if (errors->code.empty() || errors->message.size() > docs::kMaxErrorMessageBytes + 3) std::abort();
    (void)docs::StatusCodeForGraphqlError(errors->code);
  }
  if (!answer.is_object()) return 0;
  const auto found = answer.find("data");
  if (found == answer.end() || !found->is_object()) return 0;
  const nlohmann::json& d = *found;
  Expect(docs::ParseAuthenticate(d).status());
  Expect(docs::ParseListAssets(d).status());
  Expect(docs::ParseAssetByRemoteId(d).status());
  Expect(docs::ParseSiteByRemoteId(d).status());
  Expect(docs::ParseCreateSite(d).status());
  Expect(docs::ParseCreateAsset(d).status());
  Expect(docs::ParseUpdateAsset(d).status());
  Expect(docs::ParseUpdateAssetRemoteState(d));
  Expect(docs::ParseUpdateSiteRemoteState(d));
  Expect(docs::ParseIngestTelemetry(d).status());
  return 0;
}
