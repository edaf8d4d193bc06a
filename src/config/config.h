// The adapter's configuration: every setting with its default, loaded from a deployment.toml
// and then overridden from the environment (for Lambda, where there is no file to edit).
//
// SPEC section 7. `deployment_example.toml` at the repository root lists every key with its
// default, unit, range and environment variable; keep it, the key table in config.cc and this
// struct in step (a unit test loads the example and compares it with the defaults).
//
// Validation happens once, here: a Config that LoadConfig* returns is valid, so the rest of the
// program never re-checks ranges. An invalid file or variable is a startup error naming the
// file (and line), the key as `section.key`, the value found and what was expected.
//
// Thread-safety: Config is a plain value; loading touches no global state except through the
// Environment it is given (ProcessEnvironment() reads the process environment with getenv).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "common/time.h"

namespace pwrcell::config {

// A "host:port" address to listen on. IPv6 hosts are written in brackets ("[::1]:8070") and
// stored without them. Port 0 asks the system for a free port (tests).
struct ListenAddress {
  std::string host;
  std::uint16_t port = 0;

  std::string ToString() const;  // "host:port" (brackets around an IPv6 host)
  bool operator==(const ListenAddress&) const = default;
};

struct AdapterConfig {
  // Concerto SYSTEM assets whose adapterConfiguration.name equals this are ours (SPEC section 1).
  std::string name = "pwrcell-adapter";
  // SPEC section 6: write sites, inverters, batteries... to Concerto. Off: never write structure.
  bool auto_commissioning = false;
  bool operator==(const AdapterConfig&) const = default;
};

struct ConcertoConfig {
  // Requests go to `<root_url>/graphql`. Stored without trailing slashes.
  std::string root_url = "http://127.0.0.1:8080";
  std::string credentials_secret = "ConcertoCredentials";  // secret id, never the credentials
  // A PEM file of the certificate authorities an https:// Concerto is verified with; "" = the
  // system's bundle (adapters/http/ca_bundle.h). Verification is never turned off.
  std::string ca_file;
  Seconds timeout_s{30};
  int workers = 10;
  int max_retries = 3;
  double max_requests_per_second = 25;
  Seconds token_renewal_s{1800};
  int page_size = 100;  // 1..500 (the API's maximum)
  bool operator==(const ConcertoConfig&) const = default;
};

struct CesConfig {
  std::string root_url = "http://127.0.0.1:8081";  // stored without trailing slashes
  std::string credentials_secret = "CesCredentials";
  std::string ca_file;  // as ConcertoConfig::ca_file
  Seconds timeout_s{30};
  int workers = 4;
  int max_retries = 3;
  double max_requests_per_second = 10;
  int status_batch_size = 100;  // 1..100 (the API's maximum)
  bool operator==(const CesConfig&) const = default;
};

struct ScheduleConfig {
  Seconds registrar_poll_s{60};
  Seconds ces_state_poll_s{900};
  Seconds liveness_sweep_s{60};
  Seconds metadata_refresh_s{86400};
  bool operator==(const ScheduleConfig&) const = default;
};

struct LivenessConfig {
  Seconds offline_timeout_s{900};  // the one offline_timeout of SPEC section 4
  // The telemetry record interval: the stream counts as caught up (end of the startup grace)
  // when its lag is under one interval.
  Seconds record_interval_s{300};
  bool operator==(const LivenessConfig&) const = default;
};

struct QueuesConfig {
  Seconds visibility_timeout_s{60};
  int max_receives = 5;  // deliveries before a message is dead-lettered
  bool operator==(const QueuesConfig&) const = default;
};

struct SecretsConfig {
  std::string backend = "file";  // "file" (path below) or "aws" (Secrets Manager, by secret id)
  std::string path = "secrets.json";
  bool operator==(const SecretsConfig&) const = default;
};

// Where the device table, the queues and the coordination state live.
struct BackendConfig {
  std::string kind = "embedded";  // "embedded" (one SQLite file, [storage]) or "aws" ([aws])
  bool operator==(const BackendConfig&) const = default;
};

struct StorageConfig {
  std::string path = "pwrcell-adapter.db";  // the SQLite device table and queues
  bool operator==(const StorageConfig&) const = default;
};

// The AWS resources of `[backend] kind = "aws"` (and of `[secrets] backend = "aws"`). Credentials
// never live here: they come from the standard AWS environment (AWS_ACCESS_KEY_ID, ...).
struct AwsConfig {
  std::string region;  // empty: AWS_REGION, else AWS_DEFAULT_REGION
  std::string device_table = "pwrcell-devices";
  std::string coordination_table = "pwrcell-coordination";
  std::string ingest_queue = "pwrcell-ingest";  // each queue has its dead-letter queue "<name>-dlq"
  std::string concerto_queue = "pwrcell-concerto";
  std::string concerto_telemetry_queue = "pwrcell-concerto-telemetry";
  std::string ces_queue = "pwrcell-ces";
  std::string telemetry_stream = "pwrcell-telemetry";  // the Kinesis stream; empty: none
  int receive_wait_s = 5;                              // SQS long polling of the workers, 1..20
  bool operator==(const AwsConfig&) const = default;
};

struct TelemetryConfig {
  int max_body_bytes = 5 * 1024 * 1024;  // also the cap on a gzip body once decompressed
  // Records in one POST /v1/telemetry at most (413 over it), 1..1,000,000: bounds the work and
  // the answer of one request whatever the records' size.
  int max_records_per_request = 10000;
  // Secret ids whose value is {"api_key": "..."}; "" = not set. access_key_secret guards
  // /v1/telemetry (X-Api-Key or Authorization: Bearer); firehose_access_key_secret enables
  // /v1/firehose (X-Amz-Firehose-Access-Key). See runtime/http/ingest_server.h.
  std::string access_key_secret;
  std::string firehose_access_key_secret;
  // PEM files; both set = the listener serves HTTPS, both "" = plain HTTP (one alone is invalid).
  std::string tls_cert_file;
  std::string tls_key_file;
  // The HTTP ingest endpoint. Declared last: with it first, GCC 12 at -O2/-O3 reports the
  // strings of a Config{} temporary as maybe-uninitialized (a false positive, -Werror) in
  // every translation unit that makes one (src/cli, tests).
  ListenAddress listen{"127.0.0.1", 8070};
  bool operator==(const TelemetryConfig&) const = default;
};

// The admin API has device data, metrics and controls. It listens on loopback unless
// allow_remote says otherwise, and then only with a bearer token: the loader refuses a
// non-loopback `listen` without allow_remote, and allow_remote without access_key_secret.
struct AdminConfig {
  ListenAddress listen{"127.0.0.1", 8071};  // health, metrics, device API, dashboard
  bool allow_remote = false;                // a non-loopback listen address is meant
  // Secret id whose value is {"api_key": "..."}; "" = not set. When set, every admin request but
  // /healthz needs `Authorization: Bearer <api_key>` (runtime/http/admin_server.h).
  std::string access_key_secret;
  bool operator==(const AdminConfig&) const = default;
};

// True for an address only this machine can reach: 127.0.0.0/8, ::1, "localhost".
bool IsLoopback(const ListenAddress& address);

struct SimulatedConfig {
  Seconds record_interval_s{300};  // one synthesized EnergyRecordSet per simulated system per interval
  bool operator==(const SimulatedConfig&) const = default;
};

// The Lambda deployment (docs/LAMBDA.md): how many instances of each gateway function may run at
// once (the functions' reserved concurrency). Each instance keeps to its share of the Concerto or
// CES request rate, so that all of them together stay under the limit. Unused by `serve`.
struct LambdaConfig {
  int concerto_control_concurrency = 2;    // ConcertoGatewayFunction (the control queue)
  int concerto_telemetry_concurrency = 2;  // ConcertoTelemetryGatewayFunction (push_telemetry)
  int ces_concurrency = 2;                 // PwrcellGatewayFunction
  bool operator==(const LambdaConfig&) const = default;
};

struct Config {
  AdapterConfig adapter;
  ConcertoConfig concerto;
  CesConfig ces;
  ScheduleConfig schedule;
  LivenessConfig liveness;
  QueuesConfig queues;
  SecretsConfig secrets;
  BackendConfig backend;
  StorageConfig storage;
  AwsConfig aws;
  TelemetryConfig telemetry;
  AdminConfig admin;
  SimulatedConfig simulated;
  LambdaConfig lambda;
  bool operator==(const Config&) const = default;
};

// The environment variables the loader reads: a lookup of one variable (nullopt when it is not
// set) and, when known, the list of the names that are set, so that a misspelt PWRCELL_ variable
// is refused like an unknown file key. Injected so that tests never touch the real environment.
class Environment {
 public:
  using Lookup = std::function<std::optional<std::string>(const std::string& name)>;
  using Lister = std::function<std::vector<std::string>()>;

  Environment() = default;  // no variables, nothing to list
  // `names` empty: the names cannot be listed, and unknown variables are not checked.
  explicit Environment(Lookup lookup, Lister names = {});

  std::optional<std::string> operator()(const std::string& name) const;
  std::vector<std::string> Names() const;
  explicit operator bool() const { return static_cast<bool>(lookup_); }

 private:
  Lookup lookup_;
  Lister names_;
};

// The process environment (std::getenv). Safe as long as nobody calls setenv concurrently.
Environment ProcessEnvironment();
// A fixed set of variables (tests).
Environment MapEnvironment(std::map<std::string, std::string> variables);
// No variables at all.
Environment EmptyEnvironment();

// The PWRCELL_ variables that are not configuration keys and that the loader therefore ignores:
// PWRCELL_CONFIG (the Lambda bootstrap's path of a deployment file) and the test harnesses'
// variables (PWRCELL_BIN_DIR, PWRCELL_SOURCE_DIR, ...: CTest and tests/e2e set them and `serve`
// inherits them). Any other PWRCELL_ variable that names no key is an error.
const std::vector<std::string>& NonConfigVariables();

// One configuration key, for documentation and tests.
struct KeyInfo {
  std::string section;
  std::string key;
  std::string env_var;    // PWRCELL_<SECTION>_<KEY>
  std::string alias_var;  // the seeds' name (ConcertoRootUrl, ...) or empty
  std::string expected;   // what a valid value is, e.g. "an integer number of seconds >= 1"
};
// Every key, in file order.
const std::vector<KeyInfo>& Keys();

// Loads a deployment.toml, then applies the environment overrides.
// Errors: kNotFound when the file does not exist; kPermissionDenied when it cannot be read;
// kInvalidArgument for a syntax error (file:line:column), an unknown section or key, a value of
// the wrong type or out of range (file:line, key, value, expectation), a bad environment
// variable (named), a PWRCELL_ variable that names no key and is not in NonConfigVariables()
// (named, with the closest key's variable), or a non-loopback admin.listen without
// admin.allow_remote (and allow_remote without admin.access_key_secret).
Result<Config> LoadConfigFile(const std::string& path, const Environment& env);

// The same from text; `source_name` stands for the file in messages.
// Errors: kInvalidArgument as above.
Result<Config> LoadConfigString(std::string_view toml, std::string_view source_name, const Environment& env);

// The effective configuration as TOML text (loads back to the same Config). Holds no secrets:
// the configuration only names secret ids, and a password inside a URL is shown as "***"
// (common/url.h; such a URL then loads back with "***" as its password).
std::string DescribeConfig(const Config& config);

}  // namespace pwrcell::config
