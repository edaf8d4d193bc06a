// How the CES client reads answers (ParseCesMetadataAnswer, ParseCesStatusAnswer, CesErrorText in
// adapters/ces/ces_client.h): the regression found by fuzz/ces_answer_fuzzer.cc (its input is kept
// in fuzz/corpus/ces_answer/) and the answers of contracts/ces-api.md.
#include <gtest/gtest.h>

#include <string>

#include "adapters/ces/ces_client.h"

namespace pwrcell::adapters {
namespace {

TEST(CesAnswers, TheContractsExamplesParse) {
  const auto metadata = ParseCesMetadataAnswer(R"({"systemId":"s1","siteId":"x","latitude":39.74,
      "inverters":[{"rcpn":"000100073534","model":"XVT076A03","ratedPowerW":7600,"inverterSetting":{"acPVPowerRating":0.0}}],
      "batteries":[{"rcpn":"000100080112","capacityWh":18000}],"pvLinks":[{"rcpn":"p"}],"siteMeter":{"id":"m"}})");
  ASSERT_TRUE(metadata.ok()) << metadata.status().ToString();
  EXPECT_EQ(metadata->system_id, "s1");
  ASSERT_EQ(metadata->inverters.size(), 1u);
  EXPECT_EQ(metadata->inverters[0].ac_pv_power_rating_kw, 0.0);
  EXPECT_EQ(metadata->batteries.at(0).capacity_wh, 18000);
  EXPECT_EQ(metadata->site_meter_id, "m");

  const auto statuses = ParseCesStatusAnswer(
      R"({"statuses":[{"systemId":"a","statusName":"SUCCESS","lastCommunicationAt":"2026-11-22T10:10:00Z"}],"notFound":["b"]})");
  ASSERT_TRUE(statuses.ok()) << statuses.status().ToString();
  ASSERT_EQ(statuses->statuses.size(), 1u);
  EXPECT_TRUE(statuses->statuses[0].last_communication_at.has_value());
  EXPECT_EQ(statuses->not_found, std::vector<std::string>{"b"});
}

TEST(CesAnswers, WrongShapesAreInternalErrors) {
  EXPECT_EQ(ParseCesMetadataAnswer("not json").status().message(), "CES metadata: the answer is not JSON");
  EXPECT_EQ(ParseCesMetadataAnswer(R"({"systemId":"s","inverters":{}})").status().message(),
            "unexpected CES metadata answer: field 'inverters' is not a list");
  EXPECT_EQ(ParseCesStatusAnswer(R"({})").status().message(), "unexpected CES status answer: missing field 'statuses'");
}

TEST(CesAnswers, DeeplyNestedListsDoNotOverflowTheStack) {
  // The fuzzer's finding: the lists were copied, and copying a JSON value recurses once per level
  // (50,000 nested arrays, 100 KB, overflowed the stack under ASan; 1,000,000 do without it).
  const std::string deep = std::string(1000000, '[') + std::string(1000000, ']');
  for (const char* list : {"inverters", "batteries", "pvLinks"}) {
    const auto metadata = ParseCesMetadataAnswer(R"({"systemId":"s",")" + std::string(list) + R"(":)" + deep + "}");
    EXPECT_EQ(metadata.status().code(), StatusCode::kInternal) << list;
  }
  const auto statuses = ParseCesStatusAnswer(R"({"statuses":[],"notFound":)" + deep + "}");
  EXPECT_EQ(statuses.status().message(), "unexpected CES status answer: an entry of 'notFound' is not a string");
}

TEST(CesAnswers, ErrorTextIsCodeAndMessageCut) {
  EXPECT_EQ(CesErrorText(R"({"error":{"code":"NOT_FOUND","message":"unknown systemId"}})"),
            "NOT_FOUND: unknown systemId");
  EXPECT_EQ(CesErrorText(R"({"error":"x"})"), "");
  EXPECT_EQ(CesErrorText("<html>"), "");
  EXPECT_EQ(CesErrorText(R"({"error":{"message":")" + std::string(400, 'm') + R"("}})"), std::string(300, 'm') + "...");
}

}  // namespace
}  // namespace pwrcell::adapters
