// TempDir (backends.h): its own file, so that a conformance executable on other backends
// (tests/aws) can use it without the embedded backends.
#include <gtest/gtest.h>
#include <stdlib.h>  // mkdtemp

#include <cerrno>
#include <system_error>

#include "backends.h"

namespace pwrcell::conformance {

TempDir::TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "pwrcell-test-XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp " << pattern << ": " << std::error_code(errno, std::generic_category()).message();
  }
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

}  // namespace pwrcell::conformance
