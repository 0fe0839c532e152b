# Schemathesis hooks for the GraphQL fuzz run (loaded through SCHEMATHESIS_HOOKS by graphql.py).
#
# What they add to Schemathesis' own `not_a_server_error` check:
#
# - `no_internal_error`, a check that fails on any GraphQL error whose `extensions.code` is
#   `INTERNAL`, `UNAVAILABLE` or `TIMEOUT`, or is missing or not one of the codes README.md
#   documents (every error must carry one), at any position of the response, batches included.
# - A `filter_failure` hook: Schemathesis calls every GraphQL error that has a `path` and no
#   Apollo-style client code a "server error" (ST113). The documented business outcomes
#   (`NOT_FOUND`, `INSUFFICIENT_STOCK`, `VERSION_CONFLICT`, ...) are answers to the caller's
#   input, not server faults, so a ST113 whose errors all carry one of those codes is dropped.
#   Anything else (an INTERNAL error, an unknown code, a 5xx status) still fails the run.
# - Counters, written as JSON to the file named by STOCKROOM_FUZZ_STATS when the process exits:
#   every request sent (`after_call` plus `after_network_error`: a request that timed out was
#   sent too), the 5xx answers, the responses with an `INTERNAL` error, the network errors, and
#   the first few offending requests with their responses, so the runner can print them.
import atexit
import json
import os
import threading

import schemathesis
from schemathesis.graphql.checks import GraphQLServerError

# Codes that answer the caller's input (README.md, "Errors"); none of them is a server fault.
CALLER_CODES = frozenset(
    {
        "BAD_USER_INPUT",
        "GRAPHQL_PARSE_FAILED",
        "GRAPHQL_VALIDATION_FAILED",
        "NOT_FOUND",
        "SKU_CONFLICT",
        "INSUFFICIENT_STOCK",
        "VERSION_CONFLICT",
        "STOCK_LIMIT_EXCEEDED",
        "IDEMPOTENCY_KEY_REUSED",
        "RESERVATION_NOT_ACTIVE",
        "UNAUTHENTICATED",
        "FORBIDDEN",
    }
)
# Documented codes that mean the server could not serve a request. The fuzz load is light and
# every request is small, so none of them should ever appear.
SERVER_CODES = frozenset({"INTERNAL", "UNAVAILABLE", "TIMEOUT"})
# Subscriptions only; never over POST /graphql.
OTHER_CODES = frozenset({"SUBSCRIPTION_INTERRUPTED"})

KEEP_SAMPLES = 20

_lock = threading.Lock()
_stats = {
    "requests": 0,
    "server_errors": 0,
    "internal": 0,
    "bad_codes": 0,
    "network_errors": 0,
    "samples": [],
}


def _errors_of(response):
    """Every GraphQL error object in the response body (a batch is a list of responses)."""
    try:
        payload = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return None
    bodies = payload if isinstance(payload, list) else [payload]
    errors = []
    for body in bodies:
        if isinstance(body, dict) and isinstance(body.get("errors"), list):
            errors.extend(body["errors"])
    return errors


def _code_of(error):
    extensions = error.get("extensions") if isinstance(error, dict) else None
    code = extensions.get("code") if isinstance(extensions, dict) else None
    return code if isinstance(code, str) else None


def _bad_codes(errors):
    """The codes (None for a missing one) that no fuzzed request should ever be answered with."""
    bad = []
    for error in errors:
        code = _code_of(error)
        if code is None or code in SERVER_CODES or code not in CALLER_CODES | OTHER_CODES:
            bad.append(code)
    return bad


def _request_body(case):
    """The JSON body Schemathesis sent: GraphQL documents go without variables."""
    return {"query": case.body}


_sampled = set()


def _sample(kind, case, response=None, detail=None):
    """Keep the request (and response) of a problem; Hypothesis may send the same one again."""
    key = (kind, case.body if isinstance(case.body, str) else repr(case.body))
    if len(_stats["samples"]) >= KEEP_SAMPLES or key in _sampled:
        return
    _sampled.add(key)
    entry = {"kind": kind, "operation": case.operation.label, "request": _request_body(case)}
    if response is not None:
        entry["status"] = response.status_code
        entry["response"] = response.content[:4000].decode("utf-8", "replace")
    if detail is not None:
        entry["detail"] = detail
    _stats["samples"].append(entry)


@schemathesis.hook
def after_call(context, case, response):
    errors = _errors_of(response) or []
    internal = any(_code_of(error) == "INTERNAL" for error in errors)
    bad = _bad_codes(errors)
    with _lock:
        _stats["requests"] += 1
        if response.status_code >= 500:
            _stats["server_errors"] += 1
            _sample("5xx", case, response)
        if internal:
            _stats["internal"] += 1
        if bad and response.status_code < 500:
            _stats["bad_codes"] += 1
            _sample("error code", case, response, detail=bad)


@schemathesis.hook
def after_network_error(context, case, request):
    with _lock:
        _stats["requests"] += 1
        _stats["network_errors"] += 1
        _sample("network error (timeout or connection lost)", case)


@schemathesis.check
def no_internal_error(ctx, response, case):
    """Every GraphQL error carries a documented code that answers the caller, never INTERNAL."""
    errors = _errors_of(response)
    if errors is None:
        return None  # not JSON: `not_a_server_error` judges the status
    bad = _bad_codes(errors)
    if bad:
        shown = ", ".join("no code" if code is None else code for code in bad)
        raise AssertionError(f"GraphQL error with code {shown}: {response.content[:2000]!r}")
    return None


@schemathesis.hook
def filter_failure(context, failure, case, response):
    """Drop Schemathesis' ST113 when every error is a documented answer to the caller's input."""
    if not isinstance(failure, GraphQLServerError) or response is None:
        return True
    if response.status_code >= 500:
        return True
    errors = _errors_of(response)
    if not errors:
        return True
    return not all(_code_of(error) in CALLER_CODES for error in errors)


def _write_stats():
    path = os.environ.get("STOCKROOM_FUZZ_STATS")
    if not path:
        return
    with _lock, open(path, "w", encoding="utf-8") as file:
        json.dump(_stats, file, indent=1)


atexit.register(_write_stats)

