// URLs shown to people: the one place that hides the credentials a URL may carry.
//
// A root URL may hold a user name and password (`https://user:pass@host/`), in the deployment file
// or in an environment override (ConcertoRootUrl, PWRCELL_CES_ROOT_URL, ...). The URL a request is
// sent to keeps them (libcurl turns them into Basic authentication); every URL or message that may
// reach a log line, a Status, an error body or `config check --print` goes through
// RedactUrlCredentials first.
#pragma once

#include <string>
#include <string_view>

namespace pwrcell {

// `text` with the userinfo of every URL in it ("scheme://userinfo@host...") masked: the password
// of "user:password@" becomes "***" ("user:***@"), a userinfo without a password (which may be a
// token) becomes "***@". A URL is recognised by "://"; its authority ends at the first '/', '?',
// '#', whitespace or quote. Text without such a URL is returned unchanged. Pure, thread-safe.
std::string RedactUrlCredentials(std::string_view text);

}  // namespace pwrcell
