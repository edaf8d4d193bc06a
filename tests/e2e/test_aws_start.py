"""`serve` on the AWS backends refuses to start when a resource it is configured with is missing
(issue 11 item 6): exit 1, and the log names the resource and carries AWS's error. Runs as
e2e_aws.aws_start against moto (skipped on the embedded backend)."""

import unittest

from harness import ADAPTER, BACKEND, Process, Stack


@unittest.skipUnless(BACKEND == "aws", "needs the AWS backend (PWRCELL_E2E_BACKEND=aws)")
class AwsStartTest(unittest.TestCase):
    def test_a_missing_resource_stops_serve_with_its_name_and_the_aws_error(self):
        stack = Stack(self).start(adapter=False)
        cases = [
            ("aws.device_table", "no-such-devices", "ResourceNotFoundException"),
            ("aws.coordination_table", "no-such-coordination", "ResourceNotFoundException"),
            ("aws.ces_queue", "no-such-ces", "NonExistentQueue"),
            ("aws.telemetry_stream", "no-such-stream", "ResourceNotFoundException"),
            ("concerto.credentials_secret", "no-such-secret", "ResourceNotFoundException"),
        ]
        for n, (key, name, aws_error) in enumerate(cases):
            with self.subTest(key=key):
                saved = dict(stack.extra_config)
                stack.extra_config[key] = name
                path = stack.write_config()
                stack.extra_config = saved
                process = Process(f"adapter-missing-{n}", [ADAPTER, "serve", "--config", path], stack.dir,
                                  env=stack.aws_env())
                code = process.stop_when_done(timeout=60)
                log = process.log()
                self.assertEqual(code, 1, log[-2000:])
                self.assertIn("cannot start", log)
                self.assertIn(name, log)
                self.assertIn(aws_error, log)

    def test_missing_aws_credentials_are_named(self):
        stack = Stack(self).start(adapter=False)
        env = stack.aws_env()
        env.pop("AWS_SECRET_ACCESS_KEY")
        process = Process("adapter-no-keys", [ADAPTER, "serve", "--config", stack.write_config()], stack.dir,
                          env=env)
        code = process.stop_when_done(timeout=60)
        self.assertNotEqual(code, 0)
        self.assertIn("AWS_SECRET_ACCESS_KEY is not set", process.log())


if __name__ == "__main__":
    unittest.main()
