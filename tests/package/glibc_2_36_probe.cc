// Test input for package.lambda_zip: an executable that needs glibc 2.36 (arc4random), newer than
// Amazon Linux 2023's 2.34, which scripts/package-lambda.sh must refuse to package.
#include <cstdio>
#include <cstdlib>

int main() {
  std::printf("%u\n", arc4random());
  return 0;
}
