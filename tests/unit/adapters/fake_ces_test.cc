#include "adapters/memory/fake_ces.h"

#include <gtest/gtest.h>

namespace pwrcell::adapters {
namespace {

domain::SystemMetadata Metadata(const std::string& system_id) {
  domain::SystemMetadata m;
  m.system_id = system_id;
  m.site_id = system_id + "-site";
  m.site_name = "Smith residence";
  m.timezone = "America/Denver";
  m.status_name = "SUCCESS";
  m.inverters = {{"000100073534", "XVT076A03", 7600, 0.0}};
  m.batteries = {{"000100080112", "PWRcell M6", 18000, 6700}};
  m.pv_links = {{"000100030a41", 2500}};
  m.site_meter_id = system_id + "-meter";
  return m;
}

TEST(FakeCes, GetMetadataReturnsWhatWasAdded) {
  FakeCes ces;
  ces.AddSystem(Metadata("sys-1"));
  auto metadata = ces.GetMetadata("sys-1");
  ASSERT_TRUE(metadata.ok());
  EXPECT_EQ(*metadata, Metadata("sys-1"));
}

TEST(FakeCes, GetMetadataOfUnknownSystemIsNotFound) {
  FakeCes ces;
  EXPECT_EQ(ces.GetMetadata("nope").status().code(), StatusCode::kNotFound);
}

TEST(FakeCes, AddSystemReplacesAnExistingOne) {
  FakeCes ces;
  ces.AddSystem(Metadata("sys-1"));
  domain::SystemMetadata changed = Metadata("sys-1");
  changed.batteries.push_back({"000100080113", "PWRcell M3", 9000, 3400});
  ces.AddSystem(changed);
  auto metadata = ces.GetMetadata("sys-1");
  ASSERT_TRUE(metadata.ok());
  EXPECT_EQ(metadata->batteries.size(), 2u);
}

TEST(FakeCes, GetStatusListsKnownInOrderAndUnknownInNotFound) {
  FakeCes ces;
  ces.AddSystem(Metadata("a"));
  ces.AddSystem(Metadata("b"));
  ces.SetStatus("b", "DISCONNECTED", FromUnixMillis(1'763'800'000'000));

  auto batch = ces.GetStatus({"b", "x", "a", "b"});
  ASSERT_TRUE(batch.ok());
  EXPECT_EQ(*batch,
            (domain::CesStatusBatch{
                {{"b", "DISCONNECTED", FromUnixMillis(1'763'800'000'000)}, {"a", "SUCCESS", std::nullopt}}, {"x"}}));
}

TEST(FakeCes, SetStatusShowsInMetadataToo) {
  FakeCes ces;
  ces.AddSystem(Metadata("a"));
  ces.SetStatus("a", "NEVER_CONNECTED");
  auto metadata = ces.GetMetadata("a");
  ASSERT_TRUE(metadata.ok());
  EXPECT_EQ(metadata->status_name, "NEVER_CONNECTED");
}

TEST(FakeCes, GetStatusOverTheBatchLimitIsInvalidArgument) {
  FakeCes ces;
  std::vector<std::string> ids;
  for (std::size_t i = 0; i < ports::kMaxStatusBatch; ++i) ids.push_back("sys-" + std::to_string(i));
  auto at_limit = ces.GetStatus(ids);
  ASSERT_TRUE(at_limit.ok());
  EXPECT_EQ(at_limit->not_found.size(), ports::kMaxStatusBatch);

  ids.push_back("one-too-many");
  EXPECT_EQ(ces.GetStatus(ids).status().code(), StatusCode::kInvalidArgument);
}

TEST(FakeCes, CallLogRecordsWhichSystemsWereAskedFor) {
  FakeCes ces;
  ces.AddSystem(Metadata("a"));
  (void)ces.GetMetadata("a");
  (void)ces.GetMetadata("zzz");
  (void)ces.GetStatus({"a", "b"});
  EXPECT_EQ(ces.Calls(), (std::vector<CesCall>{{std::string(FakeCes::kGetMetadata), {"a"}},
                                               {std::string(FakeCes::kGetMetadata), {"zzz"}},
                                               {std::string(FakeCes::kGetStatus), {"a", "b"}}}));
  EXPECT_EQ(ces.CallCount(FakeCes::kGetMetadata), 2);
  EXPECT_EQ(ces.CallCount(FakeCes::kGetStatus), 1);
}

TEST(FakeCes, FailNextFailsTheNextCallsOfThatOperationThenRecovers) {
  FakeCes ces;
  ces.AddSystem(Metadata("a"));
  ces.FailNext(FakeCes::kGetMetadata, UnavailableError("HTTP 502"), 2);

  EXPECT_EQ(ces.GetMetadata("a").status().code(), StatusCode::kUnavailable);
  EXPECT_TRUE(ces.GetStatus({"a"}).ok());  // other operations are unaffected
  EXPECT_EQ(ces.GetMetadata("a").status().code(), StatusCode::kUnavailable);
  EXPECT_TRUE(ces.GetMetadata("a").ok());
  // Failed calls are logged too: a retry test can count the attempts.
  EXPECT_EQ(ces.CallCount(FakeCes::kGetMetadata), 3);
}

TEST(FakeCes, FailNextOnStatusReturnsTheInjectedError) {
  FakeCes ces;
  ces.AddSystem(Metadata("a"));
  ces.FailNext(FakeCes::kGetStatus, ResourceExhaustedError("HTTP 429, Retry-After 1"));
  auto failed = ces.GetStatus({"a"});
  EXPECT_EQ(failed.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(failed.status().message(), "HTTP 429, Retry-After 1");
  EXPECT_TRUE(ces.GetStatus({"a"}).ok());
}

}  // namespace
}  // namespace pwrcell::adapters
