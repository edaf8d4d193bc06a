#include "cli/exit_codes.h"

#include <gtest/gtest.h>

namespace pwrcell::cli {
namespace {

// The README's exit codes, from the one table.
TEST(ExitCodeFor, OkIsZeroAtEveryStep) {
  for (Step step : {Step::kLoadConfig, Step::kServe, Step::kReplay}) {
    EXPECT_EQ(ExitCodeFor(step, Status::Ok()), kExitOk);
  }
}

TEST(ExitCodeFor, ConfigurationMissingIsNotFoundAndInvalidIsThree) {
  EXPECT_EQ(ExitCodeFor(Step::kLoadConfig, NotFoundError("no such file deployment.toml")), 4);
  EXPECT_EQ(ExitCodeFor(Step::kLoadConfig, InvalidArgumentError("[concerto] workers")), 3);
  EXPECT_EQ(ExitCodeFor(Step::kLoadConfig, StatusCode::kInternal), 3);
}

TEST(ExitCodeFor, ServeCannotStartIsOneWhateverTheCode) {
  EXPECT_EQ(ExitCodeFor(Step::kServe, UnavailableError("admin server: cannot listen: address in use")), 1);
  EXPECT_EQ(ExitCodeFor(Step::kServe, NotFoundError("secrets file secrets.json")), 1);
  EXPECT_EQ(ExitCodeFor(Step::kServe, PermissionDeniedError("secrets file: chmod 600")), 1);
  EXPECT_EQ(ExitCodeFor(Step::kServe, InvalidArgumentError("secrets file: not a JSON object")), 1);
  EXPECT_EQ(ExitCodeFor(Step::kServe, InternalError("store: file is not a database")), 1);
}

TEST(ExitCodeFor, ReplayNotFoundIsFourTruncatedIsFiveStoreIsOne) {
  EXPECT_EQ(ExitCodeFor(Step::kReplay, NotFoundError("cannot open x.bin")), 4);
  EXPECT_EQ(ExitCodeFor(Step::kReplay, InvalidArgumentError("x.bin is truncated")), 5);
  EXPECT_EQ(ExitCodeFor(Step::kReplay, UnavailableError("store: database is locked")), 1);
  EXPECT_EQ(ExitCodeFor(Step::kReplay, InternalError("store")), 1);
}

}  // namespace
}  // namespace pwrcell::cli
