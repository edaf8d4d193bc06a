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

#include <string>

#include "common/status.h"
#include "domain/remote_state.h"
#include "ports/concerto_api.h"
#include "processes/context.h"
#include "processes/messages.h"
#include "processes/process_metrics.h"
#include "processes/registrar.h"

namespace pwrcell::processes {

class ConcertoGateway {
 public:
  ConcertoGateway(Context& context, ports::ConcertoApi& concerto, Registrar& registrar);

  Status Handle(const ConcertoRequest& request);

 private:
  enum class SendOutcome { kSent, kAlreadyAccepted, kUnknownTarget };

  Status ListAssets(const ListAssetsRequest& request);
  // True when every registered system missing from `assets` is confirmed gone from Concerto
  // (or served by another adapter) by a lookup by remoteId.
  Result<bool> ConfirmMissingSystems(const std::vector<domain::ConcertoAsset>& assets);
  Status Commission(const std::string& remote_id);
  Status CommissionLeased(const std::string& remote_id, const std::string& owner);  // under its lease
  Status UpdateRemoteState(const RemoteStateRequest& request);
  Status SendRemoteStates(const RemoteStateRequest& request);
  // Sends `state` to one asset or site unless Concerto already accepted it (the value in the
  // Coordination store, shared_state.h); records it as accepted only after Concerto accepted it.
  // A target another worker is sending to right now is kUnavailable (retry later).
  Result<SendOutcome> SendState(const char* target, bool site, const std::string& id, domain::RemoteState state,
                                const std::string& reason, const std::string& remote_id);
  Status PushTelemetry(const PushTelemetryRequest& request);
  // The state of site `site_id` aggregated over its systems (DeviceStore::ListBySite), as they are now.
  Result<domain::StateDecision> SiteAggregate(const std::string& site_id);

  Context& context_;
  ports::ConcertoApi& concerto_;
  Registrar& registrar_;
  ConcertoGatewayMetrics metrics_;
};

}  // namespace pwrcell::processes
