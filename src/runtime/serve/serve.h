// `pwrcell-adapter serve`: every process of SPEC section 3 in one program (the embedded
// default): SQLite (WAL) device table and durable queues, telemetry from the HTTP ingest
// endpoint (and `replay`), secrets from a file, admin HTTP on loopback, a scheduler for the
// pollers and the sweep, worker pools for the queues. ServeApp is the composition root of that
// runtime, with a create / start / stop lifecycle (Envoy's InstanceImpl): its clock and secrets
// are handed in, it never handles a signal and never chooses an exit code (the CLI does both).
#pragma once

#include <cstddef>
#include <iosfwd>
#include <memory>
#include <string>

#include "common/status.h"
#include "config/config.h"
#include "ports/clock.h"
#include "ports/secret_store.h"
#include "runtime/serve/store.h"

namespace pwrcell::runtime::serve {

// The secret store `[secrets]` names: backend "file", the secrets file (mode 0600); backend "aws",
// AWS Secrets Manager with the credentials and region of the standard AWS environment and `[aws]
// region` (nothing is read yet: ServeApp::Create reads both secrets). Errors: those of
// FileSecretStore::Open (kNotFound, kPermissionDenied, kInvalidArgument, kUnavailable; each message
// names the file); kInvalidArgument for missing AWS credentials or region (naming the variable)
// or another backend.
Result<std::unique_ptr<ports::SecretStore>> OpenSecretStore(const config::Config& config);

class ServeApp {
 public:
  // Opens the store at `config.storage.path`, checks that both credential secrets can be read,
  // and wires every process, worker pool and server, without starting any of them or binding a
  // port. `clock` and `secrets` must outlive the app. Errors (the reason in the message): those of
  // Store::Open ("store <path>: ..."), of SecretStore::Get ("secret <id>: ...").
  static Result<std::unique_ptr<ServeApp>> Create(const config::Config& config, const ports::Clock& clock,
                                                  ports::SecretStore& secrets);
  ~ServeApp();  // Stop()s
  ServeApp(const ServeApp&) = delete;
  ServeApp& operator=(const ServeApp&) = delete;

  // Binds the admin listener, then the ingest listener (port 0: a free port), starts the worker
  // pools and the scheduler, and logs where it listens; /readyz answers 200 from then on. Errors:
  // kUnavailable "admin server: cannot listen on <host:port>: address in use" (or the ingest
  // server's, "telemetry ingest: ..."), after which nothing is left running and the app is
  // stopped; kFailedPrecondition when called a second time (an app starts once).
  Status Start();

  // Graceful stop, in order: /readyz turns 503, the ingest listener stops (records already
  // accepted are stored), then the scheduler, the worker pools (in-flight work finishes;
  // unfinished messages come back to their queue) and last the admin listener. Idempotent; a
  // no-op before Start(). Returns OK (a Status, so a backend whose shutdown can fail can say so).
  Status Stop();

  // The bound ports (the free ones chosen for port 0); 0 when not listening.
  int ingest_port() const;
  int admin_port() const;

 private:
  struct Parts;
  enum class State { kCreated, kRunning, kStopped };
  explicit ServeApp(std::unique_ptr<Parts> parts);

  std::unique_ptr<Parts> parts_;
  State state_ = State::kCreated;
};

struct ReplaySummary {
  std::size_t stored = 0;   // records appended to the ingest queue
  std::size_t skipped = 0;  // records that did not decode (each reported on `notes`)
};

// Appends the records of a recorded stream (fleet-sim's file sink: each record a 4-byte
// big-endian length, then one serialized EnergyRecordSet) to the durable ingest queue of the
// store at `config.storage.path`, where `serve` (running now or started later) processes them.
// Records that do not decode are skipped (a line on `notes` each), never stored. Errors:
// kNotFound when the file cannot be opened; kInvalidArgument when it is truncated (the whole
// records before the cut are stored first); otherwise the store's (Store::Open, Queue::SendBatch:
// kUnavailable, kInternal, ...), never those two codes since every batch sent holds 1..10 records.
Result<ReplaySummary> Replay(const config::Config& config, const ports::Clock& clock, const std::string& path,
                             std::ostream& notes);

}  // namespace pwrcell::runtime::serve
