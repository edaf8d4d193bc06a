// The device API of the admin server (`GET /api/devices`, `GET /api/devices/{remote_id}`) as pure
// functions over the device store and the query parameters: status + JSON body, no HTTP.
//
// `GET /api/devices` answers one page, ordered by remote_id:
//   {"count": <records matching the filter>, "devices": [...], "next": "<remote_id>" | null}
// Parameters: remote_state=ONLINE|OFFLINE|ERROR (the state Concerto accepted), simulated=true|false,
// limit=1..kMaxDevicePage (default kDefaultDevicePage), after=<remote_id> (the page after it: pass
// "next" of the previous answer; absent = the first page), totals=true (adds "totals":
// {"remote_state": {"ONLINE": n, ..., "NONE": n}, "commissioning": {"DONE": n, ...}}, the whole
// fleet's counts, for the dashboard). "next" is null on the last page. A
// fleet of up to kDefaultDevicePage systems comes whole in the first answer, as before paging.
// The cost of an answer grows with the page, not with the fleet (a count on an index and one
// page of records).
//
// Thread-safe as the store is.
#pragma once

#include <cstddef>
#include <map>
#include <string>

#include "ports/device_store.h"

namespace pwrcell::runtime::http {

inline constexpr std::size_t kDefaultDevicePage = 1000;
inline constexpr std::size_t kMaxDevicePage = 5000;

struct ApiReply {
  int status = 200;
  std::string body;  // JSON
};

// 200 with the page; 400 for an invalid parameter ({"error": ...}); 503 when the store fails.
ApiReply ListDevices(ports::DeviceStore& devices, const std::map<std::string, std::string>& params);
// 200 with the record; 404 when there is none; 503 when the store fails.
ApiReply GetDevice(ports::DeviceStore& devices, const std::string& remote_id);

}  // namespace pwrcell::runtime::http
