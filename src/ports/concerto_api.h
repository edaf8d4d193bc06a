// ConcertoApi port: the operations the adapter performs on its one Concerto instance
// (contracts/concerto.graphql, contracts/concerto-api.md). Authentication, token sharing,
// rate limiting and retries live inside the implementation, never in callers.
//
// Error mapping (extensions.code -> StatusCode): NOT_FOUND -> kNotFound,
// CONFLICT -> kAlreadyExists, BAD_USER_INPUT / GRAPHQL_VALIDATION_FAILED -> kInvalidArgument,
// UNAUTHENTICATED (after one re-authentication) -> kUnauthenticated, FORBIDDEN ->
// kPermissionDenied, RATE_LIMITED / HTTP 429 -> kResourceExhausted, INTERNAL_SERVER_ERROR /
// 5xx / transport -> kUnavailable, timeout -> kDeadlineExceeded.
// Implementations are thread-safe.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "domain/concerto_types.h"

namespace pwrcell::ports {

struct AssetPage {
  int total_count = 0;
  std::vector<domain::ConcertoAsset> assets;
};

class ConcertoApi {
 public:
  virtual ~ConcertoApi() = default;

  // allAssets { totalCount data(currentPage, perPage) }; pages start at 1, ordered by id.
  virtual Result<AssetPage> ListAssets(int page, int per_page) = 0;
  virtual Result<std::optional<domain::ConcertoAsset>> AssetByRemoteId(domain::AssetType type,
                                                                       const std::string& remote_id) = 0;
  virtual Result<std::optional<domain::ConcertoSite>> SiteByRemoteId(const std::string& remote_id) = 0;
  virtual Result<domain::ConcertoSite> CreateSite(const domain::CreateSiteRequest& request) = 0;
  virtual Result<domain::ConcertoAsset> CreateAsset(const domain::CreateAssetRequest& request) = 0;
  virtual Result<domain::ConcertoAsset> UpdateAsset(const domain::UpdateAssetRequest& request) = 0;
  virtual Status UpdateAssetRemoteState(const domain::RemoteStateUpdate& update) = 0;
  virtual Status UpdateSiteRemoteState(const domain::RemoteStateUpdate& update) = 0;
  // At most domain::kMaxPointsPerIngest points (more: kInvalidArgument, nothing stored).
  virtual Result<domain::IngestResult> IngestTelemetry(const std::vector<domain::TelemetryPoint>& points) = 0;
};

}  // namespace pwrcell::ports
