#include "processes/messages.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace pwrcell::processes {
namespace {

using domain::Metric;

ConcertoRequest RoundTrip(const ConcertoRequest& request) {
  const std::string body = EncodeConcertoRequest(request);
  auto decoded = DecodeConcertoRequest(body);
  EXPECT_TRUE(decoded.ok()) << body << ": " << decoded.status().ToString();
  return decoded.ok() ? *decoded : ConcertoRequest{};
}

CesRequest RoundTrip(const CesRequest& request) {
  const std::string body = EncodeCesRequest(request);
  auto decoded = DecodeCesRequest(body);
  EXPECT_TRUE(decoded.ok()) << body << ": " << decoded.status().ToString();
  return decoded.ok() ? *decoded : CesRequest{};
}

TEST(Messages, ListAssetsRoundTripsAndHasTheDocumentedBody) {
  const ConcertoRequest bare = ListAssetsRequest{};
  EXPECT_EQ(EncodeConcertoRequest(bare), R"({"op":"list_assets"})");
  EXPECT_EQ(RoundTrip(bare), bare);
  EXPECT_EQ(OperationName(bare), "list_assets");

  const ConcertoRequest leased = ListAssetsRequest{"host-1-42-7"};
  EXPECT_EQ(EncodeConcertoRequest(leased), R"({"lease":"host-1-42-7","op":"list_assets"})");
  EXPECT_EQ(RoundTrip(leased), leased);
  // A null lease is none.
  auto decoded = DecodeConcertoRequest(R"({"op":"list_assets","lease":null})");
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(*decoded, bare);
}

TEST(Messages, CommissionRoundTrips) {
  const ConcertoRequest request = CommissionRequest{"sys-42"};
  EXPECT_EQ(EncodeConcertoRequest(request), R"({"op":"commission","remote_id":"sys-42"})");
  EXPECT_EQ(RoundTrip(request), request);
  EXPECT_EQ(OperationName(request), "commission");
}

TEST(Messages, RemoteStateRoundTripsWithAndWithoutSiteAndLease) {
  const ConcertoRequest bare = RemoteStateRequest{"sys-1", std::nullopt, ""};
  EXPECT_EQ(EncodeConcertoRequest(bare), R"({"op":"update_remote_state","remote_id":"sys-1"})");
  EXPECT_EQ(RoundTrip(bare), bare);
  EXPECT_EQ(OperationName(bare), "update_remote_state");

  const ConcertoRequest full = RemoteStateRequest{"sys-1", "site-7", "host-1-42-8"};
  EXPECT_EQ(EncodeConcertoRequest(full),
            R"({"lease":"host-1-42-8","op":"update_remote_state","remote_id":"sys-1","site":{"id":"site-7"}})");
  EXPECT_EQ(RoundTrip(full), full);

  const ConcertoRequest site_only = RemoteStateRequest{"sys-1", "site-7", ""};
  EXPECT_EQ(RoundTrip(site_only), site_only);
}

TEST(Messages, AnOlderRemoteStateBodyWithTheSitesStateStillDecodesAndOnlyTheIdCounts) {
  for (const char* state : {"ONLINE", "OFFLINE", "ERROR", "SLEEPY"}) {
    const std::string body =
        std::string(R"({"op":"update_remote_state","remote_id":"sys-1","site":{"id":"site-7","state":")") + state +
        R"(","reason":"no system ONLINE; 1 of 2 in ERROR"}})";
    auto decoded = DecodeConcertoRequest(body);
    ASSERT_TRUE(decoded.ok()) << body << ": " << decoded.status().ToString();
    EXPECT_EQ(*decoded, (ConcertoRequest{RemoteStateRequest{"sys-1", "site-7", ""}})) << body;
  }
}

TEST(Messages, PushTelemetryRoundTripsPointsWithMillisecondTimestamps) {
  PushTelemetryRequest request;
  request.points = {
      {"asset-3", Metric::kRealPower, FromUnixMillis(1'763'800'000'123), 1.5},
      {"asset-3", Metric::kEnergyImported, FromUnixMillis(1'763'800'000'123), 12345.678},
      {"asset-1", Metric::kInverterState, FromUnixMillis(1'763'800'300'000), 2080},
      {"asset-9", Metric::kStateOfCharge, FromUnixMillis(1'763'800'300'000), -0.25},
  };
  const ConcertoRequest wrapped = request;
  const ConcertoRequest decoded = RoundTrip(wrapped);
  ASSERT_TRUE(std::holds_alternative<PushTelemetryRequest>(decoded));
  const auto& points = std::get<PushTelemetryRequest>(decoded).points;
  ASSERT_EQ(points.size(), 4U);
  EXPECT_EQ(points, request.points);
  EXPECT_EQ(ToUnixMillis(points[0].timestamp), 1'763'800'000'123);
  EXPECT_EQ(OperationName(wrapped), "push_telemetry");

  const ConcertoRequest empty = PushTelemetryRequest{};
  EXPECT_EQ(RoundTrip(empty), empty);
}

TEST(Messages, PushTelemetryGroupsConsecutivePointsOfOneAssetAndTimestamp) {
  PushTelemetryRequest request;
  request.points = {
      {"asset-3", Metric::kRealPower, FromUnixMillis(1'000), 1.5},
      {"asset-3", Metric::kVoltage, FromUnixMillis(1'000), 240},
      {"asset-3", Metric::kRealPower, FromUnixMillis(2'000), -0.5},  // another timestamp: a new entry
      {"as\"set\n", Metric::kStateOfCharge, FromUnixMillis(2'000), 57.25},
  };
  const std::string body = EncodeConcertoRequest(request);
  EXPECT_EQ(body,
            R"({"op":"push_telemetry","series":[{"a":"asset-3","t":1000,"m":["REAL_POWER","VOLTAGE"],"v":[1.5,240]},)"
            R"({"a":"asset-3","t":2000,"m":["REAL_POWER"],"v":[-0.5]},)"
            R"({"a":"as\"set\n","t":2000,"m":["STATE_OF_CHARGE"],"v":[57.25]}]})");
  auto decoded = DecodeConcertoRequest(body);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(std::get<PushTelemetryRequest>(*decoded).points, request.points);
}

TEST(Messages, PushTelemetryInTheOlderOnePointPerEntryShapeStillDecodes) {
  const std::string body = R"({"op":"push_telemetry","points":[{"a":"asset-3","m":"REAL_POWER","t":1000,"v":1.5},)"
                           R"({"a":"asset-9","m":"STATE_OF_CHARGE","t":2000,"v":57}]})";
  auto decoded = DecodeConcertoRequest(body);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  const std::vector<domain::TelemetryPoint> expected = {
      {"asset-3", Metric::kRealPower, FromUnixMillis(1'000), 1.5},
      {"asset-9", Metric::kStateOfCharge, FromUnixMillis(2'000), 57},
  };
  EXPECT_EQ(std::get<PushTelemetryRequest>(*decoded).points, expected);
}

TEST(Messages, CesRequestsRoundTrip) {
  const CesRequest metadata = MetadataRequest{"sys-1"};
  EXPECT_EQ(EncodeCesRequest(metadata), R"({"op":"get_metadata","remote_id":"sys-1"})");
  EXPECT_EQ(RoundTrip(metadata), metadata);
  EXPECT_EQ(OperationName(metadata), "get_metadata");

  const CesRequest status = StatusRequest{{"sys-1", "sys-2", "sys-3"}};
  EXPECT_EQ(EncodeCesRequest(status), R"({"op":"get_status","remote_ids":["sys-1","sys-2","sys-3"]})");
  EXPECT_EQ(RoundTrip(status), status);
  EXPECT_EQ(OperationName(status), "get_status");
}

TEST(Messages, MalformedConcertoMessagesAreInvalidArgumentAndNotRetryable) {
  const std::vector<std::string> bodies = {
      "",
      "not json",
      R"({"op":"list_assets")",  // truncated
      "[]",
      "42",
      "{}",
      R"({"op":5})",
      R"({"op":"frobnicate"})",
      R"({"op":"get_metadata","remote_id":"sys-1"})",  // a CES message on the Concerto queue
      R"({"op":"commission"})",
      R"({"op":"commission","remote_id":""})",
      R"({"op":"commission","remote_id":7})",
      R"({"op":"update_remote_state"})",
      R"({"op":"update_remote_state","remote_id":""})",
      R"({"op":"update_remote_state","remote_id":"s","site":"site-1"})",
      R"({"op":"update_remote_state","remote_id":"s","site":{}})",
      R"({"op":"update_remote_state","remote_id":"s","site":{"id":""}})",
      R"({"op":"update_remote_state","remote_id":"s","site":{"id":7}})",
      R"({"op":"update_remote_state","remote_id":"s","lease":7})",
      R"({"op":"list_assets","lease":["tok"]})",
      R"({"op":"push_telemetry"})",
      R"({"op":"push_telemetry","points":{}})",
      R"({"op":"push_telemetry","points":[{"a":"x","m":"REAL_POWER","t":1}]})",
      R"({"op":"push_telemetry","points":[{"a":"x","m":"REAL_POWER","t":"soon","v":1}]})",
      R"({"op":"push_telemetry","points":[{"a":"x","m":"WARP_FACTOR","t":1,"v":1}]})",
      R"({"op":"push_telemetry","points":[17]})",
      R"({"op":"push_telemetry","series":{}})",
      R"({"op":"push_telemetry","series":[17]})",
      R"({"op":"push_telemetry","series":[{"a":"x","t":1,"m":["REAL_POWER"],"v":[]}]})",
      R"({"op":"push_telemetry","series":[{"a":"x","t":1,"m":["WARP_FACTOR"],"v":[1]}]})",
      R"({"op":"push_telemetry","series":[{"a":"x","t":"soon","m":["REAL_POWER"],"v":[1]}]})",
      R"({"op":"push_telemetry","series":[{"a":"x","t":1,"m":["REAL_POWER"],"v":["1"]}]})",
      R"({"op":"push_telemetry","series":[{"t":1,"m":["REAL_POWER"],"v":[1]}]})",
  };
  for (const auto& body : bodies) {
    auto decoded = DecodeConcertoRequest(body);
    ASSERT_FALSE(decoded.ok()) << body;
    EXPECT_EQ(decoded.status().code(), StatusCode::kInvalidArgument) << body;
    EXPECT_FALSE(decoded.status().IsRetryable()) << body;
    EXPECT_FALSE(decoded.status().message().empty()) << body;
  }
}

TEST(Messages, MalformedCesMessagesAreInvalidArgumentAndNotRetryable) {
  const std::vector<std::string> bodies = {
      "",
      "\xff\xfe garbage",
      "null",
      R"({"op":"list_assets"})",  // a Concerto message on the CES queue
      R"({"op":"get_metadata"})",
      R"({"op":"get_metadata","remote_id":""})",
      R"({"op":"get_status"})",
      R"({"op":"get_status","remote_ids":[]})",
      R"({"op":"get_status","remote_ids":"sys-1"})",
      R"({"op":"get_status","remote_ids":["sys-1",2]})",
  };
  for (const auto& body : bodies) {
    auto decoded = DecodeCesRequest(body);
    ASSERT_FALSE(decoded.ok()) << body;
    EXPECT_EQ(decoded.status().code(), StatusCode::kInvalidArgument) << body;
    EXPECT_FALSE(decoded.status().IsRetryable()) << body;
  }
}

TEST(Messages, UnknownOperationNamesTheOperation) {
  auto decoded = DecodeConcertoRequest(R"({"op":"frobnicate"})");
  ASSERT_FALSE(decoded.ok());
  EXPECT_NE(decoded.status().message().find("frobnicate"), std::string::npos) << decoded.status().message();
}

}  // namespace
}  // namespace pwrcell::processes
