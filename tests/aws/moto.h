// The moto_server the AWS tests run against (moto is a stand-in for AWS: where it accepts what AWS
// refuses, the adapters follow AWS's documentation). Under CTest one server is shared by every
// test (the fixture tests/aws/moto_fixture.py, its directory in PWRCELL_MOTO_DIR); an executable
// run on its own starts one for itself, stopped when it exits. Tests create their resources with
// UniqueName so that tests running at once never meet.
#pragma once

#include <string>
#include <string_view>

#include "adapters/aws/aws_client.h"

namespace pwrcell::aws_test {

// "http://127.0.0.1:PORT"; "" (with a recorded test failure) when no server can be had.
std::string MotoEndpoint();

// Client options for moto: region us-east-1, keys "testing" / "testing", every service's endpoint
// moto's, few retries (a test should see a failure quickly).
adapters::aws::AwsOptions MotoOptions();

// "<prefix>-<pid>-<n>-<random hex>": unique across the test processes of one run, at most 80
// characters, letters, digits and '-' only (valid for tables, queues, streams and secrets).
std::string UniqueName(std::string_view prefix);

// A ClientRequestToken for a secret's first version derived from its id: Secrets Manager wants
// 32 to 64 characters, which a unique name alone is not when the test's pid is short.
std::string InitialVersionToken(std::string_view id);

}  // namespace pwrcell::aws_test
