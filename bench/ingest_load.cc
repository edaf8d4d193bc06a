// A load driver for the telemetry ingest endpoint of a running `pwrcell-adapter serve` (issue 10
// item 5): posts Kinesis-shaped JSON bodies of N records, or single protobuf records, over
// several keep-alive connections, and reports records/s and request latency (p50 / p99 / max).
// Meanwhile it can hold idle connections and slow clients (one header byte a second) open on the
// ingest port, and probe /healthz on the admin port with slow clients there too. Records are the
// fleet model's (57-point-shaped EnergyRecordSets, ~640 bytes), from fleet::NextRecord.
//
//   ingest_load --port 8070 [--admin-port 8071] [--connections 4] [--seconds 20]
//               [--mode json|protobuf] [--records-per-body 500] [--systems 200]
//               [--idle 2000] [--slow 50] [--admin-slow 20]
//
// Exits 1 when a request failed (no answer, or a status other than 200) or, with --min-rate, when
// fewer records/s were accepted.
#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "common/base64.h"
#include "fleet/physics.h"
#include "fleet/system_spec.h"

namespace pwrcell::bench {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct Options {
  std::string host = "127.0.0.1";
  int port = 8070;
  int admin_port = 0;
  int connections = 4;
  double seconds = 20;
  std::string mode = "json";
  int records_per_body = 500;
  int systems = 200;
  int idle = 0;
  int slow = 0;
  int admin_slow = 0;
  double min_rate = 0;
};

struct Record {
  std::string bytes;
  std::string system_id;
};

// `count` records of `systems` fleet systems, interval after interval (daylight, so PV flows).
std::vector<Record> MakeRecords(int systems, int count) {
  fleet::CompositionOptions composition;
  composition.ac_coupled_fraction = 0.3;
  composition.site_meter_fraction = 0.9;
  std::vector<fleet::SystemSpec> specs;
  std::vector<fleet::SystemState> states;
  for (int i = 0; i < systems; ++i) {
    specs.push_back(fleet::MakeSystem(fleet::FleetSystemId(10000, i), std::nullopt, composition));
    states.push_back(fleet::InitialState(specs.back()));
  }
  const Timestamp start = FromUnixMillis(1782014400000) + std::chrono::hours(6);
  const Duration interval = std::chrono::minutes(5);
  std::vector<Record> records;
  for (int n = 0; static_cast<int>(records.size()) < count; ++n) {
    const auto i = static_cast<std::size_t>(n % systems);
    auto record = fleet::NextRecord(specs[i], states[i], start + interval * (n / systems + 1), interval, {});
    if (record) records.push_back({record->SerializeAsString(), specs[i].system_id});
  }
  return records;
}

// A raw client socket; -1 when the connection failed.
int Connect(const std::string& host, int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  inet_pton(AF_INET, host.c_str(), &address.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Whether the server has closed `fd` (end of stream or error); never blocks.
bool ClosedByServer(int fd) {
  pollfd p{fd, POLLIN, 0};
  if (poll(&p, 1, 0) <= 0) return false;
  char buffer[512];
  return recv(fd, buffer, sizeof(buffer), MSG_DONTWAIT) <= 0;
}

// Idle connections (nothing sent) and slow clients (one header byte a second) held open on one
// port until stopped; a connection the server closes is opened again, and counted.
class Nuisance {
 public:
  Nuisance(std::string host, int port, int idle, int slow) : host_(std::move(host)), port_(port) {
    for (int i = 0; i < idle; ++i) idle_.push_back(Connect(host_, port_));
    for (int i = 0; i < slow; ++i) slow_.push_back(OpenSlow());
    if (idle + slow > 0) thread_ = std::thread([this] { Run(); });
  }
  ~Nuisance() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    for (int fd : idle_) close(fd);
    for (int fd : slow_) close(fd);
  }
  int reopened_idle() const { return reopened_idle_; }
  int reopened_slow() const { return reopened_slow_; }
  int failed() const {
    int n = 0;
    for (int fd : idle_) n += fd < 0;
    for (int fd : slow_) n += fd < 0;
    return n;
  }

 private:
  int OpenSlow() {
    const int fd = Connect(host_, port_);
    const std::string start = "POST /v1/telemetry HTTP/1.1\r\nHost: ";
    if (fd >= 0) send(fd, start.data(), start.size(), MSG_NOSIGNAL);
    return fd;
  }
  void Run() {
    while (!stop_) {
      for (int& fd : slow_) {
        if (fd < 0 || ClosedByServer(fd) || send(fd, "a", 1, MSG_NOSIGNAL) != 1) {
          if (fd >= 0) close(fd);
          fd = OpenSlow();
          ++reopened_slow_;
        }
      }
      for (int& fd : idle_) {
        if (fd < 0 || ClosedByServer(fd)) {
          if (fd >= 0) close(fd);
          fd = Connect(host_, port_);
          ++reopened_idle_;
        }
      }
      for (int i = 0; i < 10 && !stop_; ++i) std::this_thread::sleep_for(100ms);
    }
  }

  std::string host_;
  int port_;
  std::vector<int> idle_;
  std::vector<int> slow_;
  std::atomic<bool> stop_{false};
  std::atomic<int> reopened_idle_{0};
  std::atomic<int> reopened_slow_{0};
  std::thread thread_;
};

struct Latencies {
  std::vector<double> ms;
  double Percentile(double p) {
    if (ms.empty()) return 0;
    std::sort(ms.begin(), ms.end());
    return ms[std::min(ms.size() - 1, static_cast<std::size_t>(p * static_cast<double>(ms.size())))];
  }
};

int Run(const Options& options) {
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
  }
  const bool json = options.mode == "json";
  const int per_body = json ? options.records_per_body : 1;
  const std::vector<Record> records = MakeRecords(options.systems, std::max(per_body * 8, options.systems));
  std::size_t record_bytes = 0;
  for (const auto& r : records) record_bytes += r.bytes.size();
  // Eight distinct bodies, taken in turn.
  std::vector<std::string> bodies;
  for (int b = 0; b < 8; ++b) {
    if (!json) {
      bodies.push_back(records[static_cast<std::size_t>(b) % records.size()].bytes);
      continue;
    }
    nlohmann::json entries = nlohmann::json::array();
    for (int i = 0; i < per_body; ++i) {
      const Record& r = records[(static_cast<std::size_t>(b) * per_body + i) % records.size()];
      entries.push_back({{"data", Base64Encode(r.bytes)}, {"partitionKey", r.system_id}});
    }
    bodies.push_back(nlohmann::json{{"records", entries}}.dump());
  }
  const char* content_type = json ? "application/json" : "application/x-protobuf";
  std::printf(
      "ingest_load: %s, %d records/body (%zu bytes/body, %zu bytes/record), %d connections, %.0f s; "
      "%d idle + %d slow on ingest, %d slow on admin\n",
      options.mode.c_str(), per_body, bodies[0].size(), record_bytes / records.size(), options.connections,
      options.seconds, options.idle, options.slow, options.admin_slow);

  Nuisance ingest_nuisance(options.host, options.port, options.idle, options.slow);
  std::unique_ptr<Nuisance> admin_nuisance;
  if (options.admin_port > 0) {
    admin_nuisance = std::make_unique<Nuisance>(options.host, options.admin_port, 0, options.admin_slow);
  }
  std::this_thread::sleep_for(1s);  // let the nuisances settle in

  std::mutex mutex;
  Latencies latencies;
  Latencies health;
  std::map<std::string, int> failures;  // status or error -> count
  std::atomic<long> accepted{0};
  std::atomic<bool> stop{false};
  const auto start = Clock::now();
  const auto end = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options.seconds));

  std::vector<std::thread> threads;
  for (int c = 0; c < options.connections; ++c) {
    threads.emplace_back([&, c] {
      httplib::Client client(options.host, options.port);
      client.set_keep_alive(true);
      client.set_connection_timeout(10, 0);
      client.set_read_timeout(30, 0);
      client.set_write_timeout(30, 0);
      std::vector<double> mine;
      for (std::size_t i = static_cast<std::size_t>(c); Clock::now() < end; ++i) {
        const auto sent = Clock::now();
        httplib::Result res = client.Post("/v1/telemetry", bodies[i % bodies.size()], content_type);
        mine.push_back(std::chrono::duration<double, std::milli>(Clock::now() - sent).count());
        std::string failure;
        if (!res) {
          failure = httplib::to_string(res.error());
        } else if (res->status != 200) {
          failure = std::to_string(res->status);
        } else {
          accepted += nlohmann::json::parse(res->body)["accepted"].get<long>();
        }
        if (!failure.empty()) {
          std::lock_guard lock(mutex);
          ++failures[failure];
        }
      }
      std::lock_guard lock(mutex);
      latencies.ms.insert(latencies.ms.end(), mine.begin(), mine.end());
    });
  }
  std::thread prober;
  if (options.admin_port > 0) {
    prober = std::thread([&] {
      httplib::Client client(options.host, options.admin_port);
      client.set_connection_timeout(10, 0);
      client.set_read_timeout(10, 0);
      while (!stop) {
        const auto sent = Clock::now();
        httplib::Result res = client.Get("/healthz");
        const double ms = std::chrono::duration<double, std::milli>(Clock::now() - sent).count();
        std::lock_guard lock(mutex);
        health.ms.push_back(ms);
        if (!res || res->status != 200) ++failures["healthz " + (res ? std::to_string(res->status) : "no answer")];
        if (!stop) std::this_thread::sleep_for(100ms);
      }
    });
  }
  for (auto& t : threads) t.join();
  const double wall = std::chrono::duration<double>(Clock::now() - start).count();
  stop = true;
  if (prober.joinable()) prober.join();

  const double rate = static_cast<double>(accepted.load()) / wall;
  std::printf("requests %zu, records accepted %ld in %.1f s: %.0f records/s, %.1f requests/s\n", latencies.ms.size(),
              accepted.load(), wall, rate, static_cast<double>(latencies.ms.size()) / wall);
  std::printf("latency ms: p50 %.1f  p99 %.1f  max %.1f\n", latencies.Percentile(0.50), latencies.Percentile(0.99),
              latencies.Percentile(1.0));
  if (options.admin_port > 0) {
    std::printf("healthz (%zu probes) ms: p50 %.1f  p99 %.1f  max %.1f\n", health.ms.size(), health.Percentile(0.50),
                health.Percentile(0.99), health.Percentile(1.0));
  }
  std::printf("ingest nuisances: %d idle reopened, %d slow reopened (closed by the server), %d could not connect\n",
              ingest_nuisance.reopened_idle(), ingest_nuisance.reopened_slow(), ingest_nuisance.failed());
  int failed = 0;
  for (const auto& [what, count] : failures) {
    std::printf("failed: %d x %s\n", count, what.c_str());
    failed += count;
  }
  if (failed > 0 || latencies.ms.empty()) return 1;
  if (options.min_rate > 0 && rate < options.min_rate) {
    std::printf("below --min-rate %.0f records/s\n", options.min_rate);
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace pwrcell::bench

int main(int argc, char** argv) {
  pwrcell::bench::Options options;
  CLI::App app{"HTTP ingest load driver for pwrcell-adapter serve"};
  app.add_option("--host", options.host, "ingest and admin host (IPv4)");
  app.add_option("--port", options.port, "ingest port")->required();
  app.add_option("--admin-port", options.admin_port, "admin port: probe /healthz every 100 ms during the run");
  app.add_option("--connections", options.connections, "keep-alive connections posting in parallel");
  app.add_option("--seconds", options.seconds, "duration of the run");
  app.add_option("--mode", options.mode, "json (Kinesis-shaped batches) or protobuf (one record per request)")
      ->check(CLI::IsMember({"json", "protobuf"}));
  app.add_option("--records-per-body", options.records_per_body, "records per JSON body");
  app.add_option("--systems", options.systems, "distinct systems the records come from");
  app.add_option("--idle", options.idle, "idle connections held open on the ingest port");
  app.add_option("--slow", options.slow, "slow clients (one header byte a second) on the ingest port");
  app.add_option("--admin-slow", options.admin_slow, "slow clients on the admin port");
  app.add_option("--min-rate", options.min_rate, "exit 1 below this many accepted records/s");
  CLI11_PARSE(app, argc, argv);
  return pwrcell::bench::Run(options);
}
