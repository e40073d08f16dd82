//! `sextant inspect`: what a database holds, for operators: tables, their columns,
//! segments (level, size, rows, time range), rows in memory, and what opening it found.

use std::path::Path;
use std::process::ExitCode;

use sextant_engine::Config;

use crate::{Error, Result};

/// Prints the inventory of the database in `data`.
pub fn run(data: &Path) -> Result<ExitCode> {
    if !data.join("MANIFEST").exists() {
        return Err(Error::Usage(format!(
            "{} holds no Sextant database (no MANIFEST)",
            data.display()
        )));
    }
    let engine = Config::new(data).background_compaction(false).open()?;
    println!("database {}", data.display());
    let report = engine.recovery_report();
    println!(
        "opening it replayed {} write-ahead log records ({} batches already in segments skipped), removed {} unfinished and {} unlisted segment files{}",
        report.wal_records_replayed,
        report.wal_batches_skipped,
        report.temp_files_removed,
        report.leftover_segments_removed,
        match &report.torn_tail {
            Some(t) => format!(
                "; cut a torn last record: {} bytes at offset {} of {}",
                t.bytes_dropped,
                t.offset,
                t.path.display()
            ),
            None => String::new(),
        }
    );
    let snapshot = engine.snapshot();
    let mut tables: Vec<&str> = snapshot.tables().collect();
    tables.sort_unstable();
    let (mut all_rows, mut all_bytes) = (0u64, 0u64);
    for table in tables {
        let stats = snapshot.stats(table)?;
        let levels = engine.segments(table)?;
        let rows = stats.segment_rows() + stats.memory_rows as u64;
        all_rows += rows;
        all_bytes += stats.segment_bytes();
        let range = match stats.time_range {
            Some((from, to)) => format!("{} to {}", time(from), time(to)),
            None => "no rows".to_string(),
        };
        println!(
            "\n{} ({}): {rows} rows, {} in memory; {} segments, {}; {range}",
            table,
            stats.schema.kind,
            stats.memory_rows,
            stats.segments.len(),
            bytes(stats.segment_bytes()),
        );
        let columns: Vec<String> = stats
            .schema
            .columns
            .iter()
            .map(|c| format!("{} {}", c.name, c.ty))
            .collect();
        println!("  columns: {}", columns.join(", "));
        for (segment, info) in stats.segments.iter().zip(&levels) {
            let meta = segment.meta();
            println!(
                "  segment {:>6}  level {}  {:>10}  {:>10} rows  {:>6} series  {} to {}",
                info.id,
                info.level,
                bytes(info.bytes),
                meta.rows,
                meta.series.len(),
                time(meta.min_time),
                time(meta.max_time)
            );
        }
    }
    println!(
        "\nin all: {all_rows} rows, {} of segments",
        bytes(all_bytes)
    );
    engine.close()?;
    Ok(ExitCode::SUCCESS)
}

fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// Nanoseconds since the epoch as RFC 3339 UTC.
fn time(ns: i64) -> String {
    datafusion::arrow::temporal_conversions::timestamp_ns_to_datetime(ns)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_else(|| ns.to_string())
}
