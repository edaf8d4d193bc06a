"""contracts/concerto.graphql made executable: its custom scalars and resolvers over a Store.

The schema text is the contract itself, loaded at start (never a copy), so a change to the
contract changes what the simulator accepts.
"""

import hmac
import os
from dataclasses import dataclass
from typing import Optional

from graphql import (
    GraphQLError,
    GraphQLSchema,
    IntValueNode,
    StringValueNode,
    assert_valid_schema,
    build_schema,
)

from . import errors
from .errors import ApiError
from .gate import Stats, TokenStore
from .store import Store
from .timefmt import canonical, format_datetime, format_epoch

SCHEMA_ENV = "CONCERTO_SIM_SCHEMA"
_MAX_INT = 2**31 - 1


def default_schema_path() -> str:
    """$CONCERTO_SIM_SCHEMA, else contracts/concerto.graphql of the source tree this package is in."""
    override = os.environ.get(SCHEMA_ENV)
    if override:
        return override
    package_dir = os.path.dirname(os.path.abspath(__file__))  # <root>/sim/concerto/concerto_sim
    return os.path.normpath(os.path.join(package_dir, "..", "..", "..", "contracts", "concerto.graphql"))


@dataclass
class RequestContext:
    """What resolvers need; one per request."""

    store: Store
    tokens: TokenStore
    stats: Stats
    email: str
    password: str


def load_schema(path: Optional[str] = None) -> GraphQLSchema:
    """Builds the executable schema. Raises OSError if the file is missing and GraphQLError /
    TypeError if it is not a valid schema."""
    with open(path or default_schema_path(), encoding="utf-8") as handle:
        schema = build_schema(handle.read())
    _bind_scalars(schema)
    _bind_resolvers(schema)
    assert_valid_schema(schema)
    return schema


# ----- scalars ---------------------------------------------------------------------------------


def _serialize_datetime(value):
    if hasattr(value, "astimezone"):
        return format_datetime(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return format_epoch(value)
    return canonical(value)


def _parse_datetime_literal(node, _variables=None):
    if not isinstance(node, StringValueNode):
        raise TypeError("DateTime is written as a string, e.g. \"2026-11-22T10:15:00Z\"")
    return canonical(node.value)


def _parse_pos_integer(value):
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"PosInteger must be an integer >= 1, got {value!r}")
    if not 1 <= value <= _MAX_INT:
        raise ValueError(f"PosInteger must be an integer >= 1, got {value}")
    return value


def _parse_pos_integer_literal(node, _variables=None):
    if not isinstance(node, IntValueNode):
        raise TypeError("PosInteger must be an integer >= 1")
    return _parse_pos_integer(int(node.value))


def _bind_scalars(schema: GraphQLSchema) -> None:
    date_time = schema.type_map["DateTime"]
    date_time.serialize = _serialize_datetime
    date_time.parse_value = canonical  # inputs are kept in canonical text form
    date_time.parse_literal = _parse_datetime_literal
    pos_integer = schema.type_map["PosInteger"]
    pos_integer.serialize = _parse_pos_integer
    pos_integer.parse_value = _parse_pos_integer
    pos_integer.parse_literal = _parse_pos_integer_literal


# ----- resolvers -------------------------------------------------------------------------------

_ALL_ASSETS = object()  # the AssetCollection value; its fields read the store


def _store(info) -> Store:
    return info.context.store


def _authenticate(_root, info, input):
    context: RequestContext = info.context
    email_ok = hmac.compare_digest(input["email"].encode(), context.email.encode())
    password_ok = hmac.compare_digest(input["password"].encode(), context.password.encode())
    if not (email_ok and password_ok):
        raise ApiError(errors.UNAUTHENTICATED, "wrong email or password")
    token, expires_at = context.tokens.issue()
    context.stats.add("tokens_issued")
    return {"accessToken": token, "expiresAt": format_epoch(expires_at)}


def _ingest(_root, info, input):
    result = _store(info).ingest(input["points"])
    info.context.stats.add("duplicates", result["duplicates"])
    info.context.stats.add("rejected_points", len(result["rejected"]))
    return result


def _bind_resolvers(schema: GraphQLSchema) -> None:
    def bind(type_name: str, field_name: str, resolver) -> None:
        schema.type_map[type_name].fields[field_name].resolve = resolver

    bind("Query", "allAssets", lambda _root, _info: _ALL_ASSETS)
    bind("Query", "asset", lambda _root, info, id: _store(info).get_asset(id))
    bind(
        "Query",
        "assetByRemoteId",
        lambda _root, info, assetType, remoteId: _store(info).asset_by_remote_id(assetType, remoteId),
    )
    bind("Query", "site", lambda _root, info, id: _store(info).get_site(id))
    bind("Query", "siteByRemoteId", lambda _root, info, remoteId: _store(info).site_by_remote_id(remoteId))

    bind("AssetCollection", "totalCount", lambda _root, info: len(_store(info).assets))
    bind(
        "AssetCollection",
        "data",
        lambda _root, info, currentPage, perPage: {"assets": _store(info).asset_page(currentPage, perPage)},
    )

    bind(
        "Asset",
        "adapterConfiguration",
        lambda asset, _info: None if asset["adapterName"] is None else {"name": asset["adapterName"]},
    )
    bind("Asset", "site", lambda asset, info: _store(info).sites.get(asset["siteId"]))
    bind("Asset", "parent", lambda asset, info: _store(info).assets.get(asset["parentId"]))
    bind("Asset", "children", lambda asset, info: _store(info).children_of(asset["id"]))
    bind("Site", "assets", lambda site, info: _store(info).assets_of_site(site["id"]))

    bind("Mutation", "authenticate", _authenticate)
    bind("Mutation", "createSite", lambda _root, info, input: _store(info).create_site(input))
    bind("Mutation", "createAsset", lambda _root, info, input: _store(info).create_asset(input))
    bind("Mutation", "updateAsset", lambda _root, info, input: _store(info).update_asset(input))
    bind(
        "Mutation",
        "updateAssetRemoteState",
        lambda _root, info, input: _store(info).set_remote_state(
            "asset", input["id"], input["remoteState"], input.get("reason")
        ),
    )
    bind(
        "Mutation",
        "updateSiteRemoteState",
        lambda _root, info, input: _store(info).set_remote_state(
            "site", input["id"], input["remoteState"], input.get("reason")
        ),
    )
    bind("Mutation", "ingestTelemetry", _ingest)


def error_code(error: GraphQLError) -> Optional[str]:
    extensions = error.extensions or {}
    return extensions.get("code")
