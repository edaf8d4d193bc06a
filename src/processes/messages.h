// What the processes put on their queues (SPEC section 3), as JSON bodies. One codec, so the
// producers (pollers, registrar, processors) and the consumers (the gateways) cannot drift.
//
// Concerto queue (control, consumed by concerto_gateway):
//   {"op":"list_assets","lease":"<token>"?}
//   {"op":"commission","remote_id":"..."}          the create_site / create_asset / update_asset
//                                                  steps of one system, executed in order
//   {"op":"update_remote_state","remote_id":"...","site":{"id"}?,"lease":"<token>"?}
// Concerto telemetry queue (consumed by concerto_gateway; separate so that a telemetry backlog
// never delays registration or state changes):
//   {"op":"push_telemetry","series":[{"a":assetId,"t":unix_ms,"m":["REAL_POWER",...],"v":[1.5,...]},...]}
//   (consecutive points of one asset and timestamp share an entry; the older shape
//   {"op":"push_telemetry","points":[{"a":assetId,"m":"REAL_POWER","t":unix_ms,"v":1.5},...]} is
//   still read, so messages queued by an older adapter are sent)
// CES queue (consumed by pwrcell_gateway):
//   {"op":"get_metadata","remote_id":"..."}
//   {"op":"get_status","remote_ids":["...",...]}
//
// Decoding errors are kInvalidArgument (a poison message: dead-letter it).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/status.h"
#include "domain/concerto_types.h"

namespace pwrcell::processes {

// lease_owner: the token of the registrar-listing lease the poller took (shared_state.h); the
// gateway gives the lease back with it when the listing is done. Empty: none to give back.
struct ListAssetsRequest {
  std::string lease_owner;
  bool operator==(const ListAssetsRequest&) const = default;
};
struct CommissionRequest {
  std::string remote_id;
  bool operator==(const CommissionRequest&) const = default;
};
// The system's state is read from the device record when the message runs (so a late or
// repeated message never sends a stale state); the site it names is aggregated then too, from
// the site's systems (an indexed read). lease_owner: the token of the "request queued" lease the
// sweep took for the system, given back when the request is done (empty: none).
struct RemoteStateRequest {
  std::string remote_id;
  std::optional<std::string> site_id;
  std::string lease_owner;
  bool operator==(const RemoteStateRequest&) const = default;
};
struct PushTelemetryRequest {
  std::vector<domain::TelemetryPoint> points;
  bool operator==(const PushTelemetryRequest&) const = default;
};
using ConcertoRequest = std::variant<ListAssetsRequest, CommissionRequest, RemoteStateRequest, PushTelemetryRequest>;

struct MetadataRequest {
  std::string remote_id;
  bool operator==(const MetadataRequest&) const = default;
};
struct StatusRequest {
  std::vector<std::string> remote_ids;
  bool operator==(const StatusRequest&) const = default;
};
using CesRequest = std::variant<MetadataRequest, StatusRequest>;

std::string EncodeConcertoRequest(const ConcertoRequest& request);
Result<ConcertoRequest> DecodeConcertoRequest(std::string_view body);
std::string EncodeCesRequest(const CesRequest& request);
Result<CesRequest> DecodeCesRequest(std::string_view body);

// "list_assets", "commission", ... (logs and metric labels).
std::string_view OperationName(const ConcertoRequest& request);
std::string_view OperationName(const CesRequest& request);

}  // namespace pwrcell::processes
