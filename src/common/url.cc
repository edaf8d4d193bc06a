#include "common/url.h"

namespace pwrcell {

std::string RedactUrlCredentials(std::string_view text) {
  static constexpr std::string_view kSchemeEnd = "://";
  static constexpr std::string_view kAuthorityEnd = "/?#\\ \t\r\n\"'<>";
  std::string out;
  out.reserve(text.size());
  std::size_t done = 0;  // text[0, done) is in `out`
  for (std::size_t scheme = text.find(kSchemeEnd); scheme != std::string_view::npos;
       scheme = text.find(kSchemeEnd, done)) {
    const std::size_t start = scheme + kSchemeEnd.size();
    std::size_t end = text.find_first_of(kAuthorityEnd, start);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view authority = text.substr(start, end - start);
    const std::size_t at = authority.rfind('@');  // a password may itself contain '@'
    out.append(text.substr(done, start - done));
    if (at != std::string_view::npos) {
      const std::string_view userinfo = authority.substr(0, at);
      const std::size_t colon = userinfo.find(':');
      if (colon != std::string_view::npos) {
        out.append(userinfo.substr(0, colon));
        out.append(":***");
      } else {
        out.append("***");
      }
      out.append(authority.substr(at));
    } else {
      out.append(authority);
    }
    done = end;
  }
  out.append(text.substr(done));
  return out;
}

}  // namespace pwrcell
