#include "domain/remote_state.h"

#include <gtest/gtest.h>

#include "adapters/memory/clocks.h"

namespace pwrcell::domain {
namespace {

using std::chrono::seconds;

// The fake clock starts at 2025-11-22T08:26:40Z (unix ms 1'763'800'000'000).
constexpr std::int64_t kStartMs = 1'763'800'000'000;

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
  // The same, but started `ago` before now with the source not caught up: in grace while
  // ago < offline_timeout.
  LivenessContext GraceContext(Duration ago = seconds(120)) const {
    LivenessContext c = Context();
    c.started_at = clock_.Now() - ago;
    c.source_caught_up = false;
    return c;
  }
  DeviceRecord HeardSecondsAgo(int s) const {
    DeviceRecord d;
    d.remote_id = "sys-1";
    d.last_heard_at = clock_.Now() - seconds(s);
    d.system_status = "SUCCESS";
    d.inverter_rcpns = {"000100000001"};
    d.inverter_readings = {InverterReading{"000100000001", 2080, 2, *d.last_heard_at}};  // GRID_CONNECTED
    return d;
  }
  static void SetInverterState(DeviceRecord& d, std::uint32_t state) {
    ASSERT_FALSE(d.inverter_readings.empty());
    d.inverter_readings.front().state = state;
  }
  // `d` as the sweep leaves it after recording `decision` (and, when `accepted`, after Concerto
  // accepted it).
  static DeviceRecord Evaluated(DeviceRecord d, const StateDecision& decision, bool accepted) {
    d.evaluated_state = decision.state;
    d.remote_state_reason = decision.reason;
    d.remote_state_cause = decision.cause;
    if (accepted) d.remote_state = decision.state;
    return d;
  }

  adapters::FakeClock clock_;
  Timestamp start_ = clock_.Now() - seconds(3600);
};

// --- EvaluateRemoteState: state, reason wording, cause ---------------------------------------------

TEST_F(RemoteStateRule, NeverHeardIsOffline) {
  DeviceRecord d;
  d.remote_id = "sys-1";
  EXPECT_EQ(EvaluateRemoteState(d, Context()),
            (StateDecision{RemoteState::kOffline, "no telemetry received yet", "never_heard"}));
}

TEST_F(RemoteStateRule, SilentLongerThanTimeoutIsOfflineWithSecondsAndLastHeard) {
  EXPECT_EQ(EvaluateRemoteState(HeardSecondsAgo(960), Context()),
            (StateDecision{RemoteState::kOffline, "no telemetry for 960 s (last heard 2025-11-22T08:10:40Z)",
                           "silent:" + std::to_string(kStartMs - 960'000)}));
}

TEST_F(RemoteStateRule, ExactlyTheTimeoutIsStillOnline) {
  EXPECT_EQ(EvaluateRemoteState(HeardSecondsAgo(900), Context()).state, RemoteState::kOnline);
  auto d = HeardSecondsAgo(900);
  d.last_heard_at = *d.last_heard_at - std::chrono::milliseconds(1);
  EXPECT_EQ(EvaluateRemoteState(d, Context()).state, RemoteState::kOffline);
}

TEST_F(RemoteStateRule, SilenceWordingMovesWithTheClockButTheCauseDoesNot) {
  const auto d = HeardSecondsAgo(0);
  EXPECT_EQ(EvaluateRemoteState(d, Context()).state, RemoteState::kOnline);
  clock_.Advance(seconds(901));
  const StateDecision first = EvaluateRemoteState(d, Context());
  EXPECT_EQ(first, (StateDecision{RemoteState::kOffline, "no telemetry for 901 s (last heard 2025-11-22T08:26:40Z)",
                                  "silent:" + std::to_string(kStartMs)}));
  clock_.Advance(seconds(60));
  const StateDecision later = EvaluateRemoteState(d, Context());
  EXPECT_EQ(later.reason, "no telemetry for 961 s (last heard 2025-11-22T08:26:40Z)");
  EXPECT_EQ(later.cause, first.cause) << "the same silence is the same cause";
}

TEST_F(RemoteStateRule, CesStatusNotSuccessIsError) {
  auto d = HeardSecondsAgo(30);
  d.system_status = "DISCONNECTED";
  EXPECT_EQ(EvaluateRemoteState(d, Context()),
            (StateDecision{RemoteState::kError, "CES status DISCONNECTED", "ces:DISCONNECTED"}));
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
  SetInverterState(d, 28688);
  EXPECT_EQ(EvaluateRemoteState(d, Context()),
            (StateDecision{RemoteState::kError, "inverter state 0x7010", "inverter:0x7010"}));
}

TEST_F(RemoteStateRule, WithSeveralInvertersTheReasonNamesTheOneInError) {
  auto d = HeardSecondsAgo(30);
  d.inverter_rcpns = {"000100000001", "000100000002"};
  d.inverter_readings = {InverterReading{"000100000001", 2080, 2, *d.last_heard_at},
                         InverterReading{"000100000002", 0x7010, 2, *d.last_heard_at - seconds(5)}};
  EXPECT_EQ(EvaluateRemoteState(d, Context()),
            (StateDecision{RemoteState::kError, "inverter 000100000002 state 0x7010", "inverter:0x7010"}));
}

TEST_F(RemoteStateRule, ErrorRangeBoundaries) {
  EXPECT_FALSE(IsInverterErrorState(0x6FFF));
  EXPECT_TRUE(IsInverterErrorState(0x7000));
  EXPECT_TRUE(IsInverterErrorState(0x7FFF));
  EXPECT_FALSE(IsInverterErrorState(0x8000));
  EXPECT_FALSE(IsInverterErrorState(16384));  // GROUND_FAULT is not in the error range
}

TEST_F(RemoteStateRule, HealthyIsOnlineAndTheReasonCarriesNoFigure) {
  // The ONLINE reason does not count seconds: it would change on every evaluation.
  EXPECT_EQ(EvaluateRemoteState(HeardSecondsAgo(30), Context()),
            (StateDecision{RemoteState::kOnline, "telemetry current", "online"}));
  EXPECT_EQ(EvaluateRemoteState(HeardSecondsAgo(300), Context()),
            (StateDecision{RemoteState::kOnline, "telemetry current", "online"}));
}

TEST_F(RemoteStateRule, RecordFromTheFutureCountsAsJustHeard) {
  EXPECT_EQ(EvaluateRemoteState(HeardSecondsAgo(-120), Context()),
            (StateDecision{RemoteState::kOnline, "telemetry current", "online"}));
}

TEST_F(RemoteStateRule, OfflineTakesPrecedenceOverCesStatusAndInverterState) {
  auto d = HeardSecondsAgo(1000);
  d.system_status = "ERROR";
  SetInverterState(d, 0x7000);
  EXPECT_EQ(EvaluateRemoteState(d, Context()).state, RemoteState::kOffline);
}

TEST_F(RemoteStateRule, CesStatusTakesPrecedenceOverInverterState) {
  auto d = HeardSecondsAgo(10);
  d.system_status = "ERROR";
  SetInverterState(d, 0x7000);
  EXPECT_EQ(EvaluateRemoteState(d, Context()).reason, "CES status ERROR");
  EXPECT_EQ(EvaluateRemoteState(d, Context()).cause, "ces:ERROR");
}

TEST_F(RemoteStateRule, TimeoutIsAnInput) {
  auto c = Context();
  c.offline_timeout = seconds(60);
  EXPECT_EQ(EvaluateRemoteState(HeardSecondsAgo(61), c).state, RemoteState::kOffline);
}

// --- PlanRemoteState: what to record, what to send -----------------------------------------------

TEST_F(RemoteStateRule, FirstEvaluationIsRecordedAndSent) {
  const auto step = PlanRemoteState(HeardSecondsAgo(30), Context());
  EXPECT_TRUE(step.record);
  EXPECT_TRUE(step.send);
  EXPECT_EQ(step.decision, (StateDecision{RemoteState::kOnline, "telemetry current", "online"}));
}

TEST_F(RemoteStateRule, EvaluatedAndAcceptedRecordsAndSendsNothing) {
  const auto d = Evaluated(HeardSecondsAgo(30), {RemoteState::kOnline, "telemetry current", "online"}, true);
  const auto step = PlanRemoteState(d, Context());
  EXPECT_FALSE(step.record);
  EXPECT_FALSE(step.send);
  EXPECT_EQ(step.decision.state, RemoteState::kOnline);
}

TEST_F(RemoteStateRule, EvaluatedButNotAcceptedIsSentAgainWithoutRecording) {
  // The evaluation was recorded, but its update failed (or was dead-lettered): Concerto still
  // shows the older state.
  auto d = Evaluated(HeardSecondsAgo(30), {RemoteState::kOnline, "telemetry current", "online"}, false);
  d.remote_state = RemoteState::kOffline;
  auto step = PlanRemoteState(d, Context());
  EXPECT_FALSE(step.record);
  EXPECT_TRUE(step.send);
  // Never accepted at all: the same.
  d.remote_state.reset();
  step = PlanRemoteState(d, Context());
  EXPECT_FALSE(step.record);
  EXPECT_TRUE(step.send);
}

TEST_F(RemoteStateRule, AStateChangeIsRecordedAndSent) {
  auto d = Evaluated(HeardSecondsAgo(30), {RemoteState::kOnline, "telemetry current", "online"}, true);
  d.system_status = "DISCONNECTED";
  const auto step = PlanRemoteState(d, Context());
  EXPECT_TRUE(step.record);
  EXPECT_TRUE(step.send);
  EXPECT_EQ(step.decision, (StateDecision{RemoteState::kError, "CES status DISCONNECTED", "ces:DISCONNECTED"}));
}

TEST_F(RemoteStateRule, BackToWhatConcertoHasIsRecordedButNotSent) {
  // Evaluated ERROR, never accepted (Concerto still shows ONLINE); now ONLINE again.
  auto d = Evaluated(HeardSecondsAgo(30), {RemoteState::kError, "CES status DISCONNECTED", "ces:DISCONNECTED"}, false);
  d.remote_state = RemoteState::kOnline;
  const auto step = PlanRemoteState(d, Context());
  EXPECT_TRUE(step.record);
  EXPECT_FALSE(step.send);
  EXPECT_EQ(step.decision.state, RemoteState::kOnline);
}

TEST_F(RemoteStateRule, ACauseChangeWithTheSameStateIsRecordedButNotSent) {
  // ERROR because of CES, then ERROR because of the inverter (CES recovered): the reason changes,
  // Concerto's state does not.
  auto d = Evaluated(HeardSecondsAgo(30), {RemoteState::kError, "CES status DISCONNECTED", "ces:DISCONNECTED"}, true);
  SetInverterState(d, 0x7010);
  const auto step = PlanRemoteState(d, Context());
  EXPECT_TRUE(step.record);
  EXPECT_FALSE(step.send);
  EXPECT_EQ(step.decision, (StateDecision{RemoteState::kError, "inverter state 0x7010", "inverter:0x7010"}));
}

TEST_F(RemoteStateRule, NeverHeardThenHeardLongAgoIsANewCauseOfTheSameOffline) {
  DeviceRecord never;
  never.remote_id = "sys-1";
  auto d = Evaluated(never, EvaluateRemoteState(never, Context()), true);
  ASSERT_EQ(d.remote_state_cause, "never_heard");
  d.last_heard_at = clock_.Now() - std::chrono::hours(2);  // a late record from two hours ago
  const auto step = PlanRemoteState(d, Context());
  EXPECT_TRUE(step.record);
  EXPECT_FALSE(step.send);
  EXPECT_EQ(step.decision.state, RemoteState::kOffline);
  EXPECT_EQ(step.decision.cause, "silent:" + std::to_string(kStartMs - 7'200'000));
  EXPECT_EQ(step.decision.reason, "no telemetry for 7200 s (last heard 2025-11-22T06:26:40Z)");
}

TEST_F(RemoteStateRule, TheSameSilenceLaterIsNotRecordedAgain) {
  const auto d0 = HeardSecondsAgo(960);
  const auto d = Evaluated(d0, EvaluateRemoteState(d0, Context()), true);
  clock_.Advance(seconds(600));
  const auto step = PlanRemoteState(d, Context());
  EXPECT_FALSE(step.record) << "only the figure of the wording changed";
  EXPECT_FALSE(step.send);
}

// --- Startup grace ----------------------------------------------------------------------------

TEST_F(RemoteStateRule, GraceHoldsOfflineBackAndKeepsThePreviousEvaluation) {
  const auto c = GraceContext();
  ASSERT_TRUE(InStartupGrace(c));
  // Silent during the adapter's downtime; ONLINE before it, and Concerto has it.
  auto d = Evaluated(HeardSecondsAgo(3600), {RemoteState::kOnline, "telemetry current", "online"}, true);
  auto step = PlanRemoteState(d, c);
  EXPECT_FALSE(step.record);
  EXPECT_FALSE(step.send);
  EXPECT_EQ(step.decision, (StateDecision{RemoteState::kOnline, "telemetry current", "online"}));

  // Out of grace the same record goes OFFLINE.
  step = PlanRemoteState(d, Context());
  EXPECT_TRUE(step.record);
  EXPECT_TRUE(step.send);
  EXPECT_EQ(step.decision.state, RemoteState::kOffline);
  EXPECT_EQ(step.decision.reason, "no telemetry for 3600 s (last heard 2025-11-22T07:26:40Z)");
}

TEST_F(RemoteStateRule, GraceResendsTheHeldEvaluationOnlyWhenConcertoNeverAcceptedIt) {
  const auto c = GraceContext();
  auto d = Evaluated(HeardSecondsAgo(3600), {RemoteState::kOnline, "telemetry current", "online"}, false);
  auto step = PlanRemoteState(d, c);
  EXPECT_FALSE(step.record);
  EXPECT_TRUE(step.send) << "ONLINE was evaluated before the restart but never accepted";
  EXPECT_EQ(step.decision.state, RemoteState::kOnline);

  d.remote_state = RemoteState::kOffline;  // Concerto shows an older OFFLINE
  step = PlanRemoteState(d, c);
  EXPECT_TRUE(step.send);
  EXPECT_EQ(step.decision.state, RemoteState::kOnline);

  d.remote_state = RemoteState::kOnline;
  EXPECT_FALSE(PlanRemoteState(d, c).send);
}

TEST_F(RemoteStateRule, GraceSendsNothingForASystemNeverEvaluated) {
  const auto step = PlanRemoteState(HeardSecondsAgo(3600), GraceContext());
  EXPECT_FALSE(step.record);
  EXPECT_FALSE(step.send);
  DeviceRecord never;
  never.remote_id = "sys-2";
  const auto never_step = PlanRemoteState(never, GraceContext());
  EXPECT_FALSE(never_step.record);
  EXPECT_FALSE(never_step.send);
}

TEST_F(RemoteStateRule, GraceDoesNotHoldAnOfflineAlreadyEvaluated) {
  // OFFLINE before the restart and still silent: nothing is held; a new cause is recorded.
  auto d0 = HeardSecondsAgo(3600);
  d0.last_heard_at = clock_.Now() - seconds(7200);
  auto d = Evaluated(d0, EvaluateRemoteState(d0, Context()), false);
  d.last_heard_at = clock_.Now() - seconds(3600);
  const auto step = PlanRemoteState(d, GraceContext());
  EXPECT_TRUE(step.record);
  EXPECT_TRUE(step.send) << "OFFLINE evaluated, never accepted";
  EXPECT_EQ(step.decision.state, RemoteState::kOffline);
}

TEST_F(RemoteStateRule, GraceEndsAfterOfflineTimeoutEvenIfNeverCaughtUp) {
  EXPECT_TRUE(InStartupGrace(GraceContext(seconds(899))));
  EXPECT_FALSE(InStartupGrace(GraceContext(seconds(900))));
  auto d = Evaluated(HeardSecondsAgo(3600), {RemoteState::kOnline, "telemetry current", "online"}, true);
  EXPECT_FALSE(PlanRemoteState(d, GraceContext(seconds(899))).send);
  const auto step = PlanRemoteState(d, GraceContext(seconds(900)));
  EXPECT_TRUE(step.record);
  EXPECT_TRUE(step.send);
  EXPECT_EQ(step.decision.state, RemoteState::kOffline);
}

TEST_F(RemoteStateRule, GraceEndsWhenTheSourceCaughtUp) {
  auto c = GraceContext();
  c.source_caught_up = true;
  EXPECT_FALSE(InStartupGrace(c));
  auto d = Evaluated(HeardSecondsAgo(3600), {RemoteState::kOnline, "telemetry current", "online"}, true);
  EXPECT_EQ(PlanRemoteState(d, c).decision.state, RemoteState::kOffline);
}

TEST_F(RemoteStateRule, GraceDoesNotHoldErrorOrOnline) {
  const auto c = GraceContext(seconds(0));
  auto d = Evaluated(HeardSecondsAgo(10), {RemoteState::kOnline, "telemetry current", "online"}, true);
  SetInverterState(d, 0x7001);
  auto step = PlanRemoteState(d, c);
  EXPECT_TRUE(step.record);
  EXPECT_TRUE(step.send);
  EXPECT_EQ(step.decision.state, RemoteState::kError);

  auto offline = Evaluated(HeardSecondsAgo(10), {RemoteState::kOffline, "no telemetry received yet", "never_heard"}, true);
  step = PlanRemoteState(offline, c);
  EXPECT_TRUE(step.record);
  EXPECT_TRUE(step.send);
  EXPECT_EQ(step.decision.state, RemoteState::kOnline);
}

// --- SourceCaughtUp ---------------------------------------------------------------------------

TEST(SourceCaughtUp, OnlyAStreamLagUnderOneRecordIntervalCounts) {
  const Duration interval = seconds(300);
  EXPECT_TRUE(SourceCaughtUp(SourceProgress{seconds(0)}, interval));
  EXPECT_TRUE(SourceCaughtUp(SourceProgress{seconds(299)}, interval));
  EXPECT_FALSE(SourceCaughtUp(SourceProgress{seconds(300)}, interval));
  EXPECT_FALSE(SourceCaughtUp(SourceProgress{seconds(5000)}, interval));
  // A push source reports no lag: it never "catches up" (its grace is offline_timeout from start).
  EXPECT_FALSE(SourceCaughtUp(SourceProgress{}, interval));
  EXPECT_FALSE(SourceCaughtUp(SourceProgress{std::nullopt}, interval));
}

// --- Site aggregate ---------------------------------------------------------------------------

TEST(SiteState, AnyOnlineMakesTheSiteOnline) {
  EXPECT_EQ(AggregateSiteState({RemoteState::kOffline, RemoteState::kOnline, RemoteState::kError}),
            (StateDecision{RemoteState::kOnline, "1 of 3 systems ONLINE", "site:online"}));
}

TEST(SiteState, ElseAnyErrorMakesItError) {
  EXPECT_EQ(AggregateSiteState({RemoteState::kOffline, RemoteState::kError}),
            (StateDecision{RemoteState::kError, "no system ONLINE; 1 of 2 in ERROR", "site:error"}));
}

TEST(SiteState, ElseOffline) {
  EXPECT_EQ(AggregateSiteState({RemoteState::kOffline, RemoteState::kOffline}),
            (StateDecision{RemoteState::kOffline, "all 2 systems OFFLINE", "site:offline"}));
  EXPECT_EQ(AggregateSiteState({}), (StateDecision{RemoteState::kOffline, "no system on the site", "site:empty"}));
}

}  // namespace
}  // namespace pwrcell::domain

namespace pwrcell::domain {
namespace {

// Records over every input of the rule: heard (never / long ago / recently), CES status, simulated,
// inverter readings, and what is recorded (evaluated, accepted, cause), including stale causes.
std::vector<DeviceRecord> SettledGrid(Timestamp cutoff) {
  std::vector<DeviceRecord> grid;
  const std::vector<std::optional<Timestamp>> heard{std::nullopt, cutoff - std::chrono::seconds(1), cutoff,
                                                    cutoff + std::chrono::seconds(300)};
  const std::vector<std::optional<std::string>> statuses{std::nullopt, "SUCCESS", "DISCONNECTED"};
  const std::vector<std::vector<std::uint32_t>> readings{{}, {2080}, {2080, 0x7010}};
  const std::vector<std::optional<RemoteState>> states{std::nullopt, RemoteState::kOnline, RemoteState::kOffline,
                                                       RemoteState::kError};
  int n = 0;
  for (const auto& h : heard) {
    for (const auto& status : statuses) {
      for (bool simulated : {false, true}) {
        for (const auto& states_of_inverters : readings) {
          for (const auto& evaluated : states) {
            for (const auto& accepted : states) {
              DeviceRecord d;
              d.remote_id = "sys-" + std::to_string(n++);
              d.last_heard_at = h;
              d.system_status = status;
              d.is_simulated = simulated;
              for (std::size_t i = 0; i < states_of_inverters.size(); ++i) {
                d.inverter_rcpns.push_back("inv-" + std::to_string(i));
                d.inverter_readings.push_back({"inv-" + std::to_string(i), states_of_inverters[i], 2, h.value_or(cutoff)});
              }
              d.evaluated_state = evaluated;
              d.remote_state = accepted;
              // The cause the rule gives now, and a stale one.
              for (const std::string& cause : {EvaluateRemoteState(d, {cutoff + std::chrono::seconds(900),
                                                                       std::chrono::seconds(900), cutoff, true})
                                                   .cause,
                                               std::string("silent:1")}) {
                d.remote_state_cause = cause;
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

TEST(EvaluationSettled, ASettledRecordIsNeitherRecordedNorSentAtAnyContextOfItsCutoff) {
  const Timestamp cutoff = FromUnixMillis(1'800'000'000'000);
  int settled = 0, unsettled = 0;
  for (const auto& d : SettledGrid(cutoff)) {
    if (!EvaluationSettled(d, cutoff)) {
      ++unsettled;
      continue;
    }
    ++settled;
    for (auto timeout : {std::chrono::seconds(60), std::chrono::seconds(900), std::chrono::seconds(7200)}) {
      for (bool grace : {false, true}) {
        const LivenessContext context{cutoff + timeout, timeout, grace ? cutoff + timeout / 2 : cutoff - timeout, !grace};
        ASSERT_EQ(InStartupGrace(context), grace);
        const RemoteStateStep step = PlanRemoteState(d, context);
        EXPECT_FALSE(step.record) << d.remote_id;
        EXPECT_FALSE(step.send) << d.remote_id;
      }
    }
  }
  EXPECT_GT(settled, 0);
  EXPECT_GT(unsettled, settled);
}

TEST(EvaluationSettled, OnlyAcceptedEvaluationsThatTimeAloneCannotChangeAreSettled) {
  const Timestamp cutoff = FromUnixMillis(1'800'000'000'000);
  DeviceRecord healthy;
  healthy.last_heard_at = cutoff + std::chrono::seconds(10);
  healthy.inverter_readings = {{"inv", 2080, 2, *healthy.last_heard_at}};
  healthy.evaluated_state = healthy.remote_state = RemoteState::kOnline;
  healthy.remote_state_cause = "online";
  EXPECT_TRUE(EvaluationSettled(healthy, cutoff));
  EXPECT_FALSE(EvaluationSettled(healthy, cutoff + std::chrono::seconds(11))) << "silent at a later cutoff";
  DeviceRecord pending = healthy;
  pending.remote_state = RemoteState::kOffline;
  EXPECT_FALSE(EvaluationSettled(pending, cutoff)) << "Concerto has not accepted it";
  DeviceRecord failing = healthy;
  failing.inverter_readings.front().state = 0x7010;
  EXPECT_FALSE(EvaluationSettled(failing, cutoff)) << "an error reading written without an evaluation";
  DeviceRecord ces = healthy;
  ces.system_status = "DISCONNECTED";
  EXPECT_FALSE(EvaluationSettled(ces, cutoff));
  DeviceRecord silent;
  silent.last_heard_at = cutoff - std::chrono::seconds(1);
  silent.evaluated_state = silent.remote_state = RemoteState::kOffline;
  silent.remote_state_cause = "silent:" + std::to_string(ToUnixMillis(*silent.last_heard_at));
  EXPECT_TRUE(EvaluationSettled(silent, cutoff));
  silent.last_heard_at = cutoff + std::chrono::seconds(1);
  EXPECT_FALSE(EvaluationSettled(silent, cutoff)) << "heard again: may come ONLINE";
}

}  // namespace
}  // namespace pwrcell::domain
