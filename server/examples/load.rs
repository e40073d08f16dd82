//! Load for a running `sextant serve`, for the server's figures.
//!
//! - `lines`: TSBS cpu-only rows (10 tags, 10 fields, one row per host every 10 s, as
//!   `sextant-bench generate --workload cpu-only --format influx` writes them) in line
//!   protocol, posted in batches over keep-alive HTTP connections; prints rows/s
//!   acknowledged (204).
//! - `statsd`: StatsD counters, timers and gauges over UDP at a fixed rate for a while,
//!   then the server's own count of metrics received (`/metrics`), and so the share lost.
//!
//! ```text
//! taskset -c 0 target/release/sextant serve --data /tmp/load-db --postgres off &
//! taskset -c 1 target/release/examples/load lines --rows 2000000
//! taskset -c 1 target/release/examples/load statsd --rate 200000 --seconds 60
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
    /// A query through the embedded API, for comparison with the same query over the
    /// PostgreSQL protocol: the median of `runs` timed runs (the answer collected).
    Embedded {
        #[arg(long)]
        data: std::path::PathBuf,
        #[arg(long)]
        sql: String,
        #[arg(long, default_value_t = 10)]
        runs: usize,
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
        Command::Embedded { data, sql, runs } => embedded(&data, &sql, runs),
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
    times.sort_by(f64::total_cmp);
    println!(
        "embedded: {rows} rows, median {:.3} ms of {runs} runs",
        times[runs / 2]
    );
    db.close().unwrap();
}
