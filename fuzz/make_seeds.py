#!/usr/bin/env python3
"""Writes the seed corpora of fuzz/corpus/<target>/ from the project's own examples: the record
vectors (tests/vectors, examples/*.textproto, encoded with protoc), the device records
(tests/data/devices.json, examples/dc_system.json), the configuration examples, and the answer
shapes of contracts/ces-api.md and contracts/concerto-api.md. Run from anywhere; rewrites the
seed_* files only (inputs kept from findings are named otherwise and stay)."""
import base64
import gzip
import json
import pathlib
import subprocess

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"


def write(target, name, data):
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (folder / f"seed_{name}").write_bytes(data)


def encode(textproto):
    return subprocess.run(
        ["protoc", f"--proto_path={ROOT / 'contracts'}", "--encode=pwrcell.ces.v1.EnergyRecordSet",
         "energy_record_set.proto"], input=textproto.encode(), capture_output=True, check=True).stdout


def main():
    records = {}
    for path in sorted((ROOT / "examples").glob("*.textproto")):
        records[path.stem] = encode(path.read_text())
    vectors = json.loads((ROOT / "tests" / "vectors" / "telemetry_mapping.json").read_text())
    for i, case in enumerate(vectors["cases"]):
        records[f"vector{i}"] = encode(case["record_textproto"])

    for name, data in records.items():
        write("energy_record", name, data)

    # ingest_body: the first byte picks the path (fuzz/ingest_body_fuzzer.cc).
    datas = list(records.values())
    batch = {"records": [{"data": base64.b64encode(d).decode(), "partitionKey": "sys-dc-0001"} for d in datas[:2]]}
    batch_text = json.dumps(batch)
    write("ingest_body", "protobuf", b"\x00" + datas[0])
    write("ingest_body", "json", b"\x01" + batch_text.encode())
    write("ingest_body", "json_bad_base64", b"\x01" + b'{"records": [{"data": "not base64!"}, {"data": ""}]}')
    write("ingest_body", "firehose", b"\x02" + json.dumps(
        {"requestId": "ed4acda5-034f-9f42-bba1-f29aea6d7d8f", "timestamp": 1763800000000,
         "records": [{"data": base64.b64encode(d).decode()} for d in datas[:2]]}).encode())
    write("ingest_body", "gzip_json", b"\x03" + gzip.compress(batch_text.encode(), mtime=0))

    # concerto_answer: one answer per operation, and an error.
    asset = {"id": "asset-1", "remoteId": "sys-dc-0001", "name": "Smith residence", "assetType": "SYSTEM",
             "adapterConfiguration": {"name": "pwrcell"}, "simulated": False, "remoteState": "ONLINE",
             "ratedPower": 7.6, "energyCapacity": None, "acCoupled": False,
             "site": {"id": "site-1", "remoteId": "site-dc-0001", "name": "Smith residence"},
             "parent": None,
             "children": [{"id": "asset-2", "remoteId": "000100007010", "assetType": "INVERTER",
                           "children": [{"id": "asset-3", "remoteId": "000100008010", "assetType": "BATTERY"}]},
                          {"id": 8, "remoteId": "sys-dc-0001-meter", "assetType": "SITE_METER"}]}
    site = {"id": "site-1", "remoteId": "site-dc-0001", "name": "Smith residence", "timezone": "America/Denver",
            "latitude": 39.74, "longitude": -104.99, "remoteState": "ONLINE"}
    answers = {
        "authenticate": {"authenticate": {"accessToken": "eyJhbGciOi.x.y", "expiresAt": "2026-11-22T11:00:00Z"}},
        "list_assets": {"allAssets": {"totalCount": 1, "data": {"assets": [asset]}}},
        "asset_by_remote_id": {"assetByRemoteId": asset},
        "asset_by_remote_id_null": {"assetByRemoteId": None},
        "site_by_remote_id": {"siteByRemoteId": site},
        "create_site": {"createSite": site},
        "create_asset": {"createAsset": asset},
        "update_asset": {"updateAsset": asset},
        "remote_state": {"updateAssetRemoteState": {"id": "asset-1", "remoteState": "ONLINE"},
                         "updateSiteRemoteState": {"id": "site-1", "remoteState": "ONLINE"}},
        "ingest": {"ingestTelemetry": {"accepted": 498, "duplicates": 1,
                                       "rejected": [{"index": 7, "message": "value out of range"}]}},
    }
    for name, data in answers.items():
        write("concerto_answer", name, json.dumps({"data": data}))
    write("concerto_answer", "error", json.dumps(
        {"errors": [{"message": "asset not found", "path": ["updateAsset"], "extensions": {"code": "NOT_FOUND"}},
                    {"message": "second"}], "data": None}))

    # ces_answer
    metadata = {"systemId": "5f0c6a52-1b7e-4e43-9d55-7a3c8e1f0a11", "siteId": "b2a4c0de", "siteName": "Smith residence",
                "timezone": "America/Denver", "latitude": 39.74, "longitude": -104.99, "statusName": "SUCCESS",
                "inverters": [{"rcpn": "000100073534", "model": "XVT076A03", "ratedPowerW": 7600,
                               "inverterSetting": {"acPVPowerRating": 0.0}}],
                "batteries": [{"rcpn": "000100080112", "model": "PWRcell M6", "capacityWh": 18000,
                               "ratedPowerW": 6700}],
                "pvLinks": [{"rcpn": "000100030a41", "ratedPowerW": 2500}],
                "siteMeter": {"id": "5f0c6a52-1b7e-4e43-9d55-7a3c8e1f0a11-meter"}}
    write("ces_answer", "metadata", json.dumps(metadata))
    write("ces_answer", "status", json.dumps(
        {"statuses": [{"systemId": "5f0c6a52", "statusName": "SUCCESS", "lastCommunicationAt": "2026-11-22T10:10:00Z"},
                      {"systemId": "0d1e", "statusName": "NEVER_CONNECTED", "lastCommunicationAt": None}],
         "notFound": ["0d1f"]}))
    write("ces_answer", "error", json.dumps({"error": {"code": "NOT_FOUND", "message": "unknown systemId"}}))

    # config
    for path in ("deployment_example.toml", "deployment.toml"):
        write("config", path.replace(".toml", ""), (ROOT / path).read_text())
    write("config", "env", '[concerto]\nroot_url = "http://127.0.0.1:8080"\n'
          '\n#%env\nPWRCELL_CONCERTO_ROOT_URL=http://127.0.0.1:9090\nPWRCELL_CONCERTO_TIMEOUT_S=2.5\n'
          'PWRCELL_CES_MAX_RETRIES=4\nConcertoRootUrl=http://127.0.0.1:9091\n')

    # device_json
    for i, device in enumerate(json.loads((ROOT / "tests" / "data" / "devices.json").read_text())):
        write("device_json", f"device{i}", json.dumps(device))
    write("device_json", "dc_system", (ROOT / "examples" / "dc_system.json").read_text())


if __name__ == "__main__":
    main()
