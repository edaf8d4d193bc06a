// Test input for package.lambda_zip in a build without PWRCELL_LAMBDA_STATIC: an executable linked
// as `bootstrap` is in the Lambda build (static libstdc++ and libgcc, deploy/lambda/glibc_compat.cc)
// that needs libcurl and its dependencies as shared libraries, so that the package has a lib/ to
// carry. It prints libcurl's version, throws and catches an exception (libgcc's unwinder), and
// exits 1 like `bootstrap` outside Lambda.
#include <curl/curl.h>

#include <cstdio>
#include <stdexcept>

int main() {
  std::printf("%s\n", curl_version());
  try {
    throw std::runtime_error("caught");
  } catch (const std::runtime_error& e) {
    std::printf("%s\n", e.what());
  }
  return 1;
}
