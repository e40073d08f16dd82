//! Shared helpers for Sextant's integration tests: reading scans back into plain rows.

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type, TimestampNanosecondType, UInt8Type};
use arrow_array::{Array, RecordBatch};
use sextant_engine::{ScanRequest, Snapshot};

pub mod durable;
pub mod log_queries;
pub mod tsbs;

/// A value of one cell, in a form tests can compare.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
pub enum Cell {
    /// Null.
    Null,
    /// Time (ns), i64, level rank.
    Int(i64),
    /// f64 (compared bitwise through `to_bits` where NaN matters).
    Float(f64),
    /// Tags and strings.
    Str(String),
}

/// Reads cell `i` of any column type the engine returns.
pub fn cell(array: &dyn Array, i: usize) -> Cell {
    use arrow_schema::DataType;
    if array.is_null(i) {
        return Cell::Null;
    }
    match array.data_type() {
        DataType::Timestamp(_, _) => {
            Cell::Int(array.as_primitive::<TimestampNanosecondType>().value(i))
        }
        DataType::Int64 => Cell::Int(array.as_primitive::<Int64Type>().value(i)),
        DataType::UInt64 => Cell::Int(
            array
                .as_primitive::<arrow_array::types::UInt64Type>()
                .value(i) as i64,
        ),
        DataType::Float64 => Cell::Float(array.as_primitive::<Float64Type>().value(i)),
        DataType::Boolean => Cell::Int(array.as_boolean().value(i) as i64),
        DataType::Utf8 => Cell::Str(array.as_string::<i32>().value(i).to_string()),
        DataType::Dictionary(k, _) if **k == DataType::Int32 => {
            let d = array.as_dictionary::<Int32Type>();
            let key = d.keys().value(i) as usize;
            Cell::Str(d.values().as_string::<i32>().value(key).to_string())
        }
        DataType::Dictionary(k, _) if **k == DataType::UInt8 => {
            Cell::Int(array.as_dictionary::<UInt8Type>().keys().value(i) as i64)
        }
        other => panic!("unexpected type {other}"),
    }
}

/// Every row of the batches, as cells in column order.
pub fn batch_rows(batches: &[RecordBatch]) -> Vec<Vec<Cell>> {
    let mut out = Vec::new();
    for b in batches {
        for i in 0..b.num_rows() {
            out.push(b.columns().iter().map(|c| cell(c.as_ref(), i)).collect());
        }
    }
    out
}

/// Runs a scan to the end and returns its rows.
pub fn scan_rows(snap: &Snapshot, req: &ScanRequest) -> sextant_engine::Result<Vec<Vec<Cell>>> {
    let batches = snap
        .scan(req)?
        .collect::<sextant_engine::Result<Vec<_>>>()?;
    Ok(batch_rows(&batches))
}

// ---------------------------------------------------------------------------------------
// Crash and corruption test helpers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sextant_engine::{Engine, FieldValue, Level, Point, TableKind};

/// A small seeded random number generator (SplitMix64), so that a failing case can be
/// replayed from its seed without a dependency; the one the TSBS query parameters are drawn
/// with.
pub use sextant_bench::queries::Rng;

/// Copies a database directory, leaving out its `LOCK` file (which a forgotten engine
/// still holds).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else if entry.file_name() != "LOCK" {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The files under `dir` (recursively) whose names end with `suffix`, sorted by path.
pub fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries {
        let entry = entry.unwrap();
        let path = entry.path();
        if entry.file_type().unwrap().is_dir() {
            out.extend(files_ending(&path, suffix));
        } else if path.to_string_lossy().ends_with(suffix) {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// A row in a canonical, comparable form: `name=value` for every non-null column, sorted
/// by column name, so that rows compare whatever the column order of the table.
pub fn canonical(columns: &[(String, Cell)]) -> String {
    let mut cells: Vec<(&str, &Cell)> = columns
        .iter()
        .filter(|(_, c)| *c != Cell::Null)
        .map(|(n, c)| (n.as_str(), c))
        .collect();
    cells.sort_by(|a, b| a.0.cmp(b.0));
    let parts: Vec<String> = cells.iter().map(|(n, c)| format!("{n}={c:?}")).collect();
    parts.join(" ")
}

/// Scans every column of every table of the engine, returning each table's rows in
/// canonical form, sorted. Tables without rows are left out. Each string field is also
/// scanned for a value no row holds, so that damage to the block filters is found.
pub fn scan_all(engine: &Engine) -> sextant_engine::Result<BTreeMap<String, Vec<String>>> {
    let snap = engine.snapshot();
    let mut out = BTreeMap::new();
    for table in snap.tables().map(str::to_string).collect::<Vec<_>>() {
        let batches = snap
            .scan(&ScanRequest::new(&table))?
            .collect::<sextant_engine::Result<Vec<_>>>()?;
        let mut rows = Vec::new();
        for b in &batches {
            let names: Vec<String> = b
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            for i in 0..b.num_rows() {
                let cols: Vec<(String, Cell)> = names
                    .iter()
                    .zip(b.columns())
                    .map(|(n, c)| (n.clone(), cell(c.as_ref(), i)))
                    .collect();
                rows.push(canonical(&cols));
            }
        }
        if !rows.is_empty() {
            rows.sort();
            out.insert(table.clone(), rows);
        }
        // Equality on each string field with a value no row holds: every segment block's
        // filter is read and its crc checked. (Field filters are a hint, not a filter:
        // rows of merged stretches come back anyway, so the rows are not judged here.)
        let strings: Vec<String> = snap
            .schema(&table)
            .map(|schema| {
                schema
                    .columns
                    .iter()
                    .filter(|c| c.ty == sextant_engine::ColumnType::Str)
                    .map(|c| c.name.clone())
                    .collect()
            })
            .unwrap_or_default();
        for column in strings {
            let absent = FieldValue::Str("\u{0}a value no row holds".to_string());
            let request =
                ScanRequest::new(&table).field_filter(&column, sextant_engine::CmpOp::Eq, absent);
            for batch in snap.scan(&request)? {
                batch?;
            }
        }
    }
    Ok(out)
}

/// One row to write, kept in a form from which both the [`Point`] and the expected scan
/// row can be made.
#[derive(Debug, Clone, PartialEq)]
pub struct RowSpec {
    /// The table.
    pub table: String,
    /// Metric or event.
    pub kind: TableKind,
    /// Time (ns).
    pub time: i64,
    /// Log level, for event tables.
    pub level: Option<Level>,
    /// Tags.
    pub tags: Vec<(String, String)>,
    /// Fields.
    pub fields: Vec<(String, FieldValue)>,
}

impl RowSpec {
    /// The point that writes this row.
    pub fn point(&self) -> Point {
        let mut p = match self.kind {
            TableKind::Metric => Point::metric(&self.table),
            TableKind::Event => Point::event(&self.table),
        };
        if let Some(l) = self.level {
            p = p.level(l);
        }
        for (k, v) in &self.tags {
            p = p.tag(k, v);
        }
        for (k, v) in &self.fields {
            p = p.field(k, v.clone());
        }
        p.time(self.time)
    }

    /// The series key and time, which a later metric row replaces.
    fn key(&self) -> SeriesTime {
        let mut tags = self.tags.clone();
        tags.sort();
        (tags, self.time)
    }

    /// The row as a scan returns it, in canonical form.
    pub fn canonical(&self) -> String {
        let mut cols = vec![("time".to_string(), Cell::Int(self.time))];
        if let Some(l) = self.level {
            cols.push(("level".to_string(), Cell::Int(i64::from(l.rank()))));
        }
        for (k, v) in &self.tags {
            cols.push((k.clone(), Cell::Str(v.clone())));
        }
        for (k, v) in &self.fields {
            let c = match v {
                FieldValue::F64(x) => Cell::Float(*x),
                FieldValue::I64(x) => Cell::Int(*x),
                FieldValue::U64(x) => Cell::Int(*x as i64),
                FieldValue::Bool(x) => Cell::Int(i64::from(*x)),
                FieldValue::Str(x) => Cell::Str(x.clone()),
            };
            cols.push((k.clone(), c));
        }
        canonical(&cols)
    }
}

/// A series key (sorted tags) and a time: what a later metric row replaces.
type SeriesTime = (Vec<(String, String)>, i64);

/// The rows a database must hold after the given writes (each a list of rows written by
/// one call), in write order: every event row, and the last row written for each series
/// and time of a metric table. Canonical form, sorted, by table; empty tables left out.
pub fn expected_rows<'a>(
    writes: impl IntoIterator<Item = &'a [RowSpec]>,
) -> BTreeMap<String, Vec<String>> {
    let mut events: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut metrics: BTreeMap<String, BTreeMap<SeriesTime, String>> = BTreeMap::new();
    for write in writes {
        for r in write {
            match r.kind {
                TableKind::Event => events
                    .entry(r.table.clone())
                    .or_default()
                    .push(r.canonical()),
                TableKind::Metric => {
                    metrics
                        .entry(r.table.clone())
                        .or_default()
                        .insert(r.key(), r.canonical());
                }
            }
        }
    }
    let mut out = events;
    for (t, rows) in metrics {
        out.insert(t, rows.into_values().collect());
    }
    for rows in out.values_mut() {
        rows.sort();
    }
    out.retain(|_, rows| !rows.is_empty());
    out
}

/// Where one record lies in a WAL file, read with the layout in `engine/src/wal/mod.rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalRecord {
    /// Offset of the record header.
    pub offset: u64,
    /// Offset just past the payload.
    pub end: u64,
    /// Sequence number.
    pub seq: u64,
}

/// The records of an intact WAL file (16-byte file header, then `len:u32 crc:u32 seq:u64
/// payload`), stopping at the first that does not fit in the file.
pub fn wal_records(bytes: &[u8]) -> Vec<WalRecord> {
    let mut out = Vec::new();
    let mut pos = 16usize;
    while pos + 16 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        let seq = u64::from_le_bytes(bytes[pos + 8..pos + 16].try_into().unwrap());
        let end = pos + 16 + len;
        if end > bytes.len() {
            break;
        }
        out.push(WalRecord {
            offset: pos as u64,
            end: end as u64,
            seq,
        });
        pos = end;
    }
    out
}

/// The rows of write number `j` of the corruption fixture: a metric table `cpu` with
/// overwrites (same series and time in later writes), an event table `logs` with levels
/// and incompressible messages (so that segments span several 4 KiB pages), and a metric
/// table `disk` with a sometimes-null string field.
pub fn fixture_write(j: u64) -> Vec<RowSpec> {
    let mut rows = Vec::new();
    for i in 0..4u64 {
        let mut tags = vec![("host".to_string(), format!("h{}", (j + i) % 3))];
        if j.is_multiple_of(5) {
            tags.push(("dc".to_string(), "eu".to_string()));
        }
        rows.push(RowSpec {
            table: "cpu".into(),
            kind: TableKind::Metric,
            time: (((j * 5 + i * 7) % 40) * 10) as i64,
            level: None,
            tags,
            fields: vec![
                (
                    "usage".into(),
                    FieldValue::F64(j as f64 * 100.0 + i as f64 + 0.25),
                ),
                ("count".into(), FieldValue::I64((j * 10 + i) as i64 - 300)),
            ],
        });
    }
    if j % 4 != 3 {
        for i in 0..(3 + j % 4) {
            let mut rng = Rng::new(j << 8 | i);
            let message: String = (0..160)
                .map(|_| {
                    char::from(
                        b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+/"
                            [rng.range(0, 64) as usize],
                    )
                })
                .collect();
            rows.push(RowSpec {
                table: "logs".into(),
                kind: TableKind::Event,
                time: (j * 100 + i) as i64,
                level: Some(Level::ALL[((j + i) % 6) as usize]),
                tags: vec![("service".into(), format!("s{}", i % 2))],
                fields: vec![
                    ("message".into(), FieldValue::Str(message)),
                    ("code".into(), FieldValue::U64(j * 1000 + i)),
                ],
            });
        }
    }
    if j.is_multiple_of(3) {
        let mut fields = vec![
            ("free".into(), FieldValue::U64(1 << 40 | j)),
            ("ok".into(), FieldValue::Bool(j.is_multiple_of(2))),
        ];
        if j.is_multiple_of(2) {
            fields.push(("note".into(), FieldValue::Str(format!("note {j}"))));
        }
        rows.push(RowSpec {
            table: "disk".into(),
            kind: TableKind::Metric,
            time: ((j % 10) * 1000) as i64,
            level: None,
            tags: vec![("dev".into(), format!("d{}", j % 2))],
            fields,
        });
    }
    rows
}

/// A small database for the corruption tests, as [`build_fixture`] left it.
#[derive(Debug)]
pub struct Fixture {
    /// The rows of each write call, in order; write `j` has WAL sequence number `j + 1`.
    pub writes: Vec<Vec<RowSpec>>,
    /// Writes before this one were flushed by the first flush (the first segment of each
    /// table).
    pub first_flush: usize,
    /// Writes before this one are in segments; the later ones only in the WAL.
    pub flushed: usize,
}

impl Fixture {
    /// The rows expected after the writes `keep` selects.
    pub fn expected(&self, keep: impl Fn(usize) -> bool) -> BTreeMap<String, Vec<String>> {
        self.expected_rows(|j, _| keep(j))
    }

    /// The rows expected when only the rows `keep(write number, row)` selects were written.
    pub fn expected_rows(
        &self,
        keep: impl Fn(usize, &RowSpec) -> bool,
    ) -> BTreeMap<String, Vec<String>> {
        let kept: Vec<Vec<RowSpec>> = self
            .writes
            .iter()
            .enumerate()
            .map(|(j, w)| w.iter().filter(|r| keep(j, r)).cloned().collect())
            .collect();
        expected_rows(kept.iter().map(Vec::as_slice))
    }
}

/// Writes the fixture into `dir`: 24 writes, a flush, 24 writes, a flush, 34 writes that
/// stay in the WAL (in 12 KiB WAL files, so that there are several), then a simulated
/// crash (the engine is forgotten: nothing is flushed or closed, and `dir/LOCK` stays
/// locked, so copy the directory with [`copy_dir`] before opening it).
pub fn build_fixture(dir: &Path) -> Fixture {
    let engine = sextant_engine::Config::new(dir)
        .durability(sextant_engine::Durability::Always)
        .background_flush(false)
        .block_rows(16)
        .wal_file_bytes(12 << 10)
        .open()
        .unwrap();
    let mut writes = Vec::new();
    let (first_flush, flushed, total) = (24, 48, 82);
    for j in 0..total {
        let rows = fixture_write(j as u64);
        let points: Vec<Point> = rows.iter().map(RowSpec::point).collect();
        engine.write_points(&points).unwrap();
        writes.push(rows);
        if j + 1 == first_flush || j + 1 == flushed {
            engine.flush().unwrap();
        }
    }
    std::mem::forget(engine);
    Fixture {
        writes,
        first_flush,
        flushed,
    }
}

/// What opening a (damaged) database and scanning all of it gave.
#[derive(Debug)]
pub enum Outcome {
    /// The engine opened; the scan of every table gave this.
    Opened {
        /// The torn tail the recovery report names, if any.
        torn_tail: Option<sextant_engine::wal::TornTail>,
        /// What salvage skipped.
        damaged: Vec<String>,
        /// Every table's rows, or the first scan error.
        data: sextant_engine::Result<BTreeMap<String, Vec<String>>>,
    },
    /// Opening failed.
    Failed(sextant_engine::Error),
    /// Opening or scanning panicked: always a bug.
    Panicked(String),
}

/// Opens the database in `dir` (in salvage mode if asked), scans every table, and closes
/// the engine again, catching panics.
pub fn open_and_scan(dir: &Path, salvage: bool) -> Outcome {
    open_and_scan_with(dir, salvage, |_| {})
}

/// [`open_and_scan`], calling `while_open` with the engine after the scan.
pub fn open_and_scan_with(dir: &Path, salvage: bool, while_open: impl FnOnce(&Engine)) -> Outcome {
    let run = || match sextant_engine::Config::new(dir)
        .background_flush(false)
        .salvage(salvage)
        .open()
    {
        Err(e) => Outcome::Failed(e),
        Ok(engine) => {
            let report = engine.recovery_report();
            let (torn_tail, damaged) = (report.torn_tail.clone(), report.damaged.clone());
            let data = scan_all(&engine);
            while_open(&engine);
            drop(engine);
            Outcome::Opened {
                torn_tail,
                damaged,
                data,
            }
        }
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
        Ok(outcome) => outcome,
        Err(payload) => Outcome::Panicked(
            payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic without a message".into()),
        ),
    }
}

/// Checks that an error reports damage to `file`: [`sextant_engine::Error::Corrupt`] or
/// [`sextant_engine::Error::UnsupportedVersion`] whose path is the file and whose message
/// names it.
pub fn check_names_file(err: &sextant_engine::Error, file: &Path) -> Result<(), String> {
    use sextant_engine::Error;
    let name = file.file_name().unwrap().to_string_lossy().to_string();
    let path = match err {
        Error::Corrupt { path, .. } | Error::UnsupportedVersion { path, .. } => path,
        other => return Err(format!("not a damage error: {other:?}")),
    };
    if path.file_name() != file.file_name() {
        return Err(format!(
            "the error names {}, not {name}: {err}",
            path.display()
        ));
    }
    if !err.to_string().contains(&name) {
        return Err(format!("the message does not name {name}: {err}"));
    }
    Ok(())
}

/// How two sets of tables' rows differ, briefly, for failure messages.
pub fn diff(got: &BTreeMap<String, Vec<String>>, want: &BTreeMap<String, Vec<String>>) -> String {
    let mut out = Vec::new();
    let tables: std::collections::BTreeSet<&String> = got.keys().chain(want.keys()).collect();
    for t in tables {
        let g = got.get(t).cloned().unwrap_or_default();
        let w = want.get(t).cloned().unwrap_or_default();
        if g == w {
            continue;
        }
        let extra: Vec<&String> = g.iter().filter(|r| !w.contains(r)).collect();
        let missing: Vec<&String> = w.iter().filter(|r| !g.contains(r)).collect();
        out.push(format!(
            "table {t}: {} rows, {} expected; {} unexpected (first: {:?}), {} missing (first: {:?})",
            g.len(),
            w.len(),
            extra.len(),
            extra.first(),
            missing.len(),
            missing.first()
        ));
    }
    out.join("; ")
}

/// Collects the failures of many cases, so that one run reports all of them.
#[derive(Debug, Default)]
pub struct Failures(pub Vec<String>);

impl Failures {
    /// Records `case` as failed if `result` is an error.
    pub fn check(&mut self, case: String, result: Result<(), String>) {
        if let Err(e) = result {
            self.0.push(format!("{case}: {e}"));
        }
    }

    /// Panics listing the first failures, if any of the `cases` failed.
    pub fn assert_none(self, cases: usize) {
        assert!(
            self.0.is_empty(),
            "{} of {cases} cases failed; the first ones:\n{}",
            self.0.len(),
            self.0
                .iter()
                .take(12)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// Rewrites a file's bytes in place.
pub fn rewrite(path: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = std::fs::read(path).unwrap();
    f(&mut bytes);
    std::fs::write(path, bytes).unwrap();
}

/// The points of write `i` of the lifecycle tests: ten new rows of a `cpu` metric for
/// each of `hosts` hosts, and three warnings in a `logs` event table, at seconds
/// `10 i ..`.
pub fn two_table_write(i: usize, hosts: usize) -> Vec<Point> {
    const SECOND: i64 = 1_000_000_000;
    let mut out = Vec::new();
    for h in 0..hosts {
        for j in 0..10 {
            out.push(
                Point::metric("cpu")
                    .tag("host", format!("h{h}"))
                    .field("usage", (i * 100 + h * 10 + j) as f64)
                    .time((i * 10 + j) as i64 * SECOND),
            );
        }
    }
    for j in 0..3 {
        out.push(
            sextant_engine::LogRecord::new("logs", Level::Warn, format!("event {i}.{j}"))
                .tag("service", "api")
                .time((i * 10 + j) as i64 * SECOND)
                .into(),
        );
    }
    out
}
