//! The `sextant` schema: what the data lifecycle has made of the tables, for operators in
//! SQL. Built afresh for each query.
//!
//! - `sextant.segments`: one row per live segment of every table (`table_name`, `id`,
//!   `level`, `bytes`, `rows`, `min_time`, `max_time`, `min_seq`, `max_seq`);
//! - `sextant.compaction`: one row of the work flushes and compactions have done since
//!   the database was opened (`compactions`, `segments_merged`, `bytes_flushed`,
//!   `bytes_read`, `bytes_written`, `write_amplification`, `busy_seconds`,
//!   `behind_seconds`, `merges_deferred`: background merges put off for want of memory).
//!
//! A table's rows are read when its scan is planned, so a plan kept and planned again
//! (a prepared statement, an alert rule) sees the state of that moment.

use std::sync::Arc;

use arrow_array::{
    ArrayRef, Float64Array, RecordBatch, StringArray, TimestampNanosecondArray, UInt8Array,
    UInt64Array,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::Result;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use sextant_engine::Engine;

/// The schema's name.
pub const SCHEMA: &str = "sextant";

const TABLES: [&str; 2] = ["compaction", "segments"];

/// The `sextant` schema of an engine.
#[derive(Debug)]
pub struct SystemSchema {
    engine: Arc<Engine>,
}

impl SystemSchema {
    /// The lifecycle tables of `engine`.
    pub fn new(engine: Arc<Engine>) -> Self {
        SystemSchema { engine }
    }
}

/// One table of the schema, read afresh by each scan.
#[derive(Debug)]
pub(crate) struct SystemTable {
    engine: Arc<Engine>,
    name: &'static str,
    schema: SchemaRef,
}

#[async_trait]
impl TableProvider for SystemTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let batch = build(&self.engine, self.name)?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            Arc::clone(&self.schema),
            projection.cloned(),
        )?)
    }
}

/// The rows of table `name` (one of [`TABLES`]) now.
fn build(engine: &Engine, name: &str) -> Result<RecordBatch> {
    match name {
        "segments" => segments(engine),
        _ => compaction(engine),
    }
}

fn segments(engine: &Engine) -> Result<RecordBatch> {
    let snapshot = engine.snapshot();
    let mut table = Vec::new();
    let (mut id, mut level, mut bytes) = (Vec::new(), Vec::new(), Vec::new());
    let (mut rows, mut min_time, mut max_time) = (Vec::new(), Vec::new(), Vec::new());
    let (mut min_seq, mut max_seq) = (Vec::new(), Vec::new());
    let names: Vec<String> = snapshot.tables().map(str::to_string).collect();
    for name in names {
        // Gone since the snapshot (never, today: tables are not dropped).
        let Ok(infos) = engine.segments(&name) else {
            continue;
        };
        let held = snapshot
            .stats(&name)
            .map(|s| s.segments)
            .unwrap_or_default();
        for info in infos {
            // The snapshot's segment of the same sequence numbers has the contents
            // (a merge between the two look-ups leaves these empty).
            let meta = held
                .iter()
                .map(|s| s.meta())
                .find(|m| (m.min_seq, m.max_seq) == (info.min_seq, info.max_seq));
            table.push(name.clone());
            id.push(info.id);
            level.push(info.level);
            bytes.push(info.bytes);
            rows.push(meta.map(|m| m.rows));
            min_time.push(meta.map(|m| m.min_time));
            max_time.push(meta.map(|m| m.max_time));
            min_seq.push(info.min_seq);
            max_seq.push(info.max_seq);
        }
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(table)),
        Arc::new(UInt64Array::from(id)),
        Arc::new(UInt8Array::from(level)),
        Arc::new(UInt64Array::from(bytes)),
        Arc::new(UInt64Array::from(rows)),
        Arc::new(TimestampNanosecondArray::from(min_time).with_timezone("UTC")),
        Arc::new(TimestampNanosecondArray::from(max_time).with_timezone("UTC")),
        Arc::new(UInt64Array::from(min_seq)),
        Arc::new(UInt64Array::from(max_seq)),
    ];
    Ok(RecordBatch::try_new(segments_schema(), columns)?)
}

fn segments_schema() -> SchemaRef {
    let time = || DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("table_name", DataType::Utf8, false),
        Field::new("id", DataType::UInt64, false),
        Field::new("level", DataType::UInt8, false),
        Field::new("bytes", DataType::UInt64, false),
        Field::new("rows", DataType::UInt64, true),
        Field::new("min_time", time(), true),
        Field::new("max_time", time(), true),
        Field::new("min_seq", DataType::UInt64, false),
        Field::new("max_seq", DataType::UInt64, false),
    ]))
}

fn compaction(engine: &Engine) -> Result<RecordBatch> {
    let s = engine.compaction_stats();
    let one_u = |v: u64| Arc::new(UInt64Array::from(vec![v])) as ArrayRef;
    let one_f = |v: f64| Arc::new(Float64Array::from(vec![v])) as ArrayRef;
    let columns = vec![
        one_u(s.compactions),
        one_u(s.segments_merged),
        one_u(s.bytes_flushed),
        one_u(s.bytes_read),
        one_u(s.bytes_written),
        one_f(s.write_amplification()),
        one_f(s.busy.as_secs_f64()),
        one_f(s.behind.as_secs_f64()),
        one_u(s.deferred),
    ];
    Ok(RecordBatch::try_new(compaction_schema(), columns)?)
}

fn compaction_schema() -> SchemaRef {
    let u = |name: &str| Field::new(name, DataType::UInt64, false);
    let f = |name: &str| Field::new(name, DataType::Float64, false);
    Arc::new(Schema::new(vec![
        u("compactions"),
        u("segments_merged"),
        u("bytes_flushed"),
        u("bytes_read"),
        u("bytes_written"),
        f("write_amplification"),
        f("busy_seconds"),
        f("behind_seconds"),
        u("merges_deferred"),
    ]))
}

#[async_trait]
impl SchemaProvider for SystemSchema {
    fn table_names(&self) -> Vec<String> {
        TABLES.iter().map(|t| t.to_string()).collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let Some(&name) = TABLES.iter().find(|t| **t == name) else {
            return Ok(None);
        };
        let schema = match name {
            "segments" => segments_schema(),
            _ => compaction_schema(),
        };
        Ok(Some(Arc::new(SystemTable {
            engine: Arc::clone(&self.engine),
            name,
            schema,
        })))
    }

    fn table_exist(&self, name: &str) -> bool {
        TABLES.contains(&name)
    }
}
