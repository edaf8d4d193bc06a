#include "processes/device_updates.h"

namespace pwrcell::processes {

Result<std::optional<domain::DeviceRecord>> MutateDevice(ports::DeviceStore& store, const std::string& remote_id,
                                                         const std::function<bool(domain::DeviceRecord&)>& change,
                                                         const ports::Clock& clock) {
  constexpr int kAttempts = 16;
  Status last;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    auto current = store.Get(remote_id);
    if (!current.ok()) return current.status();
    if (!current->has_value()) return std::optional<domain::DeviceRecord>();
    domain::DeviceRecord record = std::move(**current);
    if (!change(record)) return std::optional<domain::DeviceRecord>(std::move(record));
    record.updated_at = clock.Now();
    auto stored = store.Put(record);
    if (stored.ok()) return std::optional<domain::DeviceRecord>(std::move(*stored));
    if (stored.status().code() != StatusCode::kAborted) return stored.status();
    last = stored.status();
  }
  return last.WithContext("updating device " + remote_id + " (concurrent writers)");
}

}  // namespace pwrcell::processes
