"""A Postgres driver from PyPI (psycopg 3) against `sextant serve`.

Run by server/tests/serve.rs where Python and psycopg are installed:
    python3 server/tests/clients.py PG_PORT HTTP_PORT
The server holds cpu rows a (1.5) and b (2.5). Exits non-zero with a message on any
difference.
"""

import sys
import threading
import time
import urllib.request

import psycopg


def counters(http_port: int) -> tuple[int, int]:
    """The server's query and query error counters, from /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=10) as r:
        values = dict(line.split() for line in r.read().decode().splitlines()
                      if line.startswith(("sextant_queries_total ",
                                          "sextant_query_errors_total ")))
    return int(values["sextant_queries_total"]), int(values["sextant_query_errors_total"])


def main(port: int, http_port: int) -> None:
    with psycopg.connect(host="127.0.0.1", port=port, user="sextant", dbname="sextant",
                         connect_timeout=10, autocommit=True) as conn:
        with conn.cursor() as cur:
            # Counted in the server's figures: a query that fails to plan (at Parse,
            # in the extended protocol, its Execute then discarded) once, as an error;
            # one that runs once.
            before = counters(http_port)
            try:
                cur.execute("SELECT nosuch FROM cpu")
                raise AssertionError("an unknown column was answered")
            except psycopg.Error:
                pass
            cur.execute("SELECT count(*) FROM cpu")
            assert cur.fetchone() == (2,)
            # The server counts a statement when it is done with it, which the client
            # may see a moment earlier: the counters are read until they agree.
            want = (before[0] + 2, before[1] + 1)
            deadline = time.monotonic() + 10
            after = counters(http_port)
            while after != want and time.monotonic() < deadline:
                time.sleep(0.05)
                after = counters(http_port)
            assert after == want, (before, after)
            # The extended protocol: a prepared statement with a typed parameter.
            cur.execute("SELECT host, usage FROM cpu WHERE usage > %s ORDER BY host", (2.0,))
            rows = cur.fetchall()
            assert rows == [("b", 2.5)], rows
            cur.execute("SELECT host FROM cpu WHERE host = %s", ("a",), prepare=True)
            assert cur.fetchall() == [("a",)]
            cur.execute("SELECT host FROM cpu WHERE host = %s", ("b",), prepare=True)
            assert cur.fetchall() == [("b",)]
            # Timestamps come back as timezone-aware datetimes.
            cur.execute("SELECT max(time) FROM cpu")
            (latest,) = cur.fetchone()
            assert latest.tzinfo is not None and latest.year == 2023, latest
            # Without parameters Sextant writes the rows itself, in text and in binary;
            # both read back as the same values.
            for binary in (False, True):
                cur.execute("SELECT host, usage, time, 7 AS n, host = 'a' AS first, "
                            "nullif(usage, 1.5) AS maybe FROM cpu ORDER BY host",
                            binary=binary)
                rows = cur.fetchall()
                assert [(h, u, n, f, m) for h, u, _, n, f, m in rows] == [
                    ("a", 1.5, 7, True, None), ("b", 2.5, 7, False, 2.5)], rows
                assert [t.timestamp() for _, _, t, _, _, _ in rows] == [
                    1700000000.0, 1700000001.0], rows
            # The types most easily written wrong in binary: Int8 as int2 (two bytes,
            # where arrow-pg writes one), int2, float4, times without a zone before and
            # after PostgreSQL's epoch (2000), one with a fraction of a microsecond.
            cur.execute("SELECT CAST(-3 AS TINYINT) AS a, CAST(7 AS SMALLINT) AS b, "
                        "CAST(1.5 AS REAL) AS c, "
                        "CAST('1999-12-31T23:59:59.999999' AS TIMESTAMP) AS d, "
                        "CAST('2001-01-01T00:00:00.0000015' AS TIMESTAMP) AS e", binary=True)
            a, b, c, d, e = cur.fetchone()
            assert (a, b, c) == (-3, 7, 1.5), (a, b, c)
            assert d.tzinfo is None and d.isoformat() == "1999-12-31T23:59:59.999999", d
            assert e.isoformat() == "2001-01-01T00:00:00.000001", e
            # An answer of many batches, all its rows in order.
            for binary in (False, True):
                cur.execute("SELECT value FROM range(100000)", binary=binary)
                assert [v for (v,) in cur.fetchall()] == list(range(100000))
            # An error after many rows were sent: the client reads the error, and the
            # connection goes on.
            for binary in (False, True):
                try:
                    cur.execute("SELECT 10 / (value - 90000) FROM range(100000)",
                                binary=binary)
                    cur.fetchall()
                    raise AssertionError("a division by zero was answered")
                except psycopg.Error as e:
                    assert "zero" in str(e).lower(), e
                cur.execute("SELECT count(*) FROM cpu", binary=binary)
                assert cur.fetchone() == (2,)
            # Writes are refused with an error, and the connection goes on.
            try:
                cur.execute("INSERT INTO cpu (host, usage) VALUES ('c', 1)")
                raise AssertionError("an INSERT was accepted")
            except psycopg.Error as e:
                assert "read-only" in str(e), e
            cur.execute("SELECT count(*) FROM cpu")
            assert cur.fetchone() == (2,)
            # In a failed transaction, queries are refused until it ends (25P01, as
            # datafusion-postgres answers for PostgreSQL's 25P02).
            conn.autocommit = False
            try:
                cur.execute("SELECT 1/0")
                raise AssertionError("1/0 was answered")
            except psycopg.Error:
                pass
            try:
                cur.execute("SELECT count(*) FROM cpu")
                raise AssertionError("a query in a failed transaction was answered")
            except psycopg.Error as e:
                assert e.sqlstate == "25P01", e
            conn.rollback()  # psycopg sends DEALLOCATE ALL here
            conn.autocommit = True
            # DEALLOCATE over the extended protocol too.
            cur.execute("DEALLOCATE ALL")
            cur.execute("SELECT count(*) FROM cpu")
            assert cur.fetchone() == (2,)
            # A query cancelled from another thread (a driver's cancel, psql's Ctrl-C)
            # ends with query_canceled, and the connection goes on.
            # Cancels are sent every 0.2 s until the query ends: one sent before the
            # query reached the server would cancel nothing.
            cancel = getattr(conn, "cancel_safe", conn.cancel)
            done = threading.Event()

            def keep_cancelling() -> None:
                while not done.wait(0.2):
                    cancel()

            canceller = threading.Thread(target=keep_cancelling)
            canceller.start()
            try:
                cur.execute("SELECT sum(value) FROM range(1000000000000)")
                raise AssertionError("the query was not cancelled")
            except psycopg.errors.QueryCanceled as e:
                assert "user request" in str(e), e
            finally:
                done.set()
                canceller.join()
            cur.execute("SELECT count(*) FROM cpu")
            assert cur.fetchone() == (2,)
    print("psycopg: ok")


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
