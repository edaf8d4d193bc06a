"""Shared pieces of the registration, commissioning and removal end-to-end tests: what Concerto
and the device table must hold for a commissioned fleet (computed from the fleet metadata that
ces-sim serves), and an authenticated GraphQL call for playing the operator in Concerto."""

from harness import ADAPTER_NAME, EMAIL, PASSWORD, http, metric, wait_for

COMPONENT_TYPES = ("INVERTER", "BATTERY", "PHOTOVOLTAIC", "SITE_METER")


def graphql(stack, query, variables=None):
    """Runs one GraphQL document against concerto-sim as an operator would; returns `data`."""
    status, body = http("POST", stack.concerto_url + "/graphql",
                        {"query": "mutation Login($input: AuthenticateInput!) "
                                  "{ authenticate(input: $input) { accessToken } }",
                         "variables": {"input": {"email": EMAIL, "password": PASSWORD}}})
    if status != 200 or not body.get("data"):
        raise AssertionError(f"authenticate: {status} {body}")
    token = body["data"]["authenticate"]["accessToken"]
    status, body = http("POST", stack.concerto_url + "/graphql", {"query": query, "variables": variables or {}},
                        headers={"Authorization": "Bearer " + token})
    if status != 200 or body.get("errors"):
        raise AssertionError(f"GraphQL {query[:60]}...: {status} {body}")
    return body["data"]


def create_site(stack, system):
    """Creates the CES site of a fleet system in Concerto (an operator's or another writer's site)."""
    return graphql(stack, "mutation CreateSite($input: CreateSiteInput!) { createSite(input: $input) { id remoteId } }",
                   {"input": {"remoteId": system["siteId"], "name": system["siteName"],
                              "timezone": system["timezone"]}})["createSite"]


def create_asset(stack, asset_type, remote_id, parent_id=None, site_id=None, **fields):
    """Creates one asset of this adapter in Concerto by GraphQL; returns {id, remoteId}."""
    data = {"remoteId": remote_id, "name": f"{asset_type} {remote_id} (by hand)", "assetType": asset_type,
            "adapterName": ADAPTER_NAME, **fields}
    if parent_id is not None:
        data["parentId"] = parent_id
    if site_id is not None:
        data["siteId"] = site_id
    return graphql(stack, "mutation CreateAsset($input: CreateAssetInput!) "
                          "{ createAsset(input: $input) { id remoteId } }", {"input": data})["createAsset"]


def expected_coupling(system, mixed=False):
    """The coupling rule of contracts/ces-api.md for a fleet system (mixed ratings: AC)."""
    if mixed:
        return "AC"
    ratings = [inverter["inverterSetting"]["acPVPowerRating"] for inverter in system["inverters"]]
    return "AC" if any(rating > 0 for rating in ratings) else "DC"


def expected_counts(systems):
    """Sites and component assets a commissioned fleet has in Concerto, by kind."""
    return {
        "sites": len({s["siteId"] for s in systems}),
        "SYSTEM": len(systems),
        "INVERTER": sum(len(s["inverters"]) for s in systems),  # one per inverter (SPEC section 6)
        "BATTERY": sum(len(s["batteries"]) for s in systems),
        "PHOTOVOLTAIC": sum(len(s["pvLinks"]) for s in systems),
        "SITE_METER": sum(1 for s in systems if s.get("siteMeter")),
    }


def concerto_counts(stack):
    """The same counts as Concerto has them now (one consistent snapshot)."""
    stats = stack.stats()
    by_type = stats["assetsByType"]
    counts = {"sites": stats["sites"]}
    for asset_type in ("SYSTEM", *COMPONENT_TYPES):
        counts[asset_type] = by_type.get(asset_type, 0)
    return counts


def component_count(stack):
    by_type = stack.stats()["assetsByType"]
    return sum(by_type.get(t, 0) for t in COMPONENT_TYPES)


def commissioning_state(stack, remote_id):
    device = stack.device(remote_id)
    return device["commissioning"]["state"] if device else None


def wait_all_commissioned(stack, systems, timeout=60.0):
    ids = [s["systemId"] for s in systems]
    wait_for(lambda: all(commissioning_state(stack, i) == "DONE" for i in ids),
             f"commissioning DONE for {len(ids)} systems", timeout)


def complete_sweeps(stack):
    return metric(stack.metrics(), "pwrcell_registrar_sweeps_total", complete="true")


def wait_sweeps(stack, n=2, timeout=30.0):
    """Waits until the registrar has registered `n` more complete asset lists."""
    start = complete_sweeps(stack)
    wait_for(lambda: complete_sweeps(stack) >= start + n, f"{n} more complete registrar sweeps", timeout)


def check_commissioned(test, stack, systems, mixed=()):
    """Asserts that Concerto holds exactly the structure of `systems` (no duplicate, nothing
    missing, right parents and sites) and that each device record names those assets. `systems`
    are CES metadata objects: one INVERTER per listed inverter, batteries and PV links under the
    first (SPEC section 6)."""
    test.assertEqual(concerto_counts(stack), expected_counts(systems), "assets and sites in Concerto")
    assets = stack.assets()
    by_type_remote = {}
    for asset in assets:
        key = (asset["assetType"], asset["remoteId"])
        test.assertNotIn(key, by_type_remote, f"duplicate asset {key}")
        by_type_remote[key] = asset
    sites = {site["remoteId"]: site for site in stack.sites()}
    for asset in assets:
        test.assertEqual(asset["adapterConfiguration"]["name"], ADAPTER_NAME, asset)
        test.assertFalse(asset["simulated"], asset)

    for s in systems:
        sid = s["systemId"]
        with test.subTest(system=sid):
            system = by_type_remote[("SYSTEM", sid)]
            site = sites[s["siteId"]]
            test.assertEqual(site["name"], s["siteName"])
            test.assertEqual(site["timezone"], s["timezone"])
            test.assertEqual(system["siteId"], site["id"], "the SYSTEM sits on its CES site")

            first = s["inverters"][0]
            inverters = [by_type_remote[("INVERTER", spec["rcpn"])] for spec in s["inverters"]]
            inverter = inverters[0]
            for spec, asset in zip(s["inverters"], inverters):
                test.assertEqual(asset["parentId"], system["id"], "inverter parent = SYSTEM")
                test.assertEqual(asset["siteId"], site["id"], "inverter on the site")
                test.assertAlmostEqual(asset["ratedPower"], spec["ratedPowerW"] / 1000.0, msg="its own rating")
                test.assertIs(asset["acCoupled"], expected_coupling(s, sid in mixed) == "AC")

            batteries = [by_type_remote[("BATTERY", b["rcpn"])] for b in s["batteries"]]
            for battery, spec in zip(batteries, s["batteries"]):
                test.assertEqual(battery["parentId"], inverter["id"], "battery parent = inverter")
                test.assertAlmostEqual(battery["ratedPower"], spec["ratedPowerW"] / 1000.0)
                test.assertAlmostEqual(battery["energyCapacity"], spec["capacityWh"] / 1000.0)
            pvs = [by_type_remote[("PHOTOVOLTAIC", p["rcpn"])] for p in s["pvLinks"]]
            for pv, spec in zip(pvs, s["pvLinks"]):
                test.assertEqual(pv["parentId"], inverter["id"], "PV parent = inverter")
                test.assertAlmostEqual(pv["ratedPower"], spec["ratedPowerW"] / 1000.0)
            test.assertEqual(sorted(inverter["childIds"]), sorted(a["id"] for a in batteries + pvs))
            for other in inverters[1:]:
                test.assertEqual(other["childIds"], [], "batteries and PV links go under the first inverter")

            meter = None
            if s.get("siteMeter"):
                meter = by_type_remote[("SITE_METER", s["siteMeter"]["id"])]
                test.assertEqual(meter["parentId"], system["id"], "site meter parent = SYSTEM")
            test.assertEqual(sorted(system["childIds"]),
                             sorted([a["id"] for a in inverters] + ([meter["id"]] if meter else [])))

            device = stack.device(sid)
            test.assertIsNotNone(device)
            test.assertEqual(device["commissioning"]["state"], "DONE", device["commissioning"])
            test.assertEqual(device["concerto_asset_id"], system["id"])
            test.assertEqual(device["site"]["site_id"], site["id"])
            test.assertEqual(device["site"]["remote_id"], s["siteId"])
            test.assertEqual(device["inverters"], [{"asset_id": a["id"], "remote_id": spec["rcpn"]}
                                                   for spec, a in zip(s["inverters"], inverters)])
            test.assertEqual(sorted((b["asset_id"], b["remote_id"]) for b in device["batteries"]),
                             sorted((a["id"], a["remoteId"]) for a in batteries))
            test.assertEqual(sorted((p["asset_id"], p["remote_id"]) for p in device["photovoltaics"]),
                             sorted((a["id"], a["remoteId"]) for a in pvs))
            test.assertEqual(device["site_meter"],
                             {"asset_id": meter["id"], "remote_id": meter["remoteId"]} if meter else None)
