// concerto_gateway (SPEC 3.3): the only process that talks to Concerto (through ports::ConcertoApi,
// whose implementation does authentication, token sharing, rate limiting, timeouts and retries).
// Executes list_assets (every page, then invokes the registrar with the complete list),
// commission (the create_site / create_asset / update_asset steps of SPEC section 6, each one
// idempotent: look up by remoteId first, treat CONFLICT as "already there"), update_remote_state
// and push_telemetry. Thread-safe.
//
// Handle's Status decides the message's fate: OK -> delete; retryable -> delivered again later;
// anything else -> dead-letter.
#pragma once

#include <map>
#include <mutex>
#include <string>

#include "common/status.h"
#include "ports/concerto_api.h"
#include "processes/context.h"
#include "processes/messages.h"
#include "processes/registrar.h"

namespace pwrcell::processes {

class ConcertoGateway {
 public:
  ConcertoGateway(Context& context, ports::ConcertoApi& concerto, Registrar& registrar);

  Status Handle(const ConcertoRequest& request);

 private:
  Status ListAssets();
  // True when every registered system missing from `assets` is confirmed gone from Concerto
  // (or served by another adapter) by a lookup by remoteId.
  Result<bool> ConfirmMissingSystems(const std::vector<domain::ConcertoAsset>& assets);
  Status Commission(const std::string& remote_id);
  Status UpdateRemoteState(const RemoteStateRequest& request);
  Status PushTelemetry(const PushTelemetryRequest& request);
  // The site's state aggregated over the systems the device table has on it (nullopt: no site).
  Result<std::optional<SiteStateUpdate>> SiteState(const domain::DeviceRecord& device);
  // The state of site `site_id` aggregated over its systems in the device table, as they are now.
  Result<SiteStateUpdate> SiteAggregate(const std::string& site_id);

  Context& context_;
  ports::ConcertoApi& concerto_;
  Registrar& registrar_;
  // The remote_state this process last sent to each asset ("a:<id>") and site ("s:<id>"). Queued
  // requests read the state when they run, so two of them (an older one delayed behind others)
  // may both find the same state: only the first sends it. Lost on restart, which costs at most
  // one repeated update per asset.
  std::mutex sent_mutex_;
  std::map<std::string, domain::RemoteState> sent_;
};

}  // namespace pwrcell::processes
