"""Commissioning on Lambda (docs/LAMBDA.md, SPEC section 6): a concerto_gateway invocation killed
mid-commissioning (SIGKILL of the bootstrap process while Concerto creates are in flight) is
Runtime.ExitError; the mapping deletes nothing, SQS delivers the message again after its visibility
timeout to a new (cold) instance, and the system still ends with exactly one site, one INVERTER per
inverter and no duplicate asset. Twice, at two points of the commissioning."""

import time
import unittest

import lambda_e2e  # noqa: F401 - the e2e harness in Lambda mode
from e2e_checks import check_commissioned, component_count, expected_counts, wait_all_commissioned, wait_sweeps
from harness import Stack, live_scenario, wait_for


class LambdaCommissioningTest(unittest.TestCase):
    def test_killed_gateway_invocation_is_retried_without_duplicates(self):
        stack = Stack(self, scenario=live_scenario(systems=3, seed=11, ac_coupled_fraction=0.5,
                                                   site_meter_fraction=0.5)).start()
        systems = stack.fleet_systems()
        expected_components = sum(v for k, v in expected_counts(systems).items() if k not in ("sites", "SYSTEM"))
        gateway = stack.adapter.deployment.function("ConcertoGatewayFunction")
        # Every create takes 0.5 s, so that an invocation can be killed half-way through a
        # system (and while a create is in flight: Concerto completes it after the process died).
        stack.concerto_fault(kind="slow", operation="CreateAsset", delay_s=0.5)
        stack.enroll_fleet()

        def commissioning_instance():
            for instance in gateway.instances:
                invocation = instance.running_invocation()
                if invocation is not None and invocation.delivered_at and b"commission" in invocation.body:
                    return instance
            return None

        killed_at = []
        for target in (3, 3 + expected_components // 3):
            wait_for(lambda: component_count(stack) >= target, f"{target} component assets in Concerto", 60)
            instance = wait_for(commissioning_instance, "a commission invocation running", 30)
            instance.kill()
            killed_at.append(component_count(stack))
            self.assertLess(killed_at[-1], expected_components - 3, "the kill came mid-commissioning")
            time.sleep(0.5)

        stack.concerto_fault(kind="clear")
        wait_all_commissioned(stack, systems, timeout=120)
        wait_sweeps(stack, 2)
        check_commissioned(self, stack, systems)
        exits = [i for i in gateway.invocations if not i[2] and i[3]["errorType"] == "Runtime.ExitError"]
        self.assertEqual(len(exits), 2, gateway.invocations)
        self.assertGreaterEqual(sum(i.starts for i in gateway.instances), 3, "a cold start after each kill")
        print(f"\nkilled at {killed_at} of {expected_components} component assets; "
              f"{len(gateway.invocations)} gateway invocations, {sum(i.starts for i in gateway.instances)} starts")
        self.assertEqual(stack.adapter.stop(), 0)


if __name__ == "__main__":
    unittest.main()
