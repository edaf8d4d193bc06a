// The DeviceStore contract (ports/device_store.h), run on every backend in backends.cc.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <tuple>
#include <string>
#include <thread>
#include <vector>

#include "backends.h"
#include "domain/remote_state.h"

namespace pwrcell::conformance {
namespace {

using domain::DeviceRecord;

DeviceRecord Device(const std::string& remote_id, const std::string& rcpn = "") {
  DeviceRecord d;
  d.remote_id = remote_id;
  d.name = "system " + remote_id;
  if (!rcpn.empty()) d.inverter_rcpns = {rcpn};
  return d;
}

DeviceRecord OnSite(const std::string& remote_id, const std::string& site_id) {
  DeviceRecord d = Device(remote_id);
  d.site = domain::SiteRef{site_id, "ces-" + site_id, "site " + site_id};
  return d;
}

// Every field set, so that a backend that serializes records proves it loses nothing.
DeviceRecord FullDevice() {
  DeviceRecord d = Device("sys-full", "000100007010");
  d.concerto_asset_id = "asset-1";
  d.is_simulated = true;
  d.rated_power_kw = 7.6;
  d.site = domain::SiteRef{"site-1", "site-ces-1", "Smith \xc3\xa9"};
  d.inverter_rcpns = {"000100007010", "000100007011"};  // two inverters
  d.inverters = {{"asset-2", "000100007010"}, {"asset-7", "000100007011"}};
  d.batteries = {{"asset-3", "000100008010"}, {"asset-4", "000100008011"}};
  d.photovoltaics = {{"asset-5", "000100003010"}};
  d.site_meter = domain::AssetRef{"asset-6", "sys-full-meter"};
  d.coupling = domain::Coupling::kDc;
  domain::SystemMetadata m;
  m.system_id = "sys-full";
  m.site_id = "site-ces-1";
  m.timezone = "America/Denver";
  m.latitude = 39.7392;
  m.longitude = -104.9903;
  m.status_name = "SUCCESS";
  m.inverters = {{"000100007010", "XVT076A03", 7600, 7.6}, {"000100007011", "XVT076A03", 7600, 0.0}};
  m.batteries = {{"000100008010", "PWRcell M6", 17100, 3400}};
  m.pv_links = {{"000100003010", 2500.5}};
  m.site_meter_id = "meter-1";
  d.metadata = m;
  d.metadata_fetched_at = FromUnixMillis(1'763'800'000'123);
  d.commissioning = {domain::CommissioningState::kFailed, "Concerto said no"};
  d.last_heard_at = FromUnixMillis(1'763'800'300'000);
  d.inverter_readings = {{"000100007010", 2080, 2, FromUnixMillis(1'763'800'300'000)},
                         {"000100007011", 0x7010, 4, FromUnixMillis(1'763'800'000'000)}};
  d.system_status = "SUCCESS";
  d.system_status_at = FromUnixMillis(1'763'800'200'000);
  d.remote_state = domain::RemoteState::kError;
  d.remote_state_reason = "CES status FAULT";
  d.registered_at = FromUnixMillis(1'700'000'000'000);
  d.updated_at = FromUnixMillis(1'763'800'300'001);
  return d;
}

class DeviceStoreConformance : public ::testing::TestWithParam<BackendFactory> {
 protected:
  void SetUp() override {
    backend_ = GetParam().make();
    store_ = backend_->MakeStore();
    ASSERT_NE(store_, nullptr);
  }

  // Puts and expects success; returns the stored record.
  DeviceRecord MustPut(const DeviceRecord& d) {
    auto stored = store_->Put(d);
    EXPECT_TRUE(stored.ok()) << stored.status().ToString();
    return stored.ok() ? *stored : DeviceRecord{};
  }

  std::optional<DeviceRecord> MustGet(const std::string& remote_id) {
    auto got = store_->Get(remote_id);
    EXPECT_TRUE(got.ok()) << got.status().ToString();
    return got.ok() ? *got : std::nullopt;
  }

  std::optional<DeviceRecord> MustFind(const std::string& rcpn) {
    auto found = store_->FindByInverterRcpn(rcpn);
    EXPECT_TRUE(found.ok()) << found.status().ToString();
    return found.ok() ? *found : std::nullopt;
  }

  std::vector<DeviceRecord> MustListSite(const std::string& site_id) {
    auto listed = store_->ListBySite(site_id);
    EXPECT_TRUE(listed.ok()) << listed.status().ToString();
    return listed.ok() ? *listed : std::vector<DeviceRecord>{};
  }

  std::unique_ptr<Backend> backend_;
  std::shared_ptr<ports::DeviceStore> store_;
};

TEST_P(DeviceStoreConformance, CreateReturnsVersionOneAndGetReadsItBack) {
  const DeviceRecord stored = MustPut(Device("sys-1", "rcpn-1"));
  EXPECT_EQ(stored.version, 1);
  EXPECT_EQ(stored.remote_id, "sys-1");
  EXPECT_EQ(MustGet("sys-1"), stored);
}

TEST_P(DeviceStoreConformance, GetOfAnUnknownDeviceIsEmpty) {
  MustPut(Device("sys-1"));
  EXPECT_EQ(MustGet("sys-2"), std::nullopt);
}

TEST_P(DeviceStoreConformance, EveryFieldSurvivesTheStore) {
  const DeviceRecord original = FullDevice();
  const DeviceRecord stored = MustPut(original);
  DeviceRecord expected = original;
  expected.version = 1;
  EXPECT_EQ(stored, expected);
  EXPECT_EQ(MustGet("sys-full"), expected);
}

TEST_P(DeviceStoreConformance, ListIsOrderedByRemoteId) {
  for (const char* id : {"sys-c", "sys-a", "sys-B", "sys-b", "sys-a-10", "sys-a-9"}) MustPut(Device(id));
  auto all = store_->List();
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  std::vector<std::string> ids;
  for (const auto& d : *all) ids.push_back(d.remote_id);
  // Byte order: upper case before lower case, "-10" before "-9".
  EXPECT_EQ(ids, (std::vector<std::string>{"sys-B", "sys-a", "sys-a-10", "sys-a-9", "sys-b", "sys-c"}));
  for (const auto& d : *all) EXPECT_EQ(d.version, 1);
}

TEST_P(DeviceStoreConformance, ListOfAnEmptyStoreIsEmpty) {
  auto all = store_->List();
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  EXPECT_TRUE(all->empty());
}

TEST_P(DeviceStoreConformance, FindsByInverterRcpn) {
  MustPut(Device("sys-1", "rcpn-1"));
  const DeviceRecord two = MustPut(Device("sys-2", "rcpn-2"));
  EXPECT_EQ(MustFind("rcpn-2"), two);
  EXPECT_EQ(MustFind("rcpn-3"), std::nullopt);
}

TEST_P(DeviceStoreConformance, AfterTheRcpnChangesTheOldOneFindsNothing) {
  DeviceRecord d = MustPut(Device("sys-1", "rcpn-old"));
  d.inverter_rcpns = {"rcpn-new"};  // the inverter was replaced
  const DeviceRecord updated = MustPut(d);
  EXPECT_EQ(MustFind("rcpn-old"), std::nullopt);
  EXPECT_EQ(MustFind("rcpn-new"), updated);
}

TEST_P(DeviceStoreConformance, AnEmptyRcpnMatchesNothing) {
  MustPut(Device("sys-1", ""));  // metadata not fetched yet
  EXPECT_EQ(MustFind(""), std::nullopt);
}

TEST_P(DeviceStoreConformance, FindsARecordByAnyOfItsInverters) {
  DeviceRecord d = Device("sys-1");
  d.inverter_rcpns = {"rcpn-a", "rcpn-b", "rcpn-c"};
  const DeviceRecord stored = MustPut(d);
  MustPut(Device("sys-2", "rcpn-d"));
  EXPECT_EQ(MustFind("rcpn-a"), stored);
  EXPECT_EQ(MustFind("rcpn-b"), stored);
  EXPECT_EQ(MustFind("rcpn-c"), stored);
  EXPECT_EQ(MustFind("rcpn-e"), std::nullopt);
}

TEST_P(DeviceStoreConformance, FindByInverterRcpnFollowsTheRecordsInverters) {
  DeviceRecord d = Device("sys-1");
  d.inverter_rcpns = {"rcpn-a", "rcpn-b"};
  d = MustPut(d);
  d.inverter_rcpns = {"rcpn-b", "rcpn-c"};  // CES lists another set: one replaced, one kept
  d = MustPut(d);
  EXPECT_EQ(MustFind("rcpn-a"), std::nullopt);
  EXPECT_EQ(MustFind("rcpn-b"), d);
  EXPECT_EQ(MustFind("rcpn-c"), d);
  d.inverter_rcpns.clear();
  d = MustPut(d);
  EXPECT_EQ(MustFind("rcpn-b"), std::nullopt);
  EXPECT_EQ(MustFind("rcpn-c"), std::nullopt);
  d.inverter_rcpns = {"", "rcpn-d", "rcpn-d"};  // an empty one matches nothing; a repeat is one
  d = MustPut(d);
  EXPECT_EQ(MustFind(""), std::nullopt);
  EXPECT_EQ(MustFind("rcpn-d"), d);
  EXPECT_EQ(MustGet("sys-1")->inverter_rcpns, (std::vector<std::string>{"", "rcpn-d", "rcpn-d"}))
      << "the record keeps what it was given";
}

TEST_P(DeviceStoreConformance, ARemovedRecordIsFoundByNoneOfItsInverters) {
  DeviceRecord d = Device("sys-1");
  d.inverter_rcpns = {"rcpn-a", "rcpn-b"};
  d = MustPut(d);
  const DeviceRecord other = MustPut(Device("sys-2", "rcpn-c"));
  ASSERT_TRUE(store_->Remove("sys-1", d.version).ok());
  EXPECT_EQ(MustFind("rcpn-a"), std::nullopt);
  EXPECT_EQ(MustFind("rcpn-b"), std::nullopt);
  EXPECT_EQ(MustFind("rcpn-c"), other);
}

TEST_P(DeviceStoreConformance, AnRcpnSharedByTwoMultiInverterRecordsFindsTheSmallestRemoteId) {
  DeviceRecord b = Device("sys-b");
  b.inverter_rcpns = {"rcpn-x", "rcpn-y"};
  b = MustPut(b);
  DeviceRecord a = Device("sys-a");
  a.inverter_rcpns = {"rcpn-z", "rcpn-y"};
  a = MustPut(a);
  EXPECT_EQ(MustFind("rcpn-y"), a);
  EXPECT_EQ(MustFind("rcpn-x"), b);
  EXPECT_EQ(MustFind("rcpn-z"), a);
  ASSERT_TRUE(store_->Remove("sys-a", a.version).ok());
  EXPECT_EQ(MustFind("rcpn-y"), b);
}

TEST_P(DeviceStoreConformance, SharedRcpnFindsTheSmallestRemoteId) {
  MustPut(Device("sys-b", "rcpn-dup"));
  const DeviceRecord a = MustPut(Device("sys-a", "rcpn-dup"));
  MustPut(Device("sys-c", "rcpn-dup"));
  EXPECT_EQ(MustFind("rcpn-dup"), a);
}

TEST_P(DeviceStoreConformance, CreatingAnExistingDeviceIsAbortedAndChangesNothing) {
  const DeviceRecord first = MustPut(Device("sys-1", "rcpn-1"));
  DeviceRecord again = Device("sys-1", "rcpn-other");
  again.name = "impostor";
  auto result = store_->Put(again);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kAborted);
  EXPECT_EQ(MustGet("sys-1"), first);
  EXPECT_EQ(MustFind("rcpn-other"), std::nullopt);
}

TEST_P(DeviceStoreConformance, EachWriteIncrementsTheVersion) {
  DeviceRecord d = MustPut(Device("sys-1"));
  ASSERT_EQ(d.version, 1);
  for (int expected = 2; expected <= 4; ++expected) {
    d.name = "rename " + std::to_string(expected);
    d = MustPut(d);
    EXPECT_EQ(d.version, expected);
  }
  auto got = MustGet("sys-1");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->version, 4);
  EXPECT_EQ(got->name, "rename 4");
}

TEST_P(DeviceStoreConformance, AStaleUpdateIsAbortedAndChangesNothing) {
  const DeviceRecord v1 = MustPut(Device("sys-1", "rcpn-1"));
  DeviceRecord fresh = v1;
  fresh.name = "first writer";
  const DeviceRecord v2 = MustPut(fresh);
  DeviceRecord stale = v1;  // still at version 1
  stale.name = "second writer";
  stale.inverter_rcpns = {"rcpn-1", "rcpn-stale"};
  auto result = store_->Put(stale);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kAborted);
  EXPECT_EQ(MustGet("sys-1"), v2);
  EXPECT_EQ(MustFind("rcpn-stale"), std::nullopt);
  EXPECT_EQ(MustFind("rcpn-1"), v2);
}

TEST_P(DeviceStoreConformance, AnUpdateOfARemovedDeviceIsAborted) {
  const DeviceRecord d = MustPut(Device("sys-1"));
  ASSERT_TRUE(store_->Remove("sys-1", d.version).ok());
  auto result = store_->Put(d);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kAborted);
  EXPECT_EQ(MustGet("sys-1"), std::nullopt);
}

TEST_P(DeviceStoreConformance, AnUpdateAtAVersionAheadOfTheStoreIsAborted) {
  DeviceRecord d = MustPut(Device("sys-1"));
  d.version = 7;
  auto result = store_->Put(d);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kAborted);
  auto got = MustGet("sys-1");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->version, 1);
}

TEST_P(DeviceStoreConformance, RemoveAtTheCurrentVersionDeletes) {
  const DeviceRecord d = MustPut(Device("sys-1", "rcpn-1"));
  ASSERT_TRUE(store_->Remove("sys-1", d.version).ok());
  EXPECT_EQ(MustGet("sys-1"), std::nullopt);
  EXPECT_EQ(MustFind("rcpn-1"), std::nullopt);
  // The id is free again: a create starts over at version 1.
  EXPECT_EQ(MustPut(Device("sys-1")).version, 1);
}

TEST_P(DeviceStoreConformance, RemoveAtAStaleVersionIsAbortedAndKeepsTheRecord) {
  DeviceRecord d = MustPut(Device("sys-1"));
  d = MustPut(d);  // version 2
  const Status status = store_->Remove("sys-1", 1);
  EXPECT_EQ(status.code(), StatusCode::kAborted) << status.ToString();
  EXPECT_EQ(MustGet("sys-1"), d);
}

TEST_P(DeviceStoreConformance, RemoveOfAMissingDeviceIsNotFound) {
  MustPut(Device("sys-1"));
  const Status status = store_->Remove("sys-2", 1);
  EXPECT_EQ(status.code(), StatusCode::kNotFound) << status.ToString();
}

TEST_P(DeviceStoreConformance, ARecordWithoutRemoteIdIsInvalid) {
  auto result = store_->Put(Device(""));
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
}

TEST_P(DeviceStoreConformance, ConcurrentUpdatesAtTheSameVersionHaveExactlyOneWinner) {
  const DeviceRecord base = MustPut(Device("sys-1"));
  constexpr int kThreads = 8;
  std::atomic<int> ready{0};
  std::vector<Status> results(kThreads);
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      DeviceRecord mine = base;
      mine.name = "writer " + std::to_string(i);
      ++ready;
      while (ready.load() < kThreads) std::this_thread::yield();  // start together
      results[i] = store_->Put(mine).status();
    });
  }
  for (auto& t : threads) t.join();
  int winners = 0;
  int winner = -1;
  for (int i = 0; i < kThreads; ++i) {
    if (results[i].ok()) {
      ++winners;
      winner = i;
    } else {
      EXPECT_EQ(results[i].code(), StatusCode::kAborted) << results[i].ToString();
    }
  }
  ASSERT_EQ(winners, 1);
  auto got = MustGet("sys-1");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->version, 2);
  EXPECT_EQ(got->name, "writer " + std::to_string(winner));
}

TEST_P(DeviceStoreConformance, ListBySiteGivesTheSitesRecordsOrderedByRemoteId) {
  const DeviceRecord c = MustPut(OnSite("sys-c", "site-1"));
  const DeviceRecord a = MustPut(OnSite("sys-a", "site-1"));
  const DeviceRecord b = MustPut(OnSite("sys-b", "site-2"));
  MustPut(Device("sys-d", "rcpn-d"));  // no site yet
  const DeviceRecord a10 = MustPut(OnSite("sys-a-10", "site-1"));
  EXPECT_EQ(MustListSite("site-1"), (std::vector<DeviceRecord>{a, a10, c}));
  EXPECT_EQ(MustListSite("site-2"), (std::vector<DeviceRecord>{b}));
  EXPECT_TRUE(MustListSite("site-3").empty());
  EXPECT_TRUE(MustListSite("").empty()) << "a record without a site belongs to no site";
  EXPECT_TRUE(MustListSite("ces-site-1").empty()) << "the Concerto site id, not the site's remoteId";
}

TEST_P(DeviceStoreConformance, ListBySiteFollowsARecordMovedBetweenSites) {
  DeviceRecord d = MustPut(OnSite("sys-1", "site-1"));
  const DeviceRecord other = MustPut(OnSite("sys-2", "site-1"));
  d.site = domain::SiteRef{"site-2", "ces-site-2", "another site"};
  d = MustPut(d);
  EXPECT_EQ(MustListSite("site-1"), (std::vector<DeviceRecord>{other}));
  EXPECT_EQ(MustListSite("site-2"), (std::vector<DeviceRecord>{d}));
  // Taken off its site (the SYSTEM left it in Concerto): on no site at all.
  d.site.reset();
  d = MustPut(d);
  EXPECT_TRUE(MustListSite("site-2").empty());
  EXPECT_EQ(MustListSite("site-1"), (std::vector<DeviceRecord>{other}));
  // And onto one again.
  d.site = domain::SiteRef{"site-1", "ces-site-1", "site"};
  d = MustPut(d);
  EXPECT_EQ(MustListSite("site-1"), (std::vector<DeviceRecord>{d, other}));
}

TEST_P(DeviceStoreConformance, ListBySiteGivesTheCurrentVersionOfEachRecord) {
  DeviceRecord d = MustPut(OnSite("sys-1", "site-1"));
  d.remote_state = domain::RemoteState::kOnline;
  d = MustPut(d);
  const auto listed = MustListSite("site-1");
  ASSERT_EQ(listed.size(), 1U);
  EXPECT_EQ(listed.front(), d);
  EXPECT_EQ(listed.front().version, 2);
}

TEST_P(DeviceStoreConformance, ARemovedRecordLeavesItsSite) {
  const DeviceRecord d = MustPut(OnSite("sys-1", "site-1"));
  const DeviceRecord other = MustPut(OnSite("sys-2", "site-1"));
  ASSERT_TRUE(store_->Remove("sys-1", d.version).ok());
  EXPECT_EQ(MustListSite("site-1"), (std::vector<DeviceRecord>{other}));
  ASSERT_TRUE(store_->Remove("sys-2", other.version).ok());
  EXPECT_TRUE(MustListSite("site-1").empty());
}

TEST_P(DeviceStoreConformance, AFailedWriteMovesNoRecordBetweenSites) {
  const DeviceRecord v1 = MustPut(OnSite("sys-1", "site-1"));
  DeviceRecord fresh = v1;
  fresh.name = "first writer";
  const DeviceRecord v2 = MustPut(fresh);
  DeviceRecord stale = v1;  // still at version 1
  stale.site = domain::SiteRef{"site-stale", "ces-site-stale", "stale"};
  EXPECT_EQ(store_->Put(stale).status().code(), StatusCode::kAborted);
  EXPECT_EQ(store_->Put(OnSite("sys-1", "site-dup")).status().code(), StatusCode::kAborted);  // exists already
  EXPECT_EQ(store_->Remove("sys-1", 1).code(), StatusCode::kAborted);
  EXPECT_TRUE(MustListSite("site-stale").empty());
  EXPECT_TRUE(MustListSite("site-dup").empty());
  EXPECT_EQ(MustListSite("site-1"), (std::vector<DeviceRecord>{v2}));
}

TEST_P(DeviceStoreConformance, ARemovedRecordIsNotFoundByItsRcpnAndItsIdCanComeBackElsewhere) {
  const DeviceRecord d = MustPut(Device("sys-1", "rcpn-1"));
  ASSERT_TRUE(store_->Remove("sys-1", d.version).ok());
  EXPECT_EQ(MustFind("rcpn-1"), std::nullopt);
  DeviceRecord again = OnSite("sys-1", "site-9");
  again.inverter_rcpns = {"rcpn-9"};
  const DeviceRecord back = MustPut(again);
  EXPECT_EQ(MustFind("rcpn-1"), std::nullopt);
  EXPECT_EQ(MustFind("rcpn-9"), back);
  EXPECT_EQ(MustListSite("site-9"), (std::vector<DeviceRecord>{back}));
}

TEST_P(DeviceStoreConformance, ConcurrentCreatesOfOneDeviceHaveExactlyOneWinner) {
  constexpr int kThreads = 8;
  std::atomic<int> ready{0};
  std::atomic<int> winners{0};
  std::atomic<int> aborted{0};
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&] {
      ++ready;
      while (ready.load() < kThreads) std::this_thread::yield();
      auto result = store_->Put(Device("sys-1"));
      if (result.ok()) ++winners;
      if (result.status().code() == StatusCode::kAborted) ++aborted;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(winners.load(), 1);
  EXPECT_EQ(aborted.load(), kThreads - 1);
}

TEST_P(DeviceStoreConformance, ConcurrentWritersOnDifferentDevicesAllSucceed) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 25;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        auto created = store_->Put(Device("sys-" + std::to_string(t) + "-" + std::to_string(i)));
        if (!created.ok() || !store_->Put(*created).ok()) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  auto all = store_->List();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), static_cast<std::size_t>(kThreads * kPerThread));
  for (const auto& d : *all) EXPECT_EQ(d.version, 2) << d.remote_id;
}

// ---- RecordHeard, RecordHeardBatch, FindKeyByInverterRcpn: the hot fields --------------------

domain::InverterReading Reading(const std::string& rcpn, std::uint32_t state, std::int64_t at_ms, int mode = 2) {
  return domain::InverterReading{rcpn, state, mode, FromUnixMillis(at_ms)};
}

DeviceRecord TwoInverters(const std::string& remote_id) {
  DeviceRecord d = Device(remote_id);
  d.inverter_rcpns = {remote_id + "-inv-1", remote_id + "-inv-2"};
  return d;
}

TEST_P(DeviceStoreConformance, FindKeyByInverterRcpnGivesTheIdAndVersionOfTheRecordFindWouldGive) {
  MustPut(TwoInverters("sys-b"));
  DeviceRecord a = MustPut(Device("sys-a", "sys-b-inv-2"));  // shares an RCP number: the smallest id wins
  a = MustPut(a);
  auto key = store_->FindKeyByInverterRcpn("sys-b-inv-2");
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_EQ(*key, (ports::DeviceKey{"sys-a", 2}));
  key = store_->FindKeyByInverterRcpn("sys-b-inv-1");
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(*key, (ports::DeviceKey{"sys-b", 1}));
  for (const char* nothing : {"", "unknown"}) {
    key = store_->FindKeyByInverterRcpn(nothing);
    ASSERT_TRUE(key.ok());
    EXPECT_EQ(*key, std::nullopt) << nothing;
  }
}

TEST_P(DeviceStoreConformance, RecordHeardRaisesLastHeardAndKeepsTheVersion) {
  const DeviceRecord stored = MustPut(TwoInverters("sys-1"));
  auto changed = store_->RecordHeard("sys-1", FromUnixMillis(2'000), Reading("sys-1-inv-1", 2080, 2'000));
  ASSERT_TRUE(changed.ok()) << changed.status().ToString();
  EXPECT_TRUE(*changed);
  DeviceRecord expected = stored;
  expected.last_heard_at = FromUnixMillis(2'000);
  expected.inverter_readings = {Reading("sys-1-inv-1", 2080, 2'000)};
  EXPECT_EQ(MustGet("sys-1"), expected);
  EXPECT_EQ(MustFind("sys-1-inv-2"), expected);
  auto key = store_->FindKeyByInverterRcpn("sys-1-inv-1");
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(*key, (ports::DeviceKey{"sys-1", 1})) << "the version does not move";
}

TEST_P(DeviceStoreConformance, RecordHeardNeverLowersLastHeard) {
  DeviceRecord d = Device("sys-1");
  d.last_heard_at = FromUnixMillis(5'000);
  MustPut(d);
  auto changed = store_->RecordHeard("sys-1", FromUnixMillis(4'000), std::nullopt);
  ASSERT_TRUE(changed.ok()) << changed.status().ToString();
  EXPECT_FALSE(*changed);
  changed = store_->RecordHeard("sys-1", FromUnixMillis(5'000), std::nullopt);
  ASSERT_TRUE(changed.ok());
  EXPECT_FALSE(*changed) << "the same time changes nothing";
  EXPECT_EQ(MustGet("sys-1")->last_heard_at, FromUnixMillis(5'000));
  changed = store_->RecordHeard("sys-1", FromUnixMillis(6'000), std::nullopt);
  ASSERT_TRUE(changed.ok());
  EXPECT_TRUE(*changed);
  EXPECT_EQ(MustGet("sys-1")->last_heard_at, FromUnixMillis(6'000));
}

TEST_P(DeviceStoreConformance, RecordHeardIgnoresAnOlderReadingAndKeepsEachInvertersOwn) {
  MustPut(TwoInverters("sys-1"));
  ASSERT_TRUE(store_->RecordHeard("sys-1", FromUnixMillis(3'000), Reading("sys-1-inv-2", 0x7010, 3'000, 4)).ok());
  ASSERT_TRUE(store_->RecordHeard("sys-1", FromUnixMillis(3'000), Reading("sys-1-inv-1", 2080, 3'000)).ok());
  // A record delivered late, of the inverter in error: older, so ignored.
  auto changed = store_->RecordHeard("sys-1", FromUnixMillis(1'000), Reading("sys-1-inv-2", 2080, 1'000));
  ASSERT_TRUE(changed.ok()) << changed.status().ToString();
  EXPECT_FALSE(*changed);
  auto got = MustGet("sys-1");
  ASSERT_TRUE(got.has_value());
  // In the order of inverter_rcpns, whichever reported first.
  EXPECT_EQ(got->inverter_readings, (std::vector<domain::InverterReading>{Reading("sys-1-inv-1", 2080, 3'000),
                                                                          Reading("sys-1-inv-2", 0x7010, 3'000, 4)}));
  EXPECT_EQ(got->InverterState(), std::optional<std::uint32_t>(0x7010));
  EXPECT_EQ(got->last_heard_at, FromUnixMillis(3'000));
  // A newer one replaces it.
  changed = store_->RecordHeard("sys-1", FromUnixMillis(4'000), Reading("sys-1-inv-2", 2080, 4'000));
  ASSERT_TRUE(changed.ok());
  EXPECT_TRUE(*changed);
  EXPECT_EQ(MustGet("sys-1")->InverterState(), std::optional<std::uint32_t>(2080));
}

TEST_P(DeviceStoreConformance, RecordHeardOfAnAbsentRecordIsNotFoundAndCreatesNothing) {
  auto changed = store_->RecordHeard("sys-gone", FromUnixMillis(1'000), Reading("inv", 2080, 1'000));
  EXPECT_EQ(changed.status().code(), StatusCode::kNotFound) << changed.status().ToString();
  EXPECT_EQ(MustGet("sys-gone"), std::nullopt);
  // A record created later under that id starts without what was sent for it.
  const DeviceRecord created = MustPut(Device("sys-gone", "inv"));
  EXPECT_EQ(created.last_heard_at, std::nullopt);
  EXPECT_TRUE(created.inverter_readings.empty());
}

TEST_P(DeviceStoreConformance, AStalePutKeepsWhatRecordHeardWrote) {
  DeviceRecord read = TwoInverters("sys-1");
  read.last_heard_at = FromUnixMillis(1'000);
  read.inverter_readings = {Reading("sys-1-inv-1", 2080, 1'000)};
  read = MustPut(read);
  // Telemetry arrives after `read` was read, for both inverters.
  ASSERT_TRUE(store_->RecordHeard("sys-1", FromUnixMillis(2'000), Reading("sys-1-inv-1", 0x7010, 2'000)).ok());
  ASSERT_TRUE(store_->RecordHeard("sys-1", FromUnixMillis(2'000), Reading("sys-1-inv-2", 2080, 2'000)).ok());
  // The reader writes its change at the version it read: it still wins the version check.
  read.system_status = "SUCCESS";
  auto put = store_->Put(read);
  ASSERT_TRUE(put.ok()) << put.status().ToString();
  EXPECT_EQ(put->version, 2);
  DeviceRecord expected = read;
  expected.version = 2;
  expected.last_heard_at = FromUnixMillis(2'000);
  expected.inverter_readings = {Reading("sys-1-inv-1", 0x7010, 2'000), Reading("sys-1-inv-2", 2080, 2'000)};
  EXPECT_EQ(*put, expected);
  EXPECT_EQ(MustGet("sys-1"), expected);
}

TEST_P(DeviceStoreConformance, APutWithNewerHotFieldsRaisesThem) {
  MustPut(TwoInverters("sys-1"));
  ASSERT_TRUE(store_->RecordHeard("sys-1", FromUnixMillis(1'000), Reading("sys-1-inv-1", 2080, 1'000)).ok());
  DeviceRecord d = *MustGet("sys-1");
  d.RaiseLastHeard(FromUnixMillis(9'000));
  d.RecordInverterReading(Reading("sys-1-inv-1", 0x7001, 9'000));
  const DeviceRecord stored = MustPut(d);
  EXPECT_EQ(stored.last_heard_at, FromUnixMillis(9'000));
  EXPECT_EQ(stored.inverter_readings, (std::vector<domain::InverterReading>{Reading("sys-1-inv-1", 0x7001, 9'000)}));
  EXPECT_EQ(MustGet("sys-1"), stored);
}

TEST_P(DeviceStoreConformance, APutDropsTheReadingOfAnInverterTheRecordNoLongerLists) {
  MustPut(TwoInverters("sys-1"));
  ASSERT_TRUE(store_->RecordHeard("sys-1", FromUnixMillis(1'000), Reading("sys-1-inv-1", 2080, 1'000)).ok());
  ASSERT_TRUE(store_->RecordHeard("sys-1", FromUnixMillis(1'000), Reading("sys-1-inv-2", 0x7010, 1'000)).ok());
  DeviceRecord d = *MustGet("sys-1");
  ASSERT_TRUE(d.SetInverterRcpns({"sys-1-inv-1"}));  // CES no longer lists the second
  const DeviceRecord stored = MustPut(d);
  EXPECT_EQ(stored.inverter_readings, (std::vector<domain::InverterReading>{Reading("sys-1-inv-1", 2080, 1'000)}));
  EXPECT_EQ(MustGet("sys-1"), stored);
  EXPECT_EQ(MustGet("sys-1")->InverterState(), std::optional<std::uint32_t>(2080));
}

TEST_P(DeviceStoreConformance, RecordHeardBatchAppliesEveryUpdateAndSkipsAbsentRecords) {
  MustPut(Device("sys-1", "inv-1"));
  MustPut(OnSite("sys-2", "site-1"));
  const std::vector<ports::HeardUpdate> updates{
      {"sys-1", FromUnixMillis(1'000), Reading("inv-1", 2080, 1'000)},
      {"sys-gone", FromUnixMillis(1'000), std::nullopt},
      {"sys-2", FromUnixMillis(2'000), std::nullopt},
      {"sys-1", FromUnixMillis(3'000), Reading("inv-1", 0x7010, 3'000)},
      {"sys-1", FromUnixMillis(2'500), Reading("inv-1", 2080, 2'500)},  // late: ignored
  };
  const Status status = store_->RecordHeardBatch(updates);
  ASSERT_TRUE(status.ok()) << status.ToString();
  auto one = MustFind("inv-1");
  ASSERT_TRUE(one.has_value());
  EXPECT_EQ(one->version, 1);
  EXPECT_EQ(one->last_heard_at, FromUnixMillis(3'000));
  EXPECT_EQ(one->inverter_readings, (std::vector<domain::InverterReading>{Reading("inv-1", 0x7010, 3'000)}));
  const auto site = MustListSite("site-1");
  ASSERT_EQ(site.size(), 1U);
  EXPECT_EQ(site.front().last_heard_at, FromUnixMillis(2'000));
  EXPECT_EQ(site.front().version, 1);
  EXPECT_EQ(MustGet("sys-gone"), std::nullopt);
  auto all = store_->List();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2U);
  EXPECT_EQ(all->front(), *one);
  EXPECT_TRUE(store_->RecordHeardBatch({}).ok());
}

TEST_P(DeviceStoreConformance, RemoveForgetsTheHotFields) {
  const DeviceRecord stored = MustPut(Device("sys-1", "inv-1"));
  ASSERT_TRUE(store_->RecordHeard("sys-1", FromUnixMillis(1'000), Reading("inv-1", 2080, 1'000)).ok());
  ASSERT_TRUE(store_->Remove("sys-1", stored.version).ok());
  const DeviceRecord again = MustPut(Device("sys-1", "inv-1"));
  EXPECT_EQ(again.last_heard_at, std::nullopt);
  EXPECT_TRUE(again.inverter_readings.empty());
  EXPECT_EQ(MustGet("sys-1"), again);
}

TEST_P(DeviceStoreConformance, ConcurrentRecordHeardAndPutLoseNothing) {
  MustPut(Device("sys-1", "inv-1"));
  constexpr int kBeats = 200;
  std::thread telemetry([&] {
    for (int i = 1; i <= kBeats; ++i) {
      EXPECT_TRUE(store_->RecordHeard("sys-1", FromUnixMillis(i * 1'000), Reading("inv-1", 2080, i * 1'000)).ok());
    }
  });
  int writes = 0;
  while (writes < 50) {
    auto current = store_->Get("sys-1");
    ASSERT_TRUE(current.ok() && current->has_value());
    DeviceRecord next = **current;
    next.name = "write " + std::to_string(writes);
    if (store_->Put(next).ok()) ++writes;
  }
  telemetry.join();
  auto last = MustGet("sys-1");
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(last->version, 51);
  EXPECT_EQ(last->last_heard_at, FromUnixMillis(kBeats * 1'000));
  EXPECT_EQ(last->inverter_readings, (std::vector<domain::InverterReading>{Reading("inv-1", 2080, kBeats * 1'000)}));
}

// ---- Fleet-wide reads: ListPage, ListKeys, Count, Tally, ListUnsettled -------------------------

TEST_P(DeviceStoreConformance, PagesVisitEveryMatchingRecordOnceInOrder) {
  for (int i = 0; i < 23; ++i) {
    DeviceRecord d = Device("sys-" + std::to_string(100 + i), "inv-" + std::to_string(i));
    d.is_simulated = i % 3 == 0;
    if (i % 2 == 0) d.remote_state = domain::RemoteState::kOnline;
    d = MustPut(d);
    if (i == 4) MustPut(d);  // version 2
  }
  for (const auto& filter : {ports::DeviceFilter{}, ports::DeviceFilter{true, std::nullopt},
                             ports::DeviceFilter{false, domain::RemoteState::kOnline},
                             ports::DeviceFilter{std::nullopt, domain::RemoteState::kError}}) {
    std::vector<std::string> expected;
    auto all = store_->List();
    ASSERT_TRUE(all.ok());
    for (const auto& d : *all) {
      if (filter.is_simulated && d.is_simulated != *filter.is_simulated) continue;
      if (filter.remote_state && d.remote_state != filter.remote_state) continue;
      expected.push_back(d.remote_id);
    }
    std::vector<std::string> paged, keyed;
    std::string after;
    while (true) {
      auto page = store_->ListPage(filter, after, 4);
      ASSERT_TRUE(page.ok()) << page.status().ToString();
      auto keys = store_->ListKeys(filter, after, 4);
      ASSERT_TRUE(keys.ok()) << keys.status().ToString();
      ASSERT_EQ(keys->size(), page->size());
      for (std::size_t k = 0; k < page->size(); ++k) {
        EXPECT_EQ((*keys)[k], (ports::DeviceKey{(*page)[k].remote_id, (*page)[k].version}));
        EXPECT_EQ((*page)[k], MustGet((*page)[k].remote_id));
        paged.push_back((*page)[k].remote_id);
      }
      if (page->size() < 4) break;
      after = page->back().remote_id;
    }
    EXPECT_EQ(paged, expected);
    auto count = store_->Count(filter);
    ASSERT_TRUE(count.ok()) << count.status().ToString();
    EXPECT_EQ(*count, static_cast<std::int64_t>(expected.size()));
  }
  auto key = store_->ListKeys({}, "sys-103", 1);
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(*key, (std::vector<ports::DeviceKey>{{"sys-104", 2}}));
  auto none = store_->ListPage({}, "sys-122", 10);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  none = store_->ListPage({}, "", 0);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST_P(DeviceStoreConformance, TallyCountsEachKindStateAndCommissioningState) {
  auto put = [&](const std::string& id, bool simulated, std::optional<domain::RemoteState> state,
                 domain::CommissioningState commissioning) {
    DeviceRecord d = Device(id);
    d.is_simulated = simulated;
    d.remote_state = state;
    d.commissioning.state = commissioning;
    MustPut(d);
  };
  put("a", false, domain::RemoteState::kOnline, domain::CommissioningState::kDone);
  put("b", false, domain::RemoteState::kOnline, domain::CommissioningState::kDone);
  put("c", false, std::nullopt, domain::CommissioningState::kNotRequested);
  put("d", true, domain::RemoteState::kError, domain::CommissioningState::kDone);
  put("e", false, domain::RemoteState::kOnline, domain::CommissioningState::kFailed);
  auto tally = store_->Tally();
  ASSERT_TRUE(tally.ok()) << tally.status().ToString();
  std::sort(tally->begin(), tally->end(), [](const ports::DeviceTally& x, const ports::DeviceTally& y) {
    return std::tie(x.is_simulated, x.remote_state, x.commissioning) <
           std::tie(y.is_simulated, y.remote_state, y.commissioning);
  });
  using domain::CommissioningState;
  using domain::RemoteState;
  const std::vector<ports::DeviceTally> expected{
      {false, std::nullopt, CommissioningState::kNotRequested, 1},
      {false, RemoteState::kOnline, CommissioningState::kDone, 2},
      {false, RemoteState::kOnline, CommissioningState::kFailed, 1},
      {true, RemoteState::kError, CommissioningState::kDone, 1},
  };
  std::vector<ports::DeviceTally> sorted_expected = expected;
  std::sort(sorted_expected.begin(), sorted_expected.end(), [](const ports::DeviceTally& x, const ports::DeviceTally& y) {
    return std::tie(x.is_simulated, x.remote_state, x.commissioning) <
           std::tie(y.is_simulated, y.remote_state, y.commissioning);
  });
  EXPECT_EQ(*tally, sorted_expected);
}

// Records over every input of the remote_state rule (as domain::EvaluationSettled's own test),
// written through Put and RecordHeard.
std::vector<DeviceRecord> LivenessGrid(Timestamp cutoff) {
  std::vector<DeviceRecord> grid;
  const std::vector<std::optional<Timestamp>> heard{std::nullopt, cutoff - std::chrono::seconds(1), cutoff,
                                                    cutoff + std::chrono::seconds(300)};
  const std::vector<std::optional<std::string>> statuses{std::nullopt, "SUCCESS", "DISCONNECTED"};
  const std::vector<std::vector<std::uint32_t>> readings{{}, {2080}, {2080, 0x7010}};
  const std::vector<std::optional<domain::RemoteState>> states{std::nullopt, domain::RemoteState::kOnline,
                                                               domain::RemoteState::kOffline};
  int n = 0;
  for (const auto& h : heard) {
    for (const auto& status : statuses) {
      for (bool simulated : {false, true}) {
        for (const auto& inverter_states : readings) {
          for (const auto& evaluated : states) {
            for (const auto& accepted : states) {
              for (int cause = 0; cause < 2; ++cause) {
                char id[16];
                std::snprintf(id, sizeof id, "sys-%05d", n++);
                DeviceRecord d = Device(id);
                d.last_heard_at = h;
                d.system_status = status;
                d.is_simulated = simulated;
                for (std::size_t i = 0; i < inverter_states.size(); ++i) {
                  const std::string rcpn = std::string(id) + "-inv-" + std::to_string(i);
                  d.inverter_rcpns.push_back(rcpn);
                  d.inverter_readings.push_back({rcpn, inverter_states[i], 2, h.value_or(cutoff)});
                }
                d.evaluated_state = evaluated;
                d.remote_state = accepted;
                d.remote_state_cause =
                    cause == 0 ? domain::EvaluateRemoteState(d, {cutoff + std::chrono::seconds(900),
                                                                 std::chrono::seconds(900), cutoff, true})
                                     .cause
                               : "silent:1";
                grid.push_back(d);
              }
            }
          }
        }
      }
    }
  }
  return grid;
}

TEST_P(DeviceStoreConformance, ListUnsettledGivesExactlyTheRecordsWhoseEvaluationMayChange) {
  const Timestamp cutoff = FromUnixMillis(1'800'000'000'000);
  std::vector<std::string> expected;
  for (DeviceRecord d : LivenessGrid(cutoff)) {
    // Half of them get their hot fields from RecordHeard, as telemetry writes them.
    const bool heard_later = d.remote_id.back() % 2 == 0 && d.last_heard_at;
    const DeviceRecord full = d;
    if (heard_later) {
      d.last_heard_at.reset();
      d.inverter_readings.clear();
    }
    MustPut(d);
    if (heard_later) {
      ASSERT_TRUE(store_->RecordHeard(d.remote_id, *full.last_heard_at, std::nullopt).ok());
      for (const auto& r : full.inverter_readings) ASSERT_TRUE(store_->RecordHeard(d.remote_id, r.at, r).ok());
    }
    if (!domain::EvaluationSettled(full, cutoff)) expected.push_back(d.remote_id);
  }
  std::vector<std::string> listed;
  std::string after;
  while (true) {
    auto page = store_->ListUnsettled(cutoff, after, 50);
    ASSERT_TRUE(page.ok()) << page.status().ToString();
    for (const auto& d : *page) {
      listed.push_back(d.remote_id);
      EXPECT_EQ(d, MustGet(d.remote_id)) << "whole records, hot fields included";
    }
    if (page->size() < 50) break;
    after = page->back().remote_id;
  }
  EXPECT_EQ(listed, expected);
  EXPECT_GT(expected.size(), 0U);
  EXPECT_LT(expected.size(), LivenessGrid(cutoff).size()) << "some are settled";
}

TEST_P(DeviceStoreConformance, AnErrorReadingWrittenByRecordHeardUnsettlesAnOnlineSystem) {
  const Timestamp cutoff = FromUnixMillis(1'800'000'000'000);
  DeviceRecord d = Device("sys-1", "inv-1");
  d.last_heard_at = cutoff + std::chrono::seconds(60);
  d.evaluated_state = d.remote_state = domain::RemoteState::kOnline;
  d.remote_state_cause = "online";
  MustPut(d);
  auto page = store_->ListUnsettled(cutoff, "", 10);
  ASSERT_TRUE(page.ok());
  EXPECT_TRUE(page->empty());
  ASSERT_TRUE(store_->RecordHeard("sys-1", cutoff + std::chrono::seconds(120),
                                  domain::InverterReading{"inv-1", 0x7010, 2, cutoff + std::chrono::seconds(120)})
                  .ok());
  page = store_->ListUnsettled(cutoff, "", 10);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->size(), 1U);
  EXPECT_EQ(page->front().InverterState(), std::optional<std::uint32_t>(0x7010));
  // And silence at a later cutoff.
  ASSERT_TRUE(store_->RecordHeard("sys-1", cutoff + std::chrono::seconds(180),
                                  domain::InverterReading{"inv-1", 2080, 2, cutoff + std::chrono::seconds(180)})
                  .ok());
  page = store_->ListUnsettled(cutoff, "", 10);
  ASSERT_TRUE(page.ok());
  EXPECT_TRUE(page->empty());
  page = store_->ListUnsettled(cutoff + std::chrono::seconds(181), "", 10);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->size(), 1U);
}

INSTANTIATE_TEST_SUITE_P(AllBackends, DeviceStoreConformance, ::testing::ValuesIn(AllBackends()), BackendName);

}  // namespace
}  // namespace pwrcell::conformance
