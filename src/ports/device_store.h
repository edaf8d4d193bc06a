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
//
// Hot fields: last_heard_at and inverter_readings are also written by RecordHeard, which does not
// change the version. Put merges them instead of overwriting: last_heard_at never moves backwards
// and a stored inverter reading newer than the record's is kept (a Put of a record read before a
// RecordHeard loses nothing that RecordHeard wrote); the reading of an inverter that is neither in
// the record's inverter_readings nor in its inverter_rcpns is dropped (SetInverterRcpns).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "domain/device.h"

namespace pwrcell::ports {

// The remote_id and version of a record, without the record.
struct DeviceKey {
  std::string remote_id;
  std::int64_t version = 0;
  bool operator==(const DeviceKey&) const = default;
};

// What one telemetry record says about a device (RecordHeard).
struct HeardUpdate {
  std::string remote_id;
  Timestamp heard_at;
  std::optional<domain::InverterReading> reading;
};

// Which records a listing gives: an unset field matches every record.
struct DeviceFilter {
  std::optional<bool> is_simulated;
  std::optional<domain::RemoteState> remote_state;  // the state Concerto accepted
  bool operator==(const DeviceFilter&) const = default;
};

// How many records have one combination of kind, accepted state and commissioning state.
struct DeviceTally {
  bool is_simulated = false;
  std::optional<domain::RemoteState> remote_state;
  domain::CommissioningState commissioning = domain::CommissioningState::kNotRequested;
  std::int64_t count = 0;
  bool operator==(const DeviceTally&) const = default;
};

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

  // The remote_id and version of the record FindByInverterRcpn would return, without decoding it
  // (an index look-up).
  virtual Result<std::optional<DeviceKey>> FindKeyByInverterRcpn(const std::string& rcpn) = 0;

  // What one telemetry record says about device `remote_id`, written without rewriting the record:
  // raises last_heard_at to `heard_at` (never lowers it; DeviceRecord::RaiseLastHeard) and, when
  // `reading` is given, keeps it as its inverter's reading unless the stored one is newer
  // (DeviceRecord::RecordInverterReading). Returns whether anything changed. Does not change the
  // record's version (so the optimistic concurrency of the other writers, and caches keyed by
  // version, are not disturbed); a later Put of a record read before this call keeps what it
  // wrote (see "Hot fields" above). kNotFound when there is no such record.
  virtual Result<bool> RecordHeard(const std::string& remote_id, Timestamp heard_at,
                                   const std::optional<domain::InverterReading>& reading) = 0;
  // RecordHeard for each update, in order, all at once (one transaction on SQLite: all or none).
  // An update of a record that does not exist is skipped.
  virtual Status RecordHeardBatch(const std::vector<HeardUpdate>& updates) = 0;

  // Every record, ordered by remote_id: for an export (the CLI); a process visiting every record
  // pages with ListPage / ListKeys instead.
  virtual Result<std::vector<domain::DeviceRecord>> List() = 0;

  // Fleet-wide reads, for the passes that visit every system (keyset paging: pass the last
  // remote_id of a page as `after_remote_id` of the next, "" for the first; a page shorter than
  // `limit` is the last). Their cost grows with the page, not with the table, and memory stays
  // bounded by the page.
  //
  // The records matching `filter` whose remote_id sorts after `after_remote_id`, ordered by
  // remote_id, at most `limit`.
  virtual Result<std::vector<domain::DeviceRecord>> ListPage(const DeviceFilter& filter,
                                                             const std::string& after_remote_id, std::size_t limit) = 0;
  // The same page as remote_id and version only, without decoding the records.
  virtual Result<std::vector<DeviceKey>> ListKeys(const DeviceFilter& filter, const std::string& after_remote_id,
                                                  std::size_t limit) = 0;
  // How many records match `filter`.
  virtual Result<std::int64_t> Count(const DeviceFilter& filter) = 0;
  // The number of records per (is_simulated, remote_state, commissioning state), the combinations
  // with at least one record, in no particular order (the device gauges).
  virtual Result<std::vector<DeviceTally>> Tally() = 0;
  // The records for which domain::EvaluationSettled(record, offline_cutoff) is false: those whose
  // remote_state evaluation may differ from the one Concerto accepted at that cutoff (the
  // liveness sweep evaluates only these). Ordered by remote_id, after `after_remote_id`, at most
  // `limit`.
  virtual Result<std::vector<domain::DeviceRecord>> ListUnsettled(Timestamp offline_cutoff,
                                                                  const std::string& after_remote_id,
                                                                  std::size_t limit) = 0;

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
