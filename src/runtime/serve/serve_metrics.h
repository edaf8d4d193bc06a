// The gauges `serve` refreshes before every /metrics scrape, declared once (common/metrics.h),
// and the refresh itself.
//
// Thread-safe like the handles; the registry must outlive them.
#pragma once

#include <string_view>
#include <utility>
#include <vector>

#include "common/metrics.h"
#include "ports/device_store.h"
#include "ports/queue.h"

namespace pwrcell::runtime::serve {

struct ServeMetrics {
  explicit ServeMetrics(Metrics* registry);
  Gauge<> up;
  Gauge<2> queue_depth;               // {queue, state=visible|in_flight}
  Gauge<1> dead_letters;              // {queue}
  Gauge<2> devices;                   // {kind=real|simulated, remote_state=ONLINE|OFFLINE|ERROR|NONE}
  Gauge<2> devices_by_commissioning;  // {kind, state}
  // Disk trouble of the embedded store (SqliteDatabase::Trouble): statements that failed for it,
  // by reason (disk_full, read_only, io_error), and whether the store can be written (1) or not (0).
  Counter<1> store_write_failures;  // {reason}
  Gauge<> store_writable;

  // Sets every gauge from the queues' stats and the device table. A queue whose stats cannot be
  // read keeps its last values; an unreadable device table leaves the device gauges as they were.
  void Refresh(const std::vector<std::pair<std::string_view, ports::Queue*>>& queues,
               ports::DeviceStore& device_store) const;
};

}  // namespace pwrcell::runtime::serve
