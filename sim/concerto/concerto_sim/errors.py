"""Error codes from concerto-api.md and the exception resolvers raise to produce one."""

UNAUTHENTICATED = "UNAUTHENTICATED"
FORBIDDEN = "FORBIDDEN"
NOT_FOUND = "NOT_FOUND"
CONFLICT = "CONFLICT"
BAD_USER_INPUT = "BAD_USER_INPUT"
GRAPHQL_VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
RATE_LIMITED = "RATE_LIMITED"
INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"

ALL_CODES = frozenset(
    {
        UNAUTHENTICATED,
        FORBIDDEN,
        NOT_FOUND,
        CONFLICT,
        BAD_USER_INPUT,
        GRAPHQL_VALIDATION_FAILED,
        RATE_LIMITED,
        INTERNAL_SERVER_ERROR,
    }
)


class ApiError(Exception):
    """A failure the client is told about, with its `extensions.code`.

    graphql-core copies `extensions` from the original exception into the located error, so
    raising this from a resolver yields `{"message", "path", "extensions": {"code"}}`.
    """

    def __init__(self, code: str, message: str):
        assert code in ALL_CODES, code
        super().__init__(message)
        self.code = code
        self.message = message
        self.extensions = {"code": code}


def error_body(code: str, message: str, with_data: bool = True) -> dict:
    """The JSON body of an error answered outside resolvers. GraphQL-level failures (HTTP 200)
    carry `"data": null`; transport-level ones (401, 429, 5xx) carry only `errors`."""
    body = {"errors": [{"message": message, "extensions": {"code": code}}]}
    if with_data:
        body["data"] = None
    return body
