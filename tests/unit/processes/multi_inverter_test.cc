// Systems with several inverters (SPEC section 6, last paragraph), across the processes: the
// registrar reads every INVERTER child, commissioning creates one INVERTER per inverter with the
// batteries and PV links under the first, and the records of every inverter reach their own asset.
#include <gtest/gtest.h>

#include <algorithm>

#include "adapters/memory/fake_concerto.h"
#include "process_test_support.h"
#include "processes/concerto_gateway.h"
#include "processes/device_metadata_processor.h"
#include "processes/registrar.h"
#include "processes/telemetry_processor.h"

namespace pwrcell::processes {
namespace {

using adapters::FakeConcerto;
using domain::AssetChild;
using domain::AssetRef;
using domain::AssetType;
using domain::CommissioningState;
using domain::ConcertoAsset;
using test_support::DrainConcerto;
using test_support::kAdapterName;

constexpr const char* kFirst = "000100000001";
constexpr const char* kSecond = "000100000002";

// Two inverters of different ratings; the batteries and PV links of DcMetadata.
domain::SystemMetadata TwoInverterMetadata(const std::string& system_id) {
  auto m = test_support::DcMetadata(system_id);
  m.inverters = {domain::CesInverter{kFirst, "PWRcell X7602", 7600, 0.0},
                 domain::CesInverter{kSecond, "PWRcell X11402", 11400, 0.0}};
  return m;
}

std::vector<domain::ConcertoAsset> OfType(const std::vector<domain::ConcertoAsset>& assets, AssetType type) {
  std::vector<domain::ConcertoAsset> out;
  std::copy_if(assets.begin(), assets.end(), std::back_inserter(out),
               [&](const domain::ConcertoAsset& a) { return a.asset_type == type; });
  return out;
}

const domain::ConcertoAsset* ByRemoteId(const std::vector<domain::ConcertoAsset>& assets, const std::string& id) {
  auto it = std::find_if(assets.begin(), assets.end(), [&](const auto& a) { return a.remote_id == id; });
  return it == assets.end() ? nullptr : &*it;
}

class MultiInverterTest : public ::testing::Test {
 protected:
  test_support::Harness h;
  FakeConcerto fake;
  DeviceMetadataProcessor metadata{h.context};
  Registrar registrar{h.context, metadata};
  ConcertoGateway gateway{h.context, fake, registrar};

  // Enrolled, registered, with two-inverter metadata and auto-commissioning on; returns the
  // SYSTEM asset id. The commission request is drained.
  std::string Ready(const std::string& remote_id) {
    const std::string id = fake.EnrollSystem(remote_id, "Smith", std::string(kAdapterName));
    h.context.settings.auto_commissioning = true;
    EXPECT_TRUE(gateway.Handle(ListAssetsRequest{}).ok());
    EXPECT_TRUE(metadata.Process(remote_id, TwoInverterMetadata(remote_id)).ok());
    EXPECT_EQ(DrainConcerto(h.concerto_queue), (std::vector<ConcertoRequest>{CommissionRequest{remote_id}}));
    return id;
  }
};

TEST_F(MultiInverterTest, CommissioningCreatesOneInverterPerInverterAndComponentsUnderTheFirst) {
  const std::string system_id = Ready("sys-1");
  ASSERT_TRUE(gateway.Handle(CommissionRequest{"sys-1"}).ok());

  const auto assets = fake.Assets();
  const auto sites = fake.Sites();
  ASSERT_EQ(sites.size(), 1U);
  const auto inverters = OfType(assets, AssetType::kInverter);
  ASSERT_EQ(inverters.size(), 2U);
  const auto* first = ByRemoteId(inverters, kFirst);
  const auto* second = ByRemoteId(inverters, kSecond);
  ASSERT_TRUE(first && second);
  for (const auto* inverter : {first, second}) {
    EXPECT_EQ(inverter->parent_id, std::optional<std::string>(system_id)) << inverter->remote_id;
    ASSERT_TRUE(inverter->site.has_value());
    EXPECT_EQ(inverter->site->id, sites[0].id);
    EXPECT_EQ(inverter->ac_coupled, std::optional<bool>(false));
  }
  EXPECT_EQ(first->rated_power_kw, std::optional<double>(7.6));
  EXPECT_EQ(second->rated_power_kw, std::optional<double>(11.4)) << "each its own rating";
  for (auto type : {AssetType::kBattery, AssetType::kPhotovoltaic}) {
    for (const auto& component : OfType(assets, type)) {
      EXPECT_EQ(component.parent_id, std::optional<std::string>(first->id)) << component.remote_id;
    }
  }
  EXPECT_TRUE(second->children.empty());

  const auto d = h.Device("sys-1");
  EXPECT_EQ(d.inverters, (std::vector<AssetRef>{{first->id, kFirst}, {second->id, kSecond}}));
  EXPECT_EQ(d.batteries.size(), 2U);
  EXPECT_EQ(d.photovoltaics.size(), 3U);
  EXPECT_EQ(d.commissioning, (domain::Commissioning{CommissioningState::kDone, ""}));

  // Idempotent: a redelivery creates nothing, and the next sweep reads both inverters back and
  // finds nothing to do.
  const auto created = fake.Assets().size();
  ASSERT_TRUE(gateway.Handle(CommissionRequest{"sys-1"}).ok());
  EXPECT_EQ(fake.Assets().size(), created);
  h.clock.Advance(std::chrono::minutes(11));
  ASSERT_TRUE(gateway.Handle(ListAssetsRequest{}).ok());
  EXPECT_TRUE(DrainConcerto(h.concerto_queue).empty());
  const auto after = h.Device("sys-1");
  EXPECT_EQ(after.inverters, d.inverters);
  EXPECT_EQ(after.batteries, d.batteries);
  EXPECT_EQ(after.photovoltaics, d.photovoltaics);
  EXPECT_EQ(after.commissioning.state, CommissioningState::kDone);
}

TEST_F(MultiInverterTest, AnInverterAddedLaterIsCreatedAloneAndTheComponentsStay) {
  fake.EnrollSystem("sys-1", "Smith", std::string(kAdapterName));
  h.context.settings.auto_commissioning = true;
  ASSERT_TRUE(gateway.Handle(ListAssetsRequest{}).ok());
  ASSERT_TRUE(metadata.Process("sys-1", test_support::DcMetadata("sys-1")).ok());
  ASSERT_TRUE(gateway.Handle(CommissionRequest{"sys-1"}).ok());
  DrainConcerto(h.concerto_queue);
  const auto before = fake.Assets();
  ASSERT_EQ(OfType(before, AssetType::kInverter).size(), 1U);

  // CES now lists a second inverter; the metadata processor asks for commissioning again.
  h.clock.Advance(h.context.settings.request_repeat_after);
  ASSERT_TRUE(metadata.Process("sys-1", TwoInverterMetadata("sys-1")).ok());
  ASSERT_EQ(DrainConcerto(h.concerto_queue), (std::vector<ConcertoRequest>{CommissionRequest{"sys-1"}}));
  ASSERT_TRUE(gateway.Handle(CommissionRequest{"sys-1"}).ok());
  const auto after = fake.Assets();
  EXPECT_EQ(after.size(), before.size() + 1);
  const auto inverters = OfType(after, AssetType::kInverter);
  ASSERT_EQ(inverters.size(), 2U);
  const auto* first = ByRemoteId(inverters, kFirst);
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(first->children.size(), 5U) << "the batteries and PV links stay under the first";
  EXPECT_EQ(h.Device("sys-1").inverters.size(), 2U);
}

TEST_F(MultiInverterTest, WhenOnlyTheSecondInverterExistsTheFirstIsCreatedAndParentsTheComponents) {
  const std::string system_id = Ready("sys-1");
  // An operator made the second inverter by hand; nothing else exists.
  domain::CreateAssetRequest by_hand;
  by_hand.remote_id = kSecond;
  by_hand.name = "second inverter";
  by_hand.asset_type = AssetType::kInverter;
  by_hand.adapter_name = kAdapterName;
  by_hand.parent_id = system_id;
  auto second = fake.CreateAsset(by_hand);
  ASSERT_TRUE(second.ok());
  ASSERT_TRUE(gateway.Handle(ListAssetsRequest{}).ok());
  DrainConcerto(h.concerto_queue);
  ASSERT_EQ(h.Device("sys-1").inverters, (std::vector<AssetRef>{{second->id, kSecond}}));

  ASSERT_TRUE(gateway.Handle(CommissionRequest{"sys-1"}).ok());
  const auto assets = fake.Assets();
  const auto inverters = OfType(assets, AssetType::kInverter);
  EXPECT_EQ(inverters.size(), 2U);
  const auto* first = ByRemoteId(inverters, kFirst);
  ASSERT_NE(first, nullptr);
  for (const auto& battery : OfType(assets, AssetType::kBattery)) {
    EXPECT_EQ(battery.parent_id, std::optional<std::string>(first->id));
  }
  EXPECT_EQ(h.Device("sys-1").inverters, (std::vector<AssetRef>{{first->id, kFirst}, {second->id, kSecond}}))
      << "CES order";
}

TEST_F(MultiInverterTest, TheRegistrarReadsEveryInverterChildAndComponentsUnderAnyOfThem) {
  ConcertoAsset system;
  system.id = "asset-1";
  system.remote_id = "sys-1";
  system.name = "Smith";
  system.asset_type = AssetType::kSystem;
  system.adapter_name = std::string(kAdapterName);
  // Listed second inverter first, with a battery under it (an operator's choice).
  system.children = {
      AssetChild{
          "asset-inv-2", kSecond, AssetType::kInverter, {{"asset-bat-2", "000200000002", AssetType::kBattery, {}}}},
      AssetChild{"asset-meter", "sys-1-meter", AssetType::kSiteMeter, {}},
      AssetChild{"asset-inv-1",
                 kFirst,
                 AssetType::kInverter,
                 {{"asset-bat-1", "000200000001", AssetType::kBattery, {}},
                  {"asset-pv-1", "000300000001", AssetType::kPhotovoltaic, {}}}},
  };
  ASSERT_TRUE(registrar.Register({system}, true).ok());
  ASSERT_TRUE(metadata.Process("sys-1", TwoInverterMetadata("sys-1")).ok());

  const auto d = h.Device("sys-1");
  EXPECT_EQ(d.inverters, (std::vector<AssetRef>{{"asset-inv-1", kFirst}, {"asset-inv-2", kSecond}})) << "CES order";
  std::vector<std::string> batteries;
  for (const auto& b : d.batteries) batteries.push_back(b.asset_id);
  std::sort(batteries.begin(), batteries.end());
  EXPECT_EQ(batteries, (std::vector<std::string>{"asset-bat-1", "asset-bat-2"}));
  EXPECT_EQ(d.photovoltaics, (std::vector<AssetRef>{{"asset-pv-1", "000300000001"}}));
  EXPECT_EQ(d.site_meter, (AssetRef{"asset-meter", "sys-1-meter"}));

  // A later list without the second inverter (deleted in Concerto): the record follows.
  system.children.erase(system.children.begin());
  ASSERT_TRUE(registrar.Register({system}, true).ok());
  EXPECT_EQ(h.Device("sys-1").inverters, (std::vector<AssetRef>{{"asset-inv-1", kFirst}}));
}

}  // namespace
}  // namespace pwrcell::processes
