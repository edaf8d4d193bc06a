// What only FakeConcerto has: its id spelling and its test helpers (call counts, fault queues).
// Its behaviour as a ConcertoApi is the conformance suite's business
// (tests/conformance/api/concerto_api_suite.cc), run on this fake and on the client against
// concerto-sim alike.
#include "adapters/memory/fake_concerto.h"

#include <gtest/gtest.h>

namespace pwrcell::adapters {
namespace {

using domain::AssetType;
using domain::RemoteState;

constexpr const char* kAdapter = "pwrcell";

domain::CreateAssetRequest AssetRequest(AssetType type, const std::string& remote_id,
                                        std::optional<std::string> parent_id = std::nullopt,
                                        std::optional<std::string> site_id = std::nullopt) {
  domain::CreateAssetRequest r;
  r.remote_id = remote_id;
  r.name = "asset " + remote_id;
  r.asset_type = type;
  r.adapter_name = kAdapter;
  r.parent_id = std::move(parent_id);
  r.site_id = std::move(site_id);
  return r;
}

domain::CreateSiteRequest SiteRequest(const std::string& remote_id) {
  return domain::CreateSiteRequest{remote_id, "site " + remote_id, "America/Denver", 39.74, -104.99};
}

TEST(FakeConcerto, IdsAreSpelledByKindAndNeverReused) {
  FakeConcerto concerto;
  EXPECT_EQ(concerto.EnrollSystem("sys-1", "Smith", kAdapter), "asset-1");
  auto site = concerto.CreateSite(SiteRequest("s"));
  ASSERT_TRUE(site.ok());
  EXPECT_EQ(site->id, "site-1");
  // A failed create takes no id.
  EXPECT_EQ(concerto.CreateAsset(AssetRequest(AssetType::kInverter, "inv", "asset-99")).status().code(),
            StatusCode::kNotFound);
  auto inverter = concerto.CreateAsset(AssetRequest(AssetType::kInverter, "inv", "asset-1", "site-1"));
  ASSERT_TRUE(inverter.ok());
  EXPECT_EQ(inverter->id, "asset-2");
  // Removing an asset frees its remoteId, not its id.
  EXPECT_TRUE(concerto.RemoveAsset("asset-1"));
  EXPECT_EQ(concerto.EnrollSystem("sys-1", "Smith", kAdapter), "asset-3");
  // Prefixes keep sites and assets apart; anything else names nothing.
  EXPECT_FALSE(concerto.Asset("site-1").has_value());
  EXPECT_FALSE(concerto.Site("asset-2").has_value());
  EXPECT_FALSE(concerto.Asset("asset-02x").has_value());
  EXPECT_FALSE(concerto.Asset("2").has_value());
}

TEST(FakeConcerto, HelpersAreNotCountedAsCalls) {
  FakeConcerto concerto;
  const std::string system = concerto.EnrollSystem("sys-1", "Smith", kAdapter, true, 7.6);
  EXPECT_TRUE(concerto.Asset(system).has_value());
  EXPECT_EQ(concerto.Assets().size(), 1u);
  EXPECT_TRUE(concerto.RemoveAsset(system));
  EXPECT_FALSE(concerto.RemoveAsset(system));
  EXPECT_EQ(concerto.CallCount(FakeConcerto::kCreateAsset), 0);
  EXPECT_EQ(concerto.CallCount(FakeConcerto::kListAssets), 0);
}

TEST(FakeConcerto, CallCountIncludesCallsRefusedForTheirArguments) {
  FakeConcerto concerto;
  EXPECT_EQ(concerto.ListAssets(0, 10).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(concerto.ListAssets(1, domain::kMaxAssetsPerPage + 1).status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(concerto.ListAssets(1, 10).ok());
  EXPECT_EQ(concerto.CallCount(FakeConcerto::kListAssets), 3);
}

TEST(FakeConcerto, FailNextReturnsTheInjectedStatusInQueueOrderPerOperation) {
  FakeConcerto concerto;
  concerto.FailNext(FakeConcerto::kCreateSite, UnavailableError("HTTP 503"), 2);
  concerto.FailNext(FakeConcerto::kCreateSite, DeadlineExceededError("timeout before sending"));

  auto first = concerto.CreateSite(SiteRequest("s"));
  EXPECT_EQ(first.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(first.status().message(), "HTTP 503");
  EXPECT_TRUE(concerto.ListAssets(1, 10).ok());  // another operation is unaffected
  EXPECT_EQ(concerto.CreateSite(SiteRequest("s")).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(concerto.CreateSite(SiteRequest("s")).status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(concerto.Sites().empty());  // a failed-before call changes nothing
  EXPECT_TRUE(concerto.CreateSite(SiteRequest("s")).ok());
  EXPECT_EQ(concerto.CallCount(FakeConcerto::kCreateSite), 4);
}

TEST(FakeConcerto, LoseNextResponseAppliesEachOfTheNextCalls) {
  FakeConcerto concerto;
  const std::string system = concerto.EnrollSystem("sys-1", "Smith", kAdapter);
  concerto.LoseNextResponse(FakeConcerto::kUpdateAssetRemoteState, DeadlineExceededError("lost"), 2);
  EXPECT_EQ(concerto.UpdateAssetRemoteState({system, RemoteState::kOffline, "a"}).code(),
            StatusCode::kDeadlineExceeded);
  EXPECT_EQ(concerto.UpdateAssetRemoteState({system, RemoteState::kOnline, "b"}).code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(concerto.AssetRemoteStateHistory().size(), 2u);
  EXPECT_EQ(concerto.Asset(system)->remote_state, std::optional<RemoteState>(RemoteState::kOnline));
  EXPECT_TRUE(concerto.UpdateAssetRemoteState({system, RemoteState::kOnline, "c"}).ok());
}

TEST(FakeConcerto, LookupHelpersRenderLikeTheApi) {
  FakeConcerto concerto;
  const std::string system = concerto.EnrollSystem("sys-1", "Smith", kAdapter);
  auto site = concerto.CreateSite(SiteRequest("s"));
  ASSERT_TRUE(site.ok());
  auto inverter = concerto.CreateAsset(AssetRequest(AssetType::kInverter, "inv", system, site->id));
  ASSERT_TRUE(inverter.ok());
  auto listed = concerto.ListAssets(1, 10);
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(concerto.Assets(), listed->assets);
  EXPECT_EQ(concerto.Asset(inverter->id), std::optional<domain::ConcertoAsset>(*inverter));
  EXPECT_EQ(concerto.Site(site->id), std::optional<domain::ConcertoSite>(*site));
  EXPECT_EQ(concerto.Sites(), std::vector<domain::ConcertoSite>{*site});
}

}  // namespace
}  // namespace pwrcell::adapters
