// Read-modify-write of one device record under optimistic concurrency. Several processes write
// the same record (telemetry: last_heard_at; registrar: identity; metadata: CES fields; state
// processor: remote_state), each only its own fields, so a conflict is resolved by re-reading
// and re-applying the change.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "common/status.h"
#include "domain/device.h"
#include "ports/clock.h"
#include "ports/device_store.h"

namespace pwrcell::processes {

// Applies `change` to the stored record and writes it back at the version read, retrying on
// kAborted (a concurrent writer) up to 16 times. `change` returns false when there is nothing to
// write (no write happens). Sets updated_at on a write.
// Returns the record as stored afterwards, or nullopt when there is no such record.
// Errors: the store's (kUnavailable ...); kAborted when conflicts persist.
Result<std::optional<domain::DeviceRecord>> MutateDevice(ports::DeviceStore& store, const std::string& remote_id,
                                                         const std::function<bool(domain::DeviceRecord&)>& change,
                                                         const ports::Clock& clock);

}  // namespace pwrcell::processes
