//! Scans skip segments and blocks that their time range and tags rule out.

use sextant_engine::{Config, Point, ScanRequest};

const HOUR: i64 = 3_600_000_000_000;

#[test]
fn scans_prune_segments_and_blocks_by_time_and_series_by_tags() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Config::new(dir.path()).block_rows(64).open().unwrap();
    // Four hours, one segment each, 10 hosts, a row a minute.
    for hour in 0..4 {
        let mut points = Vec::new();
        for host in 0..10 {
            for minute in 0..60 {
                let t = hour * HOUR + minute * 60_000_000_000;
                points.push(
                    Point::metric("cpu")
                        .tag("host", format!("h{host}"))
                        .field("v", 1.0)
                        .time(t),
                );
            }
        }
        engine.write_points(&points).unwrap();
        engine.flush().unwrap();
    }
    let snap = engine.snapshot();
    let stats = snap.stats("cpu").unwrap();
    assert_eq!(stats.segments.len(), 4);
    assert_eq!(stats.segments[0].meta().series.len(), 10);

    let req = ScanRequest::new("cpu")
        .time_range(HOUR + 10 * 60_000_000_000, HOUR + 20 * 60_000_000_000)
        .tag_eq("host", "h3");
    let mut scan = snap.scan(&req).unwrap();
    let rows: usize = scan.by_ref().map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 10);
    let m = scan.metrics();
    assert_eq!(m.segments_total, 4);
    assert_eq!(m.segments_pruned, 3);
    // One host's hour is 60 rows, within at most two 64-row blocks, times the two columns
    // read (time, v): far fewer than the segment's 600 rows / 64 = 10 blocks per column.
    assert!(m.blocks_read <= 4, "{m:?}");
    assert_eq!(m.rows_returned, 10);
}
