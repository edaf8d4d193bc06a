"""The harness's secret scan itself (issue 13 item 5, secret_scan.py): a log line that shows a
secret of the run fails the Stack at its close, naming the file and the line and never the
secret. Starts no program: the logs are written by the test."""

import os
import shutil
import unittest

import secret_scan
from harness import API_KEY, AWS_SECRET_KEY, PASSWORD, Stack


class SecretScanTest(unittest.TestCase):
    def test_the_test_secrets_are_long_and_distinct(self):
        values = [PASSWORD, API_KEY, AWS_SECRET_KEY]
        self.assertEqual(len(set(values)), len(values))
        for value in values:
            self.assertGreaterEqual(len(value), 32)

    def test_a_secret_in_a_log_fails_the_stack_naming_file_and_line_not_the_secret(self):
        stack = Stack(self)
        lambda_dir = os.path.join(stack.dir, "lambda-1")
        os.makedirs(lambda_dir)
        with open(os.path.join(stack.dir, "adapter-1.log"), "w") as f:
            f.write("serve starting\nadmin server listening on 127.0.0.1:1\n"
                    f"warning: login failed for admin@example.com with {PASSWORD}\n")
        with open(os.path.join(lambda_dir, "gateway-0.log"), "w") as f:
            f.write(f"x-api-key: {API_KEY}\n")
        with open(os.path.join(stack.dir, "clean.log"), "w") as f:
            f.write("nothing to see\n")
        # A token concerto-sim issued (its --issued-tokens file) and a key written into the
        # secrets file count too, the files that hold them are not logs.
        token = "tok-" + "a1b2c3d4" * 5
        with open(stack.issued_tokens_path, "w") as f:
            f.write(token + "\n")
        with open(os.path.join(stack.dir, "secrets.json"), "w") as f:
            f.write('{"IngestKey": {"api_key": "ingest-key-0123456789abcdef"}, '
                    '"ConcertoCredentials": {"email": "admin@example.com", "token_issued_at": "2026-11-26T12:00:00Z"}}')
        with open(os.path.join(stack.dir, "fleet-sim.log"), "w") as f:
            f.write(f"one\ntwo\nthree {token}\nfour ingest-key-0123456789abcdef\n")

        with self.assertRaises(AssertionError) as raised:
            stack.close()
        message = str(raised.exception)
        self.assertIn("adapter-1.log:3: the Concerto password <", message)
        self.assertIn(os.path.join("lambda-1", "gateway-0.log") + ":1: the CES API key <", message)
        self.assertIn("fleet-sim.log:3: Concerto access token #1 <", message)
        self.assertIn("fleet-sim.log:4: secrets.json IngestKey.api_key <", message)
        self.assertNotIn("clean.log", message)
        self.assertNotIn("admin@example.com", message)  # an email is not a secret
        for secret in (PASSWORD, API_KEY, token, "ingest-key-0123456789abcdef"):
            self.assertNotIn(secret, message)
            self.assertNotIn(secret[-12:], message)
        self.assertIn(secret_scan.redacted(PASSWORD), message)
        self.assertTrue(os.path.isdir(stack.dir), "the directory of a failed scan is kept")
        stack.close()  # a second close (the cleanup's) does nothing
        shutil.rmtree(stack.dir)

    def test_clean_logs_pass(self):
        stack = Stack(self)
        with open(os.path.join(stack.dir, "adapter-1.log"), "w") as f:
            f.write("serve starting\nstopped cleanly\n")
        stack.close()
        self.assertFalse(os.path.exists(stack.dir))

    def test_a_short_secret_is_refused(self):
        secrets = secret_scan.Secrets()
        with self.assertRaises(ValueError) as raised:
            secrets.add("hunter2", "a password")
        self.assertNotIn("hunter2", str(raised.exception))


if __name__ == "__main__":
    unittest.main()
