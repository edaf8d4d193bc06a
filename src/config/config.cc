#include "config/config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <sstream>
#include <utility>
#include <variant>

#include "common/url.h"

extern char** environ;  // POSIX: the process environment (unistd.h declares it only with _GNU_SOURCE)

namespace pwrcell::config {
namespace {

// ---------------------------------------------------------------------------------------------
// The key table: one row per setting. Parsing, environment overrides, DescribeConfig and the
// documentation tests all walk this table, so a key added here is handled everywhere at once.

// kOptionalString: a string that may be empty, "" meaning the feature it names is off (an access key
// secret, a TLS file).
enum class Kind {
  kString,
  kOptionalString,
  kUrl,
  kBool,
  kSeconds,
  kCount,
  kRate,
  kListen,
  kChoice,
  kAwsName,
  kOptionalAwsName
};

// The range of a number (kSeconds, kCount, kRate), both ends included. Every number has one
// (README "Configuration" lists them): a value far outside what the service can use (a million
// workers, a rate of 1e-300 per second, a timeout of years) is a typo or a unit mistake, refused
// at load time rather than found as a crash or a stall in production.
struct Range {
  double min = 0;
  double max = 0;
};

using Field = std::variant<std::string& (*)(Config&), bool& (*)(Config&), Seconds& (*)(Config&), int& (*)(Config&),
                           double& (*)(Config&), ListenAddress& (*)(Config&)>;

struct KeySpec {
  std::string_view section;
  std::string_view key;
  Kind kind;
  Field field;
  std::string_view alias = {};                 // the seeds' environment variable name, if any
  Range range = {};                            // kSeconds, kCount and kRate only
  std::vector<std::string_view> choices = {};  // kChoice only: the valid values
};

// Ranges used by several keys.
constexpr Range kTimeout{1, 600};           // a request's whole-exchange limit, seconds
constexpr Range kWorkers{1, 256};           // threads per queue
constexpr Range kRetries{1, 100};           // retries of one request
constexpr Range kRate{0.01, 10000};         // requests per second
constexpr Range kPoll{1, 86400};            // a schedule's interval: one second to one day
constexpr Range kConcurrency{1, 1000};      // Lambda reserved concurrency (AWS's default account limit)
constexpr Range kRecordInterval{1, 86400};  // seconds between two telemetry records of a system

// `+` turns each capture-less lambda into the plain function pointer the variant holds.
// clang-format off
#define PWRCELL_FIELD(member) (+[](Config& c) -> auto& { return c.member; })
// clang-format on

const std::vector<KeySpec>& Specs() {
  static const std::vector<KeySpec> specs = {
      {"adapter", "name", Kind::kString, PWRCELL_FIELD(adapter.name), "ADAPTER_NAME"},
      {"adapter", "auto_commissioning", Kind::kBool, PWRCELL_FIELD(adapter.auto_commissioning), "AUTO_COMMISSIONING"},

      {"concerto", "root_url", Kind::kUrl, PWRCELL_FIELD(concerto.root_url), "ConcertoRootUrl"},
      {"concerto", "credentials_secret", Kind::kString, PWRCELL_FIELD(concerto.credentials_secret),
       "ConcertoCredentials"},
      {"concerto", "ca_file", Kind::kOptionalString, PWRCELL_FIELD(concerto.ca_file)},
      {"concerto", "timeout_s", Kind::kSeconds, PWRCELL_FIELD(concerto.timeout_s), {}, kTimeout},
      {"concerto", "workers", Kind::kCount, PWRCELL_FIELD(concerto.workers), {}, kWorkers},
      {"concerto", "max_retries", Kind::kCount, PWRCELL_FIELD(concerto.max_retries), {}, kRetries},
      {"concerto", "max_requests_per_second", Kind::kRate, PWRCELL_FIELD(concerto.max_requests_per_second), {}, kRate},
      {"concerto", "token_renewal_s", Kind::kSeconds, PWRCELL_FIELD(concerto.token_renewal_s), {}, {60, 86400}},
      {"concerto", "page_size", Kind::kCount, PWRCELL_FIELD(concerto.page_size), {}, {1, 500}},

      {"ces", "root_url", Kind::kUrl, PWRCELL_FIELD(ces.root_url), "CesRootUrl"},
      {"ces", "credentials_secret", Kind::kString, PWRCELL_FIELD(ces.credentials_secret), "CesCredentials"},
      {"ces", "ca_file", Kind::kOptionalString, PWRCELL_FIELD(ces.ca_file)},
      {"ces", "timeout_s", Kind::kSeconds, PWRCELL_FIELD(ces.timeout_s), {}, kTimeout},
      {"ces", "workers", Kind::kCount, PWRCELL_FIELD(ces.workers), {}, kWorkers},
      {"ces", "max_retries", Kind::kCount, PWRCELL_FIELD(ces.max_retries), {}, kRetries},
      {"ces", "max_requests_per_second", Kind::kRate, PWRCELL_FIELD(ces.max_requests_per_second), {}, kRate},
      {"ces", "status_batch_size", Kind::kCount, PWRCELL_FIELD(ces.status_batch_size), {}, {1, 100}},

      {"schedule", "registrar_poll_s", Kind::kSeconds, PWRCELL_FIELD(schedule.registrar_poll_s), {}, kPoll},
      {"schedule", "ces_state_poll_s", Kind::kSeconds, PWRCELL_FIELD(schedule.ces_state_poll_s), {}, kPoll},
      {"schedule", "liveness_sweep_s", Kind::kSeconds, PWRCELL_FIELD(schedule.liveness_sweep_s), {}, kPoll},
      {"schedule", "metadata_refresh_s", Kind::kSeconds, PWRCELL_FIELD(schedule.metadata_refresh_s), {}, {1, 2592000}},

      {"liveness", "offline_timeout_s", Kind::kSeconds, PWRCELL_FIELD(liveness.offline_timeout_s), {}, {1, 604800}},
      {"liveness", "record_interval_s", Kind::kSeconds, PWRCELL_FIELD(liveness.record_interval_s), {}, kRecordInterval},

      // SQS's own limits: a visibility timeout of at most 12 hours; maxReceiveCount at most 1000.
      {"queues", "visibility_timeout_s", Kind::kSeconds, PWRCELL_FIELD(queues.visibility_timeout_s), {}, {1, 43200}},
      {"queues", "max_receives", Kind::kCount, PWRCELL_FIELD(queues.max_receives), {}, {1, 1000}},

      {"secrets", "backend", Kind::kChoice, PWRCELL_FIELD(secrets.backend), {}, {}, {"file", "aws"}},
      {"secrets", "path", Kind::kString, PWRCELL_FIELD(secrets.path)},

      {"backend", "kind", Kind::kChoice, PWRCELL_FIELD(backend.kind), {}, {}, {"embedded", "aws"}},

      {"storage", "path", Kind::kString, PWRCELL_FIELD(storage.path)},

      {"aws", "region", Kind::kOptionalAwsName, PWRCELL_FIELD(aws.region)},
      {"aws", "device_table", Kind::kAwsName, PWRCELL_FIELD(aws.device_table)},
      {"aws", "coordination_table", Kind::kAwsName, PWRCELL_FIELD(aws.coordination_table)},
      {"aws", "ingest_queue", Kind::kAwsName, PWRCELL_FIELD(aws.ingest_queue)},
      {"aws", "concerto_queue", Kind::kAwsName, PWRCELL_FIELD(aws.concerto_queue)},
      {"aws", "concerto_telemetry_queue", Kind::kAwsName, PWRCELL_FIELD(aws.concerto_telemetry_queue)},
      {"aws", "ces_queue", Kind::kAwsName, PWRCELL_FIELD(aws.ces_queue)},
      {"aws", "telemetry_stream", Kind::kOptionalAwsName, PWRCELL_FIELD(aws.telemetry_stream)},
      {"aws", "receive_wait_s", Kind::kCount, PWRCELL_FIELD(aws.receive_wait_s), {}, {1, 20}},  // SQS's maximum

      {"telemetry", "listen", Kind::kListen, PWRCELL_FIELD(telemetry.listen)},
      // 1 KiB holds any single record set; 256 MiB per body (and per decompressed gzip body) is
      // already far more memory per request than a sensible server gives one client.
      {"telemetry", "max_body_bytes", Kind::kCount, PWRCELL_FIELD(telemetry.max_body_bytes), {}, {1024, 268435456}},
      {"telemetry",
       "max_records_per_request",
       Kind::kCount,
       PWRCELL_FIELD(telemetry.max_records_per_request),
       {},
       {1, 1000000}},
      {"telemetry", "access_key_secret", Kind::kOptionalString, PWRCELL_FIELD(telemetry.access_key_secret)},
      {"telemetry", "firehose_access_key_secret", Kind::kOptionalString,
       PWRCELL_FIELD(telemetry.firehose_access_key_secret)},
      {"telemetry", "tls_cert_file", Kind::kOptionalString, PWRCELL_FIELD(telemetry.tls_cert_file)},
      {"telemetry", "tls_key_file", Kind::kOptionalString, PWRCELL_FIELD(telemetry.tls_key_file)},

      {"admin", "listen", Kind::kListen, PWRCELL_FIELD(admin.listen)},
      {"admin", "allow_remote", Kind::kBool, PWRCELL_FIELD(admin.allow_remote)},
      {"admin", "access_key_secret", Kind::kOptionalString, PWRCELL_FIELD(admin.access_key_secret)},

      {"simulated",
       "record_interval_s",
       Kind::kSeconds,
       PWRCELL_FIELD(simulated.record_interval_s),
       {},
       kRecordInterval},

      {"lambda",
       "concerto_control_concurrency",
       Kind::kCount,
       PWRCELL_FIELD(lambda.concerto_control_concurrency),
       {},
       kConcurrency},
      {"lambda",
       "concerto_telemetry_concurrency",
       Kind::kCount,
       PWRCELL_FIELD(lambda.concerto_telemetry_concurrency),
       {},
       kConcurrency},
      {"lambda", "ces_concurrency", Kind::kCount, PWRCELL_FIELD(lambda.ces_concurrency), {}, kConcurrency},
  };
  return specs;
}

#undef PWRCELL_FIELD

std::string FullName(const KeySpec& spec) {
  return std::string(spec.section) + "." + std::string(spec.key);
}

std::string Upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string EnvVarName(const KeySpec& spec) {
  return "PWRCELL_" + Upper(spec.section) + "_" + Upper(spec.key);
}

// A range's end as written in messages and the README: 600, 0.01.
std::string Bound(double value) {
  if (value == std::floor(value) && std::fabs(value) < 1e15) return std::to_string(static_cast<std::int64_t>(value));
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
  return std::string(buf, ec == std::errc() ? end : buf);
}

std::string Expected(const KeySpec& spec) {
  switch (spec.kind) {
    case Kind::kString:
      return "a non-empty string";
    case Kind::kOptionalString:
      return "a string (\"\" for none)";
    case Kind::kUrl:
      return "a URL starting with http:// or https://";
    case Kind::kBool:
      return "true or false";
    case Kind::kSeconds:
      return "an integer number of seconds between " + Bound(spec.range.min) + " and " + Bound(spec.range.max);
    case Kind::kCount:
      return "an integer between " + Bound(spec.range.min) + " and " + Bound(spec.range.max);
    case Kind::kRate:
      return "a number between " + Bound(spec.range.min) + " and " + Bound(spec.range.max) + " (requests per second)";
    case Kind::kListen:
      return "a \"host:port\" address with port 0..65535";
    case Kind::kChoice: {
      std::string out = "one of";
      for (std::size_t i = 0; i < spec.choices.size(); ++i) {
        out += (i == 0 ? " \"" : ", \"") + std::string(spec.choices[i]) + "\"";
      }
      return out;
    }
    case Kind::kAwsName:
      return "an AWS resource name or ARN (letters, digits and _ - . : / + = @, at most 2048)";
    case Kind::kOptionalAwsName:
      return "empty, or an AWS name (letters, digits and _ - . : / + = @, at most 2048)";
  }
  return "a valid value";
}

// A TOML basic string: double quotes, with backslash escapes where TOML requires them.
std::string Quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (u < 0x20 || u == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04X", u);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  out += '"';
  return out;
}

// Shortest text that reads back as the same double, always with a fraction or exponent so TOML
// sees a float.
std::string FormatDouble(double value) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
  std::string out(buf, ec == std::errc() ? end : buf);
  if (out.find_first_of(".eE") == std::string::npos && out.find_first_of("ni") == std::string::npos) out += ".0";
  return out;
}

// ---------------------------------------------------------------------------------------------
// Values. A raw value comes from a TOML node or an environment string; Assign checks it against
// the key's kind and range and stores it.

using Raw = std::variant<std::string, bool, std::int64_t, double>;

std::optional<ListenAddress> ParseListen(std::string_view text) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  std::string_view host = text.substr(0, colon);
  const std::string_view port_text = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find_first_of("[]:") != std::string_view::npos) {
    return std::nullopt;  // an IPv6 host must be bracketed
  }
  if (host.empty() || host.find_first_of(" \t/") != std::string_view::npos) return std::nullopt;
  if (port_text.empty() || port_text.size() > 5) return std::nullopt;
  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || end != port_text.data() + port_text.size() || port > 65535) return std::nullopt;
  return ListenAddress{std::string(host), static_cast<std::uint16_t>(port)};
}

bool ValidUrl(std::string_view url) {
  const std::string lower = Lower(url);
  std::size_t rest = 0;
  if (lower.starts_with("http://")) {
    rest = 7;
  } else if (lower.starts_with("https://")) {
    rest = 8;
  } else {
    return false;
  }
  if (url.size() == rest || url[rest] == '/') return false;  // no host
  return url.find_first_of(" \t\r\n") == std::string_view::npos;
}

// The characters of AWS resource names and ARNs (tables, queues, streams, secret ids, regions).
bool ValidAwsName(std::string_view name) {
  if (name.size() > 2048) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 ||
           std::string_view("_-.:/+=@").find(c) != std::string_view::npos;
  });
}

bool InRange(const KeySpec& spec, double value) {
  return value >= spec.range.min && value <= spec.range.max;
}

// Returns nullopt when stored, else what was expected (usually Expected(spec)).
std::optional<std::string> Assign(const KeySpec& spec, const Raw& raw, Config& config) {
  const std::string expected = Expected(spec);
  switch (spec.kind) {
    case Kind::kOptionalString: {
      const auto* s = std::get_if<std::string>(&raw);
      if (s == nullptr) return expected;
      std::get<std::string& (*)(Config&)>(spec.field)(config) = *s;
      return std::nullopt;
    }
    case Kind::kString:
    case Kind::kUrl:
    case Kind::kChoice:
    case Kind::kAwsName:
    case Kind::kOptionalAwsName: {
      const auto* s = std::get_if<std::string>(&raw);
      if (s == nullptr || (s->empty() && spec.kind != Kind::kOptionalAwsName)) return expected;
      std::string value = *s;
      if (spec.kind == Kind::kUrl) {
        if (!ValidUrl(value)) return expected;
        while (value.ends_with('/')) value.pop_back();  // requests go to <root_url>/graphql
      }
      if (spec.kind == Kind::kChoice &&
          std::find(spec.choices.begin(), spec.choices.end(), std::string_view(value)) == spec.choices.end()) {
        return expected;
      }
      if ((spec.kind == Kind::kAwsName || spec.kind == Kind::kOptionalAwsName) && !ValidAwsName(value)) return expected;
      std::get<std::string& (*)(Config&)>(spec.field)(config) = std::move(value);
      return std::nullopt;
    }
    case Kind::kBool: {
      const auto* b = std::get_if<bool>(&raw);
      if (b == nullptr) return expected;
      std::get<bool& (*)(Config&)>(spec.field)(config) = *b;
      return std::nullopt;
    }
    case Kind::kSeconds: {
      const auto* i = std::get_if<std::int64_t>(&raw);
      if (i == nullptr || !InRange(spec, static_cast<double>(*i))) return expected;
      std::get<Seconds& (*)(Config&)>(spec.field)(config) = Seconds(*i);
      return std::nullopt;
    }
    case Kind::kCount: {
      const auto* i = std::get_if<std::int64_t>(&raw);
      if (i == nullptr || !InRange(spec, static_cast<double>(*i))) return expected;
      std::get<int& (*)(Config&)>(spec.field)(config) = static_cast<int>(*i);
      return std::nullopt;
    }
    case Kind::kRate: {
      double value = 0;
      if (const auto* i = std::get_if<std::int64_t>(&raw)) {
        value = static_cast<double>(*i);
      } else if (const auto* d = std::get_if<double>(&raw)) {
        value = *d;
      } else {
        return expected;
      }
      if (!std::isfinite(value) || !InRange(spec, value)) return expected;
      std::get<double& (*)(Config&)>(spec.field)(config) = value;
      return std::nullopt;
    }
    case Kind::kListen: {
      const auto* s = std::get_if<std::string>(&raw);
      if (s == nullptr) return expected;
      auto address = ParseListen(*s);
      if (!address) return expected;
      std::get<ListenAddress& (*)(Config&)>(spec.field)(config) = std::move(*address);
      return std::nullopt;
    }
  }
  return expected;
}

// Environment strings are typed by the key they set; text that is not a number stays a string
// so that Assign reports it with the key's expectation.
Raw RawFromEnv(const KeySpec& spec, const std::string& text) {
  const char* begin = text.data();
  const char* end = text.data() + text.size();
  switch (spec.kind) {
    case Kind::kBool: {
      const std::string lower = Lower(text);
      if (lower == "true" || lower == "1") return true;
      if (lower == "false" || lower == "0") return false;
      return text;
    }
    case Kind::kSeconds:
    case Kind::kCount: {
      std::int64_t value = 0;
      auto [ptr, ec] = std::from_chars(begin, end, value);
      if (ec == std::errc() && ptr == end && !text.empty()) return value;
      return text;
    }
    case Kind::kRate: {
      double value = 0;
      auto [ptr, ec] = std::from_chars(begin, end, value);
      if (ec == std::errc() && ptr == end && !text.empty()) return value;
      return text;
    }
    default:
      return text;
  }
}

std::optional<Raw> RawFromNode(const toml::node& node) {
  if (const auto* s = node.as_string()) return Raw(s->get());
  if (const auto* b = node.as_boolean()) return Raw(b->get());
  if (const auto* i = node.as_integer()) return Raw(i->get());
  if (const auto* f = node.as_floating_point()) return Raw(f->get());
  return std::nullopt;  // a table, an array, a date or time: never a valid setting
}

// The value as the user wrote it, short and on one line.
std::string DisplayNode(const toml::node& node) {
  if (const auto* s = node.as_string()) return Quote(s->get());
  if (node.is_table()) return "a table";
  std::ostringstream out;
  node.visit([&out](const auto& n) { out << n; });
  std::string text = out.str();
  if (text.find('\n') != std::string::npos) return node.is_array() ? "an array" : "a value";
  if (text.size() > 80) text = text.substr(0, 77) + "...";
  return text;
}

std::string FormatValue(const std::string& s) {
  return Quote(s);
}
std::string FormatValue(bool b) {
  return b ? "true" : "false";
}
std::string FormatValue(Seconds s) {
  return std::to_string(s.count());
}
std::string FormatValue(int i) {
  return std::to_string(i);
}
std::string FormatValue(double d) {
  return FormatDouble(d);
}
std::string FormatValue(const ListenAddress& a) {
  return Quote(a.ToString());
}

// A URL's password is shown as "***" (common/url.h): the text is printed and logged.
std::string Literal(const KeySpec& spec, Config& config) {
  std::string literal = std::visit([&config](auto field_fn) { return FormatValue(field_fn(config)); }, spec.field);
  return spec.kind == Kind::kUrl ? RedactUrlCredentials(literal) : literal;
}

// ---------------------------------------------------------------------------------------------
// Did-you-mean.

// Optimal string alignment distance (Levenshtein plus adjacent transpositions).
std::size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.size()][b.size()];
}

// The one candidate close to `word`, if exactly one is closest and close enough.
std::optional<std::string> Closest(std::string_view word, const std::vector<std::string>& candidates) {
  const std::size_t limit = word.size() <= 4 ? 1 : 2;
  std::optional<std::string> best;
  std::size_t best_distance = limit + 1;
  bool tie = false;
  for (const auto& candidate : candidates) {
    const std::size_t distance = EditDistance(Lower(word), candidate);
    if (distance < best_distance) {
      best = candidate;
      best_distance = distance;
      tie = false;
    } else if (distance == best_distance) {
      tie = true;
    }
  }
  if (tie) return std::nullopt;
  return best;
}

std::vector<std::string> SectionNames() {
  std::vector<std::string> names;
  for (const auto& spec : Specs()) {
    if (std::find(names.begin(), names.end(), spec.section) == names.end()) names.emplace_back(spec.section);
  }
  return names;
}

const KeySpec* FindSpec(std::string_view section, std::string_view key) {
  for (const auto& spec : Specs()) {
    if (spec.section == section && spec.key == key) return &spec;
  }
  return nullptr;
}

// `section` may be empty for a key written before any [section] header.
std::string UnknownKeyMessage(std::string_view section, std::string_view key) {
  const std::string name = section.empty() ? std::string(key) : std::string(section) + "." + std::string(key);
  std::string message = "unknown key '" + name + "'";
  // A key misspelled in its section, or a right key in the wrong section (or in none).
  std::vector<std::string> same_section;
  std::vector<std::string> same_key;
  for (const auto& spec : Specs()) {
    if (spec.section == section) same_section.push_back(FullName(spec));
    if (spec.key == Lower(key)) same_key.push_back(FullName(spec));
  }
  std::optional<std::string> suggestion = Closest(name, same_section);
  if (!suggestion && same_key.size() == 1) suggestion = same_key.front();
  if (section.empty()) message += " (every key belongs in a [section]";
  if (suggestion) message += std::string(section.empty() ? "; " : " (") + "did you mean '" + *suggestion + "'?";
  if (section.empty() || suggestion) message += ")";
  return message;
}

// ---------------------------------------------------------------------------------------------
// Loading.

// Problems found in the file; the one reported is the first in file order.
class Problems {
 public:
  explicit Problems(std::string_view source) : source_(source) {}

  void Add(const toml::source_region& where, const std::string& message) {
    const auto line = where.begin.line;
    const auto column = where.begin.column;
    if (first_ && std::pair(line, column) >= std::pair(first_line_, first_column_)) return;
    first_line_ = line;
    first_column_ = column;
    first_ = source_ + (line > 0 ? ":" + std::to_string(line) : std::string()) + ": " + message;
  }
  const std::optional<std::string>& First() const { return first_; }

 private:
  std::string source_;
  std::optional<std::string> first_;
  toml::source_index first_line_ = 0;
  toml::source_index first_column_ = 0;
};

void ApplyFile(const toml::table& root, Config& config, Problems& problems) {
  const std::vector<std::string> sections = SectionNames();
  for (auto&& [section_key, section_node] : root) {
    const std::string section(section_key.str());
    const bool known = std::find(sections.begin(), sections.end(), section) != sections.end();
    if (!known) {
      if (!section_node.is_table()) {
        problems.Add(section_key.source(), UnknownKeyMessage("", section));
        continue;
      }
      std::string message = "unknown section '[" + section + "]'";
      if (auto suggestion = Closest(section, sections)) message += " (did you mean '[" + *suggestion + "]'?)";
      problems.Add(section_key.source(), message);
      continue;
    }
    const toml::table* table = section_node.as_table();
    if (table == nullptr) {
      std::string message = section;
      message += " = " + DisplayNode(section_node);
      message += ": expected a table ([" + section + "])";
      problems.Add(section_node.source(), message);
      continue;
    }
    for (auto&& [key, node] : *table) {
      const KeySpec* spec = FindSpec(section, key.str());
      if (spec == nullptr) {
        problems.Add(key.source(), UnknownKeyMessage(section, key.str()));
        continue;
      }
      const std::optional<Raw> raw = RawFromNode(node);
      const std::optional<std::string> expected = raw ? Assign(*spec, *raw, config) : Expected(*spec);
      if (expected)
        problems.Add(node.source(),
                     FullName(*spec) + " = " + RedactUrlCredentials(DisplayNode(node)) + ": expected " + *expected);
    }
  }
}

constexpr std::string_view kEnvPrefix = "PWRCELL_";

// A PWRCELL_ variable that sets nothing is a typo (PWRCELL_CONCERTO_WORKER) that would otherwise
// leave the setting at its default without a word, as an unknown file key would.
Status CheckVariableNames(const Environment& env) {
  std::vector<std::string> known;
  for (const KeySpec& spec : Specs()) known.push_back(EnvVarName(spec));
  const std::vector<std::string>& others = NonConfigVariables();
  std::vector<std::string> unknown;
  for (const std::string& name : env.Names()) {
    if (!name.starts_with(kEnvPrefix)) continue;
    if (std::find(known.begin(), known.end(), name) != known.end()) continue;
    if (std::find(others.begin(), others.end(), name) != others.end()) continue;
    unknown.push_back(name);
  }
  if (unknown.empty()) return Status::Ok();
  std::sort(unknown.begin(), unknown.end());
  const std::string& name = unknown.front();
  std::vector<std::string> lower_known;
  for (const std::string& k : known) lower_known.push_back(Lower(k));
  std::string message = "unknown environment variable " + name;
  if (auto suggestion = Closest(name, lower_known)) message += " (did you mean " + Upper(*suggestion) + "?)";
  message += ": every PWRCELL_ variable sets a configuration key (PWRCELL_<SECTION>_<KEY>; README \"Configuration\")";
  if (unknown.size() > 1) message += "; " + std::to_string(unknown.size() - 1) + " more unknown";
  return InvalidArgumentError(message);
}

Status ApplyEnvironment(const Environment& env, Config& config) {
  if (!env) return Status::Ok();  // no variables
  PWRCELL_RETURN_IF_ERROR(CheckVariableNames(env));
  for (const KeySpec& spec : Specs()) {
    const std::string generic = EnvVarName(spec);
    const std::string alias(spec.alias);
    const std::optional<std::string> generic_value = env(generic);
    const std::optional<std::string> alias_value = alias.empty() ? std::nullopt : env(alias);
    if (generic_value && alias_value && *generic_value != *alias_value) {
      std::string message = "environment variables ";
      message += alias + "=" + RedactUrlCredentials(Quote(*alias_value));
      message += " and " + generic + "=" + RedactUrlCredentials(Quote(*generic_value));
      message += " both set " + FullName(spec) + ": set only one";
      return InvalidArgumentError(message);
    }
    const std::string& name = alias_value ? alias : generic;
    const std::optional<std::string>& value = alias_value ? alias_value : generic_value;
    if (!value) continue;
    if (auto expected = Assign(spec, RawFromEnv(spec, *value), config)) {
      if (spec.kind == Kind::kBool) expected = "true, false, 1 or 0";
      return InvalidArgumentError("environment variable " + name + "=" + RedactUrlCredentials(Quote(*value)) + " (" +
                                  FullName(spec) + "): expected " + *expected);
    }
  }
  return Status::Ok();
}

// Checks that involve more than one key.
Status CheckConsistency(const Config& config, std::string_view source) {
  if (config.telemetry.listen == config.admin.listen && config.telemetry.listen.port != 0) {
    return InvalidArgumentError(std::string(source) + ": telemetry.listen and admin.listen are both " +
                                Quote(config.telemetry.listen.ToString()) + ": expected two different addresses");
  }
  if (config.telemetry.tls_cert_file.empty() != config.telemetry.tls_key_file.empty()) {
    const bool cert = !config.telemetry.tls_cert_file.empty();
    return InvalidArgumentError(std::string(source) + ": telemetry." + (cert ? "tls_cert_file" : "tls_key_file") +
                                " is set but telemetry." + (cert ? "tls_key_file" : "tls_cert_file") +
                                " is not: expected both (HTTPS) or neither (plain HTTP)");
  }
  if (!IsLoopback(config.admin.listen) && !config.admin.allow_remote) {
    return InvalidArgumentError(std::string(source) + ": admin.listen = " + Quote(config.admin.listen.ToString()) +
                                " is not a loopback address, and the admin API (device data, metrics, controls) "
                                "would be reachable from the network: listen on 127.0.0.1, or set "
                                "admin.allow_remote = true with admin.access_key_secret (a bearer token)");
  }
  if (config.admin.allow_remote && config.admin.access_key_secret.empty()) {
    return InvalidArgumentError(std::string(source) +
                                ": admin.allow_remote = true requires admin.access_key_secret: the secret holding "
                                "the bearer token every remote admin request must carry");
  }
  return Status::Ok();
}

}  // namespace

bool IsLoopback(const ListenAddress& address) {
  const std::string host = Lower(address.host);
  if (host == "localhost" || host == "::1") return true;
  // 127.0.0.0/8, written as a dotted quad.
  if (!host.starts_with("127.")) return false;
  int parts = 0;
  std::size_t begin = 0;
  while (begin <= host.size()) {
    const std::size_t dot = std::min(host.find('.', begin), host.size());
    unsigned value = 0;
    auto [end, ec] = std::from_chars(host.data() + begin, host.data() + dot, value);
    if (ec != std::errc() || end != host.data() + dot || dot == begin || value > 255) return false;
    ++parts;
    begin = dot + 1;
  }
  return parts == 4;
}

Environment::Environment(Lookup lookup, Lister names) : lookup_(std::move(lookup)), names_(std::move(names)) {}

std::optional<std::string> Environment::operator()(const std::string& name) const {
  if (!lookup_) return std::nullopt;
  return lookup_(name);
}

std::vector<std::string> Environment::Names() const {
  if (!names_) return {};
  return names_();
}

const std::vector<std::string>& NonConfigVariables() {
  static const std::vector<std::string> names = {
      "PWRCELL_CONFIG",  // the Lambda bootstrap: path of a deployment file (runtime/lambda/bootstrap.h)
      // Test harnesses (CTest, tests/e2e, tests/lambda, tests/aws); `serve` inherits them there.
      "PWRCELL_BIN_DIR", "PWRCELL_SOURCE_DIR", "PWRCELL_E2E_BACKEND", "PWRCELL_E2E_KEEP", "PWRCELL_MOTO_DIR",
      "PWRCELL_FLEET_SIM",  // the ces-sim launcher's fleet-sim (sim/ces)
  };
  return names;
}

std::string ListenAddress::ToString() const {
  const std::string shown = host.find(':') == std::string::npos ? host : "[" + host + "]";
  return shown + ":" + std::to_string(port);
}

Environment ProcessEnvironment() {
  return Environment(
      [](const std::string& name) -> std::optional<std::string> {
        const char* value = std::getenv(name.c_str());  // NOLINT(concurrency-mt-unsafe): read-only at startup
        if (value == nullptr) return std::nullopt;
        return std::string(value);
      },
      [] {
        std::vector<std::string> names;
        for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
          const std::string_view text(*entry);
          names.emplace_back(text.substr(0, text.find('=')));
        }
        return names;
      });
}

Environment MapEnvironment(std::map<std::string, std::string> variables) {
  auto shared = std::make_shared<const std::map<std::string, std::string>>(std::move(variables));
  return Environment(
      [shared](const std::string& name) -> std::optional<std::string> {
        auto it = shared->find(name);
        if (it == shared->end()) return std::nullopt;
        return it->second;
      },
      [shared] {
        std::vector<std::string> names;
        for (const auto& [name, value] : *shared) names.push_back(name);
        return names;
      });
}

Environment EmptyEnvironment() {
  return Environment([](const std::string&) -> std::optional<std::string> { return std::nullopt; },
                     [] { return std::vector<std::string>(); });
}

const std::vector<KeyInfo>& Keys() {
  static const std::vector<KeyInfo> keys = [] {
    std::vector<KeyInfo> out;
    for (const KeySpec& spec : Specs()) {
      out.push_back({std::string(spec.section), std::string(spec.key), EnvVarName(spec), std::string(spec.alias),
                     Expected(spec)});
    }
    return out;
  }();
  return keys;
}

Result<Config> LoadConfigString(std::string_view toml, std::string_view source_name, const Environment& env) {
  toml::table root;
  try {
    root = toml::parse(toml, std::string_view(source_name));
  } catch (const toml::parse_error& e) {
    // toml++ reports parse errors by exception; they stop here and become a Status.
    const auto& where = e.source().begin;
    return InvalidArgumentError(std::string(source_name) + ":" + std::to_string(where.line) + ":" +
                                std::to_string(where.column) + ": TOML syntax error: " + std::string(e.description()));
  }
  Config config;
  Problems problems(source_name);
  ApplyFile(root, config, problems);
  if (problems.First()) return InvalidArgumentError(*problems.First());
  PWRCELL_RETURN_IF_ERROR(ApplyEnvironment(env, config));
  PWRCELL_RETURN_IF_ERROR(CheckConsistency(config, source_name));
  return config;
}

Result<Config> LoadConfigFile(const std::string& path, const Environment& env) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int error = errno;
    if (error == ENOENT || error == ENOTDIR) return NotFoundError("configuration file not found: " + path);
    if (error == EACCES) return PermissionDeniedError("cannot read configuration file " + path + ": permission denied");
    return UnavailableError("cannot open configuration file " + path + ": " + std::strerror(error));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return InvalidArgumentError("configuration file " + path + " is not a regular file");
  }
  std::string text;
  char buf[8192];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      const int error = errno;
      ::close(fd);
      return UnavailableError("cannot read configuration file " + path + ": " + std::strerror(error));
    }
    text.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return LoadConfigString(text, path, env);
}

std::string DescribeConfig(const Config& config) {
  Config copy = config;  // the field accessors take a mutable Config
  std::string out = "# effective configuration (deployment file + environment overrides)\n";
  std::string_view section;
  for (const KeySpec& spec : Specs()) {
    if (spec.section != section) {
      if (!section.empty()) out += "\n";
      section = spec.section;
      // Appended piecewise: GCC 12's -Wrestrict misfires on `"[" + std::string(...)` at -O2.
      out += '[';
      out += section;
      out += "]\n";
    }
    out += spec.key;
    out += " = ";
    out += Literal(spec, copy);
    out += '\n';
  }
  return out;
}

}  // namespace pwrcell::config
