#include "processes/ces_state.h"

#include <gtest/gtest.h>

#include <functional>
#include <utility>

#include "process_test_support.h"
#include "processes/shared_state.h"

namespace pwrcell::processes {
namespace {

using domain::RemoteState;
using test_support::DrainCes;
using test_support::DrainConcerto;

// The fake clock starts at 2025-11-22T08:26:40Z (unix ms 1'763'800'000'000).
constexpr std::int64_t kStartMs = 1'763'800'000'000;

domain::CesStatusBatch Statuses(std::vector<std::pair<std::string, std::string>> statuses,
                                std::vector<std::string> not_found = {}) {
  domain::CesStatusBatch batch;
  for (auto& [id, name] : statuses) batch.statuses.push_back({id, name, std::nullopt});
  batch.not_found = std::move(not_found);
  return batch;
}

class CesStateTest : public ::testing::Test {
 protected:
  // A system heard `ago` (a minute) ago, evaluated ONLINE and Concerto has accepted ONLINE, on
  // site "site-1".
  domain::DeviceRecord Heard(const std::string& remote_id, Duration ago = std::chrono::seconds(60)) {
    auto d = test_support::Registered(remote_id, "asset-" + remote_id, h.clock.Now());
    d.site = domain::SiteRef{"site-1", "ces-site-1", "Smith residence"};
    d.last_heard_at = h.clock.Now() - ago;
    d.system_status = "SUCCESS";
    d.remote_state = RemoteState::kOnline;
    d.evaluated_state = RemoteState::kOnline;
    d.remote_state_reason = "telemetry current";
    d.remote_state_cause = "online";
    d.remote_state_since = h.clock.Now() - std::chrono::hours(1);
    return h.Store(d);
  }

  // Drains the Concerto queue; each update_remote_state's lease token is recorded in `tokens`
  // and cleared, so that the requests compare without the random token.
  std::vector<ConcertoRequest> Requests() {
    auto requests = DrainConcerto(h.concerto_queue);
    tokens.clear();
    for (auto& r : requests) {
      if (auto* u = std::get_if<RemoteStateRequest>(&r)) {
        tokens.push_back(u->lease_owner);
        u->lease_owner.clear();
      }
    }
    return requests;
  }
  static std::vector<ConcertoRequest> One(const std::string& remote_id,
                                          std::optional<std::string> site = std::string("site-1")) {
    return {RemoteStateRequest{remote_id, std::move(site), ""}};
  }
  std::optional<ports::LeaseInfo> RequestLease(const std::string& remote_id) {
    auto lease = h.coordination.GetLease(SystemKey(remote_id, "remote_state"));
    EXPECT_TRUE(lease.ok()) << lease.status().ToString();
    return lease.ok() ? *lease : std::nullopt;
  }
  // What the gateway does once a request is done for good.
  void ReleaseRequestLease(const std::string& remote_id, const std::string& token) {
    auto released = h.coordination.ReleaseLease(SystemKey(remote_id, "remote_state"), token);
    ASSERT_TRUE(released.ok() && *released) << "the lease was not held by " << token;
  }

  test_support::Harness h;
  CesStateProcessor processor{h.context};
  std::vector<std::string> tokens;  // of the requests last drained by Requests()
};

TEST_F(CesStateTest, NonSuccessStatusIsEvaluatedErrorAndQueuedUnderALease) {
  Heard("sys-1");
  h.clock.Advance(std::chrono::seconds(5));
  ASSERT_TRUE(processor.Process(Statuses({{"sys-1", "DISCONNECTED"}})).ok());

  const auto d = h.Device("sys-1");
  EXPECT_EQ(d.system_status, std::optional<std::string>("DISCONNECTED"));
  EXPECT_EQ(d.system_status_at, h.clock.Now());
  EXPECT_EQ(d.evaluated_state, std::optional<RemoteState>(RemoteState::kError));
  EXPECT_EQ(d.remote_state, std::optional<RemoteState>(RemoteState::kOnline)) << "only the gateway records acceptance";
  EXPECT_EQ(d.remote_state_reason, "CES status DISCONNECTED");
  EXPECT_EQ(d.remote_state_cause, "ces:DISCONNECTED");
  EXPECT_EQ(d.remote_state_since, h.clock.Now());
  EXPECT_EQ(Requests(), One("sys-1"));
  ASSERT_EQ(tokens.size(), 1U);
  EXPECT_FALSE(tokens[0].empty());
  const auto lease = RequestLease("sys-1");
  ASSERT_TRUE(lease.has_value());
  EXPECT_EQ(lease->owner, tokens[0]) << "the request carries the token of the lease the sweep took";
  EXPECT_EQ(lease->expires_at, h.clock.Now() + h.context.settings.list_assets_expiry);
  EXPECT_EQ(h.metrics.Value("pwrcell_remote_state_changes_total", {{"state", "ERROR"}}), 1);

  // Back to SUCCESS before the request ran: ONLINE is evaluated again; Concerto still shows
  // ONLINE, so there is nothing to send.
  ASSERT_TRUE(processor.Process(Statuses({{"sys-1", "SUCCESS"}})).ok());
  EXPECT_EQ(h.Device("sys-1").evaluated_state, std::optional<RemoteState>(RemoteState::kOnline));
  EXPECT_EQ(h.Device("sys-1").remote_state_reason, "telemetry current");
  EXPECT_TRUE(Requests().empty());
  EXPECT_EQ(h.metrics.Value("pwrcell_remote_state_changes_total", {{"state", "ONLINE"}}), 1);
}

TEST_F(CesStateTest, SystemUnknownToCesIsErrorWithStatusUnknown) {
  Heard("sys-1");
  ASSERT_TRUE(processor.Process(Statuses({}, {"sys-1"})).ok());
  const auto d = h.Device("sys-1");
  EXPECT_EQ(d.system_status, std::optional<std::string>("UNKNOWN"));
  EXPECT_EQ(d.evaluated_state, std::optional<RemoteState>(RemoteState::kError));
  EXPECT_EQ(d.remote_state_reason, "CES status UNKNOWN");
  EXPECT_EQ(d.remote_state_cause, "ces:UNKNOWN");
  EXPECT_EQ(Requests(), One("sys-1"));
}

TEST_F(CesStateTest, StatusOfAnotherSystemLeavesTheOthersAlone) {
  Heard("sys-1");
  const auto silent = Heard("sys-2", std::chrono::hours(2));  // silent, but only sys-1 is in this answer
  ASSERT_TRUE(processor.Process(Statuses({{"sys-1", "SUCCESS"}, {"nobody", "DISCONNECTED"}})).ok());
  EXPECT_TRUE(Requests().empty());
  EXPECT_EQ(h.Device("sys-2"), silent);
  EXPECT_FALSE(h.Has("nobody"));
}

TEST_F(CesStateTest, SilentBeyondOfflineTimeoutGoesOfflineOnTheSweep) {
  Heard("sys-1", Duration(0));
  h.clock.Advance(std::chrono::seconds(900));
  ASSERT_TRUE(processor.Sweep().ok());
  EXPECT_TRUE(Requests().empty()) << "exactly offline_timeout is not beyond it";
  EXPECT_EQ(h.Device("sys-1").evaluated_state, std::optional<RemoteState>(RemoteState::kOnline));

  h.clock.Advance(std::chrono::seconds(60));  // the next sweep
  ASSERT_TRUE(processor.Sweep().ok());
  const Timestamp went_offline = h.clock.Now();
  auto d = h.Device("sys-1");
  EXPECT_EQ(d.evaluated_state, std::optional<RemoteState>(RemoteState::kOffline));
  EXPECT_EQ(d.remote_state, std::optional<RemoteState>(RemoteState::kOnline));
  EXPECT_EQ(d.remote_state_reason, "no telemetry for 960 s (last heard 2025-11-22T08:26:40Z)");
  EXPECT_EQ(d.remote_state_cause, "silent:" + std::to_string(kStartMs));
  EXPECT_EQ(d.remote_state_since, went_offline);
  EXPECT_EQ(Requests(), One("sys-1"));

  // Still silent (and the request still queued): nothing new recorded or queued.
  h.clock.Advance(std::chrono::seconds(60));
  ASSERT_TRUE(processor.Sweep().ok());
  EXPECT_TRUE(Requests().empty());
  d = h.Device("sys-1");
  EXPECT_EQ(d.remote_state_reason, "no telemetry for 960 s (last heard 2025-11-22T08:26:40Z)")
      << "the same cause is not rewritten with a new figure";
  EXPECT_EQ(d.remote_state_since, went_offline);
  EXPECT_EQ(h.metrics.Value("pwrcell_remote_state_changes_total", {{"state", "OFFLINE"}}), 1);
}

TEST_F(CesStateTest, OfflineBeatsAnErrorStatus) {
  Heard("sys-1", std::chrono::seconds(1000));
  ASSERT_TRUE(processor.Process(Statuses({{"sys-1", "DISCONNECTED"}})).ok());
  const auto d = h.Device("sys-1");
  EXPECT_EQ(d.evaluated_state, std::optional<RemoteState>(RemoteState::kOffline));
  EXPECT_EQ(d.remote_state_reason, "no telemetry for 1000 s (last heard 2025-11-22T08:10:00Z)");
}

TEST_F(CesStateTest, InverterErrorStateIsError) {
  auto d = Heard("sys-1");
  d.inverter_rcpns = {"000100000001"};
  d.inverter_readings = {domain::InverterReading{"000100000001", 0x7010, 2, *d.last_heard_at}};
  ASSERT_TRUE(h.devices.Put(d).ok());
  ASSERT_TRUE(processor.Sweep().ok());
  EXPECT_EQ(h.Device("sys-1").evaluated_state, std::optional<RemoteState>(RemoteState::kError));
  EXPECT_EQ(h.Device("sys-1").remote_state_reason, "inverter state 0x7010");
  EXPECT_EQ(h.Device("sys-1").remote_state_cause, "inverter:0x7010");
  EXPECT_EQ(Requests(), One("sys-1"));
}

TEST_F(CesStateTest, ACauseChangeOfTheSameStateIsRecordedNotCountedNotQueued) {
  Heard("sys-1");
  ASSERT_TRUE(processor.Process(Statuses({{"sys-1", "DISCONNECTED"}})).ok());
  ASSERT_EQ(Requests(), One("sys-1"));
  // The gateway ran it: Concerto accepted ERROR.
  auto d = h.Device("sys-1");
  d.remote_state = RemoteState::kError;
  d = *h.devices.Put(d);
  ReleaseRequestLease("sys-1", tokens[0]);

  // CES recovers, but an inverter reports an error state: still ERROR, for another cause.
  h.clock.Advance(std::chrono::seconds(30));
  d.inverter_rcpns = {"000100000001"};
  d.inverter_readings = {domain::InverterReading{"000100000001", 0x7010, 2, h.clock.Now()}};
  ASSERT_TRUE(h.devices.Put(d).ok());
  ASSERT_TRUE(processor.Process(Statuses({{"sys-1", "SUCCESS"}})).ok());
  d = h.Device("sys-1");
  EXPECT_EQ(d.evaluated_state, std::optional<RemoteState>(RemoteState::kError));
  EXPECT_EQ(d.remote_state_reason, "inverter state 0x7010");
  EXPECT_EQ(d.remote_state_cause, "inverter:0x7010");
  EXPECT_EQ(d.remote_state_since, h.clock.Now());
  EXPECT_TRUE(Requests().empty()) << "Concerto already shows ERROR";
  EXPECT_EQ(h.metrics.Value("pwrcell_remote_state_changes_total", {{"state", "ERROR"}}), 1)
      << "only state changes are counted";
}

TEST_F(CesStateTest, ReasonFollowsTheCauseWhenALateRecordArrives) {
  // Never heard: OFFLINE, and Concerto has accepted OFFLINE.
  auto d = test_support::Registered("sys-1", "asset-1", h.clock.Now());
  d.site = domain::SiteRef{"site-1", "ces-site-1", "Smith residence"};
  h.Store(d);
  ASSERT_TRUE(processor.Sweep().ok());
  d = h.Device("sys-1");
  ASSERT_EQ(d.evaluated_state, std::optional<RemoteState>(RemoteState::kOffline));
  EXPECT_EQ(d.remote_state_reason, "no telemetry received yet");
  EXPECT_EQ(d.remote_state_cause, "never_heard");
  ASSERT_EQ(Requests(), One("sys-1"));
  d.remote_state = RemoteState::kOffline;  // accepted
  d = *h.devices.Put(d);
  ReleaseRequestLease("sys-1", tokens[0]);

  // A record from two hours ago arrives late: still OFFLINE, for another reason.
  h.clock.Advance(std::chrono::minutes(1));
  d.last_heard_at = h.clock.Now() - std::chrono::hours(2);
  ASSERT_TRUE(h.devices.Put(d).ok());
  ASSERT_TRUE(processor.Sweep().ok());
  d = h.Device("sys-1");
  EXPECT_EQ(d.evaluated_state, std::optional<RemoteState>(RemoteState::kOffline));
  EXPECT_EQ(d.remote_state, std::optional<RemoteState>(RemoteState::kOffline));
  EXPECT_EQ(d.remote_state_reason, "no telemetry for 7200 s (last heard 2025-11-22T06:27:40Z)");
  EXPECT_EQ(d.remote_state_cause, "silent:" + std::to_string(kStartMs + 60'000 - 7'200'000));
  EXPECT_EQ(d.remote_state_since, h.clock.Now());
  EXPECT_TRUE(Requests().empty()) << "Concerto already has OFFLINE";
  EXPECT_EQ(h.metrics.Value("pwrcell_remote_state_changes_total", {{"state", "OFFLINE"}}), 1);
}

TEST_F(CesStateTest, SimulatedSystemCountsAsSuccess) {
  auto d = Heard("sim-1");
  d.is_simulated = true;
  d.system_status = "DISCONNECTED";  // left over from when it was real
  d.remote_state.reset();
  d.evaluated_state.reset();
  d.remote_state_cause.clear();
  ASSERT_TRUE(h.devices.Put(d).ok());
  ASSERT_TRUE(processor.Process(Statuses({{"sim-1", "DISCONNECTED"}})).ok());
  EXPECT_EQ(h.Device("sim-1").system_status, std::optional<std::string>("DISCONNECTED")) << "not overwritten";
  EXPECT_EQ(h.Device("sim-1").evaluated_state, std::optional<RemoteState>(RemoteState::kOnline));
  EXPECT_EQ(Requests(), One("sim-1"));
}

TEST_F(CesStateTest, UnchangedStateQueuesNothing) {
  const auto before = Heard("sys-1");
  ASSERT_TRUE(processor.Process(Statuses({{"sys-1", "SUCCESS"}})).ok());
  ASSERT_TRUE(processor.Sweep().ok());
  h.clock.Advance(std::chrono::seconds(60));
  ASSERT_TRUE(processor.Sweep().ok());
  EXPECT_TRUE(Requests().empty());
  EXPECT_EQ(h.metrics.Sum("pwrcell_remote_state_changes_total"), 0);
  const auto after = h.Device("sys-1");
  EXPECT_EQ(after.remote_state_reason, before.remote_state_reason);
  EXPECT_EQ(after.remote_state_since, before.remote_state_since);
  EXPECT_FALSE(RequestLease("sys-1").has_value());
}

TEST_F(CesStateTest, FirstEvaluationSendsTheInitialState) {
  auto d = test_support::Registered("sys-1", "asset-1", h.clock.Now());
  d.last_heard_at = h.clock.Now() - std::chrono::seconds(5);
  h.Store(d);  // never evaluated, never sent, no site
  ASSERT_TRUE(processor.Sweep().ok());
  d = h.Device("sys-1");
  EXPECT_EQ(d.evaluated_state, std::optional<RemoteState>(RemoteState::kOnline));
  EXPECT_EQ(d.remote_state, std::nullopt);
  EXPECT_EQ(d.remote_state_reason, "telemetry current");
  EXPECT_EQ(d.remote_state_cause, "online");
  EXPECT_EQ(d.remote_state_since, h.clock.Now());
  EXPECT_EQ(Requests(), One("sys-1", std::nullopt));
  EXPECT_EQ(h.metrics.Value("pwrcell_remote_state_changes_total", {{"state", "ONLINE"}}), 1);
}

TEST_F(CesStateTest, EachSystemIsQueuedWithItsSiteIdOnly) {
  Heard("sys-1");
  Heard("sys-2");
  ASSERT_TRUE(processor.Process(Statuses({{"sys-1", "DISCONNECTED"}, {"sys-2", "DISCONNECTED"}})).ok());
  EXPECT_EQ(Requests(), (std::vector<ConcertoRequest>{RemoteStateRequest{"sys-1", "site-1", ""},
                                                      RemoteStateRequest{"sys-2", "site-1", ""}}));
  ASSERT_EQ(tokens.size(), 2U);
  EXPECT_FALSE(tokens[0].empty());
  EXPECT_NE(tokens[0], tokens[1]) << "one lease per system";
  EXPECT_EQ(RequestLease("sys-1")->owner, tokens[0]);
  EXPECT_EQ(RequestLease("sys-2")->owner, tokens[1]);
}

TEST_F(CesStateTest, TheBodyNamesTheSiteAndTheLeaseButNoState) {
  // The gateway reads the system's state and aggregates the site's when the request runs.
  Heard("sys-1");
  ASSERT_TRUE(processor.Process(Statuses({{"sys-1", "DISCONNECTED"}})).ok());
  const auto bodies = test_support::Drain(h.concerto_queue);
  ASSERT_EQ(bodies.size(), 1U);
  const auto lease = RequestLease("sys-1");
  ASSERT_TRUE(lease.has_value());
  EXPECT_EQ(bodies[0], R"({"lease":")" + lease->owner +
                           R"(","op":"update_remote_state","remote_id":"sys-1","site":{"id":"site-1"}})");
}

// --- Requests not accepted are queued again; one at a time per system -------------------------

TEST_F(CesStateTest, NoSecondRequestWhileOneIsQueued) {
  Heard("sys-1");
  ASSERT_TRUE(processor.Process(Statuses({{"sys-1", "DISCONNECTED"}})).ok());
  ASSERT_EQ(Requests(), One("sys-1"));
  const std::string token = tokens[0];
  for (int i = 0; i < 5; ++i) {
    h.clock.Advance(std::chrono::seconds(60));
    ASSERT_TRUE(processor.Sweep().ok());
    ASSERT_TRUE(processor.Process(Statuses({{"sys-1", "DISCONNECTED"}})).ok());
  }
  EXPECT_TRUE(Requests().empty()) << "ERROR is not accepted yet, but its request is still queued";
  EXPECT_EQ(RequestLease("sys-1")->owner, token);
}

TEST_F(CesStateTest, AFailedUpdateIsQueuedAgainOnceItsLeaseIsReleased) {
  Heard("sys-1");
  ASSERT_TRUE(processor.Process(Statuses({{"sys-1", "DISCONNECTED"}})).ok());
  ASSERT_EQ(Requests(), One("sys-1"));
  const std::string first = tokens[0];

  // The gateway failed for good (dead-letter) and gave the lease back; Concerto still shows ONLINE.
  ReleaseRequestLease("sys-1", first);
  h.clock.Advance(std::chrono::seconds(60));
  ASSERT_TRUE(processor.Sweep().ok());
  EXPECT_EQ(Requests(), One("sys-1"));
  ASSERT_EQ(tokens.size(), 1U);
  EXPECT_NE(tokens[0], first);
  EXPECT_EQ(RequestLease("sys-1")->owner, tokens[0]);
  EXPECT_EQ(h.Device("sys-1").evaluated_state, std::optional<RemoteState>(RemoteState::kError));
  EXPECT_EQ(h.metrics.Value("pwrcell_remote_state_changes_total", {{"state", "ERROR"}}), 1)
      << "a retry is not a change";
}

TEST_F(CesStateTest, ALostRequestIsQueuedAgainOnceItsLeaseExpired) {
  h.context.settings.offline_timeout = std::chrono::hours(2);  // stays heard while the clock moves
  Heard("sys-1");
  ASSERT_TRUE(processor.Process(Statuses({{"sys-1", "DISCONNECTED"}})).ok());
  ASSERT_EQ(Requests(), One("sys-1"));
  const std::string lost = tokens[0];

  // The request is lost (dead-lettered by a crashed worker): nobody gives the lease back.
  h.clock.Advance(h.context.settings.list_assets_expiry - std::chrono::milliseconds(1));
  ASSERT_TRUE(processor.Sweep().ok());
  EXPECT_TRUE(Requests().empty()) << "the lease has not expired yet";
  h.clock.Advance(std::chrono::milliseconds(1));
  ASSERT_TRUE(processor.Sweep().ok());
  EXPECT_EQ(Requests(), One("sys-1"));
  ASSERT_EQ(tokens.size(), 1U);
  EXPECT_NE(tokens[0], lost);
  EXPECT_EQ(RequestLease("sys-1")->owner, tokens[0]);
}

TEST_F(CesStateTest, ANewChangeIsQueuedEvenWhileARequestIsQueued) {
  h.context.settings.offline_timeout = std::chrono::seconds(120);  // goes OFFLINE well within the lease
  Heard("sys-1");
  ASSERT_TRUE(processor.Process(Statuses({{"sys-1", "DISCONNECTED"}})).ok());
  ASSERT_EQ(Requests(), One("sys-1"));
  const std::string first = tokens[0];

  // ERROR -> OFFLINE while the ERROR request waits: it may have read the record already.
  h.clock.Advance(std::chrono::seconds(61));
  ASSERT_LT(std::chrono::seconds(61), h.context.settings.list_assets_expiry) << "the first lease is live";
  ASSERT_TRUE(processor.Sweep().ok());
  EXPECT_EQ(h.Device("sys-1").evaluated_state, std::optional<RemoteState>(RemoteState::kOffline));
  EXPECT_EQ(Requests(), One("sys-1"));
  ASSERT_EQ(tokens.size(), 1U);
  EXPECT_TRUE(tokens[0].empty()) << "the lease is the first request's; this one has none to give back";
  EXPECT_EQ(RequestLease("sys-1")->owner, first);
}

TEST_F(CesStateTest, AFailedQueueSendGivesTheLeaseBackSoTheNextSweepQueuesIt) {
  Heard("sys-1");
  Heard("sys-2");
  test_support::SwitchableQueue queue(h.concerto_queue);
  Context context{h.devices, queue, h.telemetry_queue, h.ces_queue, h.clock, h.metrics, h.coordination,
                  h.context.settings, {}};
  CesStateProcessor failing(context);
  queue.down = true;
  Status failed = failing.Process(Statuses({{"sys-1", "DISCONNECTED"}, {"sys-2", "DISCONNECTED"}}));
  EXPECT_EQ(failed.code(), StatusCode::kUnavailable);
  EXPECT_TRUE(Requests().empty());
  EXPECT_FALSE(RequestLease("sys-1").has_value());
  EXPECT_FALSE(RequestLease("sys-2").has_value());
  EXPECT_EQ(h.Device("sys-1").evaluated_state, std::optional<RemoteState>(RemoteState::kError));

  queue.down = false;
  ASSERT_TRUE(failing.Sweep().ok());
  EXPECT_EQ(Requests(), (std::vector<ConcertoRequest>{RemoteStateRequest{"sys-1", "site-1", ""},
                                                      RemoteStateRequest{"sys-2", "site-1", ""}}));
}

// A device store whose List() runs `after_list` once, after it read the records and before it
// returns them: another process writes in between (a race of two sweeps).
class RacingStore final : public ports::DeviceStore {
 public:
  explicit RacingStore(ports::DeviceStore& inner) : inner_(inner) {}
  std::function<void()> after_list;

  Result<std::optional<domain::DeviceRecord>> Get(const std::string& id) override { return inner_.Get(id); }
  Result<std::optional<domain::DeviceRecord>> FindByInverterRcpn(const std::string& rcpn) override {
    return inner_.FindByInverterRcpn(rcpn);
  }
  Result<std::optional<ports::DeviceKey>> FindKeyByInverterRcpn(const std::string& rcpn) override {
    return inner_.FindKeyByInverterRcpn(rcpn);
  }
  Result<bool> RecordHeard(const std::string& id, Timestamp at,
                           const std::optional<domain::InverterReading>& reading) override {
    return inner_.RecordHeard(id, at, reading);
  }
  Status RecordHeardBatch(const std::vector<ports::HeardUpdate>& updates) override {
    return inner_.RecordHeardBatch(updates);
  }
  Result<std::vector<domain::DeviceRecord>> List() override {
    auto listed = inner_.List();
    if (auto hook = std::exchange(after_list, nullptr)) hook();
    return listed;
  }
  Result<std::vector<domain::DeviceRecord>> ListPage(const ports::DeviceFilter& filter, const std::string& after,
                                                     std::size_t limit) override {
    return inner_.ListPage(filter, after, limit);
  }
  Result<std::vector<ports::DeviceKey>> ListKeys(const ports::DeviceFilter& filter, const std::string& after,
                                                 std::size_t limit) override {
    return inner_.ListKeys(filter, after, limit);
  }
  Result<std::int64_t> Count(const ports::DeviceFilter& filter) override { return inner_.Count(filter); }
  Result<std::vector<ports::DeviceTally>> Tally() override { return inner_.Tally(); }
  Result<std::vector<domain::DeviceRecord>> ListUnsettled(Timestamp cutoff, const std::string& after,
                                                          std::size_t limit) override {
    auto listed = inner_.ListUnsettled(cutoff, after, limit);
    if (auto hook = std::exchange(after_list, nullptr)) hook();
    return listed;
  }
  Result<std::vector<domain::DeviceRecord>> ListBySite(const std::string& site_id) override {
    return inner_.ListBySite(site_id);
  }
  Result<domain::DeviceRecord> Put(const domain::DeviceRecord& record) override { return inner_.Put(record); }
  Status Remove(const std::string& id, std::int64_t version) override { return inner_.Remove(id, version); }

 private:
  ports::DeviceStore& inner_;
};

TEST_F(CesStateTest, TwoSweepsRacingOnOneChangeCountAndQueueItOnce) {
  Heard("sys-1", std::chrono::seconds(1000));  // silent: OFFLINE is due
  RacingStore racing(h.devices);
  Context context{racing, h.concerto_queue, h.telemetry_queue, h.ces_queue, h.clock, h.metrics, h.coordination,
                  h.context.settings, {}};
  CesStateProcessor slow(context);
  // The other process records the change (and queues it) after this one listed the records.
  racing.after_list = [&] { ASSERT_TRUE(processor.Sweep().ok()); };
  ASSERT_TRUE(slow.Sweep().ok());
  EXPECT_EQ(h.Device("sys-1").evaluated_state, std::optional<RemoteState>(RemoteState::kOffline));
  EXPECT_EQ(h.metrics.Value("pwrcell_remote_state_changes_total", {{"state", "OFFLINE"}}), 1)
      << "one change, counted by the process that recorded it";
  EXPECT_EQ(Requests(), One("sys-1")) << "the change is queued once (by the process that recorded it)";
}

// --- Startup grace (the watermark in the store) ---------------------------------------------

class CesStateStartupGraceTest : public CesStateTest {
 protected:
  void SetUp() override {
    // The adapter restarts after two hours down: sys-1 was last heard before that, ONLINE.
    Heard("sys-1", std::chrono::hours(2));
    started = h.clock.Now();
    ASSERT_TRUE(MarkAdapterStarted(h.coordination, started).ok());
    h.context.source_progress = [this] { return progress; };
  }
  std::optional<StartupWatermark> Watermark() {
    auto watermark = ReadStartupWatermark(h.coordination);
    EXPECT_TRUE(watermark.ok()) << watermark.status().ToString();
    return watermark.ok() ? *watermark : std::nullopt;
  }

  Timestamp started;
  domain::SourceProgress progress{std::chrono::hours(2)};  // a stream two hours behind
};

TEST_F(CesStateStartupGraceTest, HoldsOfflineBackForOfflineTimeoutSinceStartWhenTheSourceReportsNoLag) {
  progress.stream_lag.reset();  // a push source (HTTP ingest): never "caught up"
  ASSERT_TRUE(processor.Sweep().ok());
  EXPECT_EQ(h.Device("sys-1").evaluated_state, std::optional<RemoteState>(RemoteState::kOnline));
  EXPECT_TRUE(Requests().empty());

  h.clock.Advance(std::chrono::seconds(899));
  ASSERT_TRUE(processor.Sweep().ok());
  EXPECT_EQ(h.Device("sys-1").evaluated_state, std::optional<RemoteState>(RemoteState::kOnline));
  EXPECT_TRUE(Requests().empty());

  h.clock.Advance(std::chrono::seconds(1));  // offline_timeout since start
  ASSERT_TRUE(processor.Sweep().ok());
  EXPECT_EQ(h.Device("sys-1").evaluated_state, std::optional<RemoteState>(RemoteState::kOffline));
  EXPECT_EQ(Requests(), One("sys-1"));
  EXPECT_FALSE(Watermark()->caught_up) << "the grace ran out; the source never caught up";
}

TEST_F(CesStateStartupGraceTest, EndsWhenTheStreamLagFallsUnderOneRecordInterval) {
  ASSERT_TRUE(processor.Sweep().ok());
  EXPECT_TRUE(Requests().empty());
  EXPECT_FALSE(Watermark()->caught_up);

  progress.stream_lag = h.context.settings.record_interval;  // not under it
  h.clock.Advance(std::chrono::seconds(30));
  ASSERT_TRUE(processor.Sweep().ok());
  EXPECT_TRUE(Requests().empty());
  EXPECT_FALSE(Watermark()->caught_up);

  progress.stream_lag = std::chrono::seconds(10);
  h.clock.Advance(std::chrono::seconds(30));
  ASSERT_TRUE(processor.Sweep().ok());
  const auto d = h.Device("sys-1");
  EXPECT_EQ(d.evaluated_state, std::optional<RemoteState>(RemoteState::kOffline));
  EXPECT_EQ(d.remote_state_reason, "no telemetry for 7260 s (last heard 2025-11-22T06:26:40Z)");
  EXPECT_EQ(Requests(), One("sys-1"));
  const auto watermark = Watermark();
  ASSERT_TRUE(watermark.has_value());
  EXPECT_TRUE(watermark->caught_up);
  EXPECT_EQ(watermark->started_at, started);
}

TEST_F(CesStateStartupGraceTest, TheCaughtUpLatchIsInTheStoreForEveryProcessor) {
  progress.stream_lag = std::chrono::seconds(10);
  ASSERT_TRUE(processor.Sweep().ok());
  ASSERT_TRUE(Watermark()->caught_up);
  Requests();

  // Another instance (its own Context and processor, the same store): its source is far behind,
  // still within offline_timeout of the start. The latch holds: no grace.
  auto sys2 = Heard("sys-2", std::chrono::hours(3));
  Context other_context{h.devices, h.concerto_queue, h.telemetry_queue, h.ces_queue, h.clock, h.metrics,
                        h.coordination, h.context.settings,
                        [] { return domain::SourceProgress{std::chrono::hours(5)}; }};
  CesStateProcessor other(other_context);
  h.clock.Advance(std::chrono::seconds(60));
  ASSERT_TRUE(other.Sweep().ok());
  EXPECT_EQ(h.Device("sys-2").evaluated_state, std::optional<RemoteState>(RemoteState::kOffline));
  EXPECT_EQ(Requests(), One("sys-2"));

  // A restart recorded in the store brings the grace back, for every processor.
  ASSERT_TRUE(MarkAdapterStarted(h.coordination, h.clock.Now()).ok());
  EXPECT_FALSE(Watermark()->caught_up);
  Heard("sys-3", std::chrono::hours(3));
  ASSERT_TRUE(other.Sweep().ok());
  EXPECT_EQ(h.Device("sys-3").evaluated_state, std::optional<RemoteState>(RemoteState::kOnline));
  EXPECT_TRUE(Requests().empty());
}

TEST_F(CesStateStartupGraceTest, ReSendsAHeldEvaluationConcertoNeverAccepted) {
  // ONLINE was evaluated before the restart but never accepted (the update failed).
  auto d = h.Device("sys-1");
  d.remote_state = RemoteState::kOffline;
  ASSERT_TRUE(h.devices.Put(d).ok());
  ASSERT_TRUE(processor.Sweep().ok());
  d = h.Device("sys-1");
  EXPECT_EQ(d.evaluated_state, std::optional<RemoteState>(RemoteState::kOnline)) << "OFFLINE held back";
  EXPECT_EQ(d.remote_state_reason, "telemetry current");
  EXPECT_EQ(Requests(), One("sys-1"));
  EXPECT_EQ(h.metrics.Sum("pwrcell_remote_state_changes_total"), 0);
}

TEST_F(CesStateStartupGraceTest, DoesNotHoldBackError) {
  auto d = h.Device("sys-1");
  d.last_heard_at = h.clock.Now();
  ASSERT_TRUE(h.devices.Put(d).ok());
  ASSERT_TRUE(processor.Process(Statuses({{"sys-1", "DISCONNECTED"}})).ok());
  EXPECT_EQ(h.Device("sys-1").evaluated_state, std::optional<RemoteState>(RemoteState::kError));
  EXPECT_EQ(Requests(), One("sys-1"));
}

TEST_F(CesStateStartupGraceTest, NoGraceWithoutARecordedStart) {
  ASSERT_TRUE(h.coordination.RemovePrefix("liveness/").ok());
  ASSERT_FALSE(Watermark().has_value());
  ASSERT_TRUE(processor.Sweep().ok());
  EXPECT_EQ(h.Device("sys-1").evaluated_state, std::optional<RemoteState>(RemoteState::kOffline));
  EXPECT_EQ(Requests(), One("sys-1"));
}

TEST_F(CesStateStartupGraceTest, NoGraceWithoutASourceProgress) {
  h.context.source_progress = nullptr;  // a start is recorded, but no telemetry source to wait for
  ASSERT_TRUE(processor.Sweep().ok());
  EXPECT_EQ(h.Device("sys-1").evaluated_state, std::optional<RemoteState>(RemoteState::kOffline));
  EXPECT_EQ(Requests(), One("sys-1"));
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
