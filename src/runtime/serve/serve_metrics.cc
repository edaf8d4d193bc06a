#include "runtime/serve/serve_metrics.h"

#include <string>

#include "domain/concerto_types.h"
#include "domain/device.h"

namespace pwrcell::runtime::serve {

ServeMetrics::ServeMetrics(Metrics* registry)
    : up(registry, "pwrcell_up", "1 while serve runs"),
      queue_depth(registry, "pwrcell_queue_depth", "Messages in a queue, by queue and state (visible, in_flight)",
                  {"queue", "state"}),
      dead_letters(registry, "pwrcell_dead_letters", "Messages in a queue's dead-letter store", {"queue"}),
      devices(registry, "pwrcell_devices", "Registered systems, by kind and remote_state", {"kind", "remote_state"}),
      devices_by_commissioning(registry, "pwrcell_devices_by_commissioning",
                               "Registered systems, by kind and commissioning state", {"kind", "state"}),
      store_write_failures(registry, "pwrcell_store_write_failures_total",
                           "Store statements that failed for disk trouble, by reason (disk_full, read_only, io_error)",
                           {"reason"}),
      store_writable(registry, "pwrcell_store_writable",
                     "1 while the store can be written, 0 while a full disk or a read-only or failing file system "
                     "stops it") {}

void ServeMetrics::Refresh(const std::vector<std::pair<std::string_view, ports::Queue*>>& queues,
                           ports::DeviceStore& device_store) const {
  up.Set(1);
  for (const auto& [name, queue] : queues) {
    auto stats = queue->Stats();
    if (!stats.ok()) continue;
    queue_depth.Set({name, "visible"}, static_cast<double>(stats->visible));
    queue_depth.Set({name, "in_flight"}, static_cast<double>(stats->in_flight));
    dead_letters.Set({name}, static_cast<double>(stats->dead_letter));
  }
  // Counts from the store (a GROUP BY on indexed columns), not the records.
  auto tally = device_store.Tally();
  if (!tally.ok()) return;
  devices.Clear();
  devices_by_commissioning.Clear();
  for (const char* kind : {"real", "simulated"}) {
    for (const char* state : {"ONLINE", "OFFLINE", "ERROR", "NONE"}) devices.Set({kind, state}, 0);
  }
  for (const auto& t : *tally) {
    const char* kind = t.is_simulated ? "simulated" : "real";
    const std::string_view state = t.remote_state ? domain::RemoteStateName(*t.remote_state) : "NONE";
    devices.Add({kind, state}, static_cast<double>(t.count));
    devices_by_commissioning.Add({kind, domain::CommissioningStateName(t.commissioning)}, static_cast<double>(t.count));
  }
}

}  // namespace pwrcell::runtime::serve
