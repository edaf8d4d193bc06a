"""A stand-in for the Concerto DERMS GraphQL API (contracts/concerto.graphql + concerto-api.md).

Modules, from the inside out:
  errors      the error codes of the contract and the exception that carries one
  timefmt     the DateTime scalar's text form
  store       sites, assets, telemetry and remote-state history (thread-safe, JSON-serialisable)
  persistence the --state file: atomic, debounced saves and loading at start
  schema      the contract's schema with scalars and resolvers bound to a Store
  gate        what sits in front of GraphQL: tokens, the rate limiter, injected faults, statistics
  server      the Flask app (POST /graphql and /admin/*) and an embeddable HTTP server
  cli         the concerto-sim command line
"""

__version__ = "0.1.0"
