// The CesApi contract, run on every backend (see ces_api_suite.h).
#include "api/ces_api_suite.h"

namespace pwrcell::conformance {
namespace {

constexpr std::string_view kGetMetadata = "GetMetadata";
constexpr std::string_view kGetStatus = "GetStatus";

domain::SystemMetadata Metadata(const std::string& system_id) {
  domain::SystemMetadata m;
  m.system_id = system_id;
  m.site_id = system_id + "-site";
  m.site_name = "Smith residence";
  m.timezone = "America/Denver";
  m.latitude = 39.74;
  m.longitude = -104.99;
  m.status_name = "SUCCESS";
  m.inverters = {{"000100073534", "XVT076A03", 7600, 0.0}};
  m.batteries = {{"000100080112", "PWRcell M6", 18000, 6700}};
  m.pv_links = {{"000100030A41", 2500}, {"000100030A42", 2500}};
  m.site_meter_id = system_id + "-meter";
  return m;
}

// lastCommunicationAt travels in whole seconds.
Timestamp Heard(int minutes) {
  return FromUnixMillis(1'763'806'200'000 + std::int64_t{minutes} * 60'000);
}

TEST_P(CesApiConformance, GetMetadataReturnsWhatCesKnows) {
  backend().AddSystem(Metadata("sys-1"));
  auto metadata = api().GetMetadata("sys-1");
  ASSERT_TRUE(metadata.ok()) << metadata.status().ToString();
  EXPECT_EQ(*metadata, Metadata("sys-1"));
}

TEST_P(CesApiConformance, MetadataWithoutOptionalPartsLeavesThemUnset) {
  domain::SystemMetadata bare;
  bare.system_id = "sys-bare";
  bare.status_name = "NEVER_CONNECTED";
  // An inverter whose inverterSetting CES did not report; AC-coupled PV on another.
  bare.inverters = {{"0001000A0001", "XVT114G03", 11400, std::nullopt}, {"0001000A0002", "XVT076A03", 7600, 3.8}};
  backend().AddSystem(bare);
  auto metadata = api().GetMetadata("sys-bare");
  ASSERT_TRUE(metadata.ok()) << metadata.status().ToString();
  EXPECT_EQ(*metadata, bare);
  EXPECT_EQ(metadata->site_meter_id, std::nullopt);
  EXPECT_EQ(metadata->latitude, std::nullopt);
  EXPECT_TRUE(metadata->batteries.empty());
  EXPECT_TRUE(metadata->pv_links.empty());
}

TEST_P(CesApiConformance, GetMetadataOfUnknownSystemIsNotFound) {
  backend().AddSystem(Metadata("sys-1"));
  EXPECT_EQ(api().GetMetadata("nope").status().code(), StatusCode::kNotFound);
}

TEST_P(CesApiConformance, AddSystemReplacesAnExistingOne) {
  backend().AddSystem(Metadata("sys-1"));
  domain::SystemMetadata changed = Metadata("sys-1");
  changed.batteries.push_back({"000100080113", "PWRcell M3", 9000, 3400});
  backend().AddSystem(changed);
  auto metadata = api().GetMetadata("sys-1");
  ASSERT_TRUE(metadata.ok()) << metadata.status().ToString();
  EXPECT_EQ(*metadata, changed);
}

TEST_P(CesApiConformance, GetStatusListsKnownInOrderAndUnknownInNotFound) {
  backend().AddSystem(Metadata("a"));
  backend().AddSystem(Metadata("b"), Heard(10));
  backend().SetStatus("b", "DISCONNECTED");

  auto batch = api().GetStatus({"b", "x", "a", "b", "x", "y"});
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  // A repeated id is answered once; a system CES never heard has no lastCommunicationAt.
  EXPECT_EQ(*batch,
            (domain::CesStatusBatch{{{"b", "DISCONNECTED", Heard(10)}, {"a", "SUCCESS", std::nullopt}}, {"x", "y"}}));
}

TEST_P(CesApiConformance, SetStatusShowsInMetadataToo) {
  backend().AddSystem(Metadata("a"), Heard(5));
  backend().SetStatus("a", "ERROR");
  auto metadata = api().GetMetadata("a");
  ASSERT_TRUE(metadata.ok()) << metadata.status().ToString();
  EXPECT_EQ(metadata->status_name, "ERROR");
  auto batch = api().GetStatus({"a"});
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  EXPECT_EQ(*batch, (domain::CesStatusBatch{{{"a", "ERROR", Heard(5)}}, {}}));
}

TEST_P(CesApiConformance, GetStatusTakesAtMostOneHundredIds) {
  std::vector<std::string> ids;
  for (std::size_t i = 0; i < ports::kMaxStatusBatch; ++i) ids.push_back("sys-" + std::to_string(i));
  auto at_limit = api().GetStatus(ids);
  ASSERT_TRUE(at_limit.ok()) << at_limit.status().ToString();
  EXPECT_TRUE(at_limit->statuses.empty());
  EXPECT_EQ(at_limit->not_found, ids);

  ids.push_back("one-too-many");
  EXPECT_EQ(api().GetStatus(ids).status().code(), StatusCode::kInvalidArgument);
}

TEST_P(CesApiConformance, EmptyBatchIsAnEmptyAnswer) {
  backend().AddSystem(Metadata("a"));
  auto batch = api().GetStatus({});
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  EXPECT_EQ(*batch, domain::CesStatusBatch{});
}

// An empty systemId names no system and cannot be put in a request: a caller's bug.
TEST_P(CesApiConformance, EmptySystemIdIsInvalidArgument) {
  backend().AddSystem(Metadata("a"));
  EXPECT_EQ(api().GetMetadata("").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(api().GetStatus({"a", ""}).status().code(), StatusCode::kInvalidArgument);
}

// The batch travels as systemIds=a,b (contracts/ces-api.md): an id holding ',' cannot be asked for
// in it; CES would read two ids and answer for systems nobody asked about.
TEST_P(CesApiConformance, SystemIdHoldingTheBatchSeparatorIsInvalidArgument) {
  backend().AddSystem(Metadata("a"));
  backend().AddSystem(Metadata("b"));
  EXPECT_EQ(api().GetStatus({"a,b"}).status().code(), StatusCode::kInvalidArgument);
}

TEST_P(CesApiConformance, RequestsNameTheSystemsAskedFor) {
  backend().AddSystem(Metadata("a"));
  (void)api().GetMetadata("a");
  (void)api().GetMetadata("zzz");
  (void)api().GetStatus({"a", "b"});
  EXPECT_EQ(backend().Requests(), (std::vector<CesRequest>{{std::string(kGetMetadata), {"a"}},
                                                           {std::string(kGetMetadata), {"zzz"}},
                                                           {std::string(kGetStatus), {"a", "b"}}}));
}

TEST_P(CesApiConformance, ServerErrorsAreUnavailableUntilTheServiceRecovers) {
  backend().AddSystem(Metadata("a"));
  backend().FailNext(kGetMetadata, Outage::kServerError, 2);
  EXPECT_EQ(api().GetMetadata("a").status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(api().GetMetadata("a").status().code(), StatusCode::kUnavailable);
  EXPECT_TRUE(api().GetMetadata("a").ok());
  // Refused requests reached the service too: a retry test can count the attempts.
  EXPECT_EQ(backend().Requests().size(), 3u);
}

TEST_P(CesApiConformance, RateLimitedIsResourceExhausted) {
  backend().AddSystem(Metadata("a"));
  backend().FailNext(kGetStatus, Outage::kRateLimited, 1);
  EXPECT_EQ(api().GetStatus({"a"}).status().code(), StatusCode::kResourceExhausted);
  auto batch = api().GetStatus({"a"});
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  EXPECT_EQ(batch->statuses.size(), 1u);
}

}  // namespace
}  // namespace pwrcell::conformance
