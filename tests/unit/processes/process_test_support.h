// Shared scaffolding for the process tests: the memory fakes wired into a processes::Context,
// a fake clock (no sleeps anywhere), and helpers that read what a handler queued.
#pragma once

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "adapters/memory/clocks.h"
#include "adapters/memory/memory_coordination.h"
#include "adapters/memory/memory_device_store.h"
#include "adapters/memory/memory_queue.h"
#include "common/metrics.h"
#include "domain/ces_types.h"
#include "domain/device.h"
#include "processes/context.h"
#include "processes/messages.h"

namespace pwrcell::processes::test_support {

inline constexpr const char* kAdapterName = "pwrcell-adapter";

// Everything a handler needs, over the in-memory fakes. source_progress is unset and no adapter
// start is recorded, so there is no startup grace unless a test sets both.
struct Harness {
  adapters::FakeClock clock;
  adapters::MemoryDeviceStore devices;
  adapters::MemoryQueue concerto_queue{clock, 5};
  adapters::MemoryQueue telemetry_queue{clock, 5};
  adapters::MemoryQueue ces_queue{clock, 5};
  Metrics metrics;
  adapters::MemoryCoordination coordination;
  Context context{devices, concerto_queue, telemetry_queue, ces_queue, clock, metrics, coordination, Settings{}, {}};

  Harness() {
    context.settings.adapter_name = kAdapterName;
    // Polls are not throttled unless a test says so (RegistrarPoller.SeveralProcessesPollAsOne).
    context.settings.registrar_poll = Duration::zero();
  }

  // The stored record; fails the test when there is none.
  domain::DeviceRecord Device(const std::string& remote_id) {
    auto got = devices.Get(remote_id);
    EXPECT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_TRUE(got.ok() && got->has_value()) << "no device " << remote_id;
    return got.ok() && got->has_value() ? **got : domain::DeviceRecord{};
  }
  bool Has(const std::string& remote_id) {
    auto got = devices.Get(remote_id);
    return got.ok() && got->has_value();
  }
  std::vector<std::string> RemoteIds() {
    std::vector<std::string> ids;
    auto all = devices.List();
    EXPECT_TRUE(all.ok());
    if (all.ok()) {
      for (const auto& d : *all) ids.push_back(d.remote_id);
    }
    return ids;
  }
  // Stores `record` as a new record (version 0 -> 1) and returns it as stored.
  domain::DeviceRecord Store(domain::DeviceRecord record) {
    record.version = 0;
    auto stored = devices.Put(record);
    EXPECT_TRUE(stored.ok()) << stored.status().ToString();
    return stored.ok() ? *stored : record;
  }
};

// A queue over another one whose Send and SendBatch fail with kUnavailable while `down` is set
// (an outage of the queue a handler writes to).
class SwitchableQueue final : public ports::Queue {
 public:
  explicit SwitchableQueue(ports::Queue& inner) : inner_(inner) {}
  bool down = false;

  Result<std::string> Send(const std::string& body) override {
    if (down) return UnavailableError("queue down");
    return inner_.Send(body);
  }
  Result<std::vector<std::string>> SendBatch(const std::vector<std::string>& bodies) override {
    if (down) return UnavailableError("queue down");
    return inner_.SendBatch(bodies);
  }
  Result<std::vector<ports::ReceivedMessage>> Receive(std::size_t n, Duration timeout) override {
    return inner_.Receive(n, timeout);
  }
  Status Delete(const std::string& receipt) override { return inner_.Delete(receipt); }
  Status DeadLetter(const std::string& receipt) override { return inner_.DeadLetter(receipt); }
  Status ChangeVisibility(const std::string& receipt, Duration timeout) override {
    return inner_.ChangeVisibility(receipt, timeout);
  }
  Result<ports::QueueStats> Stats() override { return inner_.Stats(); }
  Result<std::vector<ports::ReceivedMessage>> PeekDeadLetters(std::size_t n) override {
    return inner_.PeekDeadLetters(n);
  }
  Result<std::size_t> RedriveDeadLetters(std::size_t n) override { return inner_.RedriveDeadLetters(n); }

 private:
  ports::Queue& inner_;
};

// Every visible message body of `queue`, oldest first; the messages are deleted.
inline std::vector<std::string> Drain(ports::Queue& queue) {
  std::vector<std::string> bodies;
  for (;;) {
    auto received = queue.Receive(ports::kMaxQueueBatch, std::chrono::hours(1));
    EXPECT_TRUE(received.ok()) << received.status().ToString();
    if (!received.ok() || received->empty()) break;
    for (const auto& m : *received) {
      bodies.push_back(m.body);
      EXPECT_TRUE(queue.Delete(m.receipt).ok());
    }
  }
  return bodies;
}

inline std::vector<ConcertoRequest> DrainConcerto(ports::Queue& queue) {
  std::vector<ConcertoRequest> out;
  for (const auto& body : Drain(queue)) {
    auto decoded = DecodeConcertoRequest(body);
    EXPECT_TRUE(decoded.ok()) << body << ": " << decoded.status().ToString();
    if (decoded.ok()) out.push_back(*decoded);
  }
  return out;
}

inline std::vector<CesRequest> DrainCes(ports::Queue& queue) {
  std::vector<CesRequest> out;
  for (const auto& body : Drain(queue)) {
    auto decoded = DecodeCesRequest(body);
    EXPECT_TRUE(decoded.ok()) << body << ": " << decoded.status().ToString();
    if (decoded.ok()) out.push_back(*decoded);
  }
  return out;
}

// A CES answer for a DC-coupled system: one 7.6 kW inverter, two batteries, three PV links and
// a site meter, on CES site "ces-site-<system_id>".
inline domain::SystemMetadata DcMetadata(const std::string& system_id, const std::string& rcpn = "000100000001") {
  domain::SystemMetadata m;
  m.system_id = system_id;
  m.site_id = "ces-site-" + system_id;
  m.site_name = "Smith residence";
  m.timezone = "America/Denver";
  m.latitude = 39.74;
  m.longitude = -104.99;
  m.status_name = domain::kCesStatusSuccess;
  m.inverters = {domain::CesInverter{rcpn, "PWRcell X7602", 7600, 0.0}};
  m.batteries = {domain::CesBattery{"000200000001", "PWRcell battery module 3kWh", 3000, 1125},
                 domain::CesBattery{"000200000002", "PWRcell battery module 3kWh", 3000, 1125}};
  m.pv_links = {domain::CesPvLink{"000300000001", 2500}, domain::CesPvLink{"000300000002", 2500},
                domain::CesPvLink{"000300000003", 2500}};
  m.site_meter_id = system_id + "-meter";
  return m;
}

// A registered record as the registrar leaves it (no metadata yet).
inline domain::DeviceRecord Registered(const std::string& remote_id, const std::string& asset_id,
                                       Timestamp registered_at) {
  domain::DeviceRecord d;
  d.remote_id = remote_id;
  d.concerto_asset_id = asset_id;
  d.name = "System " + remote_id;
  d.registered_at = registered_at;
  d.updated_at = registered_at;
  return d;
}

}  // namespace pwrcell::processes::test_support
