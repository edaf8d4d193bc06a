#include "processes/ces_state.h"

#include <gtest/gtest.h>

#include "process_test_support.h"

namespace pwrcell::processes {
namespace {

using domain::RemoteState;
using test_support::DrainCes;
using test_support::DrainConcerto;

domain::CesStatusBatch Statuses(std::vector<std::pair<std::string, std::string>> statuses,
                                std::vector<std::string> not_found = {}) {
  domain::CesStatusBatch batch;
  for (auto& [id, name] : statuses) batch.statuses.push_back({id, name, std::nullopt});
  batch.not_found = std::move(not_found);
  return batch;
}

class CesStateTest : public ::testing::Test {
 protected:
  // A system heard a minute ago, already shown ONLINE in Concerto, on site "site-1".
  domain::DeviceRecord Heard(const std::string& remote_id, Duration ago = std::chrono::seconds(60)) {
    auto d = test_support::Registered(remote_id, "asset-" + remote_id, h.clock.Now());
    d.site = domain::SiteRef{"site-1", "ces-site-1", "Smith residence"};
    d.last_heard_at = h.clock.Now() - ago;
    d.system_status = "SUCCESS";
    d.remote_state = RemoteState::kOnline;
    d.remote_state_reason = "telemetry received 60 s ago";
    return h.Store(d);
  }

  test_support::Harness h;
  CesStateProcessor processor{h.context};
};

TEST_F(CesStateTest, NonSuccessStatusIsErrorWithReason) {
  Heard("sys-1");
  ASSERT_TRUE(processor.Process(Statuses({{"sys-1", "DISCONNECTED"}})).ok());

  const auto d = h.Device("sys-1");
  EXPECT_EQ(d.system_status, std::optional<std::string>("DISCONNECTED"));
  EXPECT_EQ(d.system_status_at, h.clock.Now());
  EXPECT_EQ(d.remote_state, std::optional<RemoteState>(RemoteState::kError));
  EXPECT_EQ(d.remote_state_reason, "CES status DISCONNECTED");
  EXPECT_EQ(DrainConcerto(h.concerto_queue),
            (std::vector<ConcertoRequest>{RemoteStateRequest{
                "sys-1", SiteStateUpdate{"site-1", RemoteState::kError, "no system ONLINE; 1 of 1 in ERROR"}}}));
  EXPECT_EQ(h.metrics.Value("pwrcell_remote_state_changes_total", {{"state", "ERROR"}}), 1);

  // Back to SUCCESS: ONLINE again.
  ASSERT_TRUE(processor.Process(Statuses({{"sys-1", "SUCCESS"}})).ok());
  EXPECT_EQ(h.Device("sys-1").remote_state, std::optional<RemoteState>(RemoteState::kOnline));
  EXPECT_EQ(DrainConcerto(h.concerto_queue).size(), 1U);
}

TEST_F(CesStateTest, SystemUnknownToCesIsErrorWithStatusUnknown) {
  Heard("sys-1");
  ASSERT_TRUE(processor.Process(Statuses({}, {"sys-1"})).ok());
  const auto d = h.Device("sys-1");
  EXPECT_EQ(d.remote_state, std::optional<RemoteState>(RemoteState::kError));
  EXPECT_EQ(d.remote_state_reason, "CES status UNKNOWN");
}

TEST_F(CesStateTest, StatusOfAnotherSystemLeavesTheOthersAlone) {
  Heard("sys-1");
  Heard("sys-2", std::chrono::hours(2));  // silent, but only sys-1 is in this answer
  ASSERT_TRUE(processor.Process(Statuses({{"sys-1", "SUCCESS"}, {"nobody", "DISCONNECTED"}})).ok());
  EXPECT_TRUE(DrainConcerto(h.concerto_queue).empty());
  EXPECT_EQ(h.Device("sys-2").remote_state, std::optional<RemoteState>(RemoteState::kOnline));
  EXPECT_FALSE(h.Has("nobody"));
}

TEST_F(CesStateTest, SilentBeyondOfflineTimeoutGoesOfflineOnTheSweep) {
  Heard("sys-1", Duration(0));
  h.clock.Advance(std::chrono::seconds(900));
  ASSERT_TRUE(processor.Sweep().ok());
  EXPECT_TRUE(DrainConcerto(h.concerto_queue).empty()) << "exactly offline_timeout is not beyond it";
  EXPECT_EQ(h.Device("sys-1").remote_state, std::optional<RemoteState>(RemoteState::kOnline));

  h.clock.Advance(std::chrono::seconds(60));  // the next sweep
  ASSERT_TRUE(processor.Sweep().ok());
  const auto d = h.Device("sys-1");
  EXPECT_EQ(d.remote_state, std::optional<RemoteState>(RemoteState::kOffline));
  EXPECT_EQ(d.remote_state_reason, "no telemetry for 960 s");
  EXPECT_EQ(DrainConcerto(h.concerto_queue),
            (std::vector<ConcertoRequest>{RemoteStateRequest{
                "sys-1", SiteStateUpdate{"site-1", RemoteState::kOffline, "all 1 systems OFFLINE"}}}));

  // Still silent: nothing new to send.
  h.clock.Advance(std::chrono::seconds(60));
  ASSERT_TRUE(processor.Sweep().ok());
  EXPECT_TRUE(DrainConcerto(h.concerto_queue).empty());
}

TEST_F(CesStateTest, OfflineBeatsAnErrorStatus) {
  Heard("sys-1", std::chrono::seconds(1000));
  ASSERT_TRUE(processor.Process(Statuses({{"sys-1", "DISCONNECTED"}})).ok());
  EXPECT_EQ(h.Device("sys-1").remote_state, std::optional<RemoteState>(RemoteState::kOffline));
  EXPECT_EQ(h.Device("sys-1").remote_state_reason, "no telemetry for 1000 s");
}

TEST_F(CesStateTest, InverterErrorStateIsError) {
  auto d = Heard("sys-1");
  d.inverter_state = 0x7010;
  ASSERT_TRUE(h.devices.Put(d).ok());
  ASSERT_TRUE(processor.Sweep().ok());
  EXPECT_EQ(h.Device("sys-1").remote_state, std::optional<RemoteState>(RemoteState::kError));
  EXPECT_EQ(h.Device("sys-1").remote_state_reason, "inverter state 0x7010");
}

TEST_F(CesStateTest, SimulatedSystemCountsAsSuccess) {
  auto d = Heard("sim-1");
  d.is_simulated = true;
  d.system_status = "DISCONNECTED";  // left over from when it was real
  d.remote_state.reset();
  ASSERT_TRUE(h.devices.Put(d).ok());
  ASSERT_TRUE(processor.Process(Statuses({{"sim-1", "DISCONNECTED"}})).ok());
  EXPECT_EQ(h.Device("sim-1").system_status, std::optional<std::string>("DISCONNECTED")) << "not overwritten";
  EXPECT_EQ(h.Device("sim-1").remote_state, std::optional<RemoteState>(RemoteState::kOnline));
}

TEST_F(CesStateTest, UnchangedStateQueuesNothing) {
  Heard("sys-1");
  ASSERT_TRUE(processor.Process(Statuses({{"sys-1", "SUCCESS"}})).ok());
  ASSERT_TRUE(processor.Sweep().ok());
  h.clock.Advance(std::chrono::seconds(60));
  ASSERT_TRUE(processor.Sweep().ok());
  EXPECT_TRUE(DrainConcerto(h.concerto_queue).empty());
  EXPECT_EQ(h.metrics.Sum("pwrcell_remote_state_changes_total"), 0);
}

TEST_F(CesStateTest, FirstEvaluationSendsTheInitialState) {
  auto d = test_support::Registered("sys-1", "asset-1", h.clock.Now());
  d.last_heard_at = h.clock.Now() - std::chrono::seconds(5);
  h.Store(d);  // never sent, no site
  ASSERT_TRUE(processor.Sweep().ok());
  EXPECT_EQ(h.Device("sys-1").remote_state, std::optional<RemoteState>(RemoteState::kOnline));
  EXPECT_EQ(h.Device("sys-1").remote_state_reason, "telemetry received 5 s ago");
  EXPECT_EQ(DrainConcerto(h.concerto_queue),
            (std::vector<ConcertoRequest>{RemoteStateRequest{"sys-1", std::nullopt}}));
}

TEST_F(CesStateTest, SiteStateAggregatesEverySystemOfTheSite) {
  Heard("sys-1");
  Heard("sys-2");
  ASSERT_TRUE(processor.Process(Statuses({{"sys-2", "DISCONNECTED"}})).ok());
  EXPECT_EQ(DrainConcerto(h.concerto_queue),
            (std::vector<ConcertoRequest>{RemoteStateRequest{
                "sys-2", SiteStateUpdate{"site-1", RemoteState::kOnline, "1 of 2 systems ONLINE"}}}));

  ASSERT_TRUE(processor.Process(Statuses({{"sys-1", "DISCONNECTED"}})).ok());
  EXPECT_EQ(DrainConcerto(h.concerto_queue),
            (std::vector<ConcertoRequest>{RemoteStateRequest{
                "sys-1", SiteStateUpdate{"site-1", RemoteState::kError, "no system ONLINE; 2 of 2 in ERROR"}}}));
}

class CesStateStartupGraceTest : public CesStateTest {
 protected:
  void SetUp() override {
    // The adapter restarts after two hours down: every system was last heard before that.
    Heard("sys-1", std::chrono::hours(2));
    h.context.source_progress = [this] { return progress; };
  }
  domain::SourceProgress progress{std::nullopt, std::size_t{5000}};  // backlog not drained
};

TEST_F(CesStateStartupGraceTest, HoldsOfflineBackUntilOfflineTimeoutSinceStart) {
  ASSERT_TRUE(processor.Sweep().ok());
  EXPECT_EQ(h.Device("sys-1").remote_state, std::optional<RemoteState>(RemoteState::kOnline));
  EXPECT_TRUE(DrainConcerto(h.concerto_queue).empty());

  h.clock.Advance(std::chrono::seconds(899));
  ASSERT_TRUE(processor.Sweep().ok());
  EXPECT_TRUE(DrainConcerto(h.concerto_queue).empty());

  h.clock.Advance(std::chrono::seconds(1));  // offline_timeout since start
  ASSERT_TRUE(processor.Sweep().ok());
  EXPECT_EQ(h.Device("sys-1").remote_state, std::optional<RemoteState>(RemoteState::kOffline));
  EXPECT_EQ(DrainConcerto(h.concerto_queue).size(), 1U);
}

TEST_F(CesStateStartupGraceTest, EndsWhenTheSourceHasCaughtUp) {
  ASSERT_TRUE(processor.Sweep().ok());
  EXPECT_TRUE(DrainConcerto(h.concerto_queue).empty());

  progress.ingest_backlog = 0;
  h.clock.Advance(std::chrono::seconds(60));
  ASSERT_TRUE(processor.Sweep().ok());
  EXPECT_EQ(h.Device("sys-1").remote_state, std::optional<RemoteState>(RemoteState::kOffline));
  EXPECT_EQ(h.Device("sys-1").remote_state_reason, "no telemetry for 7260 s");
  EXPECT_EQ(DrainConcerto(h.concerto_queue).size(), 1U);
  EXPECT_TRUE(h.shared.source_caught_up());

  // Latched: a new backlog does not bring the grace back.
  progress.ingest_backlog = 5000;
  auto d = h.Device("sys-1");
  d.last_heard_at = h.clock.Now();
  ASSERT_TRUE(h.devices.Put(d).ok());
  ASSERT_TRUE(processor.Sweep().ok());  // ONLINE again
  h.clock.Set(h.shared.started_at() + std::chrono::seconds(60));  // back inside the first 900 s
  d = h.Device("sys-1");
  d.last_heard_at = h.clock.Now() - std::chrono::seconds(901);
  ASSERT_TRUE(h.devices.Put(d).ok());
  ASSERT_TRUE(processor.Sweep().ok());
  EXPECT_EQ(h.Device("sys-1").remote_state, std::optional<RemoteState>(RemoteState::kOffline));
}

TEST_F(CesStateStartupGraceTest, DoesNotHoldBackError) {
  auto d = h.Device("sys-1");
  d.last_heard_at = h.clock.Now();
  ASSERT_TRUE(h.devices.Put(d).ok());
  ASSERT_TRUE(processor.Process(Statuses({{"sys-1", "DISCONNECTED"}})).ok());
  EXPECT_EQ(h.Device("sys-1").remote_state, std::optional<RemoteState>(RemoteState::kError));
}

TEST(CesStatePoller, QueuesGetStatusForEveryRealSystemInBatchesEveryTime) {
  test_support::Harness h;
  h.context.settings.status_batch_size = 2;
  for (const char* id : {"sys-a", "sys-b", "sys-c"}) h.Store(test_support::Registered(id, "x", h.clock.Now()));
  auto sim = test_support::Registered("sim-1", "y", h.clock.Now());
  sim.is_simulated = true;
  h.Store(sim);

  CesStatePoller poller(h.context);
  const std::vector<CesRequest> expected = {StatusRequest{{"sys-a", "sys-b"}}, StatusRequest{{"sys-c"}}};
  ASSERT_TRUE(poller.Poll().ok());
  EXPECT_EQ(DrainCes(h.ces_queue), expected);
  ASSERT_TRUE(poller.Poll().ok());
  EXPECT_EQ(DrainCes(h.ces_queue), expected) << "no status_called flag: every system, every time";
}

TEST(CesStatePoller, NoSystemsNoMessage) {
  test_support::Harness h;
  CesStatePoller poller(h.context);
  ASSERT_TRUE(poller.Poll().ok());
  EXPECT_TRUE(DrainCes(h.ces_queue).empty());
}

}  // namespace
}  // namespace pwrcell::processes
