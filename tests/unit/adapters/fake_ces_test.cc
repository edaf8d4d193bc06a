// What only FakeCes has: its test helpers (per-operation fault queues, the call log). Its
// behaviour as a CesApi is the conformance suite's business (tests/conformance/api/ces_api_suite.cc),
// run on this fake and on the client against ces-sim alike.
#include "adapters/memory/fake_ces.h"

#include <gtest/gtest.h>

namespace pwrcell::adapters {
namespace {

domain::SystemMetadata Metadata(const std::string& system_id) {
  domain::SystemMetadata m;
  m.system_id = system_id;
  m.status_name = "SUCCESS";
  m.inverters = {{"000100073534", "XVT076A03", 7600, 0.0}};
  return m;
}

TEST(FakeCes, FaultsArePerOperationAndCarryTheInjectedStatus) {
  FakeCes ces;
  ces.AddSystem(Metadata("a"));
  ces.FailNext(FakeCes::kGetMetadata, UnavailableError("HTTP 502"), 2);
  ces.FailNext(FakeCes::kGetStatus, ResourceExhaustedError("HTTP 429, Retry-After 1"));

  EXPECT_EQ(ces.GetMetadata("a").status().code(), StatusCode::kUnavailable);
  auto limited = ces.GetStatus({"a"});
  EXPECT_EQ(limited.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(limited.status().message(), "HTTP 429, Retry-After 1");
  EXPECT_TRUE(ces.GetStatus({"a"}).ok());  // the status fault is used up; metadata's is not
  EXPECT_EQ(ces.GetMetadata("a").status().code(), StatusCode::kUnavailable);
  EXPECT_TRUE(ces.GetMetadata("a").ok());
}

TEST(FakeCes, CallLogCountsEveryCallIncludingRefusedOnes) {
  FakeCes ces;
  ces.AddSystem(Metadata("a"));
  (void)ces.GetMetadata("a");
  (void)ces.GetMetadata("zzz");
  std::vector<std::string> too_many(ports::kMaxStatusBatch + 1, "a");
  EXPECT_EQ(ces.GetStatus(too_many).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ces.Calls().size(), 3u);
  EXPECT_EQ(ces.Calls()[1], (CesCall{std::string(FakeCes::kGetMetadata), {"zzz"}}));
  EXPECT_EQ(ces.CallCount(FakeCes::kGetMetadata), 2);
  EXPECT_EQ(ces.CallCount(FakeCes::kGetStatus), 1);
}

TEST(FakeCes, SetStatusWithoutATimeForgetsTheLastCommunication) {
  FakeCes ces;
  ces.AddSystem(Metadata("a"));
  ces.SetStatus("a", "SUCCESS", FromUnixMillis(1'763'800'000'000));
  ces.SetStatus("a", "NEVER_CONNECTED");
  auto batch = ces.GetStatus({"a"});
  ASSERT_TRUE(batch.ok());
  EXPECT_EQ(*batch, (domain::CesStatusBatch{{{"a", "NEVER_CONNECTED", std::nullopt}}, {}}));
}

}  // namespace
}  // namespace pwrcell::adapters
