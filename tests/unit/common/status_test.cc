// Status and the one retry predicate (common/status.h).
#include "common/status.h"

#include <gtest/gtest.h>

#include <vector>

namespace pwrcell {
namespace {

// The one retry predicate (status.h), every code placed on one side.
TEST(Status, IsRetryableHoldsForTheTransientCodesOnly) {
  const std::vector<StatusCode> transient = {StatusCode::kUnavailable, StatusCode::kDeadlineExceeded,
                                             StatusCode::kAborted, StatusCode::kResourceExhausted};
  const std::vector<StatusCode> permanent = {
      StatusCode::kOk,           StatusCode::kInvalidArgument,   StatusCode::kFailedPrecondition,
      StatusCode::kNotFound,     StatusCode::kAlreadyExists,     StatusCode::kUnauthenticated,
      StatusCode::kPermissionDenied, StatusCode::kInternal};
  for (StatusCode code : transient) {
    EXPECT_TRUE(IsRetryable(code)) << StatusCodeName(code);
    EXPECT_TRUE(Status(code, "x").IsRetryable()) << StatusCodeName(code);
  }
  for (StatusCode code : permanent) {
    EXPECT_FALSE(IsRetryable(code)) << StatusCodeName(code);
  }
}

TEST(Status, WithContextKeepsTheCodeAndPrefixesTheMessage) {
  const Status status = AbortedError("device changed").WithContext("updating sys-1");
  EXPECT_EQ(status.code(), StatusCode::kAborted);
  EXPECT_EQ(status.ToString(), "ABORTED: updating sys-1: device changed");
  EXPECT_TRUE(Status::Ok().WithContext("nothing").ok());
}

}  // namespace
}  // namespace pwrcell
