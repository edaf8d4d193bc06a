// The admin dashboard: one self-contained HTML page (inline CSS and JS, no external assets) that
// fetches /api/devices every 5 s and shows counts by remote_state and commissioning state and a
// table of devices. Device text is inserted with textContent, never as HTML.
#pragma once

#include <string_view>

namespace pwrcell::runtime::http {

std::string_view DashboardHtml();

}  // namespace pwrcell::runtime::http
