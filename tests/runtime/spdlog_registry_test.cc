// Not a test: makes spdlog's registry on the main thread before main() runs, so before any test
// starts a server or worker thread. The registry is a function-local static of the uninstrumented
// libspdlog; made by a first log call on the main thread while a listener's threads already run
// (a server logs "listening" after starting them), ThreadSanitizer cannot see the order between
// its construction and a worker's first log call and reports a race (CI saw it in
// IngestTlsTest.ServesHttpsToCurlTrustingTheCertificate). Made here, every thread is created after
// it, which orders every use after the construction.
#include <spdlog/spdlog.h>

namespace {

[[maybe_unused]] spdlog::logger* const kRegistryFirst = spdlog::default_logger_raw();

}  // namespace
