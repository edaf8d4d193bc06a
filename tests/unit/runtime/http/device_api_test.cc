#include "runtime/http/device_api.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "adapters/memory/memory_device_store.h"

namespace pwrcell::runtime::http {
namespace {

using nlohmann::json;

class DeviceApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 7; ++i) {
      domain::DeviceRecord d;
      d.remote_id = "sys-" + std::to_string(i);
      d.is_simulated = i >= 5;
      if (i % 2 == 0) d.remote_state = domain::RemoteState::kOnline;
      ASSERT_TRUE(store_.Put(d).ok());
    }
  }

  json Body(const ApiReply& reply) { return json::parse(reply.body); }

  std::vector<std::string> Ids(const json& body) {
    std::vector<std::string> ids;
    for (const auto& d : body["devices"]) ids.push_back(d["remote_id"]);
    return ids;
  }

  adapters::MemoryDeviceStore store_;
};

TEST_F(DeviceApiTest, ASmallFleetComesWholeInOneAnswerAsBeforePaging) {
  const ApiReply reply = ListDevices(store_, {});
  ASSERT_EQ(reply.status, 200) << reply.body;
  const json body = Body(reply);
  EXPECT_EQ(body["count"], 7);
  EXPECT_EQ(Ids(body).size(), 7U);
  EXPECT_TRUE(body["next"].is_null());
  EXPECT_EQ(body["devices"][5]["kind"], "simulated");
  EXPECT_EQ(body["devices"][0]["kind"], "real");
}

TEST_F(DeviceApiTest, PagesFollowNextUntilNullAndCountEveryMatch) {
  std::vector<std::string> seen;
  std::map<std::string, std::string> params{{"limit", "3"}, {"remote_state", "ONLINE"}};
  for (int pages = 0; pages < 10; ++pages) {
    const json body = Body(ListDevices(store_, params));
    EXPECT_EQ(body["count"], 4) << "sys-0, 2, 4, 6";
    for (const auto& id : Ids(body)) seen.push_back(id);
    if (body["next"].is_null()) break;
    params["after"] = body["next"];
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"sys-0", "sys-2", "sys-4", "sys-6"}));
}

TEST_F(DeviceApiTest, FiltersBySimulatedAndState) {
  json body = Body(ListDevices(store_, {{"simulated", "true"}}));
  EXPECT_EQ(Ids(body), (std::vector<std::string>{"sys-5", "sys-6"}));
  body = Body(ListDevices(store_, {{"simulated", "false"}, {"remote_state", "ONLINE"}}));
  EXPECT_EQ(Ids(body), (std::vector<std::string>{"sys-0", "sys-2", "sys-4"}));
  EXPECT_EQ(body["count"], 3);
}

TEST_F(DeviceApiTest, InvalidParametersAre400) {
  for (const auto& params : std::vector<std::map<std::string, std::string>>{
           {{"remote_state", "SLEEPY"}}, {{"simulated", "yes"}}, {{"limit", "0"}}, {{"limit", "x"}},
           {{"limit", std::to_string(kMaxDevicePage + 1)}}}) {
    const ApiReply reply = ListDevices(store_, params);
    EXPECT_EQ(reply.status, 400) << reply.body;
    EXPECT_TRUE(Body(reply).contains("error"));
  }
}

TEST_F(DeviceApiTest, TotalsCountTheWholeFleetWhateverThePage) {
  json body = Body(ListDevices(store_, {{"limit", "2"}, {"simulated", "true"}, {"totals", "true"}}));
  EXPECT_EQ(Ids(body).size(), 2U);
  EXPECT_EQ(body["totals"]["remote_state"], (json{{"ONLINE", 4}, {"NONE", 3}}));
  EXPECT_EQ(body["totals"]["commissioning"], (json{{"NOT_REQUESTED", 7}}));
  body = Body(ListDevices(store_, {}));
  EXPECT_FALSE(body.contains("totals")) << "only when asked";
}

TEST_F(DeviceApiTest, OneDeviceOr404) {
  ApiReply reply = GetDevice(store_, "sys-3");
  ASSERT_EQ(reply.status, 200);
  EXPECT_EQ(Body(reply)["remote_id"], "sys-3");
  reply = GetDevice(store_, "nope");
  EXPECT_EQ(reply.status, 404);
}

}  // namespace
}  // namespace pwrcell::runtime::http
