"""Contract tests of the Concerto simulator (sim/concerto): each rule of contracts/concerto-api.md,
the admin API, the state file and the command line.

Most tests run the simulator in-process on 127.0.0.1, port 0, with a fake clock (token expiry)
and a fake monotonic clock (rate limit), and talk real HTTP to it. The command-line tests start
it as a subprocess. Run: python3 -m unittest -v test_concerto_sim (from this directory).
"""

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
SIM_DIR = os.path.join(ROOT, "sim", "concerto")
ENTRY = os.path.join(SIM_DIR, "concerto-sim.py")
sys.path.insert(0, SIM_DIR)

from concerto_sim.server import ConcertoSim, SimConfig, SimServer, is_loopback  # noqa: E402

EMAIL = "ops@example.com"
PASSWORD = "hunter2"
DATETIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
START = 1795000000.0  # 2026-11-18T11:06:40Z

AUTHENTICATE = """mutation Login($email: String!, $password: String!) {
  authenticate(input: {email: $email, password: $password}) { accessToken expiresAt }
}"""
ALL_ASSETS = """query Page($page: PosInteger!, $perPage: PosInteger!) {
  allAssets { totalCount data(currentPage: $page, perPage: $perPage) {
    assets { id remoteId assetType adapterConfiguration { name } } } }
}"""
CREATE_SITE = """mutation CreateSite($input: CreateSiteInput!) {
  createSite(input: $input) { id remoteId name timezone remoteState assets { id } }
}"""
CREATE_ASSET = """mutation CreateAsset($input: CreateAssetInput!) {
  createAsset(input: $input) {
    id remoteId name assetType simulated ratedPower acCoupled createdAt
    adapterConfiguration { name } site { id } parent { id } children { id }
  }
}"""
UPDATE_ASSET = """mutation UpdateAsset($input: UpdateAssetInput!) {
  updateAsset(input: $input) { id ratedPower site { id assets { id } } }
}"""
ASSET_STATE = """mutation AssetState($input: UpdateRemoteStateInput!) {
  updateAssetRemoteState(input: $input) { id remoteState }
}"""
SITE_STATE = """mutation SiteState($input: UpdateRemoteStateInput!) {
  updateSiteRemoteState(input: $input) { id remoteState }
}"""
INGEST = """mutation Ingest($input: IngestTelemetryInput!) {
  ingestTelemetry(input: $input) { accepted duplicates rejected { index message } }
}"""


class FakeClock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Reply:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def data(self):
        return self.body.get("data")

    @property
    def codes(self):
        return [error["extensions"]["code"] for error in self.body.get("errors", [])]


def http(method, url, body=None, headers=None, raw=None, content_type="application/json"):
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None and content_type:
        request.add_header("Content-Type", content_type)
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return Reply(response.status, response.headers, json.loads(response.read() or b"null"))
    except urllib.error.HTTPError as error:
        payload = error.read()
        return Reply(error.code, error.headers, json.loads(payload) if payload else None)


def gql_at(url, query, variables=None, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return http("POST", f"{url}/graphql", {"query": query, "variables": variables or {}}, headers)


def login_at(url):
    return gql_at(url, AUTHENTICATE, {"email": EMAIL, "password": PASSWORD}).data["authenticate"]["accessToken"]


def point(asset_id, minute=0, metric="REAL_POWER", value=1.0):
    return {"assetId": str(asset_id), "metric": metric, "timestamp": f"2026-11-22T10:{minute:02d}:00Z", "value": value}


class SimTestCase(unittest.TestCase):
    """A fresh simulator per test, on a free port, with fake clocks."""

    rate_limit = 0  # off, except in the rate-limit tests
    token_ttl_s = 1800

    def setUp(self):
        self.clock = FakeClock(START)
        self.monotonic = FakeClock(1000.0)
        self.sleeps = []
        config = SimConfig(email=EMAIL, password=PASSWORD, token_ttl_s=self.token_ttl_s,
                           rate_limit=self.rate_limit, adapter_name="pwrcell-adapter")
        self.sim = ConcertoSim(config, clock=self.clock, monotonic=self.monotonic, sleep=self.sleeps.append)
        self.server = SimServer(self.sim, "127.0.0.1", 0).start(poll_interval=0.05)
        self.addCleanup(self.server.stop)
        self.url = self.server.url
        self.token = self.login()

    def gql(self, query, variables=None, token="default", operation_name=None, headers=None):
        headers = dict(headers or {})
        token = self.token if token == "default" else token
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        body = {"query": query, "variables": variables or {}}
        if operation_name:
            body["operationName"] = operation_name
        return http("POST", f"{self.url}/graphql", body, headers)

    def login(self, email=EMAIL, password=PASSWORD):
        reply = self.gql(AUTHENTICATE, {"email": email, "password": password}, token=None)
        self.assertEqual(reply.status, 200, reply.body)
        return reply.data["authenticate"]["accessToken"] if reply.data else None

    def admin(self, method, path, body=None):
        return http(method, f"{self.url}/admin{path}", body)

    def enroll(self, remote_id, **fields):
        reply = self.admin("POST", "/systems", {"remoteId": remote_id, **fields})
        self.assertEqual(reply.status, 201, reply.body)
        return reply.body

    def create_site(self, remote_id, **fields):
        reply = self.gql(CREATE_SITE, {"input": {"remoteId": remote_id, "name": f"Site {remote_id}", **fields}})
        self.assertEqual(reply.codes, [], reply.body)
        return reply.data["createSite"]

    def create_asset(self, remote_id, asset_type="INVERTER", **fields):
        fields = {"remoteId": remote_id, "name": f"{asset_type} {remote_id}", "assetType": asset_type,
                  "adapterName": "pwrcell-adapter", **fields}
        return self.gql(CREATE_ASSET, {"input": fields})

    def total_assets(self):
        return self.gql(ALL_ASSETS, {"page": 1, "perPage": 1}).data["allAssets"]["totalCount"]

    def assert_error(self, reply, code, status=200):
        self.assertEqual(reply.status, status, reply.body)
        self.assertEqual(reply.codes, [code], reply.body)
        for error in reply.body["errors"]:
            self.assertIsInstance(error["message"], str)
            self.assertTrue(error["message"])


class ValidationTest(SimTestCase):
    def test_unknown_field_fails_validation(self):
        reply = self.gql("{ allAssets { totalCount bogus } }")
        self.assert_error(reply, "GRAPHQL_VALIDATION_FAILED")
        self.assertIsNone(reply.body["data"])
        self.assertIn("bogus", reply.body["errors"][0]["message"])

    def test_syntax_error_fails_validation(self):
        self.assert_error(self.gql("{ allAssets { totalCount "), "GRAPHQL_VALIDATION_FAILED")

    def test_wrong_argument_type_and_missing_argument_fail_validation(self):
        self.assert_error(self.gql('{ asset { id } }'), "GRAPHQL_VALIDATION_FAILED")
        self.assert_error(self.gql('{ assetByRemoteId(assetType: TOASTER, remoteId: "x") { id } }'),
                          "GRAPHQL_VALIDATION_FAILED")

    def test_pos_integer_literal_below_one_fails_validation(self):
        reply = self.gql("{ allAssets { data(currentPage: 0, perPage: 10) { assets { id } } } }")
        self.assert_error(reply, "GRAPHQL_VALIDATION_FAILED")

    def test_pos_integer_variable_below_one_is_bad_user_input(self):
        reply = self.gql(ALL_ASSETS, {"page": 0, "perPage": 10})
        self.assert_error(reply, "BAD_USER_INPUT")

    def test_naive_datetime_is_refused(self):
        asset = self.enroll("SYS-1")
        bad = dict(point(asset["id"]), timestamp="2026-11-22T10:00:00")
        self.assert_error(self.gql(INGEST, {"input": {"points": [bad]}}), "BAD_USER_INPUT")

    def test_non_json_body_is_400(self):
        reply = http("POST", f"{self.url}/graphql", raw=b"{not json", headers={"Authorization": f"Bearer {self.token}"})
        self.assert_error(reply, "BAD_USER_INPUT", status=400)
        reply = http("POST", f"{self.url}/graphql", raw=b'{"query": "{ __typename }"}', content_type="text/plain")
        self.assert_error(reply, "BAD_USER_INPUT", status=400)


class AuthenticationTest(SimTestCase):
    token_ttl_s = 60

    def test_authenticate_returns_token_and_expiry(self):
        reply = self.gql(AUTHENTICATE, {"email": EMAIL, "password": PASSWORD}, token=None)
        payload = reply.data["authenticate"]
        self.assertGreaterEqual(len(payload["accessToken"]), 20)
        self.assertRegex(payload["expiresAt"], DATETIME_RE)
        self.assertEqual(payload["expiresAt"], "2026-11-18T11:07:40Z")  # START + 60 s

    def test_wrong_password_or_email_is_unauthenticated(self):
        for email, password in ((EMAIL, "wrong"), ("other@example.com", PASSWORD)):
            reply = self.gql(AUTHENTICATE, {"email": email, "password": password}, token=None)
            self.assert_error(reply, "UNAUTHENTICATED")
            self.assertIsNone(reply.body["data"])

    def test_issued_tokens_are_appended_to_the_issued_tokens_file(self):
        # The e2e harness scans every log for these (tests/e2e/secret_scan.py).
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "tokens")
            self.sim.config.issued_tokens_path = path
            first, second = self.login(), self.login()
            with open(path, encoding="ascii") as f:
                self.assertEqual(f.read().splitlines(), [first, second])

    def test_missing_token_is_401(self):
        reply = self.gql("{ allAssets { totalCount } }", token=None)
        self.assert_error(reply, "UNAUTHENTICATED", status=401)

    def test_garbage_token_is_401(self):
        self.assert_error(self.gql("{ allAssets { totalCount } }", token="not-a-token"), "UNAUTHENTICATED", 401)
        reply = http("POST", f"{self.url}/graphql", {"query": "{ allAssets { totalCount } }"},
                     headers={"Authorization": f"Basic {self.token}"})
        self.assert_error(reply, "UNAUTHENTICATED", status=401)

    def test_mutations_other_than_authenticate_need_a_token(self):
        reply = self.gql(CREATE_SITE, {"input": {"remoteId": "S", "name": "S"}}, token=None)
        self.assert_error(reply, "UNAUTHENTICATED", status=401)
        mixed = 'mutation { authenticate(input: {email: "a", password: "b"}) { accessToken } ' \
                'createSite(input: {remoteId: "S", name: "S"}) { id } }'
        self.assert_error(self.gql(mixed, token=None), "UNAUTHENTICATED", status=401)
        self.assertEqual(self.admin("GET", "/sites").body["count"], 0)

    def test_expired_token_is_401_and_a_new_one_works(self):
        self.assertEqual(self.gql("{ allAssets { totalCount } }").status, 200)
        self.clock.advance(59)
        self.assertEqual(self.gql("{ allAssets { totalCount } }").status, 200)
        self.clock.advance(1)
        reply = self.gql("{ allAssets { totalCount } }")
        self.assert_error(reply, "UNAUTHENTICATED", status=401)
        self.assertIn("expired", reply.body["errors"][0]["message"])
        self.token = self.login()
        self.assertEqual(self.gql("{ allAssets { totalCount } }").status, 200)

    def test_revoke_tokens_fault_makes_issued_tokens_401(self):
        other = self.login()
        self.assertEqual(self.admin("POST", "/faults", {"kind": "revoke_tokens"}).body, {"revoked": 2})
        self.assert_error(self.gql("{ allAssets { totalCount } }"), "UNAUTHENTICATED", status=401)
        self.assert_error(self.gql("{ allAssets { totalCount } }", token=other), "UNAUTHENTICATED", status=401)
        self.token = self.login()
        self.assertEqual(self.gql("{ allAssets { totalCount } }").status, 200)


class QueryTest(SimTestCase):
    def test_pages_are_ordered_by_id_stable_and_complete(self):
        created = [self.enroll(f"SYS-{n}", adapterName="pwrcell-adapter" if n % 2 else "other")["id"]
                   for n in range(7)]
        seen = []
        for page in (1, 2, 3):
            reply = self.gql(ALL_ASSETS, {"page": page, "perPage": 3})
            self.assertEqual(reply.data["allAssets"]["totalCount"], 7)
            ids = [asset["id"] for asset in reply.data["allAssets"]["data"]["assets"]]
            again = self.gql(ALL_ASSETS, {"page": page, "perPage": 3})
            self.assertEqual(again.data, reply.data)  # stable while nothing is created
            seen.extend(ids)
        self.assertEqual(seen, created)
        self.assertEqual(seen, sorted(seen, key=int))
        self.assertEqual([len(self.gql(ALL_ASSETS, {"page": p, "perPage": 3}).data["allAssets"]["data"]["assets"])
                          for p in (1, 2, 3)], [3, 3, 1])
        adapters = {a["adapterConfiguration"]["name"]
                    for a in self.gql(ALL_ASSETS, {"page": 1, "perPage": 500}).data["allAssets"]["data"]["assets"]}
        self.assertEqual(adapters, {"pwrcell-adapter", "other"})  # every adapter's assets are listed

    def test_ids_order_numerically_past_nine(self):
        for n in range(12):
            self.enroll(f"SYS-{n}")
        ids = [a["id"] for a in self.gql(ALL_ASSETS, {"page": 1, "perPage": 500}).data["allAssets"]["data"]["assets"]]
        self.assertEqual(ids, [str(n) for n in range(1, 13)])

    def test_page_past_the_end_is_empty(self):
        self.enroll("SYS-1")
        reply = self.gql(ALL_ASSETS, {"page": 2, "perPage": 1})
        self.assertEqual(reply.data["allAssets"], {"totalCount": 1, "data": {"assets": []}})
        reply = self.gql(ALL_ASSETS, {"page": 1000, "perPage": 500})
        self.assertEqual(reply.data["allAssets"]["data"]["assets"], [])

    def test_per_page_above_500_is_bad_user_input(self):
        self.assertEqual(self.gql(ALL_ASSETS, {"page": 1, "perPage": 500}).codes, [])
        reply = self.gql(ALL_ASSETS, {"page": 1, "perPage": 501})
        self.assert_error(reply, "BAD_USER_INPUT")
        self.assertIsNone(reply.body["data"])

    def test_lookups_return_null_when_absent(self):
        query = """query Q($id: ID!, $rid: String!) {
          asset(id: $id) { id } assetByRemoteId(assetType: SYSTEM, remoteId: $rid) { id }
          site(id: $id) { id } siteByRemoteId(remoteId: $rid) { id } }"""
        reply = self.gql(query, {"id": "42", "rid": "nope"})
        self.assertEqual(reply.data, {"asset": None, "assetByRemoteId": None, "site": None, "siteByRemoteId": None})
        self.assertEqual(self.gql(query, {"id": "not-a-number", "rid": ""}).data["asset"], None)

    def test_lookups_find_assets_and_sites(self):
        system = self.enroll("SYS-1", simulated=True, ratedPower=7.6)
        site = self.create_site("CES-SITE-1", timezone="America/Chicago")
        reply = self.gql("""query Q($id: ID!, $site: ID!) {
            asset(id: $id) { remoteId simulated ratedPower adapterConfiguration { name } }
            byRemote: assetByRemoteId(assetType: SYSTEM, remoteId: "SYS-1") { id }
            wrongType: assetByRemoteId(assetType: INVERTER, remoteId: "SYS-1") { id }
            site(id: $site) { remoteId timezone } siteByRemoteId(remoteId: "CES-SITE-1") { id } }""",
                         {"id": system["id"], "site": site["id"]})
        self.assertEqual(reply.data, {
            "asset": {"remoteId": "SYS-1", "simulated": True, "ratedPower": 7.6,
                      "adapterConfiguration": {"name": "pwrcell-adapter"}},
            "byRemote": {"id": system["id"]}, "wrongType": None,
            "site": {"remoteId": "CES-SITE-1", "timezone": "America/Chicago"},
            "siteByRemoteId": {"id": site["id"]}})

    def test_sites_and_assets_never_share_an_id(self):
        system = self.enroll("SYS-1")
        site = self.create_site("S-1")
        self.assertNotEqual(system["id"], site["id"])
        self.assertIsNone(self.gql("query Q($id: ID!) { asset(id: $id) { id } }", {"id": site["id"]}).data["asset"])


class MutationTest(SimTestCase):
    def test_create_asset_links_site_parent_children_and_adapter(self):
        system = self.enroll("SYS-1")
        site = self.create_site("S-1")
        reply = self.create_asset("RCP-1", siteId=site["id"], parentId=system["id"], ratedPower=7.6, acCoupled=True)
        inverter = reply.data["createAsset"]
        self.assertEqual(inverter["adapterConfiguration"], {"name": "pwrcell-adapter"})
        self.assertEqual(inverter["site"], {"id": site["id"]})
        self.assertEqual(inverter["parent"], {"id": system["id"]})
        self.assertEqual((inverter["ratedPower"], inverter["acCoupled"], inverter["simulated"]), (7.6, True, False))
        self.assertRegex(inverter["createdAt"], DATETIME_RE)
        battery = self.create_asset("BAT-1", "BATTERY", parentId=inverter["id"]).data["createAsset"]
        reply = self.gql("""query Q($id: ID!, $site: ID!) {
            asset(id: $id) { children { id assetType children { id assetType } } }
            site(id: $site) { assets { id } } }""", {"id": system["id"], "site": site["id"]})
        self.assertEqual(reply.data["asset"]["children"],
                         [{"id": inverter["id"], "assetType": "INVERTER",
                           "children": [{"id": battery["id"], "assetType": "BATTERY"}]}])
        self.assertEqual(reply.data["site"]["assets"], [{"id": inverter["id"]}])

    def test_duplicate_asset_remote_id_is_conflict_and_creates_nothing(self):
        self.assertEqual(self.create_asset("RCP-1").codes, [])
        before = self.total_assets()
        reply = self.create_asset("RCP-1", ratedPower=1.0)
        self.assert_error(reply, "CONFLICT")
        self.assertIsNone(reply.body["data"])
        self.assertEqual(self.total_assets(), before)
        # (assetType, remoteId) is the key: the same remoteId under another type is another asset.
        self.assertEqual(self.create_asset("RCP-1", "BATTERY").codes, [])
        self.assertEqual(self.total_assets(), before + 1)

    def test_duplicate_site_remote_id_is_conflict_and_creates_nothing(self):
        self.create_site("S-1")
        reply = self.gql(CREATE_SITE, {"input": {"remoteId": "S-1", "name": "again"}})
        self.assert_error(reply, "CONFLICT")
        sites = self.admin("GET", "/sites").body
        self.assertEqual(sites["count"], 1)
        self.assertEqual(sites["sites"][0]["name"], "Site S-1")

    def test_unknown_site_or_parent_is_not_found_and_creates_nothing(self):
        self.assert_error(self.create_asset("RCP-1", siteId="999"), "NOT_FOUND")
        self.assert_error(self.create_asset("RCP-1", parentId="999"), "NOT_FOUND")
        self.assertEqual(self.total_assets(), 0)
        self.assertEqual(self.create_asset("RCP-1").codes, [])  # the remoteId was not taken

    def test_update_asset_moves_it_to_a_site_and_keeps_absent_fields(self):
        system = self.enroll("SYS-1", ratedPower=5.0)
        site = self.create_site("S-1")
        reply = self.gql(UPDATE_ASSET, {"input": {"id": system["id"], "siteId": site["id"]}})
        self.assertEqual(reply.data["updateAsset"],
                         {"id": system["id"], "ratedPower": 5.0,
                          "site": {"id": site["id"], "assets": [{"id": system["id"]}]}})
        self.assert_error(self.gql(UPDATE_ASSET, {"input": {"id": "999", "ratedPower": 1.0}}), "NOT_FOUND")
        self.assert_error(self.gql(UPDATE_ASSET, {"input": {"id": system["id"], "siteId": "999"}}), "NOT_FOUND")
        self.assertEqual(self.admin("GET", f"/assets/{system['id']}").body["siteId"], site["id"])

    def test_remote_state_updates_record_history(self):
        system = self.enroll("SYS-1")
        site = self.create_site("S-1")
        reply = self.gql(ASSET_STATE, {"input": {"id": system["id"], "remoteState": "OFFLINE",
                                                 "reason": "no telemetry for 960 s"}})
        self.assertEqual(reply.data["updateAssetRemoteState"], {"id": system["id"], "remoteState": "OFFLINE"})
        self.gql(SITE_STATE, {"input": {"id": site["id"], "remoteState": "ONLINE"}})
        history = self.admin("GET", "/remote-states").body["history"]
        self.assertEqual([(h["id"], h["kind"], h["state"], h["reason"]) for h in history],
                         [(system["id"], "asset", "OFFLINE", "no telemetry for 960 s"),
                          (site["id"], "site", "ONLINE", None)])
        self.assertRegex(history[0]["at"], DATETIME_RE)
        only = self.admin("GET", f"/remote-states?id={site['id']}").body
        self.assertEqual(only["count"], 1)

    def test_remote_state_of_unknown_id_is_not_found(self):
        system = self.enroll("SYS-1")
        site = self.create_site("S-1")
        for query, bad_id in ((ASSET_STATE, "999"), (SITE_STATE, "999"),
                              (ASSET_STATE, site["id"]), (SITE_STATE, system["id"])):
            reply = self.gql(query, {"input": {"id": bad_id, "remoteState": "ERROR", "reason": "x"}})
            self.assert_error(reply, "NOT_FOUND")
        self.assertEqual(self.admin("GET", "/remote-states").body["count"], 0)


class TelemetryTest(SimTestCase):
    def setUp(self):
        super().setUp()
        self.asset_id = self.enroll("SYS-1")["id"]

    def points_stored(self):
        return self.admin("GET", "/telemetry").body["count"]

    def test_more_than_500_points_is_bad_user_input_and_stores_nothing(self):
        points = [dict(point(self.asset_id, value=n), timestamp=f"2026-11-22T{n // 60:02d}:{n % 60:02d}:00Z")
                  for n in range(501)]
        reply = self.gql(INGEST, {"input": {"points": points}})
        self.assert_error(reply, "BAD_USER_INPUT")
        self.assertEqual(self.points_stored(), 0)
        reply = self.gql(INGEST, {"input": {"points": points[:500]}})
        self.assertEqual(reply.data["ingestTelemetry"], {"accepted": 500, "duplicates": 0, "rejected": []})
        self.assertEqual(self.points_stored(), 500)

    def test_repeats_are_counted_as_duplicates_and_stored_once(self):
        first = self.gql(INGEST, {"input": {"points": [point(self.asset_id, 0), point(self.asset_id, 0),
                                                         point(self.asset_id, 0, metric="VOLTAGE")]}})
        self.assertEqual(first.data["ingestTelemetry"], {"accepted": 2, "duplicates": 1, "rejected": []})
        # The same instant written with another offset is the same point.
        same_instant = dict(point(self.asset_id, 0), timestamp="2026-11-22T11:00:00+01:00", value=9.0)
        second = self.gql(INGEST, {"input": {"points": [same_instant, point(self.asset_id, 5)]}})
        self.assertEqual(second.data["ingestTelemetry"], {"accepted": 1, "duplicates": 1, "rejected": []})
        stored = self.admin("GET", f"/telemetry?assetId={self.asset_id}&metric=REAL_POWER").body
        self.assertEqual([(p["timestamp"], p["value"]) for p in stored["points"]],
                         [("2026-11-22T10:00:00Z", 1.0), ("2026-11-22T10:05:00Z", 1.0)])
        self.assertEqual(self.admin("GET", "/stats").body["duplicates"], 2)

    def test_unknown_asset_is_rejected_by_index_and_the_rest_stored(self):
        points = [point(self.asset_id, 0), point(999, 0), point(self.asset_id, 5), point("x", 0)]
        reply = self.gql(INGEST, {"input": {"points": points}})
        result = reply.data["ingestTelemetry"]
        self.assertEqual((result["accepted"], result["duplicates"]), (2, 0))
        self.assertEqual([r["index"] for r in result["rejected"]], [1, 3])
        self.assertIn("999", result["rejected"][0]["message"])
        self.assertEqual(self.points_stored(), 2)

    def test_concurrent_ingest_stores_each_point_once(self):
        # Eight clients send the same 60 points at once: 60 stored, 7 x 60 duplicates, whatever the interleaving.
        points = [point(self.asset_id, minute) for minute in range(60)]
        replies = []
        threads = [threading.Thread(target=lambda: replies.append(self.gql(INGEST, {"input": {"points": points}})))
                   for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        results = [reply.data["ingestTelemetry"] for reply in replies]
        self.assertEqual(sum(r["accepted"] for r in results), 60)
        self.assertEqual(sum(r["duplicates"] for r in results), 7 * 60)
        self.assertEqual(self.points_stored(), 60)


class LimitsAndFaultsTest(SimTestCase):
    rate_limit = 5

    def test_past_the_rate_is_429_with_retry_after(self):
        query = "{ allAssets { totalCount } }"
        for _ in range(5):
            self.assertEqual(self.gql(query).status, 200)
        reply = self.gql(query)
        self.assert_error(reply, "RATE_LIMITED", status=429)
        self.assertEqual(reply.headers["Retry-After"], "1")
        self.assertEqual(self.gql(query, token=self.login()).status, 200)  # the limit is per client token
        self.monotonic.advance(0.5)
        self.assertEqual(self.gql(query).status, 429)  # still five within the last second
        self.monotonic.advance(0.6)
        self.assertEqual(self.gql(query).status, 200)
        self.assertEqual(self.admin("GET", "/stats").body["responsesByStatus"]["429"], 2)

    def test_5xx_fault_for_n_requests_then_normal(self):
        reply = self.admin("POST", "/faults", {"kind": "5xx", "count": 2, "status": 502})
        self.assertEqual(reply.status, 201, reply.body)
        query = "{ allAssets { totalCount } }"
        statuses = [self.gql(query).status for _ in range(3)]
        self.assertEqual(statuses, [502, 502, 200])
        self.assertEqual(self.admin("GET", "/faults").body["faults"], [])
        self.assertEqual(self.admin("GET", "/stats").body["faultsInjected"], {"5xx": 2})

    def test_fault_on_one_operation_leaves_others_alone(self):
        self.admin("POST", "/faults", {"kind": "5xx", "operation": "ingestTelemetry"})  # until cleared
        asset_id = self.enroll("SYS-1")["id"]
        reply = self.gql(INGEST, {"input": {"points": [point(asset_id)]}})
        self.assert_error(reply, "INTERNAL_SERVER_ERROR", status=503)
        self.assertEqual(self.gql("{ allAssets { totalCount } }").status, 200)
        self.assertEqual(self.gql(INGEST, {"input": {"points": [point(asset_id)]}}).status, 503)
        self.admin("POST", "/faults", {"kind": "5xx", "operation": "Page", "count": 1})  # by operation name
        self.assertEqual(self.gql(ALL_ASSETS, {"page": 1, "perPage": 1}).status, 503)
        self.assertEqual(self.admin("POST", "/faults", {"kind": "clear"}).body, {"cleared": 1})
        self.assertEqual(self.gql(INGEST, {"input": {"points": [point(asset_id)]}}).status, 200)

    def test_429_and_slow_faults(self):
        self.admin("POST", "/faults", {"kind": "429", "count": 1})
        self.admin("POST", "/faults", {"kind": "slow", "delay_s": 2.5, "count": 2})
        reply = self.gql("{ allAssets { totalCount } }")
        self.assert_error(reply, "RATE_LIMITED", status=429)
        self.assertEqual(reply.headers["Retry-After"], "1")
        self.assertEqual(self.gql("{ allAssets { totalCount } }").status, 200)
        self.assertEqual(self.gql("{ allAssets { totalCount } }").status, 200)
        self.assertEqual(self.sleeps, [2.5, 2.5])

    def test_a_429_fault_answers_the_retry_after_it_was_given(self):
        self.admin("POST", "/faults", {"kind": "429", "retry_after_s": 30})
        for _ in range(2):  # until cleared
            reply = self.gql("{ allAssets { totalCount } }")
            self.assert_error(reply, "RATE_LIMITED", status=429)
            self.assertEqual(reply.headers["Retry-After"], "30")
        self.admin("POST", "/faults", {"kind": "clear"})
        self.assertEqual(self.gql("{ allAssets { totalCount } }").status, 200)

    def test_bad_fault_specs_are_400(self):
        for spec in ({"kind": "boom"}, {"kind": "5xx", "status": 404}, {"kind": "slow"},
                     {"kind": "5xx", "count": 0}, {"kind": "429", "delay_s": 1},
                     {"kind": "5xx", "retry_after_s": 5}, {"kind": "429", "retry_after_s": -1},
                     {"kind": "429", "retry_after_s": "5"}):
            self.assertEqual(self.admin("POST", "/faults", spec).status, 400, spec)


class AdminTest(SimTestCase):
    def test_enroll_list_filter_delete(self):
        system = self.enroll("SYS-1", name="Garage", adapterName="pwrcell-adapter", simulated=True, ratedPower=9.0)
        self.assertEqual((system["assetType"], system["name"], system["simulated"], system["ratedPower"]),
                         ("SYSTEM", "Garage", True, 9.0))
        self.assertEqual(system["adapterConfiguration"], {"name": "pwrcell-adapter"})
        other = self.enroll("SYS-2", adapterName="someone-else")
        default = self.enroll("SYS-3")  # --adapter-name is the default
        self.assertEqual(default["adapterConfiguration"], {"name": "pwrcell-adapter"})
        self.assertEqual(self.admin("POST", "/systems", {"remoteId": "SYS-1"}).status, 409)
        self.assertEqual(self.admin("POST", "/systems", {"name": "no id"}).status, 400)
        inverter = self.create_asset("RCP-1", parentId=system["id"]).data["createAsset"]

        ours = self.admin("GET", "/assets?type=SYSTEM&adapter=pwrcell-adapter").body
        self.assertEqual([a["id"] for a in ours["assets"]], [system["id"], default["id"]])
        self.assertEqual(self.admin("GET", "/assets?type=INVERTER").body["count"], 1)
        self.assertEqual(self.admin("GET", "/assets?adapter=someone-else").body["assets"][0]["id"], other["id"])
        self.assertEqual(self.admin("GET", "/assets?type=TOASTER").status, 400)

        self.assertEqual(self.admin("DELETE", f"/assets/{system['id']}").status, 200)
        self.assertEqual(self.admin("DELETE", f"/assets/{system['id']}").status, 404)
        orphan = self.admin("GET", f"/assets/{inverter['id']}").body
        self.assertIsNone(orphan["parentId"])
        self.assertEqual(self.gql("query Q($id: ID!) { asset(id: $id) { parent { id } } }",
                                  {"id": inverter["id"]}).data, {"asset": {"parent": None}})
        self.assertEqual(self.enroll("SYS-1")["remoteId"], "SYS-1")  # the remoteId is free again

    def test_operator_update_flips_simulated_and_rated_power(self):
        system = self.enroll("SYS-1", simulated=True, ratedPower=9.0)
        changed = self.admin("PATCH", f"/assets/{system['id']}", {"simulated": False, "ratedPower": None})
        self.assertEqual(changed.status, 200)
        self.assertEqual((changed.body["simulated"], changed.body["ratedPower"], changed.body["name"]),
                         (False, None, system["name"]))
        seen = self.gql("query Q($id: ID!) { asset(id: $id) { simulated ratedPower } }", {"id": system["id"]}).data
        self.assertEqual(seen, {"asset": {"simulated": False, "ratedPower": None}})
        self.assertEqual(self.admin("PATCH", "/assets/999", {"simulated": True}).status, 404)
        for bad in ({"simulated": None}, {"simulated": "yes"}, {"ratedPower": True}, {"remoteId": "X"}):
            self.assertEqual(self.admin("PATCH", f"/assets/{system['id']}", bad).status, 400, bad)

    def test_stats_count_operations_statuses_and_state(self):
        asset_id = self.enroll("SYS-1")["id"]
        self.gql(INGEST, {"input": {"points": [point(asset_id), point(asset_id)]}})
        self.gql("{ allAssets { totalCount } }", token=None)
        stats = self.admin("GET", "/stats").body
        self.assertEqual(stats["requestsByOperation"]["Login"], 1)
        self.assertEqual(stats["requestsByOperation"]["Ingest"], 1)
        self.assertEqual(stats["requestsByField"]["ingestTelemetry"], 1)
        self.assertEqual(stats["responsesByStatus"], {"200": 2, "401": 1})
        self.assertEqual((stats["duplicates"], stats["pointsStored"]), (1, 1))
        self.assertEqual(stats["pointsByMetric"], {point(asset_id)["metric"]: 1})
        self.assertEqual(stats["assetsByType"]["SYSTEM"], 1)
        self.assertEqual(stats["errorsByCode"], {"UNAUTHENTICATED": 1})

    def test_reset_empties_state_but_keeps_tokens(self):
        self.enroll("SYS-1")
        self.create_site("S-1")
        self.assertEqual(self.admin("POST", "/reset").status, 200)
        self.assertEqual(self.total_assets(), 0)  # the token still works
        self.assertEqual(self.admin("GET", "/sites").body["count"], 0)
        self.assertEqual(self.enroll("SYS-1")["id"], "1")  # ids start again

    def test_admin_refuses_non_loopback_clients(self):
        client = self.sim.app.test_client()
        refused = client.get("/admin/stats", environ_base={"REMOTE_ADDR": "10.1.2.3"})
        self.assertEqual(refused.status_code, 403)
        refused = client.post("/admin/reset", environ_base={"REMOTE_ADDR": "192.168.0.7"})
        self.assertEqual(refused.status_code, 403)
        self.assertEqual(client.get("/admin/stats", environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code, 200)
        # GraphQL itself is for everyone.
        login = {"query": AUTHENTICATE, "variables": {"email": EMAIL, "password": PASSWORD}}
        reply = client.post("/graphql", json=login, environ_base={"REMOTE_ADDR": "10.1.2.3"})
        self.assertEqual(reply.status_code, 200)


class LoopbackCheckTest(unittest.TestCase):
    def test_is_loopback(self):
        for address in ("127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"):
            self.assertTrue(is_loopback(address), address)
        for address in ("10.0.0.1", "192.168.1.5", "0.0.0.0", "::", "fe80::1", "::ffff:10.0.0.1",
                        "8.8.8.8", "localhost", "", None, "127.0.0.1.evil"):
            self.assertFalse(is_loopback(address), address)


class CommandLineTest(unittest.TestCase):
    """The simulator as a program: arguments, the listening line, signals, the state file."""

    def run_cli(self, *args, env=None):
        return subprocess.run([sys.executable, ENTRY, *args], capture_output=True, text=True, timeout=30, env=env)

    def start(self, *args):
        process = subprocess.Popen([sys.executable, ENTRY, "--port", "0", *args], stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL, text=True)
        self.addCleanup(process.stdout.close)
        self.addCleanup(lambda: process.poll() is None and (process.kill(), process.wait()))
        line = process.stdout.readline()
        match = re.fullmatch(r"concerto-sim listening on (http://127\.0\.0\.1:(\d+))\n", line)
        self.assertIsNotNone(match, line)
        self.assertNotEqual(match.group(2), "0")
        return process, match.group(1)

    def stop(self, process):
        process.send_signal(signal.SIGTERM)
        self.assertEqual(process.wait(timeout=10), 0)

    def test_help_exits_0(self):
        result = self.run_cli("--help")
        self.assertEqual(result.returncode, 0)
        for option in ("--host", "--port", "--email", "--password", "--token-ttl", "--rate-limit", "--state",
                       "--adapter-name"):
            self.assertIn(option, result.stdout)

    def test_bad_arguments_exit_2_with_a_message(self):
        cases = (("--port", "70000"), ("--port", "http"), ("--token-ttl", "0"), ("--rate-limit", "-1"),
                 ("--state", "/nonexistent-dir/state.json"), ("--bogus",), ("--email", ""))
        for args in cases:
            result = self.run_cli(*args)
            self.assertEqual(result.returncode, 2, args)
            self.assertIn("error:", result.stderr, args)

    def test_state_file_survives_restart(self):
        with tempfile.TemporaryDirectory() as directory:
            state = os.path.join(directory, "concerto.json")
            process, url = self.start("--state", state, "--email", EMAIL, "--password", PASSWORD)
            token = login_at(url)
            system = http("POST", f"{url}/admin/systems", {"remoteId": "SYS-1"}).body
            site = gql_at(url, CREATE_SITE, {"input": {"remoteId": "S-1", "name": "S"}}, token).data["createSite"]
            state_input = {"id": system["id"], "remoteState": "ONLINE", "reason": "heard"}
            gql_at(url, ASSET_STATE, {"input": state_input}, token)
            gql_at(url, INGEST, {"input": {"points": [point(system["id"])]}}, token)
            deadline = time.monotonic() + 5  # saved within ~0.5 s of the last change, without a shutdown
            while time.monotonic() < deadline:
                if os.path.exists(state):
                    with open(state, encoding="utf-8") as handle:
                        if len(json.load(handle)["points"]) == 1:
                            break
                time.sleep(0.1)
            else:
                self.fail("state file not written while running")
            self.stop(process)

            process, url = self.start("--state", state, "--email", EMAIL, "--password", PASSWORD)
            # Tokens do not survive a restart (clients re-authenticate on 401).
            self.assertEqual(gql_at(url, "{ allAssets { totalCount } }", {}, token).status, 401)
            token = login_at(url)
            reply = gql_at(url, """{ allAssets { totalCount }
                sys: assetByRemoteId(assetType: SYSTEM, remoteId: "SYS-1") { id remoteState }
                site: siteByRemoteId(remoteId: "S-1") { id } }""", {}, token)
            self.assertEqual(reply.data, {"allAssets": {"totalCount": 1},
                                          "sys": {"id": system["id"], "remoteState": "ONLINE"},
                                          "site": {"id": site["id"]}})
            self.assertEqual(http("GET", f"{url}/admin/telemetry").body["count"], 1)
            self.assertEqual(http("GET", f"{url}/admin/remote-states").body["history"][0]["reason"], "heard")
            new = http("POST", f"{url}/admin/systems", {"remoteId": "SYS-2"}).body
            self.assertEqual(int(new["id"]), int(site["id"]) + 1)  # the id counter survived too
            duplicate = gql_at(url, INGEST, {"input": {"points": [point(system["id"])]}}, token)
            self.assertEqual(duplicate.data["ingestTelemetry"]["duplicates"], 1)
            self.stop(process)

    def test_corrupt_state_file_exits_1(self):
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
            handle.write("{ not json")
        self.addCleanup(os.unlink, handle.name)
        result = self.run_cli("--port", "0", "--state", handle.name)
        self.assertEqual(result.returncode, 1)
        self.assertIn("cannot load state file", result.stderr)

    def test_sigint_also_exits_0(self):
        process, url = self.start()
        self.assertEqual(http("GET", f"{url}/admin/health").body, {"status": "ok"})
        process.send_signal(signal.SIGINT)
        self.assertEqual(process.wait(timeout=10), 0)


@unittest.skipUnless(os.environ.get("CONCERTO_SIM_LAUNCHER"), "CONCERTO_SIM_LAUNCHER (build/bin/concerto-sim) not set")
class LauncherTest(unittest.TestCase):
    def test_launcher_runs_the_simulator(self):
        result = subprocess.run([os.environ["CONCERTO_SIM_LAUNCHER"], "--help"], capture_output=True, text=True,
                                timeout=30)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("--rate-limit", result.stdout)

    def test_launcher_names_a_missing_package(self):
        with tempfile.TemporaryDirectory() as shadow:
            with open(os.path.join(shadow, "flask.py"), "w") as handle:
                handle.write("raise ImportError('hidden by the test')\n")
            env = dict(os.environ, PYTHONPATH=shadow)
            result = subprocess.run([os.environ["CONCERTO_SIM_LAUNCHER"], "--help"], capture_output=True, text=True,
                                    timeout=30, env=env)
        self.assertEqual(result.returncode, 1)
        self.assertIn("Flask", result.stderr)
        self.assertNotIn("graphql-core", result.stderr)


if __name__ == "__main__":
    unittest.main()
