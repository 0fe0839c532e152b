#!/usr/bin/env python3
"""A bounded Schemathesis fuzz run over POST /graphql, on SQLite and (given a URL) PostgreSQL.

    python3 tests/fuzz/graphql.py <stockroom binary> [postgres://USER@HOST:PORT]

For each backend it starts the real binary in open mode (every caller is an admin, so every
query and mutation runs) on a fresh database: a new SQLite file in a temporary folder, or a new
PostgreSQL database `stockroom_test_fuzz_<time>_<pid>` on the given server (dropped at the end).
It seeds a few products, movements and reservations so that generated documents can name things
that exist, then runs Schemathesis (GraphQL schema by introspection, every query and mutation
root field, positive and negative documents) against `http://ADDR/graphql`. Both backends run at
the same time: the generator is single-threaded Python, so one run per core is what uses them.

A backend fails when:
- any response has a 5xx status (Schemathesis' `not_a_server_error`);
- any GraphQL error is `INTERNAL` (or `UNAVAILABLE`, `TIMEOUT`, or lacks a documented code:
  the `no_internal_error` check in hooks.py);
- a request gets no answer within REQUEST_TIMEOUT seconds, or the whole run does not finish
  within STOCKROOM_FUZZ_DEADLINE seconds (a hang);
- the server exits during the run, or does not exit cleanly within STOP_TIMEOUT seconds of
  SIGTERM;
- `stockroom verify` on the database afterwards finds a discrepancy (stock against the ledger,
  reserved units against active reservations);
- fewer than STOCKROOM_FUZZ_MIN_REQUESTS requests were sent (default 20,000).

It prints "<backend>: N requests, S server errors, I INTERNAL" per backend, and for a failure
the requests and responses that caused it (Schemathesis' own report, with a curl line for each,
and the hooks' samples), and the server's WARN/ERROR log lines. Exit status 0 only when every
backend passed.

Environment:
- STOCKROOM_FUZZ_EXAMPLES: Schemathesis' --max-examples, per root field (default: enough for
  5% more than STOCKROOM_FUZZ_MIN_REQUESTS over the schema's query and mutation root fields,
  counted by introspection, so the run's length follows the minimum, not the schema's size).
- STOCKROOM_FUZZ_MIN_REQUESTS: the fewest requests a backend must have sent (default 20,000).
- STOCKROOM_FUZZ_WORKERS: Schemathesis' --workers per backend (default 1: its workers are
  threads sharing one interpreter, so more only add contention).
- STOCKROOM_FUZZ_DEADLINE: seconds the whole run may take before it counts as a hang (900; a
  run of both backends at once on two cores sends about 40 requests a second each).
- STOCKROOM_TEST_SEED: the generator's seed (printed on every run; set it to replay one).
- STOCKROOM_FUZZ_REPORTS: a folder for Schemathesis' JUnit and NDJSON reports (none if unset).
- TEST_LOG=1: print the server's whole log.
- STOCKROOM_FUZZ_KEEP=1: keep the temporary folder (logs, Schemathesis output, SQLite file).

Requires the packages in tests/fuzz/requirements.txt and, for PostgreSQL, `psql`. This file
imports nothing but the standard library (its name would shadow graphql-core's `graphql`).
"""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
HOOKS = HERE / "hooks.py"

EXAMPLES = int(os.environ.get("STOCKROOM_FUZZ_EXAMPLES", "0"))  # 0: derived from the schema
WORKERS = int(os.environ.get("STOCKROOM_FUZZ_WORKERS", "1"))
MIN_REQUESTS = int(os.environ.get("STOCKROOM_FUZZ_MIN_REQUESTS", "20000"))
DEADLINE = float(os.environ.get("STOCKROOM_FUZZ_DEADLINE", "900"))
REQUEST_TIMEOUT = 10  # seconds without an answer that count as a hang
START_TIMEOUT = 60
STOP_TIMEOUT = 30
VERIFY_TIMEOUT = 120


def log(message):
    print(message, flush=True)


def graphql_request(address, query, variables=None):
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(
        f"http://{address}/graphql",
        data=body,
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as response:
        payload = json.load(response)
    if payload.get("errors"):
        raise RuntimeError(f"seeding failed: {query} {variables} -> {payload['errors']}")
    return payload["data"]


def psql(base_url, statement):
    if shutil.which("psql") is None:
        raise RuntimeError("psql is not installed; it is needed to create the PostgreSQL database")
    subprocess.run(
        ["psql", f"{base_url}/postgres", "-v", "ON_ERROR_STOP=1", "-qc", statement],
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=60,
    )


class Backend:
    def __init__(self, name, binary, folder, database_url):
        self.name = name
        self.binary = binary
        self.folder = folder
        self.database_url = database_url
        self.server = None
        self.address = None
        self.server_log = folder / "server.log"
        self.fuzz_log = folder / "schemathesis.log"
        self.stats_file = folder / "stats.json"
        self.config_file = folder / "schemathesis.toml"
        self.fuzzer = None
        self.failures = []
        self.stats = None
        self.elapsed = None
        self.verify_output = ""

    # --- the server -------------------------------------------------------------------------

    def start(self):
        self.server = subprocess.Popen(
            [
                self.binary,
                "serve",
                "--database-url",
                self.database_url,
                "--listen",
                "127.0.0.1:0",
                "--log-format",
                "json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        found = threading.Event()

        def drain():
            with open(self.server_log, "w", encoding="utf-8") as out:
                for line in self.server.stdout:
                    out.write(line)
                    out.flush()
                    if not found.is_set():
                        try:
                            entry = json.loads(line)
                        except ValueError:
                            continue
                        if isinstance(entry, dict) and entry.get("address"):
                            self.address = entry["address"]
                            found.set()

        threading.Thread(target=drain, daemon=True).start()
        started = time.monotonic()
        while not found.wait(0.1):
            if self.server.poll() is not None:
                raise RuntimeError(f"{self.name}: the server exited ({self.server.returncode}) before listening")
            if time.monotonic() - started > START_TIMEOUT:
                raise RuntimeError(f"{self.name}: the server did not listen within {START_TIMEOUT} s")

    def stop(self):
        if self.server is None or self.server.poll() is not None:
            if self.server is not None:
                self.failures.append(f"the server exited during the run (status {self.server.returncode})")
            return
        self.server.send_signal(signal.SIGTERM)
        try:
            status = self.server.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.failures.append(f"the server did not stop within {STOP_TIMEOUT} s of SIGTERM")
            self.server.kill()
            self.server.wait()
            return
        if status != 0:
            self.failures.append(f"the server exited with status {status} on SIGTERM")

    def verify(self):
        try:
            result = subprocess.run(
                [self.binary, "verify", "--database-url", self.database_url],
                capture_output=True,
                text=True,
                timeout=VERIFY_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            self.failures.append(f"`stockroom verify` did not finish within {VERIFY_TIMEOUT} s")
            return
        output = (result.stdout + result.stderr).strip()
        if result.returncode != 0:
            self.failures.append(f"`stockroom verify` exited {result.returncode}:\n{output}")
        else:
            self.verify_output = output

    # --- data for the generator to name -----------------------------------------------------

    def seed(self):
        """A few products (one deleted), movements, reservations in every status, and cursors.

        Their ids, SKUs and cursors become Schemathesis dictionaries, so that generated documents
        reach the business rules (stock changes, conflicts, reservations, idempotency replays)
        instead of stopping at "not a valid id".
        """
        create = """mutation($input: CreateProductInput!) { createProduct(input: $input) { id sku } }"""
        specs = [
            ("Fuzz widget", "FUZZ-A", 0, 0),
            ("Fuzz gadget", "FUZZ-B", 1, 2),
            ("Fuzz sprocket", "fuzz-c", 5, 10),
            ("Fuzz gizmo", "FUZZ-D", 20, 5),
            ("Fuzz bolt", "FUZZ-E", 100, 0),
            ("Fuzz nut", "FUZZ-F", 1000, 100),
            ("Fuzz crate", "FUZZ-G", 2147483000, 0),
            ("Fuzz relic", "FUZZ-H", 50, 10),
        ]
        products = []
        for name, sku, stock, reorder in specs:
            data = graphql_request(
                self.address,
                create,
                {"input": {"name": name, "sku": sku, "stock": stock, "reorderLevel": reorder}},
            )
            products.append(data["createProduct"])
        ids = [product["id"] for product in products]
        movements = []
        for index, (mutation, quantity) in enumerate(
            [("addStock", 3), ("reduceStock", 2), ("addStock", 7), ("reduceStock", 1)]
        ):
            data = graphql_request(
                self.address,
                f"mutation($id: ID!, $q: Int!, $key: String) {{ {mutation}(id: $id, quantity: $q, "
                f'reason: "seed", idempotencyKey: $key) {{ movement {{ id }} }} }}',
                {"id": ids[3 + index % 3], "q": quantity, "key": f"seed-{index}"},
            )
            movements.append(data[mutation]["movement"]["id"])
        reserve = """mutation($id: ID!, $q: Int!, $ttl: Int) {
            reserveStock(productId: $id, quantity: $q, ttlSeconds: $ttl, reference: "seed") { id } }"""
        reservations = []
        for product, quantity, ttl in [(3, 2, 3600), (4, 5, 3600), (5, 1, 1), (5, 1, 3600), (4, 1, 3600)]:
            data = graphql_request(self.address, reserve, {"id": ids[product], "q": quantity, "ttl": ttl})
            reservations.append(data["reserveStock"]["id"])
        graphql_request(self.address, "mutation($id: ID!) { commitReservation(id: $id) { id } }", {"id": reservations[3]})
        graphql_request(self.address, "mutation($id: ID!) { releaseReservation(id: $id) { id } }", {"id": reservations[4]})
        graphql_request(self.address, "mutation($id: ID!) { deleteProduct(id: $id) { id } }", {"id": ids[7]})
        pages = graphql_request(
            self.address,
            """{ products(first: 3) { pageInfo { startCursor endCursor } }
                 stockMovements(first: 3) { pageInfo { startCursor endCursor } } }""",
        )
        cursors = [
            cursor
            for connection in pages.values()
            for cursor in connection["pageInfo"].values()
            if cursor is not None
        ]
        missing = str(uuid.uuid4())  # well-formed, names nothing
        skus = [product["sku"] for product in products]
        dictionaries = {
            "product_ids": ids + [missing],
            "reservation_ids": reservations + [missing],
            "node_ids": ids + reservations + movements + [missing],
            "skus": skus + [sku.swapcase() for sku in skus],
            "searches": ["fuzz", "WIDGET", "fuzz-", "%", "_"],
            "cursors": cursors,
            "quantities": [1, 2, 3, 7, 50, 1000, 2147483647],
            "page_sizes": [0, 1, 2, 5, 100, 101],
            "versions": [1, 2, 3, 4, 5],
            "ttls": [1, 2, 5, 600],
            "keys": ["fuzz-key-1", "fuzz-key-2", "fuzz-key-3", "seed-0", "seed-1"],
        }
        bindings = {
            "Query.product.id": ("product_ids", 0.8),
            "Query.productStatus.id": ("product_ids", 0.8),
            "Query.productBySku.sku": ("skus", 0.8),
            "Query.products.search": ("searches", 0.5),
            "Query.stockMovements.productId": ("product_ids", 0.8),
            "Query.reservation.id": ("reservation_ids", 0.8),
            "Query.node.id": ("node_ids", 0.8),
            "Query.nodes.ids": ("node_ids", 0.8),
            "*.*.after": ("cursors", 0.4),
            "*.*.before": ("cursors", 0.4),
            "*.*.first": ("page_sizes", 0.6),
            "*.*.last": ("page_sizes", 0.6),
            "Mutation.createProduct.input.sku": ("skus", 0.3),
            "Mutation.updateProduct.id": ("product_ids", 0.8),
            "Mutation.updateProduct.input.sku": ("skus", 0.3),
            "Mutation.updateProduct.expectedVersion": ("versions", 0.6),
            "Mutation.deleteProduct.id": ("product_ids", 0.8),
            "Mutation.deleteProduct.expectedVersion": ("versions", 0.6),
            "Mutation.restoreProduct.id": ("product_ids", 0.8),
            "Mutation.addStock.id": ("product_ids", 0.8),
            "Mutation.addStock.quantity": ("quantities", 0.6),
            "Mutation.addStock.idempotencyKey": ("keys", 0.5),
            "Mutation.reduceStock.id": ("product_ids", 0.8),
            "Mutation.reduceStock.quantity": ("quantities", 0.6),
            "Mutation.reduceStock.idempotencyKey": ("keys", 0.5),
            "Mutation.reserveStock.productId": ("product_ids", 0.8),
            "Mutation.reserveStock.quantity": ("quantities", 0.6),
            "Mutation.reserveStock.ttlSeconds": ("ttls", 0.6),
            "Mutation.reserveStock.idempotencyKey": ("keys", 0.5),
            "Mutation.commitReservation.id": ("reservation_ids", 0.8),
            "Mutation.commitReservation.idempotencyKey": ("keys", 0.5),
            "Mutation.releaseReservation.id": ("reservation_ids", 0.8),
            "Mutation.releaseReservation.idempotencyKey": ("keys", 0.5),
        }
        lines = []
        for name, values in dictionaries.items():
            lines.append(f"[dictionaries.{name}]")
            lines.append(f"values = {json.dumps(values)}")
            lines.append("")
        lines.append("[parameters]")
        for key, (dictionary, probability) in bindings.items():
            lines.append(f'"{key}" = {{ dictionary = "{dictionary}", probability = {probability} }}')
        self.config_file.write_text("\n".join(lines) + "\n", encoding="utf-8")

    # --- the fuzzer -------------------------------------------------------------------------

    def root_field_count(self):
        """How many query and mutation root fields the schema has (what Schemathesis fuzzes)."""
        answer = graphql_request(
            self.address,
            "{ __schema { queryType { fields { name } } mutationType { fields { name } } } }",
        )
        schema = answer["__schema"]
        return sum(len((schema.get(root) or {}).get("fields") or []) for root in ("queryType", "mutationType"))

    def start_fuzzer(self, seed, examples):
        schemathesis = shutil.which("schemathesis")
        if schemathesis is None:
            raise RuntimeError("schemathesis is not installed: pip install -r tests/fuzz/requirements.txt")
        command = [
            schemathesis,
            "--config-file",
            str(self.config_file),
            "run",
            f"http://{self.address}/graphql",
            "--checks",
            "not_a_server_error,no_internal_error",
            "--phases",
            "fuzzing",
            "--max-examples",
            str(examples),
            "--seed",
            str(seed),
            "--workers",
            str(WORKERS),
            "--continue-on-failure",
            "--no-shrink",
            "--request-timeout",
            str(REQUEST_TIMEOUT),
            "--generation-database",
            "none",
            "--suppress-health-check",
            "all",
            "--no-color",
        ]
        reports = os.environ.get("STOCKROOM_FUZZ_REPORTS")
        if reports:
            folder = Path(reports).resolve() / self.name.lower()
            folder.mkdir(parents=True, exist_ok=True)
            command += ["--report", "junit,ndjson", "--report-dir", str(folder)]
        environment = dict(os.environ)
        environment["SCHEMATHESIS_HOOKS"] = str(HOOKS)
        environment["STOCKROOM_FUZZ_STATS"] = str(self.stats_file)
        self.started_at = time.monotonic()
        self.fuzz_output = open(self.fuzz_log, "w", encoding="utf-8")
        self.fuzzer = subprocess.Popen(
            command,
            stdout=self.fuzz_output,
            stderr=subprocess.STDOUT,
            env=environment,
            cwd=self.folder,
            start_new_session=True,
        )

    def wait_fuzzer(self, deadline):
        try:
            self.fuzzer.wait(max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.failures.append(
                f"hang: the run did not finish within {DEADLINE:.0f} s (STOCKROOM_FUZZ_DEADLINE)"
            )
            os.killpg(self.fuzzer.pid, signal.SIGKILL)
            self.fuzzer.wait()
        self.elapsed = time.monotonic() - self.started_at
        self.fuzz_output.close()
        if self.fuzzer.returncode not in (0, -signal.SIGKILL):
            self.failures.append(f"Schemathesis reported failures (exit status {self.fuzzer.returncode})")
        if self.stats_file.exists():
            self.stats = json.loads(self.stats_file.read_text(encoding="utf-8"))
        else:
            self.failures.append("Schemathesis wrote no request counts (did the hooks load?)")

    # --- the verdict ------------------------------------------------------------------------

    def judge(self):
        stats = self.stats or {}
        requests = stats.get("requests", 0)
        if stats.get("server_errors"):
            self.failures.append(f"{stats['server_errors']} responses with a 5xx status")
        if stats.get("internal"):
            self.failures.append(f"{stats['internal']} responses with an INTERNAL error")
        if stats.get("bad_codes", 0) > stats.get("internal", 0):
            self.failures.append(
                f"{stats['bad_codes']} responses with an error code no fuzzed request should get"
            )
        if stats.get("network_errors"):
            self.failures.append(
                f"{stats['network_errors']} requests got no answer within {REQUEST_TIMEOUT} s"
                " or lost their connection"
            )
        if requests < MIN_REQUESTS:
            self.failures.append(f"only {requests} requests were sent; at least {MIN_REQUESTS} are required")

    def report(self):
        stats = self.stats or {}
        elapsed = f"{self.elapsed:.0f} s" if self.elapsed else "?"
        rate = f", {stats.get('requests', 0) / self.elapsed:.0f}/s" if self.elapsed else ""
        log(
            f"{self.name}: {stats.get('requests', 0)} requests, {stats.get('server_errors', 0)} server errors, "
            f"{stats.get('internal', 0)} INTERNAL ({elapsed}{rate})"
        )
        if self.verify_output:
            log(f"{self.name}: stockroom verify: {self.verify_output}")
        if not self.failures:
            return
        log(f"\n===== {self.name}: Schemathesis output =====")
        log(self.fuzz_log.read_text(encoding="utf-8", errors="replace"))
        samples = stats.get("samples") or []
        if samples:
            log(f"===== {self.name}: offending requests (first {len(samples)}) =====")
            for sample in samples:
                log(json.dumps(sample, ensure_ascii=False, indent=1))
        log(f"===== {self.name}: server WARN/ERROR log lines =====")
        log(self.server_log_lines(only_problems=True))
        log(f"===== {self.name} FAILED =====")
        for failure in self.failures:
            log(f"- {failure}")

    def server_log_lines(self, only_problems):
        if not self.server_log.exists():
            return ""
        lines = self.server_log.read_text(encoding="utf-8", errors="replace").splitlines()
        if only_problems:
            lines = [line for line in lines if '"level":"WARN"' in line or '"level":"ERROR"' in line]
        return "\n".join(lines[-200:])


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    binary = str(Path(sys.argv[1]).resolve())
    postgres = sys.argv[2].rstrip("/") if len(sys.argv) == 3 else None
    seed = int(os.environ.get("STOCKROOM_TEST_SEED") or random.SystemRandom().getrandbits(63))

    workspace = Path(tempfile.mkdtemp(prefix="stockroom-fuzz-"))
    backends = []
    database = None
    try:
        sqlite_folder = workspace / "sqlite"
        sqlite_folder.mkdir()
        backends.append(Backend("SQLite", binary, sqlite_folder, f"sqlite://{sqlite_folder / 'fuzz.db'}"))
        if postgres:
            database = f"stockroom_test_fuzz_{int(time.time())}_{os.getpid()}"
            psql(postgres, f'CREATE DATABASE "{database}"')
            postgres_folder = workspace / "postgres"
            postgres_folder.mkdir()
            backends.append(Backend("PostgreSQL", binary, postgres_folder, f"{postgres}/{database}"))

        started = time.monotonic()
        for backend in backends:
            backend.start()
            backend.seed()
        fields = backends[0].root_field_count()
        examples = EXAMPLES or -(-MIN_REQUESTS * 105 // 100 // fields)
        log(
            f"GraphQL fuzz: seed {seed} (STOCKROOM_TEST_SEED={seed} replays it), "
            f"{examples} examples for each of {fields} root fields"
        )
        for backend in backends:
            backend.start_fuzzer(seed, examples)
        deadline = started + DEADLINE
        for backend in backends:
            backend.wait_fuzzer(deadline)
        for backend in backends:
            backend.stop()
            backend.verify()
            backend.judge()
            if os.environ.get("TEST_LOG") == "1":
                log(f"===== {backend.name}: server log =====")
                log(backend.server_log.read_text(encoding="utf-8", errors="replace"))
        for backend in backends:
            backend.report()
        log(f"total {time.monotonic() - started:.0f} s")
    finally:
        for backend in backends:
            if backend.fuzzer is not None and backend.fuzzer.poll() is None:
                os.killpg(backend.fuzzer.pid, signal.SIGKILL)
            if backend.server is not None and backend.server.poll() is None:
                backend.server.kill()
                backend.server.wait()
        if database is not None:
            try:
                psql(postgres, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            except Exception as error:  # the database stays behind; CI drops stockroom_test_* anyway
                log(f"could not drop {database}: {error}")
        if os.environ.get("STOCKROOM_FUZZ_KEEP") == "1":
            log(f"kept the servers' logs, the Schemathesis output and the databases in {workspace}")
        else:
            shutil.rmtree(workspace, ignore_errors=True)

    failed = [backend.name for backend in backends if backend.failures]
    if failed:
        sys.exit(f"GraphQL fuzz FAILED on {', '.join(failed)}")
    log("GraphQL fuzz passed on " + ", ".join(backend.name for backend in backends))


if __name__ == "__main__":
    main()
