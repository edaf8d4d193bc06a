#include "processes/settings_from_config.h"

#include <algorithm>
#include <chrono>

namespace pwrcell::processes {

Settings SettingsFromConfig(const config::Config& config) {
  Settings settings;
  settings.adapter_name = config.adapter.name;
  settings.auto_commissioning = config.adapter.auto_commissioning;
  settings.offline_timeout = config.liveness.offline_timeout_s;
  settings.record_interval = config.liveness.record_interval_s;
  settings.metadata_refresh = config.schedule.metadata_refresh_s;
  settings.page_size = config.concerto.page_size;
  settings.status_batch_size = config.ces.status_batch_size;
  settings.request_repeat_after = std::clamp<Duration>(Duration(config.schedule.registrar_poll_s) * 10,
                                                       std::chrono::seconds(30), std::chrono::minutes(10));
  settings.list_assets_expiry =
      std::clamp<Duration>(Duration(config.queues.visibility_timeout_s) * (config.queues.max_receives + 1),
                           std::chrono::minutes(1), std::chrono::hours(1));
  settings.work_lease = config.queues.visibility_timeout_s;
  settings.registrar_poll = config.schedule.registrar_poll_s;
  return settings;
}

}  // namespace pwrcell::processes
