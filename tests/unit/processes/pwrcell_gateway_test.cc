#include "processes/pwrcell_gateway.h"

#include <gtest/gtest.h>

#include "adapters/memory/fake_ces.h"
#include "process_test_support.h"

namespace pwrcell::processes {
namespace {

using adapters::CesCall;
using adapters::FakeCes;
using domain::RemoteState;

class PwrcellGatewayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    h.Store(test_support::Registered("sys-1", "asset-1", h.clock.Now()));
    auto sim = test_support::Registered("sim-1", "asset-2", h.clock.Now());
    sim.is_simulated = true;
    h.Store(sim);
    ces.AddSystem(test_support::DcMetadata("sys-1"));
  }

  test_support::Harness h;
  FakeCes ces;
  DeviceMetadataProcessor metadata{h.context};
  CesStateProcessor state{h.context};
  PwrcellGateway gateway{h.context, ces, metadata, state};
};

TEST_F(PwrcellGatewayTest, MetadataIsFetchedAndStored) {
  ASSERT_TRUE(gateway.Handle(MetadataRequest{"sys-1"}).ok());
  EXPECT_EQ(ces.Calls(), (std::vector<CesCall>{{std::string(FakeCes::kGetMetadata), {"sys-1"}}}));
  const auto d = h.Device("sys-1");
  EXPECT_EQ(d.inverter_rcpns, std::vector<std::string>{"000100000001"});
  EXPECT_EQ(d.metadata, std::optional<domain::SystemMetadata>(test_support::DcMetadata("sys-1")));
}

TEST_F(PwrcellGatewayTest, RequestForMetadataAlreadyCurrentCostsNoCesCall) {
  // Two requests for one system queued before either was answered (the registrar repeats a request
  // after request_repeat_after): the second finds the record current and leaves CES alone.
  ASSERT_TRUE(gateway.Handle(MetadataRequest{"sys-1"}).ok());
  h.clock.Advance(std::chrono::minutes(5));
  ASSERT_TRUE(gateway.Handle(MetadataRequest{"sys-1"}).ok());
  EXPECT_EQ(ces.Calls().size(), 1U);
  // Once metadata_refresh has passed, a request fetches again.
  h.clock.Advance(h.context.settings.metadata_refresh);
  ASSERT_TRUE(gateway.Handle(MetadataRequest{"sys-1"}).ok());
  EXPECT_EQ(ces.Calls().size(), 2U);
}

TEST_F(PwrcellGatewayTest, SimulatedAndUnregisteredSystemsNeverReachCes) {
  ASSERT_TRUE(gateway.Handle(MetadataRequest{"sim-1"}).ok());
  ASSERT_TRUE(gateway.Handle(MetadataRequest{"nobody"}).ok());
  ASSERT_TRUE(gateway.Handle(StatusRequest{{"sim-1", "nobody"}}).ok());
  EXPECT_TRUE(ces.Calls().empty());
}

TEST_F(PwrcellGatewayTest, SystemUnknownToCesIsShownAsError) {
  auto d = h.Device("sys-1");
  d.last_heard_at = h.clock.Now();
  ASSERT_TRUE(h.devices.Put(d).ok());
  FakeCes empty;
  PwrcellGateway lost(h.context, empty, metadata, state);
  ASSERT_TRUE(lost.Handle(MetadataRequest{"sys-1"}).ok());
  const auto after = h.Device("sys-1");
  EXPECT_EQ(after.system_status, std::optional<std::string>("UNKNOWN"));
  EXPECT_EQ(after.evaluated_state, std::optional<RemoteState>(RemoteState::kError));
  EXPECT_EQ(after.remote_state, std::nullopt) << "not accepted by Concerto yet";
  EXPECT_EQ(after.remote_state_reason, "CES status UNKNOWN");
  EXPECT_EQ(after.remote_state_cause, "ces:UNKNOWN");
  // The evaluation is queued for Concerto.
  EXPECT_EQ(test_support::DrainConcerto(h.concerto_queue).size(), 1U);
}

TEST_F(PwrcellGatewayTest, StatusOnlyAsksForRealRegisteredSystems) {
  auto d = h.Device("sys-1");
  d.last_heard_at = h.clock.Now();
  ASSERT_TRUE(h.devices.Put(d).ok());
  ces.SetStatus("sys-1", "DISCONNECTED");
  ASSERT_TRUE(gateway.Handle(StatusRequest{{"sim-1", "sys-1", "nobody"}}).ok());
  EXPECT_EQ(ces.Calls(), (std::vector<CesCall>{{std::string(FakeCes::kGetStatus), {"sys-1"}}}));
  EXPECT_EQ(h.Device("sys-1").evaluated_state, std::optional<RemoteState>(RemoteState::kError));
  EXPECT_EQ(h.Device("sys-1").remote_state_reason, "CES status DISCONNECTED");
}

TEST_F(PwrcellGatewayTest, CesFailureIsRetryableAndChangesNothing) {
  ces.FailNext(FakeCes::kGetMetadata, UnavailableError("503"));
  Status failed = gateway.Handle(MetadataRequest{"sys-1"});
  EXPECT_EQ(failed.code(), StatusCode::kUnavailable);
  EXPECT_TRUE(failed.IsRetryable());
  EXPECT_EQ(h.Device("sys-1").metadata, std::nullopt);

  ces.FailNext(FakeCes::kGetStatus, DeadlineExceededError("timeout"));
  failed = gateway.Handle(StatusRequest{{"sys-1"}});
  EXPECT_EQ(failed.code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(h.Device("sys-1").system_status, std::nullopt);
}

}  // namespace
}  // namespace pwrcell::processes
