// DeviceStore port: the one device table (SPEC section 2), keyed by remote_id, with secondary
// indexes from each inverter RCP number and from site id to remote_id, and optimistic concurrency
// by version.
//
// Implementations: adapters/memory (fake), adapters/sqlite; all must pass
// tests/conformance/device_store_conformance. All methods are thread-safe.
//
// Errors: kUnavailable / kDeadlineExceeded when the backing store cannot be reached (retry);
// kAborted when an expected version does not match (re-read and retry);
// kInvalidArgument for a record without remote_id.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "domain/device.h"

namespace pwrcell::ports {

class DeviceStore {
 public:
  virtual ~DeviceStore() = default;

  // The record, or nullopt when there is none.
  virtual Result<std::optional<domain::DeviceRecord>> Get(const std::string& remote_id) = 0;

  // The record that lists `rcpn` among its inverter_rcpns (any of a system's inverters), or
  // nullopt; an empty rcpn matches nothing. Served by an index kept in step with Put and Remove.
  // When several records claim the same RCP number (a CES misconfiguration), the one with the
  // smallest remote_id is returned.
  virtual Result<std::optional<domain::DeviceRecord>> FindByInverterRcpn(const std::string& rcpn) = 0;

  // Every record, ordered by remote_id.
  virtual Result<std::vector<domain::DeviceRecord>> List() = 0;

  // Every record whose site->site_id equals `site_id`, ordered by remote_id; empty for an unknown
  // site. Served by an index kept in step with Put and Remove, so its cost grows with the site's
  // records, not with the table (a site's state is aggregated on every remote_state change). An
  // empty site_id matches nothing (a record without a site, or with a site id not yet known).
  virtual Result<std::vector<domain::DeviceRecord>> ListBySite(const std::string& site_id) = 0;

  // Conditional write. record.version is the version the caller read: 0 means "create; fail
  // with kAborted if a record already exists", n > 0 means "replace only if the stored version
  // is still n; fail with kAborted otherwise (also when the record is gone)". Returns the
  // stored record with its new version (previous + 1).
  virtual Result<domain::DeviceRecord> Put(const domain::DeviceRecord& record) = 0;

  // Conditional delete at `expected_version` (kAborted on mismatch); deleting a record that
  // does not exist is kNotFound.
  virtual Status Remove(const std::string& remote_id, std::int64_t expected_version) = 0;
};

}  // namespace pwrcell::ports
