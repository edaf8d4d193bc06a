"""template.yml through aws-sam-translator (offline, as `sam deploy` transforms it): every function,
event source, queue, table, secret and schedule of docs/LAMBDA.md is there with the properties the
C++ code relies on, and the IAM is least privilege."""

import json
import re
import unittest

import template_tools as tt


def resource_id(resource):
    """A policy Resource as the logical id it names ("DeviceTable/index" for the table's indexes,
    "*" for everything, the Sub text for other patterns)."""
    if resource == "*":
        return "*"
    if isinstance(resource, dict):
        if "Fn::GetAtt" in resource:
            target, attribute = resource["Fn::GetAtt"]
            return target if attribute == "Arn" else f"{target}.{attribute}"
        if "Ref" in resource:
            return resource["Ref"]
        if "Fn::Sub" in resource and isinstance(resource["Fn::Sub"], str):
            m = re.fullmatch(r"\$\{(\w+)\.Arn\}/index/\*", resource["Fn::Sub"])
            if m:
                return f"{m.group(1)}/index"
            return resource["Fn::Sub"]
    return json.dumps(resource, sort_keys=True)


def statements(document):
    found = document.get("Statement", [])
    return found if isinstance(found, list) else [found]


def as_list(value):
    return value if isinstance(value, list) else [value]


class TranslatedTemplate(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sam = tt.load_template()
        cls.cfn = tt.translate(cls.sam)
        cls.resources = cls.cfn["Resources"]

    def of_type(self, type_name):
        return {k: v for k, v in self.resources.items() if v["Type"] == type_name}

    def props(self, logical_id):
        self.assertIn(logical_id, self.resources)
        return self.resources[logical_id]["Properties"]

    def grants(self, function):
        """{(action, resource id)} the function's role allows, inline and managed (the template's
        own managed policies), and the managed policy ARNs from outside the template."""
        role_ref = self.props(function)["Role"]
        self.assertIn("Fn::GetAtt", role_ref, f"{function} must use its own role, not one SAM makes")
        role = self.props(role_ref["Fn::GetAtt"][0])
        documents = [p["PolicyDocument"] for p in role.get("Policies", [])]
        external = []
        for arn in role.get("ManagedPolicyArns", []):
            if isinstance(arn, dict) and "Ref" in arn:
                self.assertEqual(self.resources[arn["Ref"]]["Type"], "AWS::IAM::ManagedPolicy")
                documents.append(self.props(arn["Ref"])["PolicyDocument"])
            else:
                external.append(arn)
        out = set()
        for document in documents:
            for statement in statements(document):
                self.assertEqual(statement["Effect"], "Allow")
                for action in as_list(statement["Action"]):
                    for resource in as_list(statement["Resource"]):
                        out.add((action, resource_id(resource)))
        return out, external

    # --- functions -----------------------------------------------------------------------------

    def test_every_function_of_the_doc_with_its_handler_runtime_and_architecture(self):
        functions = self.of_type("AWS::Lambda::Function")
        expected = tt.doc_functions()
        self.assertEqual(len(expected), 8)
        self.assertEqual(set(functions), set(expected))
        for name, handler in expected.items():
            p = functions[name]["Properties"]
            self.assertEqual(p["Handler"], handler, name)
            self.assertEqual(p["Runtime"], "provided.al2023", name)
            self.assertEqual(p["Architectures"], ["x86_64"], name)
            self.assertEqual(p["Code"], {"S3Bucket": "pwrcell-code", "S3Key": "bootstrap.zip"}, name)
        # the CodeUri the packaging script fills, stated once for all functions
        self.assertEqual(self.sam["Globals"]["Function"]["CodeUri"], "build-lambda/package/")

    def test_environment_of_every_function(self):
        expected = tt.expected_environment()
        refs = {
            "ConcertoRootUrl": {"Ref": "ConcertoRootUrl"},
            "CesRootUrl": {"Ref": "CesRootUrl"},
            "ADAPTER_NAME": {"Ref": "AdapterName"},
            "AUTO_COMMISSIONING": {"Ref": "AutoCommissioning"},
            "ConcertoCredentials": {"Ref": "ConcertoCredentialsSecret"},  # the ARN
            "CesCredentials": {"Ref": "CesCredentialsSecret"},
            "PWRCELL_AWS_DEVICE_TABLE": {"Ref": "DeviceTable"},
            "PWRCELL_AWS_COORDINATION_TABLE": {"Ref": "CoordinationTable"},
            "PWRCELL_AWS_CONCERTO_QUEUE": {"Fn::GetAtt": ["ConcertoQueue", "QueueName"]},
            "PWRCELL_AWS_CONCERTO_TELEMETRY_QUEUE": {"Fn::GetAtt": ["ConcertoTelemetryQueue", "QueueName"]},
            "PWRCELL_AWS_CES_QUEUE": {"Fn::GetAtt": ["CesQueue", "QueueName"]},
            "PWRCELL_AWS_TELEMETRY_STREAM": {"Ref": "TelemetryStream"},
        }
        # every other variable is the parameter of its deployment.toml key
        for parameter, key in tt.doc_parameters():
            name = tt.config_env_name(key)
            if name in expected:
                refs.setdefault(name, {"Ref": parameter})
        for name, function in self.of_type("AWS::Lambda::Function").items():
            variables = function["Properties"]["Environment"]["Variables"]
            self.assertEqual(sorted(variables), sorted(expected), name)
            for variable, value in variables.items():
                self.assertIn(variable, refs, f"{name}: {variable} has no expected source")
                self.assertEqual(value, refs[variable], f"{name}: {variable}")

    def test_no_instance_table_fleet_id_or_concerto_url(self):
        text = json.dumps(self.cfn).lower()
        for word in ("fleet_id", "concerto_url"):
            self.assertNotIn(word, text, f"{word} in the translated template")
        self.assertEqual(set(self.of_type("AWS::DynamoDB::Table")), {"DeviceTable", "CoordinationTable"})
        self.assertEqual([k for k in self.resources if "instance" in k.lower()], [])

    # --- event sources -------------------------------------------------------------------------

    def mappings_of(self, function):
        return [m["Properties"] for m in self.of_type("AWS::Lambda::EventSourceMapping").values()
                if m["Properties"]["FunctionName"] == {"Ref": function}]

    def test_kinesis_mapping_of_the_telemetry_processor(self):
        self.assertEqual(self.props("TelemetryStream")["Name"], {"Fn::Sub": "${AWS::StackName}-telemetry"})
        [m] = self.mappings_of("TelemetryProcessorFunction")
        self.assertEqual(m["EventSourceArn"], {"Fn::GetAtt": ["TelemetryStream", "Arn"]})
        self.assertEqual(m["FunctionResponseTypes"], ["ReportBatchItemFailures"])
        self.assertIs(m["BisectBatchOnFunctionError"], True)
        self.assertEqual(m["StartingPosition"], "TRIM_HORIZON")
        self.assertEqual(m["BatchSize"], 100)
        self.assertEqual(m["DestinationConfig"],
                         {"OnFailure": {"Destination": {"Fn::GetAtt": ["TelemetryFailureQueue", "Arn"]}}})
        self.assertEqual(self.resources["TelemetryFailureQueue"]["Type"], "AWS::SQS::Queue")
        # Transient failures are retried until the record is a day old (no attempt limit); the
        # stream keeps records longer than that, so a batch given up on can still be replayed.
        self.assertEqual(m["MaximumRetryAttempts"], -1)
        self.assertEqual(m["MaximumRecordAgeInSeconds"], 86400)
        self.assertGreater(self.props("TelemetryStream")["RetentionPeriodHours"] * 3600,
                           m["MaximumRecordAgeInSeconds"])

    def test_sqs_mappings_concurrency_and_timeouts_of_the_gateways(self):
        for function, (queue, parameter) in tt.SQS_GATEWAYS.items():
            p = self.props(function)
            self.assertEqual(p["ReservedConcurrentExecutions"], {"Ref": parameter}, function)
            # AWS: the queue's visibility timeout must be at least the function's timeout
            self.assertEqual(p["Timeout"], {"Ref": "VisibilityTimeoutSeconds"}, function)
            self.assertEqual(self.props(queue)["VisibilityTimeout"], {"Ref": "VisibilityTimeoutSeconds"})
            [m] = self.mappings_of(function)
            self.assertEqual(m["EventSourceArn"], {"Fn::GetAtt": [queue, "Arn"]}, function)
            self.assertEqual(m["FunctionResponseTypes"], ["ReportBatchItemFailures"], function)
            self.assertEqual(m["BatchSize"], 10, function)
            self.assertEqual(m["ScalingConfig"], {"MaximumConcurrency": {"Ref": parameter}}, function)
            self.assertEqual(self.cfn["Parameters"][parameter]["MinValue"], 2)  # SQS's minimum
        # nothing else has a mapping, and no other function is limited
        self.assertEqual(len(self.of_type("AWS::Lambda::EventSourceMapping")), 4)
        for name, function in self.of_type("AWS::Lambda::Function").items():
            if name not in tt.SQS_GATEWAYS:
                self.assertNotIn("ReservedConcurrentExecutions", function["Properties"], name)

    def test_queues_and_their_dead_letter_queues(self):
        for queue, (suffix, dlq) in tt.QUEUES.items():
            p = self.props(queue)
            self.assertEqual(p["QueueName"], {"Fn::Sub": "${AWS::StackName}-" + suffix})
            # SqsQueue::Open finds the DLQ through the RedrivePolicy, named "<queue>-dlq"
            self.assertEqual(self.props(dlq)["QueueName"], {"Fn::Sub": "${AWS::StackName}-" + suffix + "-dlq"})
            self.assertEqual(p["RedrivePolicy"], {"deadLetterTargetArn": {"Fn::GetAtt": [dlq, "Arn"]},
                                                  "maxReceiveCount": {"Ref": "MaxReceives"}})
            for q in (queue, dlq):
                self.assertEqual(self.props(q)["MessageRetentionPeriod"], 1209600, q)
                self.assertNotIn("FifoQueue", self.props(q), q)
        self.assertEqual(len(self.of_type("AWS::SQS::Queue")), 7)  # and TelemetryFailureQueue

    def test_schedules(self):
        rates = self.cfn["Mappings"]["ScheduleRates"]
        self.assertTrue({"60", "120", "180", "300", "600", "900", "1800", "3600"} <= set(rates))
        for key, value in rates.items():
            self.assertEqual(tt.rate_seconds(value["Rate"]), int(key), key)
        rules = self.of_type("AWS::Events::Rule")
        permissions = self.of_type("AWS::Lambda::Permission")
        for function, parameter in tt.SCHEDULED.items():
            [rule] = [r["Properties"] for r in rules.values()
                      if r["Properties"]["Targets"][0]["Arn"] == {"Fn::GetAtt": [function, "Arn"]}]
            if parameter is None:
                self.assertEqual(rule["ScheduleExpression"], "rate(1 minute)")
            else:
                self.assertEqual(rule["ScheduleExpression"],
                                 {"Fn::FindInMap": ["ScheduleRates", {"Ref": parameter}, "Rate"]})
                self.assertEqual(sorted(self.cfn["Parameters"][parameter]["AllowedValues"], key=int),
                                 sorted(rates, key=int), parameter)
            self.assertTrue(any(p["Properties"]["FunctionName"] == {"Ref": function}
                                and p["Properties"]["Principal"] == "events.amazonaws.com"
                                for p in permissions.values()), function)
        self.assertEqual(len(rules), 4)

    # --- tables and secrets --------------------------------------------------------------------

    def test_device_table_is_what_the_device_store_creates(self):
        p = self.props("DeviceTable")
        expected = tt.DEVICE_TABLE
        self.assertEqual(p["BillingMode"], "PAY_PER_REQUEST")
        self.assertEqual({a["AttributeName"]: a["AttributeType"] for a in p["AttributeDefinitions"]},
                         expected["attributes"])
        self.assertEqual([(k["AttributeName"], k["KeyType"]) for k in p["KeySchema"]], list(expected["key"].items()))
        [index] = p["GlobalSecondaryIndexes"]
        self.assertEqual(index["IndexName"], tt.device_listing_index())
        self.assertEqual([(k["AttributeName"], k["KeyType"]) for k in index["KeySchema"]],
                         list(expected["index_key"].items()))
        projection_type, attributes = expected["index_projection"]
        self.assertEqual(index["Projection"]["ProjectionType"], projection_type)
        self.assertEqual(sorted(index["Projection"]["NonKeyAttributes"]), sorted(attributes))

    def test_coordination_table_is_what_the_coordination_creates(self):
        p = self.props("CoordinationTable")
        kind, key = tt.coordination_key_attributes()
        self.assertEqual(p["BillingMode"], "PAY_PER_REQUEST")
        self.assertEqual({a["AttributeName"]: a["AttributeType"] for a in p["AttributeDefinitions"]},
                         {kind: "S", key: "S"})
        self.assertEqual([(k["AttributeName"], k["KeyType"]) for k in p["KeySchema"]],
                         [(kind, "HASH"), (key, "RANGE")])
        self.assertNotIn("GlobalSecondaryIndexes", p)

    def test_secrets_are_named_by_parameters_and_hold_no_value(self):
        for secret, parameter in (("ConcertoCredentialsSecret", "ConcertoCredentialsSecretName"),
                                  ("CesCredentialsSecret", "CesCredentialsSecretName")):
            self.assertEqual(self.resources[secret]["Type"], "AWS::SecretsManager::Secret")
            p = self.props(secret)
            self.assertEqual(p["Name"], {"Ref": parameter})
            self.assertNotIn("SecretString", p)
            self.assertNotIn("GenerateSecretString", p)
        for name, parameter in self.cfn["Parameters"].items():
            self.assertNotRegex(name.lower(), "password|api_?key|token", name)

    # --- parameters ----------------------------------------------------------------------------

    def test_parameters_are_the_docs_with_the_cpp_defaults(self):
        pairs = tt.doc_parameters()
        parameters = self.cfn["Parameters"]
        self.assertEqual(sorted(parameters), sorted(p for p, _ in pairs))
        for parameter, key in pairs:
            spec = parameters[parameter]
            self.assertIn("Default", spec, parameter)
            default, cpp = spec["Default"], tt.example_value(key)
            if isinstance(cpp, bool):
                self.assertEqual(default, "true" if cpp else "false", parameter)
                self.assertEqual(sorted(spec["AllowedValues"]), ["false", "true"])
            elif isinstance(cpp, (int, float)):
                self.assertEqual(float(default), float(cpp), parameter)
                # bounded, by a range or a list
                self.assertTrue("MinValue" in spec or "AllowedValues" in spec, parameter)
            else:
                self.assertEqual(default, cpp, parameter)
                self.assertTrue("AllowedPattern" in spec or "AllowedValues" in spec, parameter)
            if "AllowedPattern" in spec:
                self.assertRegex(str(default), spec["AllowedPattern"], parameter)
            if "AllowedValues" in spec:
                self.assertIn(str(default), [str(v) for v in spec["AllowedValues"]], parameter)

    def test_parameter_constraints_refuse_what_aws_or_the_adapter_refuses(self):
        p = self.cfn["Parameters"]
        self.assertEqual((p["MaxReceives"]["MinValue"], p["MaxReceives"]["MaxValue"]), (1, 1000))
        self.assertLessEqual(p["VisibilityTimeoutSeconds"]["MaxValue"], 900)  # it is a function timeout
        self.assertEqual(p["ConcertoPageSize"]["MaxValue"], 500)
        self.assertEqual(p["CesStatusBatchSize"]["MaxValue"], 100)
        for name in ("ConcertoTimeoutSeconds", "CesTimeoutSeconds"):
            self.assertEqual(p[name]["MaxValue"], 900)
        for name in ("ConcertoRootUrl", "CesRootUrl"):
            self.assertNotRegex("ftp://x", p[name]["AllowedPattern"])
            self.assertRegex("https://concerto.example.com/api", p[name]["AllowedPattern"])
        for name in ("ConcertoCredentialsSecretName", "CesCredentialsSecretName"):
            self.assertNotRegex("arn:aws:secretsmanager:us-east-1:1:secret:x", p[name]["AllowedPattern"])
        for name in ("ConcertoRequestsPerSecond", "CesRequestsPerSecond"):
            self.assertGreater(p[name]["MinValue"], 0)

    # --- IAM -----------------------------------------------------------------------------------

    def test_no_wildcard_resource_for_data_actions(self):
        data_services = ("dynamodb:", "sqs:", "secretsmanager:", "kinesis:")
        documents = []
        for name, role in self.of_type("AWS::IAM::Role").items():
            documents += [(name, p["PolicyDocument"]) for p in role["Properties"].get("Policies", [])]
        for name, policy in self.of_type("AWS::IAM::ManagedPolicy").items():
            documents.append((name, policy["Properties"]["PolicyDocument"]))
        for name, policy in self.of_type("AWS::IAM::Policy").items():
            documents.append((name, policy["Properties"]["PolicyDocument"]))
        self.assertGreater(len(documents), 8)
        for name, document in documents:
            for statement in statements(document):
                actions = as_list(statement["Action"])
                for action in actions:
                    self.assertNotIn("*", action, f"{name}: wildcard action {action}")
                if any(a.startswith(data_services) for a in actions):
                    self.assertNotIn("*", as_list(statement["Resource"]), f"{name}: {actions} on *")

    def test_only_the_basic_execution_role_is_managed_by_aws(self):
        for function in tt.doc_functions():
            _, external = self.grants(function)
            self.assertEqual(external, [{"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/"
                                                    "AWSLambdaBasicExecutionRole"}], function)

    def test_every_function_may_do_what_its_code_does_and_no_more(self):
        for function in tt.doc_functions():
            grants, _ = self.grants(function)
            expected = tt.expected_everywhere()
            expected |= {("sqs:SendMessage", q) for q in tt.EXPECTED_SENDS[function]}
            expected |= tt.EXPECTED_SECRETS.get(function, set())
            if function in tt.SQS_GATEWAYS:
                queue = tt.SQS_GATEWAYS[function][0]
                expected |= {(a, queue) for a in tt.SQS_CONSUME}
            if function == "TelemetryProcessorFunction":
                expected |= {(a, "TelemetryStream") for a in tt.KINESIS_READ}
                expected.add(("kinesis:ListStreams",
                              "arn:${AWS::Partition}:kinesis:${AWS::Region}:${AWS::AccountId}:stream/*"))
            self.assertEqual(sorted(grants - expected), [], f"{function} may do more than its code needs")
            self.assertEqual(sorted(expected - grants), [], f"{function} lacks permissions its code needs")

    def test_kinesis_mapping_can_deliver_failures(self):
        # With its own role SAM adds no policy for the on-failure destination: the role has it.
        grants, _ = self.grants("TelemetryProcessorFunction")
        self.assertIn(("sqs:SendMessage", "TelemetryFailureQueue"), grants)

    def test_outputs(self):
        outputs = self.cfn["Outputs"]
        values = {json.dumps(o["Value"], sort_keys=True) for o in outputs.values()}
        wanted = [{"Ref": "DeviceTable"}, {"Ref": "CoordinationTable"}, {"Ref": "TelemetryStream"},
                  {"Ref": "ConcertoCredentialsSecret"}, {"Ref": "CesCredentialsSecret"},
                  {"Fn::GetAtt": ["TelemetryFailureQueue", "QueueName"]}]
        for queue, (_, dlq) in tt.QUEUES.items():
            wanted += [{"Fn::GetAtt": [queue, "QueueName"]}, {"Fn::GetAtt": [dlq, "QueueName"]}]
        for value in wanted:
            self.assertIn(json.dumps(value, sort_keys=True), values)


if __name__ == "__main__":
    unittest.main()
