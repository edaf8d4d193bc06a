// What every process of SPEC section 3 is handed: the ports it talks through, the settings it
// obeys, and the little in-process coordination state they share. Handlers are plain objects
// built over a Context; a composition root (serve, tests) owns the ports and the Context.
//
// Thread-safety: Context members are thread-safe (ports are, Shared uses a mutex/atomics); a
// handler object may be called from several worker threads at once.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "common/metrics.h"
#include "common/time.h"
#include "domain/remote_state.h"
#include "ports/clock.h"
#include "ports/device_store.h"
#include "ports/queue.h"

namespace pwrcell::processes {

struct Settings {
  std::string adapter_name = "pwrcell-adapter";
  bool auto_commissioning = false;
  Duration offline_timeout = std::chrono::seconds(900);
  Duration record_interval = std::chrono::seconds(300);  // of the telemetry source (startup grace)
  Duration metadata_refresh = std::chrono::hours(24);
  int page_size = 100;
  int status_batch_size = 100;
  // A get_metadata or commission request is not repeated for the same system sooner than this
  // (the registrar sweeps every minute; CES or Concerto may be slow or down).
  Duration request_repeat_after = std::chrono::minutes(10);
  // A list_assets request not finished after this long is considered lost (dead-lettered by the
  // queue's redrive) and the poller may send another.
  Duration list_assets_expiry = std::chrono::minutes(10);
};

// In-process coordination between handlers (a Lambda deployment would keep these in the store).
class Shared {
 public:
  explicit Shared(Timestamp started_at) : started_at_(started_at) {}

  Timestamp started_at() const { return started_at_; }

  // The startup-grace latch of SPEC section 4: once the source has caught up, it stays so.
  bool source_caught_up() const { return caught_up_.load(); }
  void MarkSourceCaughtUp() { caught_up_.store(true); }

  // One list_assets at a time: TryBeginListing is true (and marks it pending) unless one is
  // pending since less than `expiry`; EndListing clears it.
  bool TryBeginListing(Timestamp now, Duration expiry);
  void EndListing();

  // Per-(kind, remote_id) throttle: true (and records `now`) when no request of this kind was
  // made for the system within `repeat_after`.
  bool ShouldRequest(const std::string& kind, const std::string& remote_id, Timestamp now, Duration repeat_after);
  void ForgetRequest(const std::string& kind, const std::string& remote_id);

  // Commissioning records the Concerto assets it finds or creates on the device record. An asset
  // list whose listing began before such a write may not show them yet, so the registrar keeps
  // the record's component assets when CommissioningWroteSince(listing start) (it is noted
  // before the write, so a registrar that sees the write sees the note too).
  void NoteCommissioningWrite(const std::string& remote_id, Timestamp at);
  bool CommissioningWroteSince(const std::string& remote_id, Timestamp since);
  void ForgetCommissioningWrites(const std::string& remote_id);

 private:
  const Timestamp started_at_;
  std::atomic<bool> caught_up_{false};
  std::mutex mutex_;
  std::optional<Timestamp> listing_since_;
  std::map<std::pair<std::string, std::string>, Timestamp> last_request_;
  std::map<std::string, Timestamp> commissioning_writes_;
};

struct Context {
  ports::DeviceStore& devices;
  ports::Queue& concerto_queue;            // control: list_assets, commission, update_remote_state
  ports::Queue& concerto_telemetry_queue;  // push_telemetry
  ports::Queue& ces_queue;
  const ports::Clock& clock;
  Metrics& metrics;
  Shared& shared;
  Settings settings;
  // How far the telemetry source has got (ingest backlog, stream lag); decides the end of the
  // startup grace. Unset: treated as caught up.
  std::function<domain::SourceProgress()> source_progress;
};

}  // namespace pwrcell::processes
