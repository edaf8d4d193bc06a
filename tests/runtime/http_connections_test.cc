// Connections are not the scarce resource of the HTTP servers (listener.h): idle and slow clients
// do not keep others from being served, the connection cap closes what is over it, and the idle
// and header deadlines close what lingers. Raw sockets play the misbehaving clients.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "adapters/memory/memory_device_store.h"
#include "runtime/http/admin_server.h"
#include "runtime/http/ingest_server.h"
#include "runtime/http/listener.h"
#include "test_records.h"

namespace pwrcell::runtime::http {
namespace {

// The admin configuration on 127.0.0.1:`port`, set field by field: a braced AdminConfig{...}
// temporary trips GCC 12's false maybe-uninitialized warning (see TelemetryConfig).
config::AdminConfig AdminOn(std::uint16_t port) {
  config::AdminConfig config;
  config.listen = {"127.0.0.1", port};
  return config;
}


using namespace std::chrono_literals;
using testing::ValidRecordBytes;

// A client socket connected to 127.0.0.1:port, closed with the object.
class RawConnection {
 public:
  explicit RawConnection(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<std::uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  }
  ~RawConnection() {
    if (fd_ >= 0) close(fd_);
  }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  bool connected() const { return connected_; }
  bool Send(const std::string& bytes) {
    return send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size());
  }
  // Whether the server ended the connection (end of stream or reset) within `wait`, reading and
  // dropping whatever it sent first.
  bool ClosedByServerWithin(std::chrono::milliseconds wait) {
    const auto deadline = std::chrono::steady_clock::now() + wait;
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (poll(&p, 1, static_cast<int>(std::max<long>(left.count(), 1))) <= 0) continue;
      char buffer[4096];
      const ssize_t n = recv(fd_, buffer, sizeof(buffer), 0);
      if (n <= 0) return true;
      received_.append(buffer, static_cast<std::size_t>(n));
    }
    return false;
  }
  const std::string& received() const { return received_; }

 private:
  int fd_ = -1;
  bool connected_ = false;
  std::string received_;
};

std::vector<std::unique_ptr<RawConnection>> OpenConnections(int port, int count) {
  std::vector<std::unique_ptr<RawConnection>> connections;
  for (int i = 0; i < count; ++i) {
    connections.push_back(std::make_unique<RawConnection>(port));
    EXPECT_TRUE(connections.back()->connected()) << "connection " << i;
  }
  return connections;
}

// Clients stalled in the middle of their request header, as a slowloris between two bytes.
std::vector<std::unique_ptr<RawConnection>> OpenSlowClients(int port, int count, const std::string& request_line) {
  auto connections = OpenConnections(port, count);
  for (auto& connection : connections) EXPECT_TRUE(connection->Send(request_line + "Host: 127.0.0.1\r\nX-Slow: a"));
  return connections;
}

// A client that gives up after a few seconds: the servers of old made it wait for as long as the
// idle or slow connections ahead of it held their threads.
std::unique_ptr<httplib::Client> PatientClient(int port) {
  auto client = std::make_unique<httplib::Client>("127.0.0.1", port);
  client->set_connection_timeout(5, 0);
  client->set_read_timeout(5, 0);
  client->set_write_timeout(5, 0);
  return client;
}

class IngestConnectionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config::TelemetryConfig config;
    config.listen = {"127.0.0.1", 0};
    server_ = std::make_unique<IngestServer>(
        config, [](const std::vector<std::string>&) { return Status::Ok(); }, metrics_);
    ASSERT_TRUE(server_->Start().ok());
  }

  int PostOneRecord() {
    auto client = PatientClient(server_->port());
    httplib::Result res = client->Post("/v1/telemetry", ValidRecordBytes("RCP-1"), "application/x-protobuf");
    return res ? res->status : -1;
  }

  Metrics metrics_;
  std::unique_ptr<IngestServer> server_;
};

TEST_F(IngestConnectionsTest, IdleConnectionsDoNotKeepPostsWaiting) {
  auto idle = OpenConnections(server_->port(), 300);
  // And idle keep-alive connections that have already been served once.
  std::vector<std::unique_ptr<httplib::Client>> kept_alive;
  for (int i = 0; i < 20; ++i) {
    kept_alive.push_back(PatientClient(server_->port()));
    kept_alive.back()->set_keep_alive(true);
    httplib::Result res = kept_alive.back()->Post("/v1/telemetry", ValidRecordBytes("RCP-1"), "application/x-protobuf");
    ASSERT_TRUE(res) << "keep-alive client " << i << ": " << httplib::to_string(res.error());
  }
  for (int i = 0; i < 5; ++i) EXPECT_EQ(PostOneRecord(), 200) << "post " << i;
}

TEST_F(IngestConnectionsTest, SlowClientsDoNotKeepPostsWaiting) {
  auto slow = OpenSlowClients(server_->port(), 50, "POST /v1/telemetry HTTP/1.1\r\n");
  for (int i = 0; i < 5; ++i) EXPECT_EQ(PostOneRecord(), 200) << "post " << i;
}

TEST(AdminConnectionsTest, HealthzAnswersWithSlowClientsOnTheAdminPort) {
  adapters::MemoryDeviceStore store;
  Metrics metrics;
  AdminServer server(AdminOn(0), store, metrics);
  ASSERT_TRUE(server.Start().ok());
  auto slow = OpenSlowClients(server.port(), 20, "GET /healthz HTTP/1.1\r\n");
  auto idle = OpenConnections(server.port(), 50);
  for (int i = 0; i < 5; ++i) {
    httplib::Result res = PatientClient(server.port())->Get("/healthz");
    ASSERT_TRUE(res) << "healthz " << i << ": " << httplib::to_string(res.error());
    EXPECT_EQ(res->status, 200);
  }
}

Listener::Options Limits(std::chrono::milliseconds idle, std::chrono::milliseconds header,
                         std::chrono::milliseconds body, std::size_t max_connections = 1024) {
  Listener::Options options;
  options.io_threads = 1;
  options.max_connections = max_connections;
  options.idle_timeout = idle;
  options.header_timeout = header;
  options.body_timeout = body;
  return options;
}

// A Listener with one route and deadlines short enough to watch.
class ListenerLimitsTest : public ::testing::Test {
 protected:
  void Start(Listener::Options options) {
    options.name = "test";
    listener_ = std::make_unique<Listener>(std::move(options));
    listener_->Get("/ping",
                   [](const httplib::Request&, httplib::Response& res) { res.set_content("pong", "text/plain"); });
    ASSERT_TRUE(listener_->Start({"127.0.0.1", 0}).ok());
  }
  // Waits (bounded) until the listener has registered `count` open connections.
  bool OpenConnectionsReach(std::size_t count) {
    for (int i = 0; i < 500; ++i) {
      if (listener_->open_connections() == count) return true;
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }

  std::unique_ptr<Listener> listener_;
};

TEST_F(ListenerLimitsTest, AConnectionOverTheCapIsClosedAndTheCapFreesWhenOneCloses) {
  Start(Limits(60s, 60s, 60s, 4));
  auto held = OpenConnections(listener_->port(), 4);
  ASSERT_TRUE(OpenConnectionsReach(4));

  RawConnection over(listener_->port());
  ASSERT_TRUE(over.connected());  // the kernel accepts into the backlog; the server then closes it
  ASSERT_TRUE(over.Send("GET /ping HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_TRUE(over.ClosedByServerWithin(5s));
  EXPECT_EQ(over.received().find("pong"), std::string::npos) << over.received();
  EXPECT_EQ(listener_->open_connections(), 4u);

  held.pop_back();
  ASSERT_TRUE(OpenConnectionsReach(3));
  httplib::Result res = PatientClient(listener_->port())->Get("/ping");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->body, "pong");
}

TEST_F(ListenerLimitsTest, HeaderDeadlineClosesASlowlorisThatKeepsSending) {
  Start(Limits(60s, 300ms, 60s));
  RawConnection slowloris(listener_->port());
  ASSERT_TRUE(slowloris.Send("GET /ping HTTP/1.1\r\nHost: x\r\nX-Slow: "));
  // One byte every 50 ms: never inactive, so only a deadline on the whole header ends it.
  bool closed = false;
  for (int i = 0; i < 200 && !closed; ++i) {
    slowloris.Send("a");
    closed = slowloris.ClosedByServerWithin(50ms);
  }
  EXPECT_TRUE(closed);
  EXPECT_EQ(slowloris.received().find("pong"), std::string::npos);

  // The server itself is fine.
  httplib::Result res = PatientClient(listener_->port())->Get("/ping");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
}

TEST_F(ListenerLimitsTest, IdleDeadlineClosesAConnectionThatSendsNothing) {
  Start(Limits(300ms, 60s, 60s));
  RawConnection idle(listener_->port());
  ASSERT_TRUE(idle.connected());
  EXPECT_TRUE(idle.ClosedByServerWithin(10s));
}

TEST_F(ListenerLimitsTest, AKeepAliveConnectionServesRequestAfterRequest) {
  Start(Limits(60s, 60s, 60s));
  httplib::Client client("127.0.0.1", listener_->port());
  client.set_keep_alive(true);
  for (int i = 0; i < 20; ++i) {
    httplib::Result res = client.Get("/ping");
    ASSERT_TRUE(res) << i << ": " << httplib::to_string(res.error());
    EXPECT_EQ(res->body, "pong");
  }
  EXPECT_EQ(listener_->open_connections(), 1u);
}

TEST_F(ListenerLimitsTest, HeadIsAnsweredByTheGetHandlerWithoutABody) {
  Start(Limits(60s, 60s, 60s));
  httplib::Client client("127.0.0.1", listener_->port());
  httplib::Result res = client.Head("/ping");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  EXPECT_TRUE(res->body.empty());
}

TEST_F(ListenerLimitsTest, AMalformedRequestAnsweredByTheFrameworkIsObserved) {
  Listener::Options options;
  options.name = "test";
  listener_ = std::make_unique<Listener>(options);
  std::atomic<int> observed_status{0};
  listener_->SetResponseObserver(
      [&observed_status](const httplib::Request&, const httplib::Response& res) { observed_status = res.status; });
  ASSERT_TRUE(listener_->Start({"127.0.0.1", 0}).ok());
  RawConnection client(listener_->port());
  // A header larger than libmicrohttpd's per-connection buffer: it answers without a handler.
  ASSERT_TRUE(client.Send("GET /ping HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(64 * 1024, 'a') + "\r\n\r\n"));
  EXPECT_TRUE(client.ClosedByServerWithin(10s));
  const std::string& answer = client.received();
  ASSERT_EQ(answer.rfind("HTTP/1.1 4", 0), 0u) << answer;
  const int status = std::stoi(answer.substr(9, 3));
  listener_->Stop();
  EXPECT_EQ(observed_status.load(), status);
}

}  // namespace
}  // namespace pwrcell::runtime::http
