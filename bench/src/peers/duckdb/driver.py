"""The DuckDB peer's driver: sextant-bench starts it as `python3 driver.py` and talks to it
over standard input and output (see `bench/src/peers/duckdb/mod.rs`).

Requests are JSON objects, one a line, on standard input; a request with `ipc_bytes` is
followed by that many bytes (an Arrow IPC stream). Each gets one reply on standard
output: a JSON header line, then as many bytes as its `ipc_bytes` says (an Arrow IPC stream;
0 for replies without a table). A failure is a header `{"ok": false, "error": "..."}`;
the driver then waits for the next request. A request whose `ipc_bytes` is not a
non-negative integer leaves the driver unable to tell where the next request starts: it
replies with the error and exits. Nothing else is written to standard output.

  {"op": "hello"}
      -> {"ok": true, "duckdb": "2.0.1", "pyarrow": "...", "python": "..."}
  {"op": "load", "db": PATH, "parquet": PATH, "table": "cpu", "order": [COLUMN, ...],
   "enums": {COLUMN: [VALUE, ...]}, "time_type": "TIMESTAMP" | "TIMESTAMP_NS",
   "load_threads": N, "threads": M}
      -> {"ok": true, "rows": R, "secs": S, "reopen_secs": S2, "peak_rss_bytes": B,
          "peak_scope": "phase" | "process" | "unavailable"}
      Creates the database file PATH (removed first), bulk-loads the Parquet file into
      TABLE sorted by the ORDER columns (each ENUMS column as an ENUM of its values, in
      that order) with `load_threads` threads, checkpoints, closes, and reopens the file
      for the queries with `threads` threads. `secs` times all of it up to the reopening:
      connecting, creating the types and the table, counting its rows, the checkpoint and
      closing.
  {"op": "batches_begin", "db": PATH, "table": "cpu", "enums": {...}, "time_type": ...,
   "fsync_mode": "STANDARD" | "NONE", "threads": N}
      -> {"ok": true, "secs": S, "fsync_mode": MODE}
      Starts the load in batches (sextant-bench runs it in a driver of its own, before or
      without `load`): creates the database file PATH (removed first), connects with
      `threads` threads and DuckDB's `fsync_mode`, and creates the ENUM types. `secs` times
      all of it; `fsync_mode` is DuckDB's setting as applied (`current_setting`); the peak
      resident size is reset here.
  {"op": "insert", "ipc_bytes": N} and N bytes (an Arrow IPC stream of one batch)
      -> {"ok": true, "rows": R, "secs": S}
      Appends the batch to TABLE with one `INSERT INTO TABLE SELECT * REPLACE (...) FROM
      batch` in autocommit (one transaction, committed), `time` and the ENUM columns cast
      as `load` casts them; the first batch creates TABLE from its columns. `secs` times
      the statements (not reading the bytes); `rows` is the rows inserted.
  {"op": "batches_end"}
      -> {"ok": true, "rows": R, "secs": S, "peak_rss_bytes": B, "peak_scope": ...}
      Counts TABLE's rows, checkpoints and closes the database of the batches (closed
      even if the count or checkpoint fails); `secs` times all three, `peak_rss_bytes` is
      the peak since `batches_begin`.
  {"op": "query", "sql": SQL}
      -> {"ok": true, "secs": S, "rows": R, "ipc_bytes": N} and N bytes
      `secs` times running the statement and fetching its whole answer as an Arrow table.
  {"op": "quit"}
      -> no reply; the driver closes the database and exits.
"""

import json
import os
import sys
import time
import traceback

# The protocol owns standard output: it keeps a copy of the descriptor, and descriptor 1
# (where DuckDB's C++ or a library would print) and Python's `print` go to standard error.
PROTOCOL = os.fdopen(os.dup(1), "wb")
os.dup2(2, 1)
sys.stdout = sys.stderr

try:
    import duckdb
    import pyarrow
    import pyarrow.ipc
except ImportError as e:  # reported as the reply to `hello`, then exit
    duckdb = None
    IMPORT_ERROR = f"python3 ({sys.executable}) cannot import {e.name}: {e}"
else:
    IMPORT_ERROR = None


def reply(header, payload=b""):
    header = dict(header, ipc_bytes=len(payload))
    PROTOCOL.write(json.dumps(header).encode() + b"\n")
    PROTOCOL.write(payload)
    PROTOCOL.flush()


def quote_ident(name):
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text):
    return "'" + text.replace("'", "''") + "'"


def peak_reset():
    """Resets this process's peak resident size, as sextant-bench does for its own phases."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    except Exception:
        return None


class RequestError(Exception):
    """A request that lacks a field or holds a value the driver does not take."""


def field(request, name, expected, valid, default=None):
    """REQUEST's NAME, checked by VALID; a sentence naming the field and EXPECTED (the
    values it takes) if it is missing (without a DEFAULT) or not valid."""
    if name not in request:
        if default is not None:
            return default
        raise RequestError(f"the `{request.get('op')}` request has no `{name}`; expected {expected}")
    value = request[name]
    if not valid(value):
        raise RequestError(
            f"the `{request.get('op')}` request's `{name}` is {json.dumps(value)}; expected {expected}"
        )
    return value


def count(value):
    """Whether VALUE is a JSON integer of at least 1 (a bool is not one)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def text(value):
    return isinstance(value, str) and value != ""


TIME_TYPES = ("TIMESTAMP", "TIMESTAMP_NS")
FSYNC_MODES = ("STANDARD", "NONE")


def casts(con, request):
    """Creates REQUEST's ENUM types on CON; the `SELECT * REPLACE` list that casts `time`
    to the requested type and each ENUM column to its type."""
    time_type = field(
        request, "time_type", '"TIMESTAMP" or "TIMESTAMP_NS"', TIME_TYPES.__contains__, "TIMESTAMP"
    )
    replace = [f"CAST(time AS {time_type}) AS time"]
    for column, values in request.get("enums", {}).items():
        name = quote_ident(f"{column}_enum")
        labels = ", ".join(quote_literal(v) for v in values)
        con.execute(f"CREATE TYPE {name} AS ENUM ({labels})")
        replace.append(f"CAST({quote_ident(column)} AS {name}) AS {quote_ident(column)}")
    return ", ".join(replace)


class Peer:
    def __init__(self):
        self.con = None
        # The load in batches: its connection, table, casts and whether the table exists.
        self.batches = None

    def connect(self, path, threads):
        con = duckdb.connect(path)
        con.execute(f"SET threads = {int(threads)}")
        con.execute("SET enable_progress_bar = false")
        # Timestamps are stored as TIMESTAMP (UTC, no zone); literals read the same way.
        con.execute("SET TimeZone = 'UTC'")
        return con

    def hello(self, _request):
        return {
            "ok": True,
            "duckdb": duckdb.__version__,
            "pyarrow": pyarrow.__version__,
            "python": sys.version.split()[0],
        }, b""

    def load(self, request):
        path = field(request, "db", "the database file's path", text)
        threads = field(request, "threads", "a whole number of threads, at least 1", count)
        load_threads = field(
            request, "load_threads", "a whole number of threads, at least 1", count, threads
        )
        table = quote_ident(field(request, "table", "a table name", text))
        for p in (path, path + ".wal"):
            if os.path.exists(p):
                os.remove(p)
        order = ", ".join(quote_ident(c) for c in request["order"])
        reset = peak_reset()
        started = time.perf_counter()
        con = self.connect(path, load_threads)
        # The Parquet file's `time` is a UTC instant (TIMESTAMP WITH TIME ZONE to DuckDB);
        # it is kept as a plain TIMESTAMP (or TIMESTAMP_NS), as TimescaleDB's TSBS schema
        # does.
        replace = casts(con, request)
        con.execute(
            f"CREATE TABLE {table} AS SELECT * REPLACE ({replace}) "
            f"FROM read_parquet({quote_literal(request['parquet'])}) ORDER BY {order}"
        )
        rows = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        con.execute("CHECKPOINT")
        con.close()
        secs = time.perf_counter() - started
        peak = peak_rss()
        started = time.perf_counter()
        self.con = self.connect(path, threads)
        reopen_secs = time.perf_counter() - started
        scope = "unavailable" if peak is None else ("phase" if reset else "process")
        return {
            "ok": True,
            "rows": rows,
            "secs": secs,
            "reopen_secs": reopen_secs,
            "peak_rss_bytes": peak,
            "peak_scope": scope,
        }, b""

    def batches_begin(self, request):
        path = field(request, "db", "the database file's path", text)
        fsync_mode = field(
            request, "fsync_mode", '"STANDARD" or "NONE" (DuckDB\'s fsync_mode)', FSYNC_MODES.__contains__
        )
        threads = field(request, "threads", "a whole number of threads, at least 1", count)
        table = quote_ident(field(request, "table", "a table name", text))
        if self.batches is not None:
            raise RuntimeError("a load in batches is already under way")
        for p in (path, path + ".wal"):
            if os.path.exists(p):
                os.remove(p)
        reset = peak_reset()
        started = time.perf_counter()
        con = self.connect(path, threads)
        try:
            con.execute(f"SET fsync_mode = '{fsync_mode}'")
            applied = con.execute("SELECT current_setting('fsync_mode')").fetchall()[0][0]
            replace = casts(con, request)
        except BaseException:
            con.close()
            raise
        self.batches = {
            "con": con,
            "table": table,
            "casts": replace,
            "created": False,
            "reset": reset,
        }
        secs = time.perf_counter() - started
        return {"ok": True, "secs": secs, "fsync_mode": applied}, b""

    def insert(self, request, payload):
        if self.batches is None:
            raise RuntimeError("no load in batches: send `batches_begin` before `insert`")
        b = self.batches
        batch = pyarrow.ipc.open_stream(payload).read_all()
        con, table = b["con"], b["table"]
        started = time.perf_counter()
        con.register("batch", batch)
        try:
            if not b["created"]:
                con.execute(
                    f"CREATE TABLE {table} AS SELECT * REPLACE ({b['casts']}) FROM batch LIMIT 0"
                )
                b["created"] = True
            con.execute(f"INSERT INTO {table} SELECT * REPLACE ({b['casts']}) FROM batch")
        finally:
            con.unregister("batch")
        secs = time.perf_counter() - started
        return {"ok": True, "rows": batch.num_rows, "secs": secs}, b""

    def batches_end(self, _request):
        if self.batches is None:
            raise RuntimeError("no load in batches: send `batches_begin` before `batches_end`")
        b, self.batches = self.batches, None
        con = b["con"]
        started = time.perf_counter()
        rows = 0
        try:
            if b["created"]:
                rows = con.execute(f"SELECT count(*) FROM {b['table']}").fetchone()[0]
            con.execute("CHECKPOINT")
        finally:
            con.close()
        secs = time.perf_counter() - started
        peak = peak_rss()
        scope = "unavailable" if peak is None else ("phase" if b["reset"] else "process")
        return {
            "ok": True,
            "rows": rows,
            "secs": secs,
            "peak_rss_bytes": peak,
            "peak_scope": scope,
        }, b""

    def query(self, request):
        if self.con is None:
            raise RuntimeError("no database is loaded: send `load` before `query`")
        started = time.perf_counter()
        answer = self.con.sql(request["sql"]).to_arrow_table()
        secs = time.perf_counter() - started
        sink = pyarrow.BufferOutputStream()
        with pyarrow.ipc.new_stream(sink, answer.schema) as writer:
            writer.write_table(answer)
        return {"ok": True, "secs": secs, "rows": answer.num_rows}, sink.getvalue().to_pybytes()


def main():
    peer = Peer()
    status = 0
    for line in sys.stdin.buffer:
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise RequestError(f"a request is a JSON object, not {line[:200]!r}")
            ipc_bytes = request.get("ipc_bytes", 0)
            if not (isinstance(ipc_bytes, int) and not isinstance(ipc_bytes, bool) and ipc_bytes >= 0):
                # Without the payload's length, the next request's start is unknown.
                reply({
                    "ok": False,
                    "error": f"the `{request.get('op')}` request's `ipc_bytes` is "
                    f"{json.dumps(ipc_bytes)}; expected a non-negative integer (the bytes "
                    "of the Arrow IPC stream after the request line), so the driver cannot "
                    "tell where the next request starts and exits",
                })
                status = 2
                break
            # The bytes after the line are read first, so that the stream stays in step
            # whatever the request makes of them.
            payload = sys.stdin.buffer.read(ipc_bytes)
            op = request.get("op")
            if op == "quit":
                break
            if IMPORT_ERROR is not None:
                reply({"ok": False, "error": IMPORT_ERROR})
                return 1
            if op == "insert":
                header, payload = peer.insert(request, payload)
            else:
                handler = {
                    "hello": peer.hello,
                    "load": peer.load,
                    "batches_begin": peer.batches_begin,
                    "batches_end": peer.batches_end,
                    "query": peer.query,
                }.get(op)
                if handler is None:
                    raise ValueError(f"unknown request {op!r}")
                header, payload = handler(request)
        except Exception as e:  # one failed request does not end the driver
            traceback.print_exc(file=sys.stderr)
            error = str(e) if isinstance(e, RequestError) else f"{type(e).__name__}: {e}"
            header, payload = {"ok": False, "error": error}, b""
        reply(header, payload)
    if peer.batches is not None:
        peer.batches["con"].close()
    if peer.con is not None:
        peer.con.close()
    return status


if __name__ == "__main__":
    sys.exit(main())
