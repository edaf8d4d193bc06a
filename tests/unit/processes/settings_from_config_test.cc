#include "processes/settings_from_config.h"

#include <gtest/gtest.h>

#include <chrono>

namespace pwrcell::processes {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;

TEST(SettingsFromConfig, DefaultsCopyTheConfigurationAndDeriveTheThrottles) {
  const Settings settings = SettingsFromConfig(config::Config{});
  EXPECT_EQ(settings.adapter_name, "pwrcell-adapter");
  EXPECT_FALSE(settings.auto_commissioning);
  EXPECT_EQ(settings.offline_timeout, seconds(900));
  EXPECT_EQ(settings.record_interval, seconds(300));
  EXPECT_EQ(settings.metadata_refresh, seconds(86400));
  EXPECT_EQ(settings.page_size, 100);
  EXPECT_EQ(settings.status_batch_size, 100);
  // 10 polls of 60 s: exactly the upper bound.
  EXPECT_EQ(settings.request_repeat_after, minutes(10));
  // visibility 60 s * (5 deliveries + 1).
  EXPECT_EQ(settings.list_assets_expiry, minutes(6));
}

TEST(SettingsFromConfig, CopiesEveryConfiguredValue) {
  config::Config cfg;
  cfg.adapter.name = "fleet-a";
  cfg.adapter.auto_commissioning = true;
  cfg.liveness.offline_timeout_s = seconds(120);
  cfg.liveness.record_interval_s = seconds(7);
  cfg.schedule.metadata_refresh_s = seconds(3600);
  cfg.concerto.page_size = 500;
  cfg.ces.status_batch_size = 25;
  const Settings settings = SettingsFromConfig(cfg);
  EXPECT_EQ(settings.adapter_name, "fleet-a");
  EXPECT_TRUE(settings.auto_commissioning);
  EXPECT_EQ(settings.offline_timeout, seconds(120));
  EXPECT_EQ(settings.record_interval, seconds(7));
  EXPECT_EQ(settings.metadata_refresh, hours(1));
  EXPECT_EQ(settings.page_size, 500);
  EXPECT_EQ(settings.status_batch_size, 25);
}

Duration RequestRepeatAfter(int registrar_poll_s) {
  config::Config cfg;
  cfg.schedule.registrar_poll_s = seconds(registrar_poll_s);
  return SettingsFromConfig(cfg).request_repeat_after;
}

TEST(SettingsFromConfig, RequestRepeatAfterIsTenPollsClampedToThirtySecondsAndTenMinutes) {
  EXPECT_EQ(RequestRepeatAfter(1), seconds(30));
  EXPECT_EQ(RequestRepeatAfter(2), seconds(30));
  EXPECT_EQ(RequestRepeatAfter(3), seconds(30));  // the lower edge exactly
  EXPECT_EQ(RequestRepeatAfter(4), seconds(40));
  EXPECT_EQ(RequestRepeatAfter(59), seconds(590));
  EXPECT_EQ(RequestRepeatAfter(60), seconds(600));  // the upper edge exactly
  EXPECT_EQ(RequestRepeatAfter(61), seconds(600));
  EXPECT_EQ(RequestRepeatAfter(3600), seconds(600));
}

Duration ListAssetsExpiry(int visibility_timeout_s, int max_receives) {
  config::Config cfg;
  cfg.queues.visibility_timeout_s = seconds(visibility_timeout_s);
  cfg.queues.max_receives = max_receives;
  return SettingsFromConfig(cfg).list_assets_expiry;
}

TEST(SettingsFromConfig, ListAssetsExpiryIsEveryDeliveryPlusOneClampedToOneMinuteAndOneHour) {
  EXPECT_EQ(ListAssetsExpiry(1, 1), minutes(1));    // 2 s
  EXPECT_EQ(ListAssetsExpiry(9, 5), minutes(1));    // 54 s
  EXPECT_EQ(ListAssetsExpiry(10, 5), minutes(1));   // 60 s: the lower edge exactly
  EXPECT_EQ(ListAssetsExpiry(11, 5), seconds(66));
  EXPECT_EQ(ListAssetsExpiry(30, 1), minutes(1));   // 60 s with a single delivery
  EXPECT_EQ(ListAssetsExpiry(599, 5), seconds(3594));
  EXPECT_EQ(ListAssetsExpiry(600, 5), hours(1));    // 3600 s: the upper edge exactly
  EXPECT_EQ(ListAssetsExpiry(601, 5), hours(1));
  EXPECT_EQ(ListAssetsExpiry(43200, 10), hours(1));
}

}  // namespace
}  // namespace pwrcell::processes
