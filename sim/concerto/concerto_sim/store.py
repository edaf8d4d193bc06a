"""The simulator's state: sites, assets, telemetry points and remote-state history.

Thread-safety: every public method takes `Store.lock` (a re-entrant lock). The GraphQL layer
holds the lock for a whole request so that one response sees one consistent state.

Identifiers: sites and assets draw their ids from ONE counter, so an asset id never names a
site too. A client that mixes them up (e.g. sends a site id to updateAssetRemoteState) gets
NOT_FOUND instead of silently updating the wrong record. Ids are decimal strings on the wire
(GraphQL ID) and ints inside.
"""

import threading
import time
from typing import Callable, Optional

from . import errors
from .errors import ApiError
from .timefmt import format_epoch

ASSET_TYPES = ("SYSTEM", "INVERTER", "BATTERY", "PHOTOVOLTAIC", "SITE_METER")
REMOTE_STATES = ("ONLINE", "OFFLINE", "ERROR")
MAX_POINTS_PER_CALL = 500
MAX_PER_PAGE = 500
STATE_FORMAT_VERSION = 1

# Optional fields of CreateAssetInput / UpdateAssetInput copied as they come.
_ASSET_NUMBERS = ("ratedPower", "energyCapacity")


def parse_id(value) -> Optional[int]:
    """The int behind a GraphQL ID, or None when it cannot name anything here."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, str) and value.isascii() and value.isdigit():
        number = int(value)
        return number if number > 0 else None
    return None


def _id_text(value: Optional[int]) -> Optional[str]:
    return None if value is None else str(value)


class Store:
    def __init__(self, clock: Callable[[], float] = time.time):
        self.lock = threading.RLock()
        self._clock = clock
        self._change_listeners: list = []
        self._clear()

    # ----- bookkeeping -------------------------------------------------------------------------

    def _clear(self) -> None:
        self.next_id = 1
        self.sites: dict = {}  # id -> site dict
        self.assets: dict = {}  # id -> asset dict
        self.points: dict = {}  # (asset id, metric, timestamp) -> point dict, in arrival order
        self.points_by_metric: dict = {}  # metric -> points stored (a count without a scan)
        self.history: list = []  # remote-state changes, oldest first
        self._site_by_remote: dict = {}
        self._asset_by_remote: dict = {}  # (assetType, remoteId) -> id
        self._version = 0
        self._children_cache = (None, {})
        self._site_assets_cache = (None, {})

    def add_change_listener(self, listener: Callable[[], None]) -> None:
        """`listener()` runs (under the lock) after every mutation; persistence uses it."""
        self._change_listeners.append(listener)

    def _changed(self) -> None:
        self._version += 1
        for listener in self._change_listeners:
            listener()

    def _now(self) -> str:
        return format_epoch(self._clock())

    def _take_id(self) -> int:
        new_id = self.next_id
        self.next_id += 1
        return new_id

    # ----- reads -------------------------------------------------------------------------------

    def get_asset(self, asset_id) -> Optional[dict]:
        with self.lock:
            number = parse_id(asset_id)
            return None if number is None else self.assets.get(number)

    def get_site(self, site_id) -> Optional[dict]:
        with self.lock:
            number = parse_id(site_id)
            return None if number is None else self.sites.get(number)

    def asset_by_remote_id(self, asset_type: str, remote_id: str) -> Optional[dict]:
        with self.lock:
            found = self._asset_by_remote.get((asset_type, remote_id))
            return None if found is None else self.assets[found]

    def site_by_remote_id(self, remote_id: str) -> Optional[dict]:
        with self.lock:
            found = self._site_by_remote.get(remote_id)
            return None if found is None else self.sites[found]

    def assets_by_id(self) -> list:
        with self.lock:
            return [self.assets[key] for key in sorted(self.assets)]

    def asset_page(self, current_page: int, per_page: int) -> list:
        if per_page > MAX_PER_PAGE:
            raise ApiError(errors.BAD_USER_INPUT, f"perPage must be at most {MAX_PER_PAGE}, got {per_page}")
        if current_page < 1 or per_page < 1:
            raise ApiError(errors.BAD_USER_INPUT, "currentPage and perPage must be >= 1")
        with self.lock:
            ordered = sorted(self.assets)
            start = (current_page - 1) * per_page
            return [self.assets[key] for key in ordered[start : start + per_page]]

    def children_of(self, asset_id: int) -> list:
        with self.lock:
            version, index = self._children_cache
            if version != self._version:
                index = {}
                for key in sorted(self.assets):
                    parent = self.assets[key]["parentId"]
                    if parent is not None:
                        index.setdefault(parent, []).append(self.assets[key])
                self._children_cache = (self._version, index)
            return list(index.get(asset_id, ()))

    def assets_of_site(self, site_id: int) -> list:
        with self.lock:
            version, index = self._site_assets_cache
            if version != self._version:
                index = {}
                for key in sorted(self.assets):
                    site = self.assets[key]["siteId"]
                    if site is not None:
                        index.setdefault(site, []).append(self.assets[key])
                self._site_assets_cache = (self._version, index)
            return list(index.get(site_id, ()))

    # ----- mutations (GraphQL) -----------------------------------------------------------------

    def create_site(self, fields: dict) -> dict:
        with self.lock:
            remote_id = fields["remoteId"]
            if remote_id in self._site_by_remote:
                raise ApiError(
                    errors.CONFLICT,
                    f"a site with remoteId '{remote_id}' already exists (id {self._site_by_remote[remote_id]})",
                )
            site = {
                "id": self._take_id(),
                "remoteId": remote_id,
                "name": fields["name"],
                "timezone": fields.get("timezone"),
                "latitude": fields.get("latitude"),
                "longitude": fields.get("longitude"),
                "remoteState": None,
                "createdAt": self._now(),
            }
            self.sites[site["id"]] = site
            self._site_by_remote[remote_id] = site["id"]
            self._changed()
            return site

    def create_asset(self, fields: dict) -> dict:
        with self.lock:
            asset_type = fields["assetType"]
            remote_id = fields["remoteId"]
            existing = self._asset_by_remote.get((asset_type, remote_id))
            if existing is not None:
                raise ApiError(
                    errors.CONFLICT,
                    f"an asset of type {asset_type} with remoteId '{remote_id}' already exists (id {existing})",
                )
            site_id = self._existing_site_id(fields.get("siteId"))
            parent_id = self._existing_asset_id(fields.get("parentId"), "parentId")
            asset = {
                "id": self._take_id(),
                "remoteId": remote_id,
                "name": fields["name"],
                "assetType": asset_type,
                "adapterName": fields.get("adapterName"),
                "simulated": bool(fields.get("simulated") or False),
                "remoteState": None,
                "ratedPower": fields.get("ratedPower"),
                "energyCapacity": fields.get("energyCapacity"),
                "acCoupled": fields.get("acCoupled"),
                "siteId": site_id,
                "parentId": parent_id,
                "createdAt": self._now(),
            }
            self.assets[asset["id"]] = asset
            self._asset_by_remote[(asset_type, remote_id)] = asset["id"]
            self._changed()
            return asset

    def update_asset(self, fields: dict) -> dict:
        """Absent fields stay as they are; a field given as null is cleared (GraphQL's usual
        distinction between an omitted input field and an explicit null)."""
        with self.lock:
            asset = self._asset_or_not_found(fields["id"])
            if "siteId" in fields:
                asset["siteId"] = self._existing_site_id(fields["siteId"])
            for name in (*_ASSET_NUMBERS, "acCoupled"):
                if name in fields:
                    asset[name] = fields[name]
            self._changed()
            return asset

    def operator_update_asset(self, asset_id, fields: dict) -> Optional[dict]:
        """What an operator changes by hand in Concerto's UI (admin API only; the GraphQL
        updateAsset input has no `name` or `simulated`). None when the id is unknown."""
        with self.lock:
            asset = self.get_asset(asset_id)
            if asset is None:
                return None
            for name in ("name", "simulated", *_ASSET_NUMBERS, "acCoupled"):
                if name in fields:
                    asset[name] = fields[name]
            self._changed()
            return asset

    def set_remote_state(self, kind: str, record_id, state: str, reason: Optional[str]) -> dict:
        assert kind in ("asset", "site")
        assert state in REMOTE_STATES
        with self.lock:
            if kind == "asset":
                record = self._asset_or_not_found(record_id)
            else:
                number = parse_id(record_id)
                record = self.sites.get(number) if number is not None else None
                if record is None:
                    raise ApiError(errors.NOT_FOUND, f"no site with id '{record_id}'")
            previous = record["remoteState"]
            record["remoteState"] = state
            self.history.append(
                {
                    "id": str(record["id"]),
                    "kind": kind,
                    "state": state,
                    "previous": previous,
                    "reason": reason,
                    "at": self._now(),
                }
            )
            self._changed()
            return record

    def ingest(self, points: list) -> dict:
        """Stores each (assetId, metric, timestamp) once. All-or-nothing only for the size limit:
        unknown assets are rejected one by one and the rest is stored (concerto-api.md)."""
        if len(points) > MAX_POINTS_PER_CALL:
            raise ApiError(
                errors.BAD_USER_INPUT,
                f"ingestTelemetry takes at most {MAX_POINTS_PER_CALL} points per call, got {len(points)}; "
                "nothing stored",
            )
        with self.lock:
            accepted = 0
            duplicates = 0
            rejected = []
            received_at = self._now()
            for index, point in enumerate(points):
                asset_id = parse_id(point["assetId"])
                if asset_id is None or asset_id not in self.assets:
                    rejected.append({"index": index, "message": f"unknown asset id '{point['assetId']}'"})
                    continue
                key = (asset_id, point["metric"], point["timestamp"])
                if key in self.points:
                    duplicates += 1
                    continue
                self.points[key] = {
                    "assetId": str(asset_id),
                    "metric": point["metric"],
                    "timestamp": point["timestamp"],
                    "value": point["value"],
                    "receivedAt": received_at,
                }
                self.points_by_metric[point["metric"]] = self.points_by_metric.get(point["metric"], 0) + 1
                accepted += 1
            if accepted:
                self._changed()
            return {"accepted": accepted, "duplicates": duplicates, "rejected": rejected}

    # ----- mutations (admin) -------------------------------------------------------------------

    def delete_asset(self, asset_id) -> Optional[dict]:
        """Removes an asset; its children stay, without a parent. Its telemetry stays stored."""
        with self.lock:
            number = parse_id(asset_id)
            asset = self.assets.pop(number, None) if number is not None else None
            if asset is None:
                return None
            del self._asset_by_remote[(asset["assetType"], asset["remoteId"])]
            for other in self.assets.values():
                if other["parentId"] == number:
                    other["parentId"] = None
            self._changed()
            return asset

    def delete_site(self, site_id) -> Optional[dict]:
        """Removes a site; its assets stay, without a site."""
        with self.lock:
            number = parse_id(site_id)
            site = self.sites.pop(number, None) if number is not None else None
            if site is None:
                return None
            del self._site_by_remote[site["remoteId"]]
            for asset in self.assets.values():
                if asset["siteId"] == number:
                    asset["siteId"] = None
            self._changed()
            return site

    def reset(self) -> None:
        with self.lock:
            listeners = self._change_listeners
            self._clear()
            self._change_listeners = listeners
            self._changed()

    # ----- views for the admin API -------------------------------------------------------------

    def asset_view(self, asset: dict) -> dict:
        with self.lock:
            view = {key: value for key, value in asset.items() if key not in ("adapterName",)}
            view["id"] = str(asset["id"])
            view["adapterConfiguration"] = (
                None if asset["adapterName"] is None else {"name": asset["adapterName"]}
            )
            view["siteId"] = _id_text(asset["siteId"])
            view["parentId"] = _id_text(asset["parentId"])
            view["childIds"] = [str(child["id"]) for child in self.children_of(asset["id"])]
            return view

    def site_view(self, site: dict) -> dict:
        with self.lock:
            view = dict(site)
            view["id"] = str(site["id"])
            view["assetIds"] = [str(asset["id"]) for asset in self.assets_of_site(site["id"])]
            return view

    def filter_points(self, asset_id: Optional[str] = None, metric: Optional[str] = None) -> list:
        with self.lock:
            return [
                dict(point)
                for point in self.points.values()
                if (asset_id is None or point["assetId"] == asset_id)
                and (metric is None or point["metric"] == metric)
            ]

    def counts(self) -> dict:
        with self.lock:
            by_type = {name: 0 for name in ASSET_TYPES}
            for asset in self.assets.values():
                by_type[asset["assetType"]] += 1
            return {
                "sites": len(self.sites),
                "assets": len(self.assets),
                "assetsByType": by_type,
                "pointsStored": len(self.points),
                "pointsByMetric": dict(sorted(self.points_by_metric.items())),
                "remoteStateChanges": len(self.history),
            }

    # ----- persistence -------------------------------------------------------------------------

    def to_json(self) -> dict:
        with self.lock:
            return {
                "format": STATE_FORMAT_VERSION,
                "nextId": self.next_id,
                "sites": [dict(self.sites[key]) for key in sorted(self.sites)],
                "assets": [dict(self.assets[key]) for key in sorted(self.assets)],
                "points": [dict(point) for point in self.points.values()],
                "history": [dict(entry) for entry in self.history],
            }

    def load_json(self, data: dict) -> None:
        """Replaces the state with a `to_json()` document. Raises ValueError when it is not one."""
        if not isinstance(data, dict) or data.get("format") != STATE_FORMAT_VERSION:
            raise ValueError(f"not a concerto-sim state document of format {STATE_FORMAT_VERSION}")
        with self.lock:
            listeners = self._change_listeners
            self._clear()
            self._change_listeners = listeners
            try:
                self._load_records(data)
            except (KeyError, TypeError, ValueError) as error:
                self._clear()
                self._change_listeners = listeners
                raise ValueError(f"malformed state document: {error!r}") from None
            self._version += 1

    def _load_records(self, data: dict) -> None:
        for site in data["sites"]:
            site = dict(site)
            site["id"] = int(site["id"])
            self.sites[site["id"]] = site
            self._site_by_remote[site["remoteId"]] = site["id"]
        for asset in data["assets"]:
            asset = dict(asset)
            asset["id"] = int(asset["id"])
            if asset["assetType"] not in ASSET_TYPES:
                raise ValueError(f"asset {asset['id']} has unknown assetType {asset['assetType']!r}")
            self.assets[asset["id"]] = asset
            self._asset_by_remote[(asset["assetType"], asset["remoteId"])] = asset["id"]
        for point in data["points"]:
            point = dict(point)
            key = (int(point["assetId"]), point["metric"], point["timestamp"])
            if key not in self.points:
                self.points_by_metric[point["metric"]] = self.points_by_metric.get(point["metric"], 0) + 1
            self.points[key] = point
        self.history = [dict(entry) for entry in data["history"]]
        highest = max([0, *self.sites, *self.assets])
        self.next_id = max(int(data["nextId"]), highest + 1)

    # ----- helpers -----------------------------------------------------------------------------

    def _asset_or_not_found(self, asset_id) -> dict:
        number = parse_id(asset_id)
        asset = self.assets.get(number) if number is not None else None
        if asset is None:
            raise ApiError(errors.NOT_FOUND, f"no asset with id '{asset_id}'")
        return asset

    def _existing_site_id(self, site_id) -> Optional[int]:
        if site_id is None:
            return None
        number = parse_id(site_id)
        if number is None or number not in self.sites:
            raise ApiError(errors.NOT_FOUND, f"no site with id '{site_id}'")
        return number

    def _existing_asset_id(self, asset_id, field: str) -> Optional[int]:
        if asset_id is None:
            return None
        number = parse_id(asset_id)
        if number is None or number not in self.assets:
            raise ApiError(errors.NOT_FOUND, f"{field}: no asset with id '{asset_id}'")
        return number

