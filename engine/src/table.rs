//! A table's state in an open engine, and opening the tables of a database from its
//! manifest.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::config::Config;
use crate::engine::RecoveryReport;
use crate::error::{Error, Result};
use crate::head::{Chunk, Head};
use crate::manifest::{Manifest, SegmentEntry, TableEntry, segment_file_name, segment_id};
use crate::schema::{TableKind, TableSchema, validate_name};
use crate::segment::Segment;
use crate::series::SeriesKey;

#[derive(Debug)]
pub(crate) struct Table {
    pub dir: PathBuf,
    pub state: RwLock<TableState>,
}

#[derive(Debug)]
pub(crate) struct TableState {
    pub schema: Arc<TableSchema>,
    /// Live segments in sequence order (oldest first), as the manifest lists them.
    pub segments: Vec<Arc<Segment>>,
    /// For each segment, the id of the last delete applied to its rows (see
    /// [`SegmentEntry::deletes_applied`]).
    pub applied: Vec<u64>,
    /// The latest time of any row written (deleted ones included), `i64::MIN` for none:
    /// what retention measures age from.
    pub newest: i64,
    /// The table's series, kept only when the configuration limits them.
    pub series: HashSet<SeriesKey>,
    /// Heads taken out of service, oldest first, being written to segments.
    pub frozen: VecDeque<Frozen>,
    pub head: Head,
    /// Every write of this table up to this sequence number is in a segment.
    pub flushed_seq: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct Frozen {
    pub chunks: Vec<Arc<Chunk>>,
    pub schema: Arc<TableSchema>,
    /// Memory its chunks hold.
    pub bytes: usize,
}

/// Takes the head out of service for flushing.
pub(crate) fn freeze(state: &mut TableState) {
    if state.head.is_empty() {
        return;
    }
    let head = std::mem::take(&mut state.head);
    state.frozen.push_back(Frozen {
        chunks: head.chunks,
        schema: Arc::clone(&state.schema),
        bytes: head.bytes,
    });
}

pub(crate) fn check_kind(schema: &TableSchema, kind: TableKind) -> Result<()> {
    if schema.kind != kind {
        return Err(Error::TableKindConflict {
            table: schema.name.clone(),
            existing: schema.kind,
            offered: kind,
        });
    }
    Ok(())
}

pub(crate) fn new_table(tables_dir: &Path, name: &str, kind: TableKind) -> Table {
    Table {
        dir: tables_dir.join(name),
        state: RwLock::new(TableState {
            schema: Arc::new(TableSchema::new(name, kind)),
            segments: Vec::new(),
            applied: Vec::new(),
            newest: i64::MIN,
            series: HashSet::new(),
            frozen: VecDeque::new(),
            head: Head::default(),
            flushed_seq: 0,
        }),
    }
}

/// Opens the tables of the database in `dir` from its manifest, first writing one for a
/// database that has none (new, or written before manifests existed: its segment files,
/// named by their highest sequence number, are taken as they are). Outside salvage mode,
/// files in table directories that the manifest does not list are removed as leftovers
/// of a crash.
pub(crate) fn open_tables(
    dir: &Path,
    config: &Config,
    report: &mut RecoveryReport,
) -> Result<(Manifest, BTreeMap<String, Arc<Table>>)> {
    let tables_dir = dir.join("tables");
    let manifest = match Manifest::load(dir)? {
        Some(m) => m,
        None => {
            let mut m = adopt(&tables_dir, config.salvage, report)?;
            if !config.salvage {
                m.store(dir, config.faults.as_deref())?;
            }
            m
        }
    };
    if !config.salvage {
        remove_leftovers(&tables_dir, &manifest, config, report)?;
    }
    let mut tables = BTreeMap::new();
    for (name, entry) in &manifest.tables {
        if let Some(t) = open_table(dir, &tables_dir, name, entry, config, report)? {
            tables.insert(name.clone(), Arc::new(t));
        }
    }
    Ok((manifest, tables))
}

/// A manifest listing the segment files found in `tables_dir`, each table's in sequence
/// order.
fn adopt(tables_dir: &Path, salvage: bool, report: &mut RecoveryReport) -> Result<Manifest> {
    let mut manifest = Manifest::new();
    for table_dir in list_dirs(tables_dir)? {
        let name = table_name(&table_dir)?;
        let mut found = Vec::new();
        let mut newest = i64::MIN;
        for path in crate::fs::list(&table_dir, ".seg")? {
            let Some(id) = segment_id(&path) else {
                continue;
            };
            let segment = match Segment::open(&path) {
                Ok(s) => s,
                Err(e) if salvage => {
                    report.damaged.push(e.to_string());
                    continue;
                }
                Err(e) => return Err(e),
            };
            manifest.next_segment_id = manifest.next_segment_id.max(id + 1);
            newest = newest.max(segment.meta().max_time);
            found.push((segment.meta().kind, SegmentEntry::of(id, &segment)));
        }
        let Some(&(kind, _)) = found.first() else {
            continue;
        };
        let mut segments: Vec<SegmentEntry> = found.into_iter().map(|(_, e)| e).collect();
        segments.sort_by_key(|e| e.max_seq);
        let flushed_seq = segments.iter().map(|e| e.max_seq).max().unwrap_or(0);
        manifest.tables.insert(
            name,
            TableEntry {
                kind,
                flushed_seq,
                newest,
                columns: Vec::new(),
                segments,
            },
        );
    }
    Ok(manifest)
}

/// Removes unfinished (`*.tmp`) and unlisted segment files from every table directory.
fn remove_leftovers(
    tables_dir: &Path,
    manifest: &Manifest,
    config: &Config,
    report: &mut RecoveryReport,
) -> Result<()> {
    for table_dir in list_dirs(tables_dir)? {
        let listed = table_dir
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| manifest.tables.get(n));
        let mut removed = false;
        for tmp in crate::fs::list(&table_dir, ".tmp")? {
            std::fs::remove_file(&tmp).map_err(|e| Error::io("removing", &tmp, e))?;
            report.temp_files_removed += 1;
            removed = true;
        }
        for path in crate::fs::list(&table_dir, ".seg")? {
            let live = segment_id(&path)
                .is_some_and(|id| listed.is_some_and(|t| t.segments.iter().any(|s| s.id == id)));
            if !live {
                std::fs::remove_file(&path).map_err(|e| Error::io("removing", &path, e))?;
                report.leftover_segments_removed += 1;
                removed = true;
            }
        }
        if removed {
            crate::fs::sync_dir_with(&table_dir, config.faults.as_deref())?;
        }
    }
    Ok(())
}

fn table_name(dir: &Path) -> Result<String> {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    validate_name("table", &name)
        .map_err(|_| Error::corrupt(dir, 0, "the table directory's name is not a table name"))?;
    Ok(name)
}

/// Opens the segments the manifest lists for a table, checks that each is the file it
/// lists, and unites their schemas. In salvage mode a missing or damaged segment is
/// reported and skipped; a table left without segments by that is not opened (the WAL, if
/// anything, says what it holds). A table listed without segments (its rows were all
/// deleted or expired) is opened empty, so that its flushed sequence number keeps WAL
/// replay from bringing those rows back.
fn open_table(
    db_dir: &Path,
    tables_dir: &Path,
    name: &str,
    entry: &TableEntry,
    config: &Config,
    report: &mut RecoveryReport,
) -> Result<Option<Table>> {
    validate_name("table", name).map_err(|_| {
        Error::corrupt(
            Manifest::path(db_dir),
            0,
            format!("the manifest lists {name:?}, which is not a table name"),
        )
    })?;
    let dir = tables_dir.join(name);
    let mut segments = Vec::with_capacity(entry.segments.len());
    let mut applied = Vec::with_capacity(entry.segments.len());
    for e in &entry.segments {
        let path = dir.join(segment_file_name(e.id));
        let opened = open_listed(db_dir, &path, e, config.salvage);
        match opened {
            Ok(s) => {
                segments.push(Arc::new(s));
                applied.push(e.deletes_applied);
            }
            Err(e) if config.salvage => report.damaged.push(e.to_string()),
            Err(e) => return Err(e),
        }
    }
    if segments.is_empty() && !entry.segments.is_empty() {
        return Ok(None);
    }
    let kind = entry.kind;
    let table = new_table(tables_dir, name, kind);
    {
        let mut state = table.state.write();
        state.flushed_seq = entry.flushed_seq;
        state.newest = entry.newest;
        let mut schema = TableSchema::new(name, kind);
        // The columns at the last flush: a table whose rows are all gone keeps them.
        let listed = entry.columns.iter().filter(|c| c.name != "time");
        let new = schema.check_extension(listed).map_err(|e| {
            Error::corrupt(
                Manifest::path(db_dir),
                0,
                format!("the columns the manifest lists for table {name:?} conflict: {e}"),
            )
        })?;
        schema.extend(new);
        for s in &segments {
            let m = s.meta();
            if m.table != name || m.kind != kind {
                return Err(Error::corrupt(
                    s.path(),
                    0,
                    format!(
                        "the segment belongs to {} table {:?}, not to {kind} table {name:?}",
                        m.kind, m.table
                    ),
                ));
            }
            let new = schema.check_extension(&m.columns).map_err(|e| {
                Error::corrupt(s.path(), 0, format!("the segment's columns conflict: {e}"))
            })?;
            schema.extend(new);
            state.flushed_seq = state.flushed_seq.max(m.max_seq);
            state.newest = state.newest.max(m.max_time);
        }
        state.schema = Arc::new(schema);
        state.segments = segments;
        state.applied = applied;
    }
    Ok(Some(table))
}

/// Opens a segment the manifest lists and checks it is that file. Salvage checks every
/// block up front, so that a damaged segment is skipped rather than failing every scan
/// of the table later.
fn open_listed(db_dir: &Path, path: &Path, entry: &SegmentEntry, salvage: bool) -> Result<Segment> {
    if !path.exists() {
        return Err(Error::Missing {
            path: path.to_path_buf(),
            why: format!(
                "{} lists it as a live segment (sequence numbers {} to {})",
                Manifest::path(db_dir).display(),
                entry.min_seq,
                entry.max_seq
            ),
        });
    }
    let segment = Segment::open(path)?;
    entry.check(&segment)?;
    if salvage {
        segment.verify()?;
    }
    Ok(segment)
}

fn list_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io("listing directory", dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("listing directory", dir, e))?;
        if entry
            .file_type()
            .map_err(|e| Error::io("reading", entry.path(), e))?
            .is_dir()
        {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}
