//! Load for a running `sextant serve`, for the server's figures.
//!
//! - `lines`: TSBS cpu-only rows (10 tags, 10 fields, one row per host every 10 s, as
//!   `sextant-bench generate --workload cpu-only --format influx` writes them) in line
//!   protocol, posted in batches over keep-alive HTTP connections; prints rows/s
//!   acknowledged (204).
//! - `statsd`: StatsD counters, timers and gauges over UDP at a fixed rate for a while,
//!   then the server's own count of metrics received (`/metrics`), and so the share lost.
//! - `postgres`: a query over the PostgreSQL protocol, its median time from sending it
//!   to its last row: a prepared statement run again (as drivers such as tokio-postgres,
//!   asyncpg and JDBC run queries) with its answer in binary and in text, and the simple
//!   protocol (text, planned each time, as psql sends queries). The client is the few
//!   messages this needs, so that reading the rows costs it little (tokio-postgres, a
//!   dev-dependency, would turn a feature of a crate under DataFusion on, and the tests
//!   would need DataFusion built a second time).
//! - `embedded`: the same query through the embedded API, the server stopped.
//!
//! ```text
//! taskset -c 0 target/release/sextant serve --data /tmp/load-db --postgres off &
//! taskset -c 1 target/release/examples/load lines --rows 2000000
//! taskset -c 1 target/release/examples/load statsd --rate 200000 --seconds 60
//! taskset -c 1 target/release/examples/load postgres --sql "SELECT ..." --runs 40
//! taskset -c 0 target/release/examples/load embedded --data /tmp/load-db --sql "SELECT ..."
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Line protocol over HTTP.
    Lines {
        #[arg(long, default_value = "127.0.0.1:8086")]
        http: String,
        /// Rows to send in all.
        #[arg(long, default_value_t = 2_000_000)]
        rows: usize,
        /// Hosts (series); rows go host by host, 10 s apart.
        #[arg(long, default_value_t = 1000)]
        hosts: usize,
        /// Rows per request.
        #[arg(long, default_value_t = 5000)]
        batch: usize,
        /// Concurrent connections.
        #[arg(long, default_value_t = 4)]
        connections: usize,
    },
    /// StatsD over UDP.
    Statsd {
        #[arg(long, default_value = "127.0.0.1:8125")]
        addr: String,
        /// The server's HTTP address, for its count of metrics received.
        #[arg(long, default_value = "127.0.0.1:8086")]
        http: String,
        /// Metrics per second.
        #[arg(long, default_value_t = 200_000)]
        rate: usize,
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Metrics per packet.
        #[arg(long, default_value_t = 20)]
        per_packet: usize,
    },
    /// A query over the PostgreSQL protocol, in binary and in text: the median of `runs`
    /// timed runs of each (from sending it to its last row).
    Postgres {
        #[arg(long, default_value = "127.0.0.1:5432")]
        addr: String,
        /// The answers to time.
        #[arg(long, value_enum, default_value_t = Answer::All)]
        answer: Answer,
        #[arg(long)]
        sql: String,
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
        runs: u64,
    },
    /// A query through the embedded API, for comparison with the same query over the
    /// PostgreSQL protocol: the median of `runs` timed runs (the answer collected).
    Embedded {
        #[arg(long)]
        data: std::path::PathBuf,
        #[arg(long)]
        sql: String,
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
        runs: u64,
    },
}

fn main() {
    match Cli::parse().command {
        Command::Lines {
            http,
            rows,
            hosts,
            batch,
            connections,
        } => lines(&http, rows, hosts, batch, connections),
        Command::Statsd {
            addr,
            http,
            rate,
            seconds,
            per_packet,
        } => statsd(&addr, &http, rate, seconds, per_packet),
        Command::Postgres {
            addr,
            sql,
            runs,
            answer,
        } => postgres(&addr, &sql, runs as usize, answer),
        Command::Embedded { data, sql, runs } => embedded(&data, &sql, runs as usize),
    }
}

/// A small seeded generator (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-southeast-2"];
const FIELDS: [&str; 10] = [
    "usage_user",
    "usage_system",
    "usage_idle",
    "usage_nice",
    "usage_iowait",
    "usage_irq",
    "usage_softirq",
    "usage_steal",
    "usage_guest",
    "usage_guest_nice",
];

/// Line-protocol requests of `batch` TSBS cpu rows each.
fn requests(rows: usize, hosts: usize, batch: usize) -> Vec<Vec<u8>> {
    let mut rng = Rng(1);
    let keys: Vec<String> = (0..hosts)
        .map(|h| {
            let region = REGIONS[h % REGIONS.len()];
            format!(
                "cpu,hostname=host_{h},region={region},datacenter={region}a,rack={},os=Ubuntu16.04LTS,arch=x64,team=SF,service={},service_version=1,service_environment=production",
                h % 100,
                h % 20
            )
        })
        .collect();
    let start: i64 = 1_451_606_400_000_000_000; // 2016-01-01, as TSBS
    let mut values = vec![50.0f64; hosts * FIELDS.len()];
    let mut out = Vec::new();
    let mut request = Vec::new();
    for i in 0..rows {
        let (step, h) = (i / hosts, i % hosts);
        request.extend_from_slice(keys[h].as_bytes());
        for (f, name) in FIELDS.iter().enumerate() {
            let v = &mut values[h * FIELDS.len() + f];
            *v = (*v + (rng.next() % 11) as f64 - 5.0).clamp(0.0, 100.0);
            request.push(if f == 0 { b' ' } else { b',' });
            write!(request, "{name}={v}").unwrap();
        }
        writeln!(request, " {}", start + step as i64 * 10_000_000_000).unwrap();
        if (i + 1) % batch == 0 || i + 1 == rows {
            out.push(std::mem::take(&mut request));
        }
    }
    out
}

/// Posts `body` on a keep-alive connection and reads the status.
fn post(conn: &mut BufReader<TcpStream>, host: &str, path: &str, body: &[u8]) -> u16 {
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let stream = conn.get_mut();
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut status_line = String::new();
    conn.read_line(&mut status_line).unwrap();
    let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        conn.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
    }
    let mut rest = vec![0; length];
    conn.read_exact(&mut rest).unwrap();
    if status != 204 {
        eprintln!("{status}: {}", String::from_utf8_lossy(&rest));
    }
    status
}

fn lines(http: &str, rows: usize, hosts: usize, batch: usize, connections: usize) {
    let prepared = Instant::now();
    let requests = Arc::new(requests(rows, hosts, batch));
    let bytes: usize = requests.iter().map(Vec::len).sum();
    eprintln!(
        "{} requests of {batch} rows ({:.1} MB) prepared in {:.1} s",
        requests.len(),
        bytes as f64 / 1e6,
        prepared.elapsed().as_secs_f64()
    );
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..connections)
        .map(|_| {
            let (requests, next, http) =
                (Arc::clone(&requests), Arc::clone(&next), http.to_string());
            std::thread::spawn(move || {
                let mut conn = BufReader::new(TcpStream::connect(&http).unwrap());
                conn.get_ref().set_nodelay(true).unwrap();
                let mut failed = 0;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = requests.get(i) else { break };
                    if post(&mut conn, &http, "/api/v2/write", body) != 204 {
                        failed += 1;
                    }
                }
                failed
            })
        })
        .collect();
    let failed: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let took = started.elapsed().as_secs_f64();
    println!(
        "line protocol over HTTP: {rows} rows in {took:.2} s = {:.0} rows/s ({:.1} MB/s), {connections} connections, {batch} rows per request, {failed} requests failed",
        rows as f64 / took,
        bytes as f64 / took / 1e6
    );
}

/// The server's count of StatsD metrics received, from `/metrics`.
fn received(http: &str) -> u64 {
    let mut conn = TcpStream::connect(http).unwrap();
    write!(
        conn,
        "GET /metrics HTTP/1.1\r\nHost: {http}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    conn.read_to_string(&mut text).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("sextant_statsd_metrics_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the server's /metrics counts StatsD metrics")
}

fn statsd(addr: &str, http: &str, rate: usize, seconds: u64, per_packet: usize) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.connect(addr).unwrap();
    let before = received(http);
    let mut rng = Rng(7);
    // Packets made beforehand, so the sender keeps up: counters, timers and gauges over
    // 100 services and 10 endpoints.
    let packets: Vec<Vec<u8>> = (0..1000)
        .map(|_| {
            let mut p = Vec::new();
            for m in 0..per_packet {
                let (service, endpoint) = (rng.next() % 100, rng.next() % 10);
                let line = match m % 3 {
                    0 => format!("requests:1|c|#service:s{service},endpoint:e{endpoint}"),
                    1 => format!(
                        "latency:{}|ms|#service:s{service},endpoint:e{endpoint}",
                        rng.next() % 500
                    ),
                    _ => format!("queue_depth:{}|g|#service:s{service}", rng.next() % 100),
                };
                if !p.is_empty() {
                    p.push(b'\n');
                }
                p.extend_from_slice(line.as_bytes());
            }
            p
        })
        .collect();
    let packets_per_sec = rate / per_packet;
    let started = Instant::now();
    let mut sent = 0usize;
    // Paced in slices of 1 ms.
    while started.elapsed() < Duration::from_secs(seconds) {
        let due = (started.elapsed().as_secs_f64() * packets_per_sec as f64) as usize;
        while sent < due {
            socket.send(&packets[sent % packets.len()]).unwrap();
            sent += 1;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let took = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(500));
    let got = received(http) - before;
    let metrics = sent * per_packet;
    println!(
        "StatsD over UDP: {metrics} metrics sent in {took:.1} s ({:.0}/s, {per_packet} per packet); the server received {got}: {:.3} % lost",
        metrics as f64 / took,
        100.0 * (metrics as f64 - got as f64) / metrics as f64
    );
}

/// How `load postgres` asks for a query's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Answer {
    /// A prepared statement bound with binary results (as drivers run queries).
    Binary,
    /// The same statement bound with text results.
    Text,
    /// The simple protocol, text, planned each time (as psql sends queries).
    Simple,
    /// All three.
    All,
}

fn postgres(addr: &str, sql: &str, runs: usize, answer: Answer) {
    let mut pg = Postgres::connect(addr);
    // A named statement, parsed (and planned) once.
    let mut parse = Vec::new();
    put_message(&mut parse, b'P', |m| {
        put_cstr(m, "s");
        put_cstr(m, sql);
        m.extend_from_slice(&0_i16.to_be_bytes());
    });
    put_message(&mut parse, b'S', |_| {});
    pg.send(&parse);
    pg.rows_until_ready();
    // Bind it with every column in `format` (0 text, 1 binary), execute, sync.
    let bound = |format: i16| {
        let mut run = Vec::new();
        put_message(&mut run, b'B', |m| {
            put_cstr(m, "");
            put_cstr(m, "s");
            m.extend_from_slice(&0_i16.to_be_bytes()); // parameter formats
            m.extend_from_slice(&0_i16.to_be_bytes()); // parameters
            m.extend_from_slice(&1_i16.to_be_bytes()); // one result format for all
            m.extend_from_slice(&format.to_be_bytes());
        });
        put_message(&mut run, b'E', |m| {
            put_cstr(m, "");
            m.extend_from_slice(&0_i32.to_be_bytes());
        });
        put_message(&mut run, b'S', |_| {});
        run
    };
    let mut simple = Vec::new();
    put_message(&mut simple, b'Q', |m| put_cstr(m, sql));

    let modes = [
        (Answer::Binary, "in binary (prepared)", bound(1)),
        (Answer::Text, "in text (prepared)", bound(0)),
        (Answer::Simple, "in text (simple protocol)", simple),
    ];
    for (mode, how, message) in modes {
        if answer != Answer::All && answer != mode {
            continue;
        }
        let mut times = Vec::with_capacity(runs);
        let mut rows = 0;
        // One untimed run first.
        for run in 0..=runs {
            let started = Instant::now();
            pg.send(&message);
            rows = pg.rows_until_ready();
            if run > 0 {
                times.push(started.elapsed().as_secs_f64() * 1e3);
            }
        }
        println!(
            "postgres: {rows} rows, median {:.3} ms {how} of {runs} runs",
            median(&mut times)
        );
    }
}

/// A PostgreSQL connection with no password, user and database `sextant`.
struct Postgres(BufReader<TcpStream>);

impl Postgres {
    fn connect(addr: &str) -> Self {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        let mut startup = Vec::new();
        startup.extend_from_slice(&196_608_i32.to_be_bytes()); // protocol 3.0
        for (key, value) in [("user", "sextant"), ("database", "sextant")] {
            put_cstr(&mut startup, key);
            put_cstr(&mut startup, value);
        }
        startup.push(0);
        let mut message = ((startup.len() + 4) as i32).to_be_bytes().to_vec();
        message.extend_from_slice(&startup);
        let mut pg = Self(BufReader::with_capacity(1 << 20, stream));
        pg.send(&message);
        pg.rows_until_ready();
        pg
    }

    fn send(&mut self, bytes: &[u8]) {
        self.0.get_mut().write_all(bytes).unwrap();
    }

    /// Reads messages up to ReadyForQuery; the data rows among them, counted. Panics
    /// on an error.
    fn rows_until_ready(&mut self) -> usize {
        let mut rows = 0;
        let mut body = Vec::new();
        loop {
            let mut head = [0u8; 5];
            self.0.read_exact(&mut head).unwrap();
            let len = i32::from_be_bytes(head[1..5].try_into().unwrap()) as usize - 4;
            body.resize(len, 0);
            self.0.read_exact(&mut body).unwrap();
            match head[0] {
                b'D' => rows += 1,
                b'Z' => return rows,
                b'E' => panic!("the server answered: {}", String::from_utf8_lossy(&body)),
                b'R' if body[..4] != [0, 0, 0, 0] => panic!("the server asks for a password"),
                _ => {}
            }
        }
    }
}

/// A message of `kind` whose body `body` writes.
fn put_message(out: &mut Vec<u8>, kind: u8, body: impl FnOnce(&mut Vec<u8>)) {
    let mut m = Vec::new();
    body(&mut m);
    out.push(kind);
    out.extend_from_slice(&((m.len() + 4) as i32).to_be_bytes());
    out.extend_from_slice(&m);
}

fn put_cstr(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

/// The median of at least one time (of an even count, the mean of the middle two).
fn median(times: &mut [f64]) -> f64 {
    times.sort_by(f64::total_cmp);
    let half = times.len() / 2;
    if times.len().is_multiple_of(2) {
        (times[half - 1] + times[half]) / 2.0
    } else {
        times[half]
    }
}

fn embedded(data: &std::path::Path, sql: &str, runs: usize) {
    let db = sextant_query::Database::open(data).unwrap();
    let rows: usize = db.sql(sql).unwrap().iter().map(|b| b.num_rows()).sum();
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            let batches = db.sql(sql).unwrap();
            std::hint::black_box(batches);
            started.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    println!(
        "embedded: {rows} rows, median {:.3} ms of {runs} runs",
        median(&mut times)
    );
    db.close().unwrap();
}
