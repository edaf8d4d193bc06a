// `queues list | dead-letters | redrive`: what an operator needs to see and recover the dead
// letters of serve's durable queues. Embedded, they open the same SQLite file as serve, which may
// be running: the file is in WAL mode (these reads never block serve, nor serve them) and every
// write waits up to the connection's busy timeout (5 s) for serve's transaction to end.
// On AWS (`[backend] kind = "aws"`) they work on the SQS queues `[aws]` names and their "-dlq"
// dead-letter queues, through the same port; there is no ingest queue in a Lambda stack, so
// `queues list` leaves it out (with a note) when it does not exist.
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <limits>
#include <memory>
#include <optional>
#include <ostream>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "adapters/aws/sqs_queue.h"
#include "adapters/sqlite/sqlite_database.h"
#include "adapters/sqlite/sqlite_queue.h"
#include "adapters/system/system_clock.h"
#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "common/base64.h"
#include "config/config.h"
#include "domain/record_decoding.h"
#include "runtime/serve/serve.h"

namespace pwrcell::cli {
namespace {

using runtime::serve::kQueueNames;

// Characters of a preview, before "...": enough to tell messages apart, short enough for a line.
constexpr std::size_t kPreviewChars = 72;
// Bytes of an undecodable binary body shown (as base64) in its preview.
constexpr std::size_t kPreviewBinaryBytes = 24;

std::string QueueNameList() {
  std::string names;
  for (const char* name : kQueueNames) names += (names.empty() ? "" : ", ") + std::string(name);
  return names;
}

bool IsQueueName(const std::string& name) {
  return std::any_of(kQueueNames.begin(), kQueueNames.end(), [&](const char* known) { return name == known; });
}

// Printable ASCII as is, everything else as \xNN: nothing in a preview can move a terminal's
// cursor or change its colours. At most kPreviewChars characters, then "...".
std::string SafePreview(std::string_view text) {
  std::string out;
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    std::string piece = byte >= 0x20 && byte < 0x7f && c != '\\' ? std::string(1, c)
                        : c == '\\'                              ? std::string("\\\\")
                                                                 : fmt::format("\\x{:02x}", byte);
    if (out.size() + piece.size() > kPreviewChars) return out + "...";
    out += piece;
  }
  return out;
}

struct Preview {
  std::string kind;  // json, energy_record_set or binary
  std::string text;
};

// What a body is, in a few safe characters: the queue messages of processes/messages.h are JSON
// (their "op" comes first); the ingest queue holds serialized EnergyRecordSets.
Preview PreviewBody(const std::string& body) {
  if (nlohmann::json::accept(body)) return {"json", SafePreview(body)};
  if (auto record = domain::DecodeRecordSet(body); record.ok()) {
    const auto& records = record->energyrecord();
    return {"energy_record_set",
            SafePreview(fmt::format("inverterId={} records={} first={}", record->inverterid(), records.size(),
                                    FormatIso8601(FromUnixSeconds(records.Get(0).currenttimestamp()))))};
  }
  const std::string_view head = std::string_view(body).substr(0, kPreviewBinaryBytes);
  return {"binary", "base64:" + Base64Encode(head) + (body.size() > head.size() ? "..." : "")};
}

// The store file serve uses, opened without creating it: a missing file is reported (exit 4).
std::variant<std::shared_ptr<adapters::SqliteDatabase>, int> OpenDatabase(const std::string& db, std::ostream& err) {
  if (!std::filesystem::exists(db)) {
    err << "error: no store at " << db << " (has the adapter run with this [storage] path?)\n";
    return kExitNotFound;
  }
  auto database = adapters::SqliteDatabase::Open(db);
  if (!database.ok()) {
    err << "error: cannot open store " << db << ": " << database.status().message() << "\n";
    return kExitFailure;
  }
  return std::move(database).value();
}

// One of serve's queues in `database`. max_receives only matters to Receive, which these
// commands never call; the configured value is not needed.
Result<std::unique_ptr<adapters::SqliteQueue>> OpenQueue(std::shared_ptr<adapters::SqliteDatabase> database,
                                                         const std::string& name, const ports::Clock& clock) {
  return adapters::SqliteQueue::Create(std::move(database), name, clock, config::QueuesConfig{}.max_receives);
}

int StoreError(const Status& status, std::ostream& err) {
  err << "error: " << status.ToString()
      << (status.code() == StatusCode::kUnavailable ? " (the store is busy or unreachable: try again)" : "") << "\n";
  return kExitFailure;
}

// Queues by their names in kQueueNames, opened on the configured backend.
using NamedQueues = std::vector<std::pair<std::string, std::unique_ptr<ports::Queue>>>;

// Opens `names` (each one of kQueueNames) on the store `where` designates. On AWS a missing ingest
// queue is left out with a note when `ingest_optional` is set (a Lambda stack has none), else
// reported like any missing queue (exit 4). `clock` must outlive the queues.
std::variant<NamedQueues, int> OpenQueues(const StoreLocation& where, const std::vector<std::string>& names,
                                          bool ingest_optional, const ports::Clock& clock, std::ostream& err) {
  auto target = ResolveStore(where, err);
  if (std::holds_alternative<int>(target)) return std::get<int>(target);
  const StoreTarget& store_target = std::get<StoreTarget>(target);
  NamedQueues queues;
  if (!store_target.aws) {
    auto opened = OpenDatabase(store_target.db_path, err);
    if (std::holds_alternative<int>(opened)) return std::get<int>(opened);
    const auto& database = std::get<std::shared_ptr<adapters::SqliteDatabase>>(opened);
    for (const std::string& name : names) {
      auto queue = OpenQueue(database, name, clock);
      if (!queue.ok()) return StoreError(queue.status(), err);
      queues.emplace_back(name, std::move(*queue));
    }
    return queues;
  }
  const config::Config& config = *store_target.aws;
  auto opened = OpenAwsStore(config, /*ingest=*/false, err);
  if (std::holds_alternative<int>(opened)) return std::get<int>(opened);
  auto& store = std::get<runtime::serve::Store>(opened);
  for (const std::string& name : names) {
    if (name == runtime::serve::kConcertoQueue) {
      queues.emplace_back(name, std::move(store.concerto));
    } else if (name == runtime::serve::kConcertoTelemetryQueue) {
      queues.emplace_back(name, std::move(store.concerto_telemetry));
    } else if (name == runtime::serve::kCesQueue) {
      queues.emplace_back(name, std::move(store.ces));
    } else {  // the ingest queue, opened apart: serve has one, a Lambda stack does not
      auto ingest = adapters::aws::SqsQueue::Open(store.aws, config.aws.ingest_queue);
      if (ingest.ok()) {
        queues.emplace_back(name, std::move(*ingest));
      } else if (ingest.status().code() == StatusCode::kNotFound && ingest_optional) {
        err << "note: no SQS queue " << config.aws.ingest_queue
            << " (the ingest queue; a Lambda stack has none): not listed\n";
      } else if (ingest.status().code() == StatusCode::kNotFound) {
        err << "error: " << ingest.status().message() << " (the ingest queue: serve on AWS has one, a Lambda stack "
            << "has none)\n";
        return kExitNotFound;
      } else {
        return StoreError(ingest.status(), err);
      }
    }
  }
  return queues;
}

int UnknownQueue(const std::string& name, std::ostream& err) {
  err << "error: unknown queue '" << name << "'; the queues are: " << QueueNameList() << "\n";
  return kExitUsage;
}

}  // namespace

int QueuesList(const StoreLocation& where, bool json, std::ostream& out, std::ostream& err) {
  adapters::SystemClock clock;  // serve's clock: in_flight means hidden by a delivery now
  auto opened = OpenQueues(where, std::vector<std::string>(kQueueNames.begin(), kQueueNames.end()),
                           /*ingest_optional=*/true, clock, err);
  if (std::holds_alternative<int>(opened)) return std::get<int>(opened);
  std::vector<std::pair<std::string, ports::QueueStats>> rows;
  for (auto& [name, queue] : std::get<NamedQueues>(opened)) {
    auto stats = queue->Stats();
    if (!stats.ok()) return StoreError(stats.status(), err);
    rows.emplace_back(name, *stats);
  }
  if (json) {
    nlohmann::json array = nlohmann::json::array();
    for (const auto& [name, s] : rows) {
      array.push_back(
          {{"queue", name}, {"visible", s.visible}, {"in_flight", s.in_flight}, {"dead_letter", s.dead_letter}});
    }
    out << array.dump(2) << "\n";
    return kExitOk;
  }
  std::size_t dead = 0;
  out << fmt::format("{:<20} {:>10} {:>10} {:>12}\n", "QUEUE", "VISIBLE", "IN_FLIGHT", "DEAD_LETTER");
  for (const auto& [name, s] : rows) {
    out << fmt::format("{:<20} {:>10} {:>10} {:>12}\n", name, s.visible, s.in_flight, s.dead_letter);
    dead += s.dead_letter;
  }
  out << dead << (dead == 1 ? " dead letter" : " dead letters") << " in all"
      << (dead > 0 ? " (see `queues dead-letters NAME`, recover with `queues redrive NAME`)" : "") << "\n";
  return kExitOk;
}

int QueuesDeadLetters(const StoreLocation& where, const std::string& queue_name, std::size_t limit, bool json,
                      std::ostream& out, std::ostream& err) {
  if (!IsQueueName(queue_name)) return UnknownQueue(queue_name, err);
  if (limit == 0) {
    err << "error: --limit must be at least 1\n";
    return kExitUsage;
  }
  adapters::SystemClock clock;
  auto opened = OpenQueues(where, {queue_name}, /*ingest_optional=*/false, clock, err);
  if (std::holds_alternative<int>(opened)) return std::get<int>(opened);
  ports::Queue* queue = std::get<NamedQueues>(opened).front().second.get();
  auto stats = queue->Stats();
  if (!stats.ok()) return StoreError(stats.status(), err);
  auto dead = queue->PeekDeadLetters(limit);
  if (!dead.ok()) return StoreError(dead.status(), err);
  // Dead-lettered between the two reads (serve runs): never claim fewer than are shown.
  const std::size_t total = std::max(stats->dead_letter, dead->size());

  if (json) {
    nlohmann::json messages = nlohmann::json::array();
    for (const auto& m : *dead) {
      const Preview preview = PreviewBody(m.body);
      messages.push_back({{"id", m.id},
                          {"sent_at", FormatIso8601(m.sent_at)},
                          {"receive_count", m.receive_count},
                          {"size_bytes", m.body.size()},
                          {"kind", preview.kind},
                          {"preview", preview.text}});
    }
    out << nlohmann::json{{"queue", queue_name}, {"dead_letter", total}, {"messages", messages}}.dump(2) << "\n";
    return kExitOk;
  }
  out << fmt::format("{:<10} {:<24} {:>8} {:>8}  {}\n", "ID", "SENT_AT", "RECEIVES", "BYTES", "PREVIEW");
  for (const auto& m : *dead) {
    const Preview preview = PreviewBody(m.body);
    out << fmt::format("{:<10} {:<24} {:>8} {:>8}  {}\n", m.id, FormatIso8601(m.sent_at), m.receive_count,
                       m.body.size(), preview.text);
  }
  out << dead->size() << " of " << total << (total == 1 ? " dead letter" : " dead letters") << " in queue "
      << queue_name << "\n";
  return kExitOk;
}

int QueuesRedrive(const StoreLocation& where, const std::string& queue_name, std::optional<std::size_t> max,
                  std::ostream& out, std::ostream& err) {
  if (!IsQueueName(queue_name)) return UnknownQueue(queue_name, err);
  if (max && *max == 0) {
    err << "error: --max must be at least 1\n";
    return kExitUsage;
  }
  adapters::SystemClock clock;
  auto opened = OpenQueues(where, {queue_name}, /*ingest_optional=*/false, clock, err);
  if (std::holds_alternative<int>(opened)) return std::get<int>(opened);
  ports::Queue* queue = std::get<NamedQueues>(opened).front().second.get();
  auto moved = queue->RedriveDeadLetters(max.value_or(std::numeric_limits<std::size_t>::max()));
  if (!moved.ok()) return StoreError(moved.status(), err);
  out << "moved " << *moved << (*moved == 1 ? " dead letter" : " dead letters") << " back into queue " << queue_name
      << "\n";
  return kExitOk;
}

}  // namespace pwrcell::cli
