"""The translated template created as a stack in moto's CloudFormation (a moto_server of its own,
started with tests/aws/moto_fixture.py), then every function, event source mapping, queue, table,
stream, secret, schedule and role read back with boto3.

The stack is created with non-default parameters, so that what is checked is the parameters'
way through the template, not defaults that happen to match.

Where moto differs from AWS (moto 5.2; each checked below where it can be):
  - AWS::SecretsManager::Secret is not a CloudFormation resource moto knows: it skips it (with a
    warning), so a Ref to it resolves to nothing. The test creates the two secrets itself (by the
    names the parameters give) and puts their ARNs where the template says `Ref`, before
    create_stack; the translate test checks the secrets' own properties.
  - AWS::Lambda::Function ignores Architectures (moto answers its default, x86_64, whatever the
    template says); the translate test checks the template's value.
  - AWS::IAM::Role ignores ManagedPolicyArns (list_attached_role_policies is empty): the managed
    policy StoreAccessPolicy is created and checked on its own, its attachment only in the
    translate test.
  - AWS::Kinesis::Stream ignores StreamModeDetails (an ON_DEMAND stream comes out PROVISIONED with
    one shard); the retention is kept.
  - A role's inline policies (AWS::IAM::Role Policies) are stored as Python's repr of the
    document, not JSON, so get_role_policy answers text that boto3 cannot decode; parsed here.
  - Number parameters: moto passes a Number parameter's template default on as a number into an
    environment variable (AWS makes every value a string); compared as text here.
  - moto keeps event source mappings and schedule rules but runs neither (nothing is invoked
    here: the code is a stub `bootstrap`); ScalingConfig, FunctionResponseTypes,
    BisectBatchOnFunctionError, DestinationConfig, MaximumRetryAttempts and
    MaximumRecordAgeInSeconds are stored and read back as given.
"""

import ast
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse
import uuid
import zipfile

import template_tools as tt

MOTO_FIXTURE = os.path.join(tt.SOURCE_DIR, "tests", "aws", "moto_fixture.py")

PARAMETERS = {
    "AdapterName": "template-test-adapter",
    "AutoCommissioning": "true",
    "ConcertoRootUrl": "https://concerto.example.com",
    "CesRootUrl": "https://ces.example.com/v1",
    "MaxReceives": "7",
    "VisibilityTimeoutSeconds": "120",
    "ConcertoGatewayConcurrency": "3",
    "ConcertoTelemetryGatewayConcurrency": "4",
    "PwrcellGatewayConcurrency": "5",
    "RegistrarPollSeconds": "300",
    "CesStatePollSeconds": "1800",
    "LivenessSweepSeconds": "120",
    "ConcertoRequestsPerSecond": "12.5",
    "OfflineTimeoutSeconds": "600",
}
SECRETS = {"ConcertoCredentialsSecret": "ConcertoCredentialsSecretName",
           "CesCredentialsSecret": "CesCredentialsSecretName"}


def replace_refs(node, replacements):
    if isinstance(node, dict):
        if set(node) == {"Ref"} and node["Ref"] in replacements:
            return replacements[node["Ref"]]
        return {k: replace_refs(v, replacements) for k, v in node.items()}
    if isinstance(node, list):
        return [replace_refs(v, replacements) for v in node]
    return node


def bootstrap_zip():
    """A deployment package as scripts/package-lambda.sh makes one: an executable `bootstrap`
    at the root (a stub: moto stores the code and never runs it here)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o100755 << 16
        z.writestr(info, "#!/bin/sh\nexit 1\n")
    return buffer.getvalue()


class MotoStack(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        import boto3
        cls.state_dir = tempfile.mkdtemp(prefix="pwrcell-template-moto-")
        subprocess.run([sys.executable, MOTO_FIXTURE, "start", cls.state_dir], check=True,
                       stdout=subprocess.DEVNULL, timeout=90)
        try:
            with open(os.path.join(cls.state_dir, "endpoint"), encoding="utf-8") as f:
                endpoint = f.read().strip()
            session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                            region_name=tt.REGION)
            cls.client = staticmethod(lambda service: session.client(service, endpoint_url=endpoint))
            cls.create_stack()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        subprocess.run([sys.executable, MOTO_FIXTURE, "stop", cls.state_dir], check=False, timeout=30)
        shutil.rmtree(cls.state_dir, ignore_errors=True)

    @classmethod
    def create_stack(cls):
        cls.stack = "pwrcell-tpl-" + uuid.uuid4().hex[:8]
        bucket = cls.stack + "-code"
        s3 = cls.client("s3")
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="bootstrap.zip", Body=bootstrap_zip())

        cls.parameters = dict(PARAMETERS)
        cls.parameters["ConcertoCredentialsSecretName"] = cls.stack + "/ConcertoCredentials"
        cls.parameters["CesCredentialsSecretName"] = cls.stack + "/CesCredentials"
        template = tt.translate(code_uri=f"s3://{bucket}/bootstrap.zip")
        cls.template_parameters = template["Parameters"]

        # moto's CloudFormation has no AWS::SecretsManager::Secret (see the module's docstring).
        secrets = cls.client("secretsmanager")
        cls.secret_arns = {}
        for logical_id, parameter in SECRETS.items():
            cls.secret_arns[logical_id] = secrets.create_secret(Name=cls.parameters[parameter])["ARN"]
            del template["Resources"][logical_id]
        template = replace_refs(template, cls.secret_arns)

        cf = cls.client("cloudformation")
        cf.create_stack(StackName=cls.stack, TemplateBody=json.dumps(template), Capabilities=["CAPABILITY_IAM"],
                        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in cls.parameters.items()])
        deadline = time.monotonic() + 60
        while True:
            stack = cf.describe_stacks(StackName=cls.stack)["Stacks"][0]
            if not stack["StackStatus"].endswith("_IN_PROGRESS"):
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"stack still {stack['StackStatus']} after 60 s")
            time.sleep(0.2)
        if stack["StackStatus"] != "CREATE_COMPLETE":
            events = cf.describe_stack_events(StackName=cls.stack)["StackEvents"]
            raise AssertionError(f"stack {stack['StackStatus']}: {stack.get('StackStatusReason')}\n" +
                                 "\n".join(f"{e['LogicalResourceId']} {e['ResourceStatus']} "
                                           f"{e.get('ResourceStatusReason', '')}" for e in events))
        cls.outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        cls.physical = {r["LogicalResourceId"]: r["PhysicalResourceId"]
                        for r in cf.list_stack_resources(StackName=cls.stack)["StackResourceSummaries"]}

    # --- helpers -------------------------------------------------------------------------------

    def parameter(self, name):
        """The value the stack runs with: ours, else the template's default."""
        if name in self.parameters:
            return self.parameters[name]
        return self.template_parameters[name]["Default"]

    def queue_name(self, logical_id):
        suffix = {q: s for q, (s, _) in tt.QUEUES.items()}
        suffix.update({d: s + "-dlq" for _, (s, d) in tt.QUEUES.items()})
        suffix["TelemetryFailureQueue"] = "telemetry-failures"
        return f"{self.stack}-{suffix[logical_id]}"

    def queue_attributes(self, name):
        sqs = self.client("sqs")
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]

    def queue_arn(self, logical_id):
        return self.queue_attributes(self.queue_name(logical_id))["QueueArn"]

    def function(self, logical_id):
        self.assertIn(logical_id, self.physical)
        return self.client("lambda").get_function_configuration(FunctionName=self.physical[logical_id])

    def role_documents(self, function):
        """The inline policy documents of a function's role."""
        iam = self.client("iam")
        role_name = self.function(function)["Role"].split("/")[-1]
        return [iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"]
                for name in iam.list_role_policies(RoleName=role_name)["PolicyNames"]]

    def grants(self, documents):
        out = set()
        for document in documents:
            if isinstance(document, str):
                # moto stores a CloudFormation role's inline policy as Python's repr of the dict
                # (single quotes), not as JSON; boto3 then cannot decode it and hands over text
                text = urllib.parse.unquote(document)
                try:
                    document = json.loads(text)
                except ValueError:
                    document = ast.literal_eval(text)
            statements = document["Statement"] if isinstance(document["Statement"], list) else [document["Statement"]]
            for s in statements:
                actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
                resources = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
                out |= {(a, r) for a in actions for r in resources}
        return out

    # --- tests ---------------------------------------------------------------------------------

    def test_every_function_with_handler_runtime_role_and_timeout(self):
        for logical_id, handler in tt.doc_functions().items():
            config = self.function(logical_id)
            self.assertEqual(config["Handler"], handler, logical_id)
            self.assertEqual(config["Runtime"], "provided.al2023", logical_id)
            self.assertEqual(config["Architectures"], ["x86_64"], logical_id)  # moto's default, see above
            self.assertTrue(config["Role"].endswith(self.physical[logical_id.replace("Function", "Role")]),
                            logical_id)
            expected_timeout = 120 if logical_id in tt.SQS_GATEWAYS else 60
            self.assertEqual(config["Timeout"], expected_timeout, logical_id)
            self.assertGreater(config["CodeSize"], 0)

    def test_environment_holds_the_stacks_names_and_the_parameters(self):
        expected = {
            "ConcertoRootUrl": self.parameter("ConcertoRootUrl"),
            "CesRootUrl": self.parameter("CesRootUrl"),
            "ADAPTER_NAME": self.parameter("AdapterName"),
            "AUTO_COMMISSIONING": "true",
            "ConcertoCredentials": self.secret_arns["ConcertoCredentialsSecret"],
            "CesCredentials": self.secret_arns["CesCredentialsSecret"],
            "PWRCELL_AWS_DEVICE_TABLE": f"{self.stack}-devices",
            "PWRCELL_AWS_COORDINATION_TABLE": f"{self.stack}-coordination",
            "PWRCELL_AWS_CONCERTO_QUEUE": f"{self.stack}-concerto",
            "PWRCELL_AWS_CONCERTO_TELEMETRY_QUEUE": f"{self.stack}-concerto-telemetry",
            "PWRCELL_AWS_CES_QUEUE": f"{self.stack}-ces",
            "PWRCELL_AWS_TELEMETRY_STREAM": f"{self.stack}-telemetry",
        }
        for parameter, key in tt.doc_parameters():
            expected.setdefault(tt.config_env_name(key), str(self.parameter(parameter)))
        # the secret-name keys reach the functions as the ARNs above, not by their generic names
        for key in ("concerto.credentials_secret", "ces.credentials_secret", "adapter.name",
                    "adapter.auto_commissioning", "concerto.root_url", "ces.root_url"):
            expected.pop(tt.config_env_name(key))
        self.assertEqual(sorted(expected), sorted(tt.expected_environment()))
        self.assertEqual(expected["PWRCELL_LAMBDA_CONCERTO_CONTROL_CONCURRENCY"], "3")
        self.assertEqual(expected["PWRCELL_SCHEDULE_REGISTRAR_POLL_S"], "300")
        for logical_id in tt.doc_functions():
            variables = self.function(logical_id)["Environment"]["Variables"]
            actual = {k: str(v) for k, v in variables.items()}  # moto keeps Number defaults as numbers
            self.assertEqual(actual, expected, logical_id)

    def test_gateways_reserved_concurrency_and_sqs_mappings(self):
        lam = self.client("lambda")
        for function, (queue, parameter) in tt.SQS_GATEWAYS.items():
            name = self.physical[function]
            self.assertEqual(lam.get_function_concurrency(FunctionName=name).get("ReservedConcurrentExecutions"),
                             int(self.parameter(parameter)), function)
            [mapping] = lam.list_event_source_mappings(FunctionName=name)["EventSourceMappings"]
            self.assertEqual(mapping["EventSourceArn"], self.queue_arn(queue), function)
            self.assertEqual(mapping["BatchSize"], 10)
            self.assertEqual(mapping["FunctionResponseTypes"], ["ReportBatchItemFailures"])
            self.assertEqual(mapping["ScalingConfig"], {"MaximumConcurrency": int(self.parameter(parameter))})
        for function in set(tt.doc_functions()) - set(tt.SQS_GATEWAYS):
            answer = lam.get_function_concurrency(FunctionName=self.physical[function])
            self.assertNotIn("ReservedConcurrentExecutions", answer, function)

    def test_kinesis_mapping_and_stream(self):
        kinesis = self.client("kinesis")
        stream = kinesis.describe_stream_summary(StreamName=f"{self.stack}-telemetry")["StreamDescriptionSummary"]
        self.assertEqual(stream["RetentionPeriodHours"], 168)
        self.assertEqual(self.outputs["TelemetryStreamName"], f"{self.stack}-telemetry")
        lam = self.client("lambda")
        [mapping] = lam.list_event_source_mappings(
            FunctionName=self.physical["TelemetryProcessorFunction"])["EventSourceMappings"]
        self.assertEqual(mapping["EventSourceArn"], stream["StreamARN"])
        self.assertEqual(mapping["StartingPosition"], "TRIM_HORIZON")
        self.assertEqual(mapping["BatchSize"], 100)
        self.assertEqual(mapping["FunctionResponseTypes"], ["ReportBatchItemFailures"])
        self.assertIs(mapping["BisectBatchOnFunctionError"], True)
        self.assertEqual(mapping["MaximumRetryAttempts"], -1)
        self.assertEqual(mapping["MaximumRecordAgeInSeconds"], 86400)
        self.assertEqual(mapping["DestinationConfig"],
                         {"OnFailure": {"Destination": self.queue_arn("TelemetryFailureQueue")}})

    def test_queues_redrive_to_their_dead_letter_queues(self):
        for queue, (suffix, dlq) in tt.QUEUES.items():
            name = f"{self.stack}-{suffix}"
            attributes = self.queue_attributes(name)
            policy = json.loads(attributes["RedrivePolicy"])
            dlq_attributes = self.queue_attributes(name + "-dlq")  # the name SqsQueue expects
            self.assertEqual(policy["deadLetterTargetArn"], dlq_attributes["QueueArn"], queue)
            self.assertEqual(int(policy["maxReceiveCount"]), 7, queue)
            self.assertEqual(attributes["VisibilityTimeout"], "120", queue)
            for a in (attributes, dlq_attributes):
                self.assertEqual(a["MessageRetentionPeriod"], "1209600", queue)
            self.assertNotIn("RedrivePolicy", dlq_attributes, dlq)
            self.assertEqual(self.outputs[f"{queue}Name"], name)
            self.assertEqual(self.outputs[f"{dlq}Name"], name + "-dlq")
        self.assertEqual(self.outputs["TelemetryFailureQueueName"], f"{self.stack}-telemetry-failures")

    def test_tables_as_the_cpp_adapters_check_them(self):
        dynamodb = self.client("dynamodb")
        device = dynamodb.describe_table(TableName=f"{self.stack}-devices")["Table"]
        self.assertEqual(self.outputs["DeviceTableName"], device["TableName"])
        self.assertEqual(device["BillingModeSummary"]["BillingMode"], "PAY_PER_REQUEST")
        self.assertEqual({k["AttributeName"]: k["KeyType"] for k in device["KeySchema"]}, tt.DEVICE_TABLE["key"])
        [index] = device["GlobalSecondaryIndexes"]
        self.assertEqual(index["IndexName"], tt.device_listing_index())
        self.assertEqual({k["AttributeName"]: k["KeyType"] for k in index["KeySchema"]},
                         tt.DEVICE_TABLE["index_key"])
        self.assertEqual(index["Projection"]["ProjectionType"], "INCLUDE")
        self.assertEqual(sorted(index["Projection"]["NonKeyAttributes"]),
                         sorted(tt.DEVICE_TABLE["index_projection"][1]))
        self.assertEqual(device["TableStatus"], "ACTIVE")

        coordination = dynamodb.describe_table(TableName=f"{self.stack}-coordination")["Table"]
        self.assertEqual(self.outputs["CoordinationTableName"], coordination["TableName"])
        kind, key = tt.coordination_key_attributes()
        self.assertEqual({k["AttributeName"]: k["KeyType"] for k in coordination["KeySchema"]},
                         {kind: "HASH", key: "RANGE"})
        self.assertEqual(coordination["BillingModeSummary"]["BillingMode"], "PAY_PER_REQUEST")

    def test_schedules_invoke_their_functions(self):
        events = self.client("events")
        lam = self.client("lambda")
        rules = events.list_rules(NamePrefix=self.stack)["Rules"]
        by_function = {}
        for rule in rules:
            for target in events.list_targets_by_rule(Rule=rule["Name"])["Targets"]:
                by_function[target["Arn"].split(":")[-1]] = rule["ScheduleExpression"]
        expected = {"RegistrarPollerFunction": "rate(5 minutes)", "CesStatePollerFunction": "rate(30 minutes)",
                    "LivenessSweepFunction": "rate(2 minutes)", "SimulatedTelemetryFunction": "rate(1 minute)"}
        self.assertEqual(set(expected), set(tt.SCHEDULED))
        self.assertEqual(by_function, {self.physical[f]: rate for f, rate in expected.items()})
        for function in expected:
            policy = json.loads(lam.get_policy(FunctionName=self.physical[function])["Policy"])
            self.assertIn("events.amazonaws.com", json.dumps(policy), function)

    def test_secrets_and_who_may_read_them(self):
        secrets = self.client("secretsmanager")
        for logical_id, parameter in SECRETS.items():
            described = secrets.describe_secret(SecretId=self.secret_arns[logical_id])
            self.assertEqual(described["Name"], self.parameters[parameter])
            self.assertEqual(self.outputs[f"{parameter[:-len('Name')]}Arn"], self.secret_arns[logical_id])
        concerto, ces = self.secret_arns["ConcertoCredentialsSecret"], self.secret_arns["CesCredentialsSecret"]
        for function in tt.doc_functions():
            grants = {g for g in self.grants(self.role_documents(function)) if g[0].startswith("secretsmanager:")}
            expected = {(action, {"ConcertoCredentialsSecret": concerto, "CesCredentialsSecret": ces}[secret])
                        for action, secret in tt.EXPECTED_SECRETS.get(function, set())}
            self.assertEqual(grants, expected, function)

    def test_roles_name_the_real_queue_and_stream_arns(self):
        for function in tt.doc_functions():
            grants = self.grants(self.role_documents(function))
            sends = {r for a, r in grants if a == "sqs:SendMessage"}
            self.assertEqual(sends, {self.queue_arn(q) for q in tt.EXPECTED_SENDS[function]}, function)
            for _, resource in grants:
                self.assertNotEqual(resource, "*", function)
                self.assertTrue(resource.startswith("arn:aws:"), f"{function}: unresolved {resource}")
        stream = self.client("kinesis").describe_stream_summary(
            StreamName=f"{self.stack}-telemetry")["StreamDescriptionSummary"]["StreamARN"]
        grants = self.grants(self.role_documents("TelemetryProcessorFunction"))
        for action in tt.KINESIS_READ:
            self.assertIn((action, stream), grants)

    def test_store_access_policy_names_the_tables_and_queues(self):
        iam = self.client("iam")
        arn = self.physical["StoreAccessPolicy"]
        version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
        document = iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
        grants = self.grants([document])
        dynamodb = self.client("dynamodb")
        device = dynamodb.describe_table(TableName=f"{self.stack}-devices")["Table"]["TableArn"]
        coordination = dynamodb.describe_table(TableName=f"{self.stack}-coordination")["Table"]["TableArn"]
        self.assertIn(("dynamodb:DescribeTable", device), grants)
        self.assertIn(("dynamodb:DescribeTable", coordination), grants)
        self.assertIn(("dynamodb:Query", device + "/index/*"), grants)
        for queue in tt.ALL_QUEUES:
            for action in ("sqs:GetQueueUrl", "sqs:GetQueueAttributes"):
                self.assertIn((action, self.queue_arn(queue)), grants)


if __name__ == "__main__":
    unittest.main()
