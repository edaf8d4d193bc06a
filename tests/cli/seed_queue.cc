// Test tool: puts messages into one of serve's SQLite queues, or holds the file's write lock, so
// the CLI tests of `queues` have something to read and a concurrent writer to wait for. Not
// installed.
//
//   seed_queue DB QUEUE dead|live BODY...   each BODY: text:TEXT, file:PATH (bytes) or
//                                            textproto:PATH (an EnergyRecordSet, serialized)
//   seed_queue DB hold SECONDS               BEGIN IMMEDIATE, print "holding", sleep, commit
#include <google/protobuf/text_format.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "adapters/sqlite/sqlite_database.h"
#include "adapters/sqlite/sqlite_queue.h"
#include "adapters/system/system_clock.h"
#include "energy_record_set.pb.h"

namespace {

using pwrcell::adapters::SqliteDatabase;
using pwrcell::adapters::SqliteQueue;

std::optional<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

std::optional<std::string> Body(const std::string& spec) {
  if (spec.rfind("text:", 0) == 0) return spec.substr(5);
  if (spec.rfind("file:", 0) == 0) return ReadFile(spec.substr(5));
  if (spec.rfind("textproto:", 0) == 0) {
    auto text = ReadFile(spec.substr(10));
    pwrcell::ces::v1::EnergyRecordSet record;
    if (!text || !google::protobuf::TextFormat::ParseFromString(*text, &record)) return std::nullopt;
    return record.SerializeAsString();
  }
  return std::nullopt;
}

int Hold(const std::string& db, int seconds) {
  auto database = SqliteDatabase::Open(db);
  if (!database.ok()) {
    std::cerr << "seed_queue: " << database.status().ToString() << "\n";
    return 1;
  }
  auto unit = (*database)->BeginUnitOfWork();
  if (!unit.ok()) {
    std::cerr << "seed_queue: " << unit.status().ToString() << "\n";
    return 1;
  }
  std::cout << "holding" << std::endl;
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  return unit->Commit().ok() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  if (args.size() == 3 && args[1] == "hold") return Hold(args[0], std::stoi(args[2]));
  if (args.size() < 4 || (args[2] != "dead" && args[2] != "live")) {
    std::cerr << "usage: seed_queue DB QUEUE dead|live BODY... | seed_queue DB hold SECONDS\n";
    return 2;
  }
  pwrcell::adapters::SystemClock clock;
  auto queue = SqliteQueue::Open(args[0], args[1], clock, 5);
  if (!queue.ok()) {
    std::cerr << "seed_queue: " << queue.status().ToString() << "\n";
    return 1;
  }
  std::set<std::string> ids;
  for (std::size_t i = 3; i < args.size(); ++i) {
    auto body = Body(args[i]);
    if (!body) {
      std::cerr << "seed_queue: cannot make a body of " << args[i] << "\n";
      return 2;
    }
    auto id = (*queue)->Send(*body);
    if (!id.ok()) {
      std::cerr << "seed_queue: " << id.status().ToString() << "\n";
      return 1;
    }
    ids.insert(*id);
  }
  if (args[2] == "live") return 0;
  // Receive until every message sent above has been dead-lettered; others go back at once.
  for (int round = 0; !ids.empty(); ++round) {
    if (round == 100) {
      std::cerr << "seed_queue: too many live messages in front of the ones to dead-letter\n";
      return 1;
    }
    auto received = (*queue)->Receive(pwrcell::ports::kMaxQueueBatch, std::chrono::seconds(60));
    if (!received.ok() || received->empty()) {
      std::cerr << "seed_queue: cannot receive what was sent\n";
      return 1;
    }
    for (const auto& m : *received) {
      const bool mine = ids.erase(m.id) == 1;
      const auto status = mine ? (*queue)->DeadLetter(m.receipt) : (*queue)->ChangeVisibility(m.receipt, {});
      if (!status.ok()) {
        std::cerr << "seed_queue: " << status.ToString() << "\n";
        return 1;
      }
    }
  }
  return 0;
}
