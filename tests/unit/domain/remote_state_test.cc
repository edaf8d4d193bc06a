#include "domain/remote_state.h"

#include <gtest/gtest.h>

#include "adapters/memory/clocks.h"

namespace pwrcell::domain {
namespace {

using std::chrono::seconds;

class RemoteStateRule : public ::testing::Test {
 protected:
  // A context whose clock is the fake clock, the default 900 s timeout, out of startup grace.
  LivenessContext Context() const {
    LivenessContext c;
    c.now = clock_.Now();
    c.offline_timeout = seconds(900);
    c.started_at = start_;
    c.source_caught_up = true;
    return c;
  }
  DeviceRecord HeardSecondsAgo(int s) const {
    DeviceRecord d;
    d.remote_id = "sys-1";
    d.last_heard_at = clock_.Now() - seconds(s);
    d.system_status = "SUCCESS";
    d.inverter_state = 2080;  // GRID_CONNECTED
    return d;
  }

  adapters::FakeClock clock_;
  Timestamp start_ = clock_.Now() - seconds(3600);
};

TEST_F(RemoteStateRule, NeverHeardIsOffline) {
  DeviceRecord d;
  d.remote_id = "sys-1";
  EXPECT_EQ(EvaluateRemoteState(d, Context()), (StateDecision{RemoteState::kOffline, "no telemetry received yet"}));
}

TEST_F(RemoteStateRule, SilentLongerThanTimeoutIsOfflineWithSeconds) {
  EXPECT_EQ(EvaluateRemoteState(HeardSecondsAgo(960), Context()),
            (StateDecision{RemoteState::kOffline, "no telemetry for 960 s"}));
}

TEST_F(RemoteStateRule, ExactlyTheTimeoutIsStillOnline) {
  EXPECT_EQ(EvaluateRemoteState(HeardSecondsAgo(900), Context()).state, RemoteState::kOnline);
  auto d = HeardSecondsAgo(900);
  d.last_heard_at = *d.last_heard_at - std::chrono::milliseconds(1);
  EXPECT_EQ(EvaluateRemoteState(d, Context()).state, RemoteState::kOffline);
}

TEST_F(RemoteStateRule, FakeClockMovesASystemOffline) {
  const auto d = HeardSecondsAgo(0);
  EXPECT_EQ(EvaluateRemoteState(d, Context()).state, RemoteState::kOnline);
  clock_.Advance(seconds(901));
  EXPECT_EQ(EvaluateRemoteState(d, Context()), (StateDecision{RemoteState::kOffline, "no telemetry for 901 s"}));
}

TEST_F(RemoteStateRule, CesStatusNotSuccessIsError) {
  auto d = HeardSecondsAgo(30);
  d.system_status = "DISCONNECTED";
  EXPECT_EQ(EvaluateRemoteState(d, Context()), (StateDecision{RemoteState::kError, "CES status DISCONNECTED"}));
}

TEST_F(RemoteStateRule, UnknownCesStatusIsNotAnError) {
  auto d = HeardSecondsAgo(30);
  d.system_status.reset();
  EXPECT_EQ(EvaluateRemoteState(d, Context()).state, RemoteState::kOnline);
}

TEST_F(RemoteStateRule, SimulatedSystemsCountAsSuccess) {
  auto d = HeardSecondsAgo(30);
  d.is_simulated = true;
  d.system_status = "NEVER_CONNECTED";
  EXPECT_EQ(EvaluateRemoteState(d, Context()).state, RemoteState::kOnline);
}

TEST_F(RemoteStateRule, InverterErrorStateIsErrorWithHexCode) {
  auto d = HeardSecondsAgo(30);
  d.inverter_state = 28688;
  EXPECT_EQ(EvaluateRemoteState(d, Context()), (StateDecision{RemoteState::kError, "inverter state 0x7010"}));
}

TEST_F(RemoteStateRule, ErrorRangeBoundaries) {
  EXPECT_FALSE(IsInverterErrorState(0x6FFF));
  EXPECT_TRUE(IsInverterErrorState(0x7000));
  EXPECT_TRUE(IsInverterErrorState(0x7FFF));
  EXPECT_FALSE(IsInverterErrorState(0x8000));
  EXPECT_FALSE(IsInverterErrorState(16384));  // GROUND_FAULT is not in the error range
}

TEST_F(RemoteStateRule, HealthyIsOnlineWithAge) {
  EXPECT_EQ(EvaluateRemoteState(HeardSecondsAgo(30), Context()),
            (StateDecision{RemoteState::kOnline, "telemetry received 30 s ago"}));
}

TEST_F(RemoteStateRule, RecordFromTheFutureCountsAsJustHeard) {
  auto d = HeardSecondsAgo(-120);
  EXPECT_EQ(EvaluateRemoteState(d, Context()), (StateDecision{RemoteState::kOnline, "telemetry received 0 s ago"}));
}

TEST_F(RemoteStateRule, OfflineTakesPrecedenceOverCesStatusAndInverterState) {
  auto d = HeardSecondsAgo(1000);
  d.system_status = "ERROR";
  d.inverter_state = 0x7000;
  EXPECT_EQ(EvaluateRemoteState(d, Context()).state, RemoteState::kOffline);
}

TEST_F(RemoteStateRule, CesStatusTakesPrecedenceOverInverterState) {
  auto d = HeardSecondsAgo(10);
  d.system_status = "ERROR";
  d.inverter_state = 0x7000;
  EXPECT_EQ(EvaluateRemoteState(d, Context()).reason, "CES status ERROR");
}

TEST_F(RemoteStateRule, TimeoutIsAnInput) {
  auto c = Context();
  c.offline_timeout = seconds(60);
  EXPECT_EQ(EvaluateRemoteState(HeardSecondsAgo(61), c).state, RemoteState::kOffline);
}

TEST_F(RemoteStateRule, NoChangeWhenStateAlreadySent) {
  auto d = HeardSecondsAgo(30);
  d.remote_state = RemoteState::kOnline;
  EXPECT_FALSE(RemoteStateChange(d, Context()).has_value());
  d.remote_state = RemoteState::kOffline;
  const auto change = RemoteStateChange(d, Context());
  ASSERT_TRUE(change.has_value());
  EXPECT_EQ(change->state, RemoteState::kOnline);
}

TEST_F(RemoteStateRule, FirstEvaluationIsAlwaysAChange) {
  auto d = HeardSecondsAgo(30);
  ASSERT_TRUE(RemoteStateChange(d, Context()).has_value());
}

// Startup grace: after a restart, a backlog still draining does not flap the fleet OFFLINE.
TEST_F(RemoteStateRule, GraceHoldsOfflineUntilSourceCatchesUp) {
  auto c = Context();
  c.started_at = clock_.Now() - seconds(120);
  c.source_caught_up = false;
  auto d = HeardSecondsAgo(3600);  // silent during the adapter's downtime
  d.remote_state = RemoteState::kOnline;
  EXPECT_TRUE(InStartupGrace(c));
  EXPECT_FALSE(RemoteStateChange(d, c).has_value());
  c.source_caught_up = true;
  EXPECT_FALSE(InStartupGrace(c));
  const auto change = RemoteStateChange(d, c);
  ASSERT_TRUE(change.has_value());
  EXPECT_EQ(*change, (StateDecision{RemoteState::kOffline, "no telemetry for 3600 s"}));
}

TEST_F(RemoteStateRule, GraceEndsAfterOfflineTimeoutEvenIfNeverCaughtUp) {
  auto c = Context();
  c.source_caught_up = false;
  c.started_at = clock_.Now() - seconds(899);
  EXPECT_TRUE(InStartupGrace(c));
  c.started_at = clock_.Now() - seconds(900);
  EXPECT_FALSE(InStartupGrace(c));
  auto d = HeardSecondsAgo(3600);
  d.remote_state = RemoteState::kOnline;
  EXPECT_TRUE(RemoteStateChange(d, c).has_value());
}

TEST_F(RemoteStateRule, GraceDoesNotHoldErrorOrOnline) {
  auto c = Context();
  c.started_at = clock_.Now();
  c.source_caught_up = false;
  auto d = HeardSecondsAgo(10);
  d.inverter_state = 0x7001;
  d.remote_state = RemoteState::kOnline;
  const auto change = RemoteStateChange(d, c);
  ASSERT_TRUE(change.has_value());
  EXPECT_EQ(change->state, RemoteState::kError);
}

TEST(SourceCaughtUp, LagUnderOneRecordIntervalOrEmptyBacklog) {
  const Duration interval = seconds(300);
  EXPECT_FALSE(SourceCaughtUp({}, interval));
  EXPECT_TRUE(SourceCaughtUp({seconds(299), std::nullopt}, interval));
  EXPECT_FALSE(SourceCaughtUp({seconds(300), std::nullopt}, interval));
  EXPECT_TRUE(SourceCaughtUp({std::nullopt, 0}, interval));
  EXPECT_FALSE(SourceCaughtUp({std::nullopt, 12}, interval));
  EXPECT_TRUE(SourceCaughtUp({seconds(5000), 0}, interval));
}

TEST(SiteState, AnyOnlineMakesTheSiteOnline) {
  EXPECT_EQ(AggregateSiteState({RemoteState::kOffline, RemoteState::kOnline, RemoteState::kError}),
            (StateDecision{RemoteState::kOnline, "1 of 3 systems ONLINE"}));
}

TEST(SiteState, ElseAnyErrorMakesItError) {
  EXPECT_EQ(AggregateSiteState({RemoteState::kOffline, RemoteState::kError}),
            (StateDecision{RemoteState::kError, "no system ONLINE; 1 of 2 in ERROR"}));
}

TEST(SiteState, ElseOffline) {
  EXPECT_EQ(AggregateSiteState({RemoteState::kOffline, RemoteState::kOffline}),
            (StateDecision{RemoteState::kOffline, "all 2 systems OFFLINE"}));
  EXPECT_EQ(AggregateSiteState({}), (StateDecision{RemoteState::kOffline, "no system on the site"}));
}

}  // namespace
}  // namespace pwrcell::domain
