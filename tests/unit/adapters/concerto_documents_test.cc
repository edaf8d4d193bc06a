// How the Concerto client reads answers (adapters/concerto/concerto_documents.h): the regressions
// found by fuzz/concerto_answer_fuzzer.cc (the inputs are kept in fuzz/corpus/concerto_answer/)
// and the GraphQL errors' contract.
#include "adapters/concerto/concerto_documents.h"

#include <gtest/gtest.h>

#include <string>

namespace pwrcell::adapters::concerto_documents {
namespace {

using nlohmann::json;

// An asset whose children nest `depth` levels below it.
std::string NestedAsset(int depth) {
  std::string children;
  for (int i = 0; i < depth; ++i) children += R"({"id":1,"remoteId":"","assetType":"INVERTER","children":[)";
  children += R"({"id":1,"remoteId":"","assetType":"BATTERY"})";
  for (int i = 0; i < depth; ++i) children += "]}";
  return R"({"assetByRemoteId":{"id":"a","remoteId":"r","name":"n","assetType":"SYSTEM","children":[)" + children +
         "]}}";
}

TEST(ConcertoDocuments, ChildrenNestedAsDeepAsAskedParse) {
  const auto asset = ParseAssetByRemoteId(json::parse(NestedAsset(1)));
  ASSERT_TRUE(asset.ok()) << asset.status().ToString();
  ASSERT_TRUE(asset->has_value());
  ASSERT_EQ((*asset)->children.size(), 1u);
  ASSERT_EQ((*asset)->children[0].children.size(), 1u);
  EXPECT_EQ((*asset)->children[0].children[0].asset_type, domain::AssetType::kBattery);
}

TEST(ConcertoDocuments, ChildrenNestedDeeperThanAskedAreRefused) {
  const auto three = ParseAssetByRemoteId(json::parse(NestedAsset(2)));
  EXPECT_EQ(three.status().code(), StatusCode::kInternal);
  EXPECT_NE(three.status().message().find("children nested deeper than the 2 levels asked for"), std::string::npos)
      << three.status().message();
  // The fuzzer's finding: 100,000 levels (5.5 MB) overflowed the stack in ParseChild's recursion.
  const auto deep = ParseAssetByRemoteId(json::parse(NestedAsset(100000)));
  EXPECT_EQ(deep.status().code(), StatusCode::kInternal);
}

TEST(ConcertoDocuments, IntegersBeyondIntAreRefusedNotWrapped) {
  const auto wrapped = ParseListAssets(json::parse(R"({"allAssets":{"totalCount":4294967297,"data":{"assets":[]}}})"));
  EXPECT_EQ(wrapped.status().code(), StatusCode::kInternal);
  EXPECT_NE(wrapped.status().message().find("'totalCount' is out of range"), std::string::npos);
  const auto negative = ParseIngestTelemetry(json::parse(
      R"({"ingestTelemetry":{"accepted":0,"duplicates":0,"rejected":[{"index":-3000000000,"message":""}]}})"));
  EXPECT_EQ(negative.status().code(), StatusCode::kInternal);
  const auto fine =
      ParseIngestTelemetry(json::parse(R"({"ingestTelemetry":{"accepted":2147483647,"duplicates":0,"rejected":[]}})"));
  ASSERT_TRUE(fine.ok()) << fine.status().ToString();
  EXPECT_EQ(fine->accepted, 2147483647);
}

TEST(ConcertoDocuments, GraphqlErrorsTakeTheFirstCodeAndEveryMessageCut) {
  EXPECT_FALSE(ReadGraphqlErrors(json::parse(R"({"data":{}})")).has_value());
  EXPECT_FALSE(ReadGraphqlErrors(json::parse(R"({"errors":[]})")).has_value());
  EXPECT_FALSE(ReadGraphqlErrors(json::parse(R"([1])")).has_value());
  const auto errors = ReadGraphqlErrors(json::parse(
      R"({"errors":[7,{"message":"a"},{"message":"b","extensions":{"code":"NOT_FOUND"}},{"extensions":{"code":"X"}}]})"));
  ASSERT_TRUE(errors.has_value());
  EXPECT_EQ(errors->code, "NOT_FOUND");
  EXPECT_EQ(errors->message, "a; b");
  const auto unknown = ReadGraphqlErrors(json::parse(R"({"errors":[{"message":")" + std::string(700, 'x') + R"("}]})"));
  ASSERT_TRUE(unknown.has_value());
  EXPECT_EQ(unknown->code, "UNKNOWN");
  EXPECT_EQ(unknown->message, std::string(kMaxErrorMessageBytes, 'x') + "...");
}

}  // namespace
}  // namespace pwrcell::adapters::concerto_documents
