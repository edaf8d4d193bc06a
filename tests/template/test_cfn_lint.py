"""cfn-lint on template.yml: no error and no warning (SPEC section 8: "cfn-lint checks the
template"). cfn-lint's exit code is a bit mask: 2 errors, 4 warnings, 8 informational; 1 means it
could not run at all."""

import subprocess
import sys
import unittest

import template_tools as tt


class CfnLint(unittest.TestCase):
    def test_template_has_no_error_or_warning(self):
        # cfn-lint's console script (cfnlint has no __main__), with the python3 running this test
        command = [sys.executable, "-c", "import sys; from cfnlint.runner import main; sys.exit(main())"]
        result = subprocess.run(command + ["--format", "parseable", tt.TEMPLATE],
                                capture_output=True, text=True, timeout=120, check=False)
        report = result.stdout + result.stderr
        self.assertNotEqual(result.returncode, 1, f"cfn-lint did not run:\n{report}")
        self.assertEqual(result.returncode & (2 | 4), 0, f"cfn-lint found errors or warnings:\n{report}")
        for line in result.stdout.splitlines():
            self.assertNotRegex(line, r":[EW]\d+:", line)


if __name__ == "__main__":
    unittest.main()
