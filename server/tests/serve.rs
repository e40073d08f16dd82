//! `sextant serve` with real sockets: every protocol in, SQL out, tokens, a clean
//! shutdown on SIGTERM, and kills that lose no acknowledged write.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::array_value_to_string;
use sextant_bench::queries::{DEVOPS, DevopsQuery, Rng, Window};
use sextant_bench::workload::cpu::{self, CpuConfig, CpuGenerator};
use sextant_engine::TableKind;
use sextant_ingest::remote_write::{self, Label, Sample, TimeSeries, WriteRequest};
use sextant_query::Database;

/// A running server and the addresses it printed.
struct Server {
    child: Child,
    stdout: BufReader<ChildStdout>,
    http: SocketAddr,
    statsd: SocketAddr,
    postgres: SocketAddr,
}

impl Server {
    fn start(data: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sextant"))
            .args(["serve", "--data", data.to_str().unwrap()])
            .args(["--http", "127.0.0.1:0", "--statsd", "127.0.0.1:0"])
            .args(["--postgres", "127.0.0.1:0"])
            .args(["--statsd-flush", "100ms", "--telemetry-interval", "100ms"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the sextant binary runs");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let (mut http, mut statsd, mut postgres) = (None, None, None);
        while http.is_none() || statsd.is_none() || postgres.is_none() {
            let mut line = String::new();
            assert!(
                stdout.read_line(&mut line).unwrap() > 0,
                "the server stopped before listening"
            );
            if let Some(a) = line
                .trim()
                .strip_prefix("sextant: HTTP listening on http://")
            {
                http = Some(a.parse().unwrap());
            }
            if let Some(a) = line
                .trim()
                .strip_prefix("sextant: StatsD listening on udp://")
            {
                statsd = Some(a.parse().unwrap());
            }
            if let Some(a) = line
                .trim()
                .strip_prefix("sextant: PostgreSQL listening on postgres://")
            {
                postgres = Some(a.parse().unwrap());
            }
        }
        Server {
            child,
            stdout,
            http: http.unwrap(),
            statsd: statsd.unwrap(),
            postgres: postgres.unwrap(),
        }
    }

    fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        request(self.http, method, path, headers, body).expect("the server answers")
    }

    /// Polls `sql` until it answers `expected` (as CSV), for rows StatsD writes later.
    fn wait_for(&self, sql: &str, expected: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            // Until the first flush the table does not exist.
            let reply = self.request(
                "POST",
                "/api/v1/sql",
                &[("Accept", "text/csv")],
                sql.as_bytes(),
            );
            if reply.status == 200 && reply.body == expected {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{sql}: {} {:?}, not {expected:?}",
                reply.status,
                reply.body
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// GETs `path`, checks the status, and parses the JSON answer.
    fn get_json(&self, path: &str, status: u16) -> serde_json::Value {
        let reply = self.request("GET", path, &[], b"");
        assert_eq!(reply.status, status, "{path}: {}", reply.body);
        serde_json::from_str(&reply.body).unwrap()
    }

    fn sql_csv(&self, sql: &str) -> String {
        let reply = self.request(
            "POST",
            "/api/v1/sql",
            &[("Accept", "text/csv")],
            sql.as_bytes(),
        );
        assert_eq!(reply.status, 200, "{sql}: {}", reply.body);
        reply.body
    }

    /// SIGTERM, and the exit status and the rest of standard output.
    fn terminate(&mut self) -> (bool, String) {
        self.stop("-TERM")
    }

    /// Sends `signal` (`kill`'s flag), and the exit status and the rest of standard
    /// output.
    fn stop(&mut self, signal: &str) -> (bool, String) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args([signal, &pid])
                .status()
                .unwrap()
                .success()
        );
        let mut rest = String::new();
        self.stdout.read_to_string(&mut rest).unwrap();
        (self.child.wait().unwrap().success(), rest)
    }

    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    /// A failing test leaves no server behind.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

struct Reply {
    status: u16,
    body: String,
}

/// One HTTP/1.1 request on a connection of its own.
fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Reply> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no end of headers in {text:?}")))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status in {head:?}")))?;
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let raw_body = &raw[head.len() + 4..];
    let body = if chunked {
        String::from_utf8_lossy(&dechunk(raw_body)?).into_owned()
    } else {
        body.to_string()
    };
    Ok(Reply { status, body })
}

/// The bytes of a chunked body; an error where it ends before its last chunk.
fn dechunk(mut raw: &[u8]) -> std::io::Result<Vec<u8>> {
    let bad = |what: &str| std::io::Error::other(format!("chunked body: {what}"));
    let mut out = Vec::new();
    loop {
        let line_end = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| bad("ends before its last chunk"))?;
        let size = std::str::from_utf8(&raw[..line_end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
            .ok_or_else(|| bad("a chunk size that is no number"))?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if raw.len() < size + 2 {
            return Err(bad("ends inside a chunk"));
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn every_protocol_in_sql_out_and_a_clean_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("db");
    let mut server = Server::start(&data, &[]);

    // Line protocol: the bad line is named, the good ones kept.
    let lines = b"cpu,host=a usage=1 1700000000\ncpu,host=b usage=x 1700000000\ncpu,host=c usage=3 1700000001\n";
    let reply = server.request("POST", "/api/v2/write?precision=s", &[], lines);
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(reply.body.contains("\"line\":2"), "{}", reply.body);
    assert!(reply.body.contains("\"rows_written\":2"), "{}", reply.body);
    // gzip, on InfluxDB 1's path.
    let gz = gzip(b"cpu,host=d usage=4 1700000002\n");
    let reply = server.request(
        "POST",
        "/write?precision=s",
        &[("Content-Encoding", "gzip")],
        &gz,
    );
    assert_eq!(reply.status, 204, "{}", reply.body);
    let reply = server.request("POST", "/write?precision=h", &[], b"cpu usage=1");
    assert_eq!(reply.status, 400, "{}", reply.body);
    let reply = server.request(
        "POST",
        "/write",
        &[("Content-Encoding", "gzip")],
        b"not gzip",
    );
    assert_eq!(reply.status, 400, "{}", reply.body);

    // Prometheus remote write.
    let request = WriteRequest {
        timeseries: vec![TimeSeries {
            labels: vec![
                Label {
                    name: "__name__".into(),
                    value: "http_requests_total".into(),
                },
                Label {
                    name: "job".into(),
                    value: "api".into(),
                },
            ],
            samples: vec![Sample {
                value: 42.0,
                timestamp: 1_700_000_000_000,
            }],
        }],
    };
    let body = remote_write::encode(&request).unwrap();
    let reply = server.request(
        "POST",
        "/api/v1/write",
        &[("Content-Encoding", "snappy")],
        &body,
    );
    assert_eq!(reply.status, 204, "{}", reply.body);

    // JSON-lines logs.
    let logs = br#"{"time":"2023-11-14T22:13:20Z","level":"error","msg":"payment failed","service":"checkout"}"#;
    let reply = server.request("POST", "/api/v1/logs", &[], logs);
    assert_eq!(reply.status, 204, "{}", reply.body);

    // StatsD over a real UDP socket, several metrics in one packet.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.send_to(
        b"signups:1|c|#plan:pro\nsignups:2|c|#plan:pro\nbad line",
        server.statsd,
    )
    .unwrap();

    // SQL: CSV, JSON, Arrow; writes refused; errors as 400.
    assert_eq!(
        server.sql_csv("SELECT host, usage FROM cpu ORDER BY host"),
        "host,usage\na,1.0\nc,3.0\nd,4.0\n"
    );
    assert_eq!(
        server.sql_csv("SELECT job, value FROM http_requests_total"),
        "job,value\napi,42.0\n"
    );
    assert_eq!(
        server.sql_csv("SELECT service, level, message FROM logs"),
        "service,level,message\ncheckout,error,payment failed\n"
    );
    server.wait_for("SELECT plan, value FROM signups", "plan,value\npro,3\n");
    let reply = server.request(
        "GET",
        "/api/v1/sql?q=SELECT%20count(*)%20AS%20n%20FROM%20cpu",
        &[],
        b"",
    );
    assert_eq!((reply.status, reply.body.as_str()), (200, r#"[{"n":3}]"#));
    let reply = server.request(
        "POST",
        "/api/v1/sql",
        &[("Accept", "application/vnd.apache.arrow.stream")],
        b"SELECT * FROM cpu",
    );
    assert_eq!(reply.status, 200);
    for sql in [
        "CREATE TABLE t AS SELECT 1",
        "SET datafusion.execution.batch_size = 1",
        "COPY (SELECT * FROM cpu) TO '/tmp/sextant-copy-test.csv'",
        "EXPLAIN ANALYZE COPY (SELECT * FROM cpu) TO '/tmp/sextant-copy-test.csv'",
        "CREATE EXTERNAL TABLE passwd STORED AS CSV LOCATION '/etc/passwd'",
        "SELEC 1",
        "SELECT * FROM nowhere",
    ] {
        let reply = server.request("POST", "/api/v1/sql", &[], sql.as_bytes());
        assert_eq!(reply.status, 400, "{sql}: {}", reply.body);
        assert!(reply.body.contains("\"message\""), "{}", reply.body);
    }
    assert!(!Path::new("/tmp/sextant-copy-test.csv").exists());
    // An empty answer is still JSON.
    let reply = server.request(
        "POST",
        "/api/v1/sql",
        &[],
        b"SELECT * FROM cpu WHERE host = 'none'",
    );
    assert_eq!((reply.status, reply.body.as_str()), (200, "[]"));

    // The server's own counters.
    let reply = server.request("GET", "/metrics", &[], b"");
    assert_eq!(reply.status, 200);
    for line in [
        "sextant_ingest_rows_total{protocol=\"line_protocol\"} 3",
        "sextant_ingest_rejected_lines_total{protocol=\"line_protocol\"} 1",
        "sextant_ingest_rows_total{protocol=\"remote_write\"} 1",
        "sextant_ingest_rows_total{protocol=\"json_lines\"} 1",
        "sextant_ingest_rejected_lines_total{protocol=\"statsd\"} 1",
        "sextant_statsd_metrics_total 2",
        // The storage's figures.
        "# TYPE sextant_write_amplification gauge",
        "# TYPE sextant_compactions_total counter",
        "sextant_memory_reserved_bytes ",
        "# TYPE sextant_segments gauge",
    ] {
        assert!(reply.body.contains(line), "{line} missing:\n{}", reply.body);
    }
    assert_eq!(server.request("GET", "/health", &[], b"").status, 200);
    // The same counters, written into the server's own tables.
    server.wait_for(
        "SELECT rows, rejected_lines FROM sextant_ingest WHERE protocol = 'line_protocol' ORDER BY time DESC LIMIT 1",
        "rows,rejected_lines\n3,1\n",
    );

    let (clean, rest) = server.terminate();
    assert!(clean, "{rest}");
    assert!(rest.contains("closed"), "{rest}");
    // Closed for real: every row is in a segment and the write-ahead log is gone.
    let wal_files = std::fs::read_dir(data.join("wal"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "wal")
        })
        .count();
    assert_eq!(wal_files, 0);
    // Everything acknowledged is there on the next start.
    let mut server = Server::start(&data, &[]);
    assert_eq!(
        server.sql_csv("SELECT (SELECT count(*) FROM cpu) AS cpu, (SELECT count(*) FROM signups) AS signups, (SELECT count(*) FROM logs) AS logs, (SELECT count(*) FROM http_requests_total) AS remote"),
        "cpu,signups,logs,remote\n3,1,1,1\n"
    );
    // The first run's own log, in its table.
    assert_eq!(
        server.sql_csv("SELECT level, message FROM sextant_logs WHERE service = 'sextant' AND message IN ('serving', 'shutting down') ORDER BY time LIMIT 2"),
        "level,message\ninfo,serving\ninfo,shutting down\n"
    );
    // Ctrl-C stops it as SIGTERM does.
    let (clean, rest) = server.stop("-INT");
    assert!(clean, "{rest}");
    assert!(rest.contains("closed"), "{rest}");
}

#[test]
fn a_token_guards_everything_but_health() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("db"), &["--token", "s3cret"]);
    let line = b"cpu,host=a usage=1 1700000000000000000\n";
    for auth in [None, Some("Bearer wrong"), Some("Bearer s3cre")] {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
        let reply = server.request("POST", "/api/v2/write", &headers, line);
        assert_eq!(reply.status, 401, "{auth:?}: {}", reply.body);
        let reply = server.request("POST", "/api/v1/sql", &headers, b"SELECT 1");
        assert_eq!(reply.status, 401, "{auth:?}: {}", reply.body);
        // /health is open to all, and so takes no body.
        let reply = server.request("POST", "/health", &headers, line);
        assert_eq!(reply.status, 413, "{auth:?}: {}", reply.body);
        assert_eq!(server.request("GET", "/health", &headers, b"").status, 200);
    }
    let reply = server.request(
        "POST",
        "/api/v2/write",
        &[("Authorization", "Token s3cret")],
        line,
    );
    assert_eq!(reply.status, 204, "{}", reply.body);
    let reply = server.request(
        "POST",
        "/api/v1/sql",
        &[("Authorization", "Bearer s3cret")],
        b"SELECT count(*) AS n FROM cpu",
    );
    assert_eq!((reply.status, reply.body.as_str()), (200, r#"[{"n":1}]"#));
    assert_eq!(server.request("GET", "/health", &[], b"").status, 200);
    // Refused on its headers, before any of the body it announces is sent.
    let mut stream = TcpStream::connect(server.http).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "POST /api/v2/write HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 10000000\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream
            .read(&mut buf)
            .expect("an answer before the body is sent");
        assert!(n > 0, "closed without an answer");
        head.extend_from_slice(&buf[..n]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 401"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    let (clean, rest) = server.terminate();
    assert!(clean, "{rest}");
}

#[test]
fn a_body_past_the_limit_is_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("db"), &["--max-body", "1000"]);
    let big = b"cpu,host=a usage=1 1700000000000000000\n".repeat(100);
    let reply = server.request("POST", "/api/v2/write", &[], &big);
    assert_eq!(reply.status, 413, "{}", reply.body);
    // Compressed below the limit, but not once decompressed.
    let reply = server.request(
        "POST",
        "/api/v2/write",
        &[("Content-Encoding", "gzip")],
        &gzip(&big),
    );
    assert_eq!(reply.status, 413, "{}", reply.body);
    assert_eq!(
        server.sql_csv(
            "SELECT count(*) AS n FROM information_schema.tables WHERE table_name = 'cpu'"
        ),
        "n\n0\n"
    );
    server.kill();
}

/// Writers post line protocol while the server is killed (SIGKILL) and restarted: every
/// write answered 204 is there after each restart.
#[test]
fn killed_servers_keep_every_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("db");
    let mut acknowledged: Vec<Vec<u64>> = vec![Vec::new(); 3];
    let mut next = [0u64; 3];
    for round in 0..4 {
        let mut server = Server::start(&data, &[]);
        // Everything acknowledged in earlier rounds survived the kills.
        for (writer, acks) in acknowledged.iter().enumerate() {
            let sql = format!("SELECT n FROM acks WHERE writer = 'w{writer}' ORDER BY n");
            let got = if round == 0 {
                Vec::new()
            } else {
                server
                    .sql_csv(&sql)
                    .lines()
                    .skip(1)
                    .map(|l| l.parse::<u64>().unwrap())
                    .collect::<Vec<_>>()
            };
            let missing: Vec<_> = acks
                .iter()
                .filter(|n| got.binary_search(n).is_err())
                .collect();
            assert!(
                missing.is_empty(),
                "round {round}, writer {writer}: lost {missing:?}"
            );
        }
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..3)
            .map(|writer| {
                let (addr, stop, start) = (server.http, Arc::clone(&stop), next[writer]);
                std::thread::spawn(move || {
                    let mut acked = Vec::new();
                    let mut n = start;
                    while !stop.load(Ordering::Relaxed) {
                        let body: String = (n..n + 20)
                            .map(|i| {
                                format!(
                                    "acks,writer=w{writer} n={i}u {}\n",
                                    1_700_000_000_000_000_000 + i * 1000 + writer as u64
                                )
                            })
                            .collect();
                        match request(addr, "POST", "/api/v2/write", &[], body.as_bytes()) {
                            Ok(r) if r.status == 204 => acked.extend(n..n + 20),
                            Ok(r) => panic!("writer {writer}: {} {}", r.status, r.body),
                            Err(_) => break, // killed mid-request: not acknowledged
                        }
                        n += 20;
                    }
                    (acked, n)
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        server.kill();
        stop.store(true, Ordering::Relaxed);
        for (writer, w) in writers.into_iter().enumerate() {
            let (acked, n) = w.join().unwrap();
            assert!(
                !acked.is_empty() || round > 0,
                "writer {writer} wrote nothing"
            );
            acknowledged[writer].extend(acked);
            next[writer] = n + 20;
        }
    }
}

/// `psql` with unaligned, tuples-only output; `None` where psql is not installed.
fn psql(server: &Server, args: &[&str]) -> Option<std::process::Output> {
    psql_with_password(server, None, args)
}

/// [`psql`] giving `password` (PGPASSWORD), or none at all (never a prompt).
fn psql_with_password(
    server: &Server,
    password: Option<&str>,
    args: &[&str],
) -> Option<std::process::Output> {
    let port = server.postgres.port().to_string();
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "sextant",
            "-d",
            "sextant",
        ])
        .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
        .args(args)
        .args(if password.is_none() {
            &["-w"][..]
        } else {
            &[][..]
        })
        .env("PGCONNECT_TIMEOUT", "10")
        .env("PGPASSWORD", password.unwrap_or(""))
        .output();
    match out {
        Ok(out) => Some(out),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => panic!("running psql: {e}"),
    }
}

#[test]
fn psql_runs_queries_and_is_refused_writes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("db"), &[]);
    let lines = b"cpu,host=a usage=1.5 1700000000\ncpu,host=b usage=2.5 1700000001\n";
    let reply = server.request("POST", "/api/v2/write?precision=s", &[], lines);
    assert_eq!(reply.status, 204, "{}", reply.body);
    let Some(out) = psql(
        &server,
        &["-c", "SELECT host, usage FROM cpu ORDER BY host"],
    ) else {
        eprintln!("psql is not installed: the PostgreSQL protocol test is skipped");
        return;
    };
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "a|1.5\nb|2.5\n");
    // Statements of one simple query are answered in turn, up to the first that fails.
    let out = psql(
        &server,
        &["-c", "SELECT 1; SELECT host FROM cpu ORDER BY host"],
    )
    .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "1\na\nb\n");
    let out = psql(&server, &["-c", "SELECT 1; SELECT 1/0; SELECT 2"]).unwrap();
    assert!(!out.status.success());
    assert_eq!(text(&out.stdout), "1\n");
    assert!(text(&out.stderr).contains("zero"), "{}", text(&out.stderr));
    // The catalog psql's \d reads.
    let out = psql(&server, &["-c", "\\d cpu"]).unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("usage"), "{}", text(&out.stdout));
    // An outer join's missing side: tags that are all NULL.
    let sql = "SELECT a.host, b.host FROM cpu a LEFT JOIN cpu b \
               ON a.host = b.host AND b.usage < 0 ORDER BY a.host";
    let out = psql(&server, &["-c", sql]).unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "a|\nb|\n");
    // In a failed transaction, queries are refused until it ends (psql told to go on
    // after an error).
    let script = dir.path().join("failed.sql");
    std::fs::write(
        &script,
        "BEGIN;\nSELECT 1/0;\nSELECT 1;\nSHOW datestyle;\nROLLBACK;\nSELECT 2;\n",
    )
    .unwrap();
    let script = script.to_str().unwrap();
    let out = psql(&server, &["-v", "ON_ERROR_STOP=0", "-f", script]).unwrap();
    // The query and SHOW refused, the transaction ended, and queries answered again.
    let refused = text(&out.stderr)
        .matches("current transaction is aborted")
        .count();
    assert_eq!(refused, 2, "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "BEGIN\nROLLBACK\n2\n");
    // What psycopg sends after a rollback.
    let out = psql(&server, &["-c", "DEALLOCATE ALL"]).unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = psql(&server, &["-c", "DEALLOCATE nosuch"]).unwrap();
    assert!(
        text(&out.stderr).contains("prepared statement \"nosuch\" does not exist"),
        "{}",
        text(&out.stderr)
    );
    // A driver from PyPI, with the extended protocol's parameters.
    let has_psycopg = Command::new("python3")
        .args(["-c", "import psycopg"])
        .output()
        .is_ok_and(|o| o.status.success());
    if has_psycopg {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients.py");
        let out = Command::new("python3")
            .arg(script)
            .arg(server.postgres.port().to_string())
            .arg(server.http.port().to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    } else {
        eprintln!("psycopg is not installed: the Python driver test is skipped");
    }
    // Nothing changes through it.
    for sql in [
        "CREATE TABLE t AS SELECT 1",
        "INSERT INTO cpu (host, usage) VALUES ('c', 1)",
        "SET datafusion.execution.batch_size = 1",
        "SET \"datafusion.execution.batch_size\" = 1",
        "SET timezone = 'Europe/Paris'",
        "EXPLAIN ANALYZE COPY (SELECT * FROM cpu) TO '/tmp/sextant-copy-test.csv'",
        "SELECT * INTO cpu2 FROM cpu",
        "DROP TABLE cpu",
    ] {
        let out = psql(&server, &["-c", sql]).unwrap();
        assert!(!out.status.success(), "{sql} was accepted");
        assert!(
            text(&out.stderr).contains("read-only"),
            "{sql}: {}",
            text(&out.stderr)
        );
    }
    // Every query is counted in the server's telemetry, the refused ones as errors.
    let queries = counter(&server, "sextant_queries_total");
    let errors = counter(&server, "sextant_query_errors_total");
    assert!(
        queries >= 20 && errors >= 10,
        "{queries} queries, {errors} errors"
    );
    // Exactly: a simple query that fails to plan is one query and one error.
    let out = psql(&server, &["-c", "SELECT nosuch FROM cpu"]).unwrap();
    assert!(!out.status.success());
    assert_eq!(counter(&server, "sextant_queries_total"), queries + 1);
    assert_eq!(counter(&server, "sextant_query_errors_total"), errors + 1);
}

#[test]
fn a_postgres_password_is_asked_for_when_set() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("db"), &["--postgres-password", "s3cret"]);
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let Some(out) = psql_with_password(&server, Some("s3cret"), &["-c", "SELECT 1 + 1"]) else {
        eprintln!("psql is not installed: the PostgreSQL password test is skipped");
        return;
    };
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "2\n");
    for wrong in [Some("guess"), None] {
        let out = psql_with_password(&server, wrong, &["-c", "SELECT 1"]).unwrap();
        assert!(!out.status.success(), "{wrong:?}: {}", text(&out.stdout));
        let stderr = text(&out.stderr).to_lowercase();
        assert!(stderr.contains("password"), "{wrong:?}: {stderr}");
    }
}

#[test]
fn tsbs_queries_through_psql_answer_as_the_embedded_api() {
    if Command::new("psql").arg("--version").output().is_err() {
        eprintln!("psql is not installed: the TSBS-through-psql test is skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("db");
    // 10 hosts for 16 hours, part in segments and part in memory, written and asked
    // through the embedded API first.
    let scale = 10;
    let config = CpuConfig::new(scale, 16.0 / 24.0);
    let window = Window::new(config.start_ns, config.end_ns);
    let generator = CpuGenerator::new(config).unwrap();
    let hosts = generator.hosts().to_vec();
    let db = Database::open(&data).unwrap();
    for (i, batch) in generator.batches(5000).enumerate() {
        let batch = batch.to_record_batch(&hosts).unwrap();
        db.write_arrow(cpu::TABLE, TableKind::Metric, &batch)
            .unwrap();
        if i == 8 {
            db.flush().unwrap();
        }
    }
    let mut rng = Rng::new(7);
    let queries: Vec<(&str, DevopsQuery)> = DEVOPS
        .iter()
        .map(|&(name, kind)| (name, DevopsQuery::draw(kind, &mut rng, scale, window)))
        .collect();
    let expected: Vec<Vec<Vec<String>>> = queries
        .iter()
        .map(|(_, q)| table_cells(&db.sql(&q.sql()).unwrap()))
        .collect();
    db.close().unwrap();

    let server = Server::start(&data, &[]);
    for ((name, query), expected) in queries.iter().zip(expected) {
        let out = psql(&server, &["-F", "\t", "-c", &query.sql()]).unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got: Vec<Vec<String>> = stdout
            .lines()
            .map(|line| line.split('\t').map(canonical).collect())
            .collect();
        let mut expected = expected;
        let mut got = got;
        if !query.is_ordered() {
            expected.sort();
            got.sort();
        }
        assert!(!expected.is_empty(), "{name}: no rows to compare");
        assert_eq!(got.len(), expected.len(), "{name}: rows");
        for (g, e) in got.iter().zip(&expected) {
            assert_eq!(g.len(), e.len(), "{name}: columns of {g:?} and {e:?}");
            for (a, b) in g.iter().zip(e) {
                assert!(same_cell(a, b), "{name}: {a} over psql, {b} embedded");
            }
        }
    }
}

/// Every cell of `batches` as text, in [`canonical`] form.
fn table_cells(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for batch in batches {
        for row in 0..batch.num_rows() {
            rows.push(
                batch
                    .columns()
                    .iter()
                    .map(|c| canonical(&array_value_to_string(c, row).unwrap()))
                    .collect(),
            );
        }
    }
    rows
}

/// A cell as both sides can be compared by: numbers in Rust's shortest form, times as
/// `YYYY-MM-DD HH:MM:SS[.fraction]` without a zone or trailing zeros (psql's text and
/// Arrow's differ in all three).
fn canonical(cell: &str) -> String {
    if let Ok(x) = cell.parse::<f64>() {
        return x.to_string();
    }
    let looks_like_time = cell.len() >= 19
        && cell.as_bytes()[4] == b'-'
        && matches!(cell.as_bytes()[10], b'T' | b' ');
    if looks_like_time {
        let mut t = cell.replacen('T', " ", 1);
        for zone in ["Z", "+00:00", "+00"] {
            if let Some(stripped) = t.strip_suffix(zone) {
                t = stripped.to_string();
            }
        }
        // Fractions of a second without their trailing zeros (psql writes `.000000`).
        if t.contains('.') {
            t = t.trim_end_matches('0').trim_end_matches('.').to_string();
        }
        return t;
    }
    cell.to_string()
}

/// Equal, or numbers within a relative 1e-9 (averages summed in another order).
fn same_cell(a: &str, b: &str) -> bool {
    a == b
        || matches!((a.parse::<f64>(), b.parse::<f64>()), (Ok(x), Ok(y))
            if (x - y).abs() <= 1e-9 * x.abs().max(y.abs()))
}

#[test]
fn large_answers_stream_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("db"), &[]);
    // 100,000 rows: a dozen batches, each sent as it is computed.
    let sql = b"SELECT value AS n FROM range(100000)";
    let json = server.request("POST", "/api/v1/sql", &[], sql);
    assert_eq!(json.status, 200);
    let rows: serde_json::Value = serde_json::from_str(&json.body).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 100_000);
    assert_eq!(rows[99_999]["n"], 99_999);
    let csv = server.request("POST", "/api/v1/sql", &[("Accept", "text/csv")], sql);
    let lines: Vec<&str> = csv.body.lines().collect();
    assert_eq!(
        (lines.len(), lines[0], lines[100_000]),
        (100_001, "n", "99999")
    );
    let jsonl = server.request(
        "POST",
        "/api/v1/sql",
        &[("Accept", "application/x-ndjson")],
        sql,
    );
    assert_eq!(jsonl.body.lines().count(), 100_000);
    assert_eq!(jsonl.body.lines().last(), Some(r#"{"n":99999}"#));
    // Arrow IPC, read back by Arrow's own reader.
    let ipc = arrow_answer(server.http, sql);
    let reader = datafusion::arrow::ipc::reader::StreamReader::try_new(&ipc[..], None).unwrap();
    let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 100_000);
    // No rows: still an Arrow stream, with its schema.
    let ipc = arrow_answer(server.http, b"SELECT value AS n FROM range(0)");
    let reader = datafusion::arrow::ipc::reader::StreamReader::try_new(&ipc[..], None).unwrap();
    assert_eq!(reader.schema().field(0).name(), "n");
}

/// The body of `sql`'s answer as Arrow IPC: bytes, where [`request`] reads text.
fn arrow_answer(addr: SocketAddr, sql: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST /api/v1/sql HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAccept: application/vnd.apache.arrow.stream\r\nContent-Length: {}\r\n\r\n",
        sql.len()
    )
    .unwrap();
    stream.write_all(sql).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    assert!(raw.starts_with(b"HTTP/1.1 200"));
    dechunk(&raw[head_end + 4..]).unwrap()
}

/// A query that runs for hours.
const SLOW: &str = "SELECT sum(value) FROM range(1000000000000)";

#[test]
fn slow_queries_and_slow_http_clients_are_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    // The limits from a configuration file; the command line's --query-timeout wins.
    let config = dir.path().join("sextant.toml");
    std::fs::write(&config, "query-timeout = \"1h\"\nread-timeout = \"2s\"\n").unwrap();
    let server = Server::start(
        &dir.path().join("db"),
        &[
            "--config",
            config.to_str().unwrap(),
            "--query-timeout",
            "1s",
        ],
    );
    // A query past its time: 504.
    let started = Instant::now();
    let reply = server.request("POST", "/api/v1/sql", &[], SLOW.as_bytes());
    assert_eq!(reply.status, 504, "{}", reply.body);
    assert!(reply.body.contains("timeout"), "{}", reply.body);
    assert!(started.elapsed() < Duration::from_secs(30));
    // A request head that never ends: the connection is closed after --read-timeout.
    let mut stalled = TcpStream::connect(server.http).unwrap();
    stalled
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stalled
        .write_all(b"POST /api/v2/write HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    // Closed, cleanly or with a reset; a read timeout would be an error of its own kind.
    match stalled.read_to_end(&mut rest) {
        Ok(_) => {}
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
    assert!(started.elapsed() < Duration::from_secs(20));
    // A body that never ends: 408, and the server goes on.
    let mut stream = TcpStream::connect(server.http).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
        .write_all(b"POST /api/v2/write HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 100\r\n\r\ncpu usage=1")
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("--read-timeout"), "{answer}");
    let reply = server.request("POST", "/api/v2/write", &[], b"cpu usage=1 1\n");
    assert_eq!(reply.status, 204, "{}", reply.body);
}

#[test]
fn connections_past_the_limits_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("db"),
        &["--http-connections", "2", "--postgres-connections", "1"],
    );
    // Two connections held open (idle: --read-timeout is 30 s) fill HTTP's limit.
    let held: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(server.http).unwrap())
        .collect();
    let reply = server.request("GET", "/health", &[], b"");
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert!(reply.body.contains("--http-connections"), "{}", reply.body);
    // Once they close, clients are served again.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.request("GET", "/health", &[], b"").status != 200 {
        assert!(Instant::now() < deadline, "HTTP did not take clients again");
        std::thread::sleep(Duration::from_millis(50));
    }
    // PostgreSQL: one connection held open, the next is told why.
    let held = TcpStream::connect(server.postgres).unwrap();
    let Some(out) = psql(&server, &["-c", "SELECT 1"]) else {
        eprintln!("psql is not installed: the PostgreSQL part is skipped");
        return;
    };
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success());
    assert!(stderr.contains("too many clients"), "{stderr}");
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !psql(&server, &["-c", "SELECT 1"]).unwrap().status.success() {
        assert!(
            Instant::now() < deadline,
            "PostgreSQL did not take clients again"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A PostgreSQL connection of the test's own: its startup message sent (user
/// `sextant`), nothing read.
fn pg_connect(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    let body = b"\0\x03\0\0user\0sextant\0database\0sextant\0\0";
    let mut message = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    message.extend_from_slice(body);
    stream.write_all(&message).unwrap();
    stream
}

/// Sends a PostgreSQL message of type `kind` with `body`.
fn pg_send(stream: &mut TcpStream, kind: u8, body: &[u8]) {
    let mut message = vec![kind];
    message.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    message.extend_from_slice(body);
    stream.write_all(&message).unwrap();
}

/// Sends a simple query.
fn pg_query(stream: &mut TcpStream, sql: &str) {
    pg_send(stream, b'Q', format!("{sql}\0").as_bytes());
}

/// What the server sends within `time`, and whether it closed the connection by then.
fn read_within(stream: &mut TcpStream, time: Duration) -> (Vec<u8>, bool) {
    let deadline = Instant::now() + time;
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut read = Vec::new();
    let mut buf = vec![0; 1 << 16];
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => return (read, true),
            Ok(n) => read.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (read, true),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("reading from the server: {e}"),
        }
    }
    (read, false)
}

/// Reads what the server sends until it closes the connection; fails if it is still
/// open after `within`.
fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Vec<u8> {
    let (read, closed) = read_within(stream, within);
    assert!(
        closed,
        "the server kept the connection open ({} bytes read)",
        read.len()
    );
    read
}

/// The value of one of the server's counters at `/metrics`.
fn counter(server: &Server, name: &str) -> u64 {
    let reply = server.request("GET", "/metrics", &[], b"");
    reply
        .body
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {}", reply.body))
}

#[test]
fn postgres_connections_end_at_a_fatal_error_and_run_nothing_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("db"),
        &[
            "--postgres-connections",
            "1",
            "--postgres-password",
            "secret",
        ],
    );
    // A query run would be counted at once. (The client cannot tell otherwise: the
    // server shuts its side of the socket as it sends a FATAL error.)
    let sum = "SELECT 1";
    // Past the limit: refused at startup (53300), then closed; a query sent after the
    // refusal is not run.
    let held = pg_connect(server.postgres);
    std::thread::sleep(Duration::from_millis(200));
    let mut refused = pg_connect(server.postgres);
    pg_query(&mut refused, sum);
    let read = read_until_closed(&mut refused, Duration::from_secs(10));
    assert!(String::from_utf8_lossy(&read).contains("53300"), "{read:?}");
    drop(held);
    // A wrong password (28P01): the same.
    let deadline = Instant::now() + Duration::from_secs(10);
    let read = loop {
        let mut wrong = pg_connect(server.postgres);
        pg_send(&mut wrong, b'p', b"wrong\0");
        pg_query(&mut wrong, sum);
        let read = read_until_closed(&mut wrong, Duration::from_secs(10));
        // Until the held connection's slot is given back, this one is refused too.
        if !String::from_utf8_lossy(&read).contains("53300") {
            break read;
        }
        assert!(
            Instant::now() < deadline,
            "the held connection's slot was not given back"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(String::from_utf8_lossy(&read).contains("28P01"), "{read:?}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(counter(&server, "sextant_queries_total"), 0);
}

#[test]
fn a_bind_with_result_formats_not_one_per_column_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("db"), &[]);
    let mut client = pg_connect(server.postgres);
    // Parse a three-column query, Bind it with two result formats, Sync; then a query.
    pg_send(&mut client, b'P', b"\0SELECT 1 AS a, 2 AS b, 3 AS c\0\0\0");
    let mut bind = b"\0\0".to_vec();
    bind.extend_from_slice(&[0, 0, 0, 0, 0, 2, 0, 1, 0, 1]);
    pg_send(&mut client, b'B', &bind);
    pg_send(&mut client, b'S', b"");
    pg_query(&mut client, "SELECT 42 AS answer");
    let read = read_within(&mut client, Duration::from_secs(2)).0;
    let text = String::from_utf8_lossy(&read);
    assert!(text.contains("08P01"), "{text}");
    assert!(
        text.contains("bind message has 2 result formats but query has 3 columns"),
        "{text}"
    );
    // The connection goes on: the query's row (the text `42`).
    assert!(read.windows(6).any(|w| w == b"\0\0\0\x0242"), "{text}");
}

#[test]
fn a_postgres_client_that_stops_reading_is_closed_after_its_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("db"),
        &["--query-timeout", "1s", "--postgres-connections", "1"],
    );
    // Far more rows than the socket's buffers hold, never read.
    let mut client = pg_connect(server.postgres);
    pg_query(&mut client, "SELECT value FROM range(100000000)");
    // Past the timeout and the grace after it, the connection is closed, and its slot
    // taken by the next client, while the first has still read nothing.
    std::thread::sleep(Duration::from_secs(7));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut next = pg_connect(server.postgres);
        let read = read_within(&mut next, Duration::from_secs(1)).0;
        // ReadyForQuery, idle: logged in.
        if read.windows(6).any(|m| m == b"Z\0\0\0\x05I") {
            break;
        }
        assert!(String::from_utf8_lossy(&read).contains("53300"), "{read:?}");
        assert!(
            Instant::now() < deadline,
            "the client that stopped reading still holds its connection"
        );
    }
    // It reads what the socket held, then the end.
    read_until_closed(&mut client, Duration::from_secs(20));
    assert_eq!(counter(&server, "sextant_query_errors_total"), 1);
}

#[test]
fn postgres_queries_end_at_their_timeout_or_when_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("db"), &["--query-timeout", "3s"]);
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    // The server's timeout.
    let Some(out) = psql(&server, &["-c", SLOW]) else {
        eprintln!("psql is not installed: the PostgreSQL timeout test is skipped");
        return;
    };
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("statement timeout: the query ran longer than 3s"),
        "{}",
        text(&out.stderr)
    );
    // The client's own, shorter.
    let out = psql(
        &server,
        &["-c", "SET statement_timeout = '200ms'", "-c", SLOW],
    )
    .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("longer than 200ms"),
        "{}",
        text(&out.stderr)
    );
    // psql's Ctrl-C: a cancel request on a connection of its own.
    let port = server.postgres.port().to_string();
    let child = Command::new("psql")
        .args(["-h", "127.0.0.1", "-p", &port, "-U", "sextant", "-X", "-w"])
        .args(["-c", SLOW])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // SIGINT once psql has had a second to connect, then every 0.2 s until it ends: one
    // sent before its query reached the server would cancel nothing.
    let mut child = child;
    let pid = child.id().to_string();
    std::thread::sleep(Duration::from_millis(800));
    while child.try_wait().unwrap().is_none() {
        std::thread::sleep(Duration::from_millis(200));
        let _ = Command::new("kill").args(["-INT", &pid]).status();
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("canceling statement due to user request"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn alert_rules_are_evaluated_and_shown_at_api_v1_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        r#"
[[rule]]
name = "HotHost"
interval = "100ms"
sql = """
SELECT host, max(usage_user) AS value FROM cpu
WHERE time > eval_time() - INTERVAL '1 hour' AND time <= eval_time()
GROUP BY host HAVING max(usage_user) > 90
"""
annotations = { summary = "{{ labels.host }} at {{ value }} %" }
"#,
    )
    .unwrap();
    let data = dir.path().join("db");
    let server = Server::start(&data, &["--rules", rules.to_str().unwrap()]);
    let reply = server.request(
        "POST",
        "/api/v2/write",
        &[],
        b"cpu,host=a usage_user=95\ncpu,host=b usage_user=5\n",
    );
    assert_eq!(reply.status, 204, "{}", reply.body);
    let deadline = Instant::now() + Duration::from_secs(20);
    let alerts = loop {
        let v = server.get_json("/api/v1/alerts", 200);
        if !v["data"]["alerts"].as_array().unwrap().is_empty() {
            break v;
        }
        assert!(Instant::now() < deadline, "no alert: {v}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let a = &alerts["data"]["alerts"][0];
    assert_eq!(a["labels"]["host"], "a");
    assert_eq!(a["state"], "firing");
    assert_eq!(a["annotations"]["summary"], "a at 95 %");
    let v = server.get_json("/api/v1/rules", 200);
    assert_eq!(v["data"]["groups"][0]["rules"][0]["health"], "ok", "{v}");
    let v = server.get_json("/api/v1/backtest?rule=HotHost&from=now-10s", 200);
    assert!(v["firstFiring"].is_string(), "{v}");
    server.get_json("/api/v1/backtest?rule=Nope&from=now-1m", 404);
    // Before the first write the rule's table did not exist: an `error` row says so.
    server.wait_for(
        "SELECT alertname, state, host FROM alerts WHERE state <> 'error'",
        "alertname,state,host\nHotHost,firing,a\n",
    );
}
