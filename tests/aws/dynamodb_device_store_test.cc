// What the DynamoDB device store does beyond the port's conformance suite, against moto: opening
// and creating the table, DynamoDB's item size, answers over several pages, the index and hot
// items as hints checked against the record, and the calls each method makes.
#include "adapters/aws/dynamodb_device_store.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/metrics.h"
#include "moto.h"

namespace pwrcell::adapters::aws {
namespace {

using aws_test::MotoOptions;
using aws_test::UniqueName;
using domain::DeviceRecord;

DeviceRecord Device(const std::string& remote_id, const std::string& rcpn = "") {
  DeviceRecord d;
  d.remote_id = remote_id;
  d.name = "system " + remote_id;
  if (!rcpn.empty()) d.inverter_rcpns = {rcpn};
  return d;
}

class DynamoDbDeviceStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    client_ = std::make_shared<AwsClient>(MotoOptions(), &metrics_);
    table_ = UniqueName("devices");
    const Status created = DynamoDbDeviceStore::CreateTable(*client_, table_);
    ASSERT_TRUE(created.ok()) << created.ToString();
    auto opened = DynamoDbDeviceStore::Open(client_, table_);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    store_ = std::move(opened).value();
  }
  void TearDown() override { (void)client_->Call(kDynamoDb, "DeleteTable", {{"TableName", table_}}); }

  DeviceRecord MustPut(const DeviceRecord& d) {
    auto stored = store_->Put(d);
    EXPECT_TRUE(stored.ok()) << stored.status().ToString();
    return stored.ok() ? *stored : DeviceRecord{};
  }

  // DynamoDB calls made so far (every attempt).
  double Calls() const { return metrics_.Sum("pwrcell_aws_requests_total"); }

  void PutRawItem(const nlohmann::json& item) {
    auto put = client_->Call(kDynamoDb, "PutItem", {{"TableName", table_}, {"Item", item}});
    ASSERT_TRUE(put.ok()) << put.status().ToString();
  }

  Metrics metrics_;
  std::shared_ptr<AwsClient> client_;
  std::string table_;
  std::unique_ptr<DynamoDbDeviceStore> store_;
};

TEST(DynamoDbDeviceStoreOpen, AMissingTableIsNotFoundWithItsNameAndTheAwsError) {
  auto client = std::make_shared<AwsClient>(MotoOptions());
  const std::string table = UniqueName("absent");
  auto opened = DynamoDbDeviceStore::Open(client, table);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), StatusCode::kNotFound);
  EXPECT_NE(opened.status().message().find(table), std::string::npos) << opened.status().message();
  EXPECT_NE(opened.status().message().find("ResourceNotFoundException"), std::string::npos)
      << opened.status().message();
}

TEST(DynamoDbDeviceStoreOpen, CreateTableTwiceIsFineAndAnotherSchemaIsRefused) {
  auto client = std::make_shared<AwsClient>(MotoOptions());
  const std::string table = UniqueName("devices");
  ASSERT_TRUE(DynamoDbDeviceStore::CreateTable(*client, table).ok());
  const Status again = DynamoDbDeviceStore::CreateTable(*client, table);
  EXPECT_TRUE(again.ok()) << again.ToString();

  const std::string other = UniqueName("other");
  ASSERT_TRUE(client
                  ->Call(kDynamoDb, "CreateTable",
                         {{"TableName", other},
                          {"AttributeDefinitions", {{{"AttributeName", "id"}, {"AttributeType", "S"}}}},
                          {"KeySchema", {{{"AttributeName", "id"}, {"KeyType", "HASH"}}}},
                          {"BillingMode", "PAY_PER_REQUEST"}})
                  .ok());
  const Status created = DynamoDbDeviceStore::CreateTable(*client, other);
  EXPECT_EQ(created.code(), StatusCode::kFailedPrecondition) << created.ToString();
  auto opened = DynamoDbDeviceStore::Open(client, other);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(opened.status().message().find(other), std::string::npos) << opened.status().message();
  for (const auto& name : {table, other}) (void)client->Call(kDynamoDb, "DeleteTable", {{"TableName", name}});
}

TEST_F(DynamoDbDeviceStoreTest, ARecordLargerThanAnItemIsInvalidAndNothingIsWritten) {
  DeviceRecord big = Device("sys-big", "inv-big");
  big.name = std::string(410 * 1024, 'x');
  auto refused = store_->Put(big);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("400 KB"), std::string::npos) << refused.status().message();
  auto got = store_->Get("sys-big");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, std::nullopt);
  auto found = store_->FindByInverterRcpn("inv-big");
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(*found, std::nullopt);

  // Just under the limit: stored whole, not truncated.
  big.name = std::string(380 * 1024, 'y');
  const DeviceRecord stored = MustPut(big);
  got = store_->Get("sys-big");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->name.size(), big.name.size());
  EXPECT_EQ(**got, stored);
}

TEST_F(DynamoDbDeviceStoreTest, AKeyThatIsNotUtf8IsInvalidNotACrash) {
  const std::string bad = "sys-\xff";
  auto put = store_->Put(Device(bad));
  EXPECT_EQ(put.status().code(), StatusCode::kInvalidArgument) << put.status().ToString();
  EXPECT_EQ(store_->Get(bad).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->FindKeyByInverterRcpn("inv-\xc3").status().code(), StatusCode::kInvalidArgument);
  // In the record's other fields it is replaced (domain/device_json.h), as on SQLite.
  DeviceRecord d = Device("sys-1");
  d.name = "caf\xe9";
  auto stored = store_->Put(d);
  ASSERT_TRUE(stored.ok()) << stored.status().ToString();
  auto got = store_->Get("sys-1");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->name, "caf\xef\xbf\xbd");
}

TEST_F(DynamoDbDeviceStoreTest, AnswersOverSeveralPagesAreReadWhole) {
  // 48 records of ~350 KB on one site: ~16.8 MB, more than one BatchGetItem answer (16 MB, the
  // rest comes back as UnprocessedKeys) and many Scan pages (1 MB each).
  std::vector<DeviceRecord> stored;
  for (int i = 0; i < 48; ++i) {
    DeviceRecord d = Device("sys-" + std::to_string(100 + i), "inv-" + std::to_string(i));
    d.site = domain::SiteRef{"site-1", "ces-site-1", "site"};
    d.name = std::string(350 * 1024, static_cast<char>('a' + i % 26));
    stored.push_back(MustPut(d));
  }
  const double before = Calls();
  auto site = store_->ListBySite("site-1");
  ASSERT_TRUE(site.ok()) << site.status().ToString();
  EXPECT_EQ(*site, stored);
  EXPECT_GE(Calls() - before, 3) << "one Query, then BatchGetItem again for the keys left unprocessed";
  auto all = store_->List();
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  EXPECT_EQ(*all, stored);
}

TEST_F(DynamoDbDeviceStoreTest, ASparseFilterReadsOnThroughManyIndexPages) {
  // One record in 50 simulated: the GSI query's Limit counts items before the filter, so a page of
  // two simulated records needs several queries (LastEvaluatedKey).
  std::vector<std::string> simulated;
  for (int i = 0; i < 250; ++i) {
    DeviceRecord d = Device("sys-" + std::to_string(1000 + i));
    d.is_simulated = i % 50 == 7;
    if (d.is_simulated) simulated.push_back(d.remote_id);
    MustPut(d);
  }
  std::vector<std::string> paged;
  std::string after;
  while (true) {
    auto keys = store_->ListKeys({true, std::nullopt}, after, 2);
    ASSERT_TRUE(keys.ok()) << keys.status().ToString();
    auto page = store_->ListPage({true, std::nullopt}, after, 2);
    ASSERT_TRUE(page.ok()) << page.status().ToString();
    ASSERT_EQ(keys->size(), page->size());
    for (std::size_t i = 0; i < keys->size(); ++i) {
      EXPECT_EQ((*keys)[i].remote_id, (*page)[i].remote_id);
      paged.push_back((*keys)[i].remote_id);
    }
    if (keys->size() < 2) break;
    after = keys->back().remote_id;
  }
  EXPECT_EQ(paged, simulated);
  auto count = store_->Count({true, std::nullopt});
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(*count, 5);
  count = store_->Count({});
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(*count, 250);
}

TEST_F(DynamoDbDeviceStoreTest, IndexItemsAndHotItemsLeftBehindAreIgnored) {
  const DeviceRecord b = MustPut(Device("sys-b", "inv-x"));
  // What a write that stopped half-way leaves: an index item naming a record that does not list
  // the key (sys-a sorts first), a site item of a record not on the site.
  PutRawItem({{"pk", {{"S", "r#inv-x"}}}, {"sk", {{"S", "sys-a"}}}, {"inc", {{"N", "1"}}}, {"ver", {{"N", "1"}}}});
  PutRawItem({{"pk", {{"S", "s#site-1"}}}, {"sk", {{"S", "sys-b"}}}, {"inc", {{"N", "1"}}}, {"ver", {{"N", "1"}}}});
  auto key = store_->FindKeyByInverterRcpn("inv-x");
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_EQ(*key, (ports::DeviceKey{"sys-b", 1}));
  auto found = store_->FindByInverterRcpn("inv-x");
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(*found, b);
  auto site = store_->ListBySite("site-1");
  ASSERT_TRUE(site.ok());
  EXPECT_TRUE(site->empty());

  // A hot item of an earlier incarnation (a Remove that stopped before deleting it): not this
  // record's, and the next RecordHeard replaces it.
  PutRawItem({{"pk", {{"S", "d#sys-b"}}},
              {"sk", {{"S", "hot"}}},
              {"inc", {{"N", "12345"}}},
              {"hv", {{"N", "7"}}},
              {"lh", {{"N", "999999"}}},
              {"rd", {{"S", "[[\"inv-x\",28688,2,999999]]"}}}});
  auto got = store_->Get("sys-b");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ(**got, b) << "no hot fields from another incarnation";
  auto changed = store_->RecordHeard("sys-b", FromUnixMillis(1'000), std::nullopt);
  ASSERT_TRUE(changed.ok()) << changed.status().ToString();
  EXPECT_TRUE(*changed);
  got = store_->Get("sys-b");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->last_heard_at, FromUnixMillis(1'000));
  EXPECT_TRUE((*got)->inverter_readings.empty());
}

TEST_F(DynamoDbDeviceStoreTest, RemoveLeavesNoItemBehind) {
  DeviceRecord d = Device("sys-1");
  d.inverter_rcpns = {"inv-1", "inv-2"};
  d.site = domain::SiteRef{"site-1", "ces-site-1", "site"};
  d = MustPut(d);
  ASSERT_TRUE(store_
                  ->RecordHeard("sys-1", FromUnixMillis(1'000),
                                domain::InverterReading{"inv-1", 2080, 2, FromUnixMillis(1'000)})
                  .ok());
  d.inverter_rcpns = {"inv-2", "inv-3"};
  d = MustPut(d);
  ASSERT_TRUE(store_->Remove("sys-1", d.version).ok());
  auto scanned = client_->Call(kDynamoDb, "Scan", {{"TableName", table_}, {"ConsistentRead", true}});
  ASSERT_TRUE(scanned.ok()) << scanned.status().ToString();
  EXPECT_EQ((*scanned)["Count"], 0) << (*scanned)["Items"].dump();
}

TEST_F(DynamoDbDeviceStoreTest, CallsPerMethodAreThoseTheHeaderStates) {
  DeviceRecord d = MustPut(Device("sys-1", "inv-1"));
  MustPut(Device("sys-2", "inv-2"));
  MustPut(Device("sys-3", "inv-3"));
  const auto calls = [&](const auto& operation) {
    const double before = Calls();
    operation();
    return static_cast<int>(Calls() - before);
  };
  EXPECT_EQ(calls([&] { ASSERT_TRUE(store_->Get("sys-1").ok()); }), 1);
  EXPECT_EQ(calls([&] { ASSERT_TRUE(store_->FindKeyByInverterRcpn("inv-1").ok()); }), 2);
  EXPECT_EQ(calls([&] { ASSERT_TRUE(store_->FindByInverterRcpn("inv-1").ok()); }), 2);
  EXPECT_EQ(calls([&] { ASSERT_TRUE(store_->RecordHeard("sys-1", FromUnixMillis(5'000), std::nullopt).ok()); }), 2)
      << "read, then one conditional write";
  EXPECT_EQ(calls([&] { ASSERT_TRUE(store_->RecordHeard("sys-1", FromUnixMillis(4'000), std::nullopt).ok()); }), 1)
      << "nothing changes: no write";
  // The record as read before the telemetry: its keys and hot fields unchanged, so one read and one
  // conditional write.
  d.name = "renamed";
  EXPECT_EQ(calls([&] { d = MustPut(d); }), 2);
  EXPECT_EQ(d.last_heard_at, FromUnixMillis(5'000));
  // A changed RCP number: one index item written, one deleted.
  d.inverter_rcpns = {"inv-9"};
  EXPECT_EQ(calls([&] { d = MustPut(d); }), 4);
  const std::vector<ports::HeardUpdate> batch{{"sys-1", FromUnixMillis(9'000), std::nullopt},
                                              {"sys-2", FromUnixMillis(9'000), std::nullopt},
                                              {"sys-1", FromUnixMillis(9'500), std::nullopt},
                                              {"sys-3", FromUnixMillis(9'000), std::nullopt},
                                              {"sys-gone", FromUnixMillis(9'000), std::nullopt}};
  EXPECT_EQ(calls([&] { ASSERT_TRUE(store_->RecordHeardBatch(batch).ok()); }), 4)
      << "one BatchGetItem, one write per device that changed";
  auto got = store_->Get("sys-1");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->last_heard_at, FromUnixMillis(9'500));
  EXPECT_EQ(calls([&] { ASSERT_TRUE(store_->Remove("sys-2", 1).ok()); }), 4)
      << "read, the conditional delete, then its hot item and its one index item";
}

}  // namespace
}  // namespace pwrcell::adapters::aws
