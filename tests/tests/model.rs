//! A model test: random writes to a metric and an event table (out of order, repeated,
//! with columns appearing over time, from several threads), flushes (on request, and in
//! the background in half the cases), compactions (on request and in the background),
//! deletes, retention, reopens, scans and latest-row look-ups, checked against a plain
//! in-memory model of each table.

use std::collections::BTreeMap;

use proptest::prelude::*;
use sextant_engine::{Config, Durability, Engine, Point, ScanRequest, TableKind};
use sextant_tests::{Cell, scan_rows};

/// The tables written, by a row's `table`.
const TABLES: [(&str, TableKind); 2] = [("t", TableKind::Metric), ("e", TableKind::Event)];

#[derive(Debug, Clone)]
struct Row {
    /// Index into [`TABLES`].
    table: usize,
    host: Option<u8>,
    dc: Option<u8>,
    time: i64,
    v: Option<f64>,
    n: Option<i64>,
}

impl Row {
    fn key(&self) -> Vec<(String, String)> {
        let mut k = Vec::new();
        if let Some(d) = self.dc {
            k.push(("dc".to_string(), format!("dc{d}")));
        }
        if let Some(h) = self.host {
            k.push(("host".to_string(), format!("h{h}")));
        }
        k
    }

    fn point(&self) -> Point {
        let mut p = match TABLES[self.table] {
            (name, TableKind::Metric) => Point::metric(name),
            (name, TableKind::Event) => Point::event(name),
        };
        if let Some(h) = self.host {
            p = p.tag("host", format!("h{h}"));
        }
        if let Some(d) = self.dc {
            p = p.tag("dc", format!("dc{d}"));
        }
        if let Some(v) = self.v {
            p = p.field("v", v);
        }
        if let Some(n) = self.n {
            p = p.field("n", n);
        }
        // A row needs at least one column besides time to be a point worth writing.
        p.field("seen", true).time(self.time)
    }
}

#[derive(Debug, Clone)]
enum Op {
    Write(Vec<Row>),
    /// Writes the rows from one thread per host (series of different threads never
    /// meet, so any interleaving gives the same table), two rows per write.
    Parallel(Vec<Row>),
    Flush,
    /// The others name their table by its index into [`TABLES`].
    Compact(usize),
    /// Deletes the rows in `from..=to` of host `h<host>` (any host, with none).
    Delete {
        table: usize,
        from: i64,
        to: i64,
        host: Option<u8>,
    },
    /// Keeps the rows of host `h<host>` (any rows without a rule of their own, with
    /// none) for `keep` ns before the newest row written. Retention only ever tightens
    /// here (the model drops expired rows for good, as compaction may).
    Retain {
        table: usize,
        keep: i64,
        host: Option<u8>,
    },
    Reopen,
    Scan {
        table: usize,
        from: i64,
        to: i64,
        host: Option<u8>,
    },
    Latest {
        table: usize,
        host: Option<u8>,
    },
}

fn row() -> impl Strategy<Value = Row> {
    (
        0..TABLES.len(),
        proptest::option::weighted(0.9, 0u8..3),
        proptest::option::weighted(0.3, 0u8..2),
        0i64..40,
        proptest::option::weighted(0.8, -1e3f64..1e3),
        proptest::option::weighted(0.5, any::<i64>()),
    )
        .prop_map(|(table, host, dc, time, v, n)| Row {
            table,
            host,
            dc,
            time,
            v,
            n,
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => proptest::collection::vec(row(), 1..12).prop_map(Op::Write),
        1 => proptest::collection::vec(row(), 1..24).prop_map(Op::Parallel),
        1 => Just(Op::Flush),
        1 => (0..TABLES.len()).prop_map(Op::Compact),
        1 => (0..TABLES.len(), 0i64..45, 0i64..45, proptest::option::of(0u8..3))
            .prop_map(|(table, a, b, host)| Op::Delete { table, from: a.min(b), to: a.max(b), host }),
        1 => (0..TABLES.len(), 0i64..45, proptest::option::of(0u8..3))
            .prop_map(|(table, keep, host)| Op::Retain { table, keep, host }),
        1 => Just(Op::Reopen),
        2 => (0..TABLES.len(), 0i64..45, 0i64..45, proptest::option::of(0u8..3))
            .prop_map(|(table, a, b, host)| Op::Scan { table, from: a.min(b), to: a.max(b), host }),
        1 => (0..TABLES.len(), proptest::option::of(0u8..3))
            .prop_map(|(table, host)| Op::Latest { table, host }),
    ]
}

/// The model: rows by series key, each series' rows in time order, arrival order kept
/// for equal times (metric tables keep only the last of those).
#[derive(Default)]
struct Model {
    series: BTreeMap<Vec<(String, String)>, Vec<Row>>,
    /// The newest time ever written (deleted rows included): retention's reference.
    newest: Option<i64>,
    /// Retention: per host, and for every other row.
    keep_host: BTreeMap<u8, i64>,
    keep_default: Option<i64>,
}

impl Model {
    fn write(&mut self, kind: TableKind, rows: &[Row]) {
        for r in rows {
            self.newest = Some(self.newest.map_or(r.time, |n| n.max(r.time)));
            let list = self.series.entry(r.key()).or_default();
            if kind == TableKind::Metric {
                list.retain(|x| x.time != r.time);
            }
            // Insert after every row with time <= r.time, keeping arrival order.
            let at = list.partition_point(|x| x.time <= r.time);
            list.insert(at, r.clone());
        }
    }

    /// How long rows of `host` are kept, if not forever.
    fn keep(&self, host: Option<u8>) -> Option<i64> {
        host.and_then(|h| self.keep_host.get(&h).copied())
            .or(self.keep_default)
    }

    /// Tightens retention: a new rule never keeps rows longer than they were kept.
    fn retain(&mut self, keep: i64, host: Option<u8>) {
        match host {
            Some(h) => {
                let now = self.keep(Some(h)).map_or(keep, |k| k.min(keep));
                self.keep_host.insert(h, now);
            }
            None => self.keep_default = Some(self.keep_default.map_or(keep, |k| k.min(keep))),
        }
    }

    /// The retention the engine is given for the model's rules.
    fn retention(&self) -> sextant_engine::Retention {
        let ns = |k: i64| std::time::Duration::from_nanos(k as u64);
        let mut r = match self.keep_default {
            Some(k) => sextant_engine::Retention::keep(ns(k)),
            None => sextant_engine::Retention::forever(),
        };
        for (h, k) in &self.keep_host {
            r = r.rule(
                sextant_engine::RowMatch::all().tag_eq("host", format!("h{h}")),
                ns(*k),
            );
        }
        r
    }

    /// Drops the rows retention has expired: older than `keep` before the newest row.
    fn expire(&mut self) {
        let Some(newest) = self.newest else {
            return;
        };
        let keeps: Vec<_> = self.series.keys().cloned().collect();
        for key in keeps {
            let host = key
                .iter()
                .find(|(k, _)| k == "host")
                .and_then(|(_, v)| v[1..].parse::<u8>().ok());
            if let Some(keep) = self.keep(host) {
                let rows = self.series.get_mut(&key).unwrap();
                rows.retain(|r| r.time >= newest - keep);
            }
        }
        self.series.retain(|_, rows| !rows.is_empty());
    }

    fn delete(&mut self, from: i64, to: i64, host: Option<u8>) {
        let host = host.map(|h| format!("h{h}"));
        for (key, rows) in self.series.iter_mut() {
            let matches = host
                .as_ref()
                .is_none_or(|h| key.iter().any(|(k, v)| k == "host" && v == h));
            if matches {
                rows.retain(|r| r.time < from || r.time > to);
            }
        }
        self.series.retain(|_, rows| !rows.is_empty());
    }

    fn expect(&self, from: i64, to: i64, host: Option<u8>) -> Vec<Vec<Cell>> {
        let mut out = Vec::new();
        for (key, rows) in &self.series {
            if let Some(h) = host
                && !key
                    .iter()
                    .any(|(k, v)| k == "host" && *v == format!("h{h}"))
            {
                continue;
            }
            for r in rows.iter().filter(|r| r.time >= from && r.time < to) {
                out.push(cells(r));
            }
        }
        out
    }

    fn latest(&self, host: Option<u8>) -> Vec<Vec<Cell>> {
        let mut out = Vec::new();
        for (key, rows) in &self.series {
            if let Some(h) = host
                && !key
                    .iter()
                    .any(|(k, v)| k == "host" && *v == format!("h{h}"))
            {
                continue;
            }
            if let Some(r) = rows.last() {
                out.push(cells(r));
            }
        }
        out
    }
}

fn cells(r: &Row) -> Vec<Cell> {
    vec![
        Cell::Int(r.time),
        r.host.map_or(Cell::Null, |h| Cell::Str(format!("h{h}"))),
        r.dc.map_or(Cell::Null, |d| Cell::Str(format!("dc{d}"))),
        r.v.map_or(Cell::Null, Cell::Float),
        r.n.map_or(Cell::Null, Cell::Int),
    ]
}

fn open(dir: &std::path::Path, flush_bytes: usize, background_flush: bool) -> Engine {
    Config::new(dir)
        .durability(Durability::Never)
        .background_flush(background_flush)
        .flush_bytes(flush_bytes)
        .block_rows(4)
        // Small windows and fanout, so that the background compactor merges often, and
        // across the rows' 40 ns of time there are several windows to keep apart.
        .compaction_window(std::time::Duration::from_nanos(10))
        .compaction_fanout(2)
        .open()
        .unwrap()
}

fn request(table: usize, from: i64, to: i64, host: Option<u8>) -> ScanRequest {
    let mut req = ScanRequest::new(TABLES[table].0)
        .columns(["time", "host", "dc", "v", "n"])
        .time_range(from, to)
        .batch_rows(5);
    if let Some(h) = host {
        req = req.tag_eq("host", format!("h{h}"));
    }
    req
}

/// Gives each table's model its rows of `rows`, in the order given.
fn write_models(models: &mut [Model; 2], rows: &[Row]) {
    for (t, model) in models.iter_mut().enumerate() {
        let mine: Vec<Row> = rows.iter().filter(|r| r.table == t).cloned().collect();
        if !mine.is_empty() {
            model.write(TABLES[t].1, &mine);
        }
        model.expire();
    }
}

fn run(ops: Vec<Op>, flush_bytes: usize, background_flush: bool) {
    let dir = tempfile::tempdir().unwrap();
    let reopen = || open(dir.path(), flush_bytes, background_flush);
    let mut engine = Some(reopen());
    let mut models = [Model::default(), Model::default()];
    for op in ops {
        let e = engine.as_ref().unwrap();
        match op {
            Op::Write(rows) => {
                let points: Vec<Point> = rows.iter().map(Row::point).collect();
                e.write_points(&points).unwrap();
                write_models(&mut models, &rows);
            }
            Op::Parallel(rows) => {
                let mut by_host: BTreeMap<Option<u8>, Vec<Row>> = BTreeMap::new();
                for r in rows {
                    by_host.entry(r.host).or_default().push(r);
                }
                std::thread::scope(|scope| {
                    for rows in by_host.values() {
                        scope.spawn(move || {
                            for pair in rows.chunks(2) {
                                let points: Vec<Point> = pair.iter().map(Row::point).collect();
                                e.write_points(&points).unwrap();
                            }
                        });
                    }
                });
                for rows in by_host.values() {
                    write_models(&mut models, rows);
                }
            }
            Op::Retain { table, keep, host } => {
                let model = &mut models[table];
                model.retain(keep, host);
                e.set_retention(TABLES[table].0, model.retention()).unwrap();
                model.expire();
            }
            Op::Flush => e.flush().unwrap(),
            Op::Compact(table) => e.compact(TABLES[table].0).unwrap(),
            Op::Delete {
                table,
                from,
                to,
                host,
            } => {
                let mut d = sextant_engine::Delete::all().time_range(from, to);
                if let Some(h) = host {
                    d = d.tag_eq("host", format!("h{h}"));
                }
                e.delete(TABLES[table].0, &d).unwrap();
                models[table].delete(from, to, host);
            }
            Op::Reopen => {
                engine.take().unwrap().close().unwrap();
                engine = Some(reopen());
            }
            Op::Scan {
                table,
                from,
                to,
                host,
            } => {
                let got = scan_rows(&e.snapshot(), &request(table, from, to, host)).unwrap();
                assert_eq!(
                    got,
                    models[table].expect(from, to, host),
                    "scan of {} {from}..{to} host {host:?}",
                    TABLES[table].0
                );
            }
            Op::Latest { table, host } => {
                let req = request(table, i64::MIN, i64::MAX, host);
                let batch = e.snapshot().latest(&req).unwrap();
                let got = sextant_tests::batch_rows(&[batch]);
                assert_eq!(
                    got,
                    models[table].latest(host),
                    "latest of {} host {host:?}",
                    TABLES[table].0
                );
            }
        }
    }
}

/// Every case starts by writing one row with every column to each table, at a time the
/// scans and the models see like any other.
fn run_case(mut ops: Vec<Op>, flush_bytes: usize, background_flush: bool) {
    let first: Vec<Row> = (0..TABLES.len())
        .map(|table| Row {
            table,
            host: Some(0),
            dc: Some(0),
            time: 0,
            v: Some(0.5),
            n: Some(1),
        })
        .collect();
    ops.insert(0, Op::Write(first));
    run(ops, flush_bytes, background_flush);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn tables_match_model(
        ops in proptest::collection::vec(op(), 1..40),
        small in any::<bool>(),
        background_flush in any::<bool>(),
    ) {
        run_case(ops, if small { 2048 } else { 64 << 20 }, background_flush);
    }
}
