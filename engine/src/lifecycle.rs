//! Forgetting: retention per table (and per tag or level) and deletes, as readers see them.
//!
//! # Retention
//!
//! A table's [`Retention`] keeps rows for a duration after their time, by the first of its
//! rules whose [`RowMatch`] the row meets (its series' tags, and for an event table its
//! level), else by its default (none: forever). Set with
//! [`Engine::set_retention`](crate::Engine::set_retention); kept in the manifest.
//!
//! Age is measured from the **reference time**: the earlier of the clock's time and the
//! newest row the table holds. A row of time `t` kept for `d` is expired once
//! `t < reference - d`. So a clock set years ahead cannot empty a table: nothing expires
//! that is not older than `d` before the newest row; a table no longer written keeps its
//! last `d` of rows until newer rows arrive.
//!
//! Expired rows are hidden from every read at once; a compaction drops them from the
//! segments it rewrites, and the background compactor removes whole segments all of whose
//! rows are expired under every rule, without rewriting them.
//!
//! # Deletes
//!
//! A [`Delete`] removes the rows of a table in a time range whose series meet its tag
//! conditions, as they are when it is issued: rows written later are kept, even if they
//! match. [`Engine::delete`](crate::Engine::delete) records it in the manifest (durable
//! before it returns), removes the matching rows held in memory, and hides them in
//! segments from then on; a compaction drops them from the segments it rewrites.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, UInt8Type};
use arrow_array::{Array, ArrayRef, BooleanArray};

use crate::error::{Error, Result};
use crate::schema::{Level, TableKind, TableSchema};
use crate::series::SeriesKey;

/// Which rows a retention rule covers: those whose series has every tag condition (the
/// tag's value is one of those listed), and whose level lies in the range, if one is
/// given (event tables only).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RowMatch {
    /// Tag conditions, all of which must hold.
    pub tags: Vec<(String, Vec<String>)>,
    /// The levels covered, inclusive; `None`: any row, with a level or not.
    pub levels: Option<(Level, Level)>,
}

impl RowMatch {
    /// Every row.
    pub fn all() -> Self {
        RowMatch::default()
    }

    /// Also requires tag `tag` to be `value`.
    pub fn tag_eq(self, tag: impl Into<String>, value: impl Into<String>) -> Self {
        self.tag_in(tag, [value])
    }

    /// Also requires tag `tag` to be one of `values`.
    pub fn tag_in<S: Into<String>>(
        mut self,
        tag: impl Into<String>,
        values: impl IntoIterator<Item = S>,
    ) -> Self {
        self.tags
            .push((tag.into(), values.into_iter().map(Into::into).collect()));
        self
    }

    /// Also requires the level to be from `min` to `max`, inclusive.
    pub fn levels(mut self, min: Level, max: Level) -> Self {
        self.levels = Some((min, max));
        self
    }

    fn series_matches(&self, key: &SeriesKey) -> bool {
        self.tags
            .iter()
            .all(|(t, vs)| key.get(t).is_some_and(|v| vs.iter().any(|x| x == v)))
    }
}

/// How long a table keeps its rows: the first matching rule's duration, else the default.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Retention {
    /// Rules in order: a row is kept for the duration of the first one it matches.
    pub rules: Vec<(RowMatch, Duration)>,
    /// For rows no rule matches; `None` keeps them forever.
    pub default: Option<Duration>,
}

impl Retention {
    /// Keeps every row for `keep`.
    pub fn keep(keep: Duration) -> Self {
        Retention {
            rules: Vec::new(),
            default: Some(keep),
        }
    }

    /// Keeps every row forever (no retention), until rules are added.
    pub fn forever() -> Self {
        Retention::default()
    }

    /// Adds a rule, after those already added.
    pub fn rule(mut self, matching: RowMatch, keep: Duration) -> Self {
        self.rules.push((matching, keep));
        self
    }

    /// Checks the rules against the table: tags named must be tags, level ranges only on
    /// event tables.
    pub(crate) fn check(&self, schema: &TableSchema) -> Result<()> {
        for (m, _) in &self.rules {
            check_tags(schema, &m.tags)?;
            if m.levels.is_some() && schema.kind != TableKind::Event {
                return Err(Error::InvalidInput(format!(
                    "table {:?} is a metric table: its rows have no level, so a retention rule cannot name levels",
                    schema.name
                )));
            }
        }
        Ok(())
    }

    fn has_level_rules(&self) -> bool {
        self.rules.iter().any(|(m, _)| m.levels.is_some())
    }
}

/// Rows to delete: those in the time range (inclusive) whose series has every tag
/// condition (the tag's value is one of those listed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delete {
    /// Earliest time deleted, inclusive (ns). Default: `i64::MIN`.
    pub min_time: i64,
    /// Latest time deleted, inclusive (ns). Default: `i64::MAX`.
    pub max_time: i64,
    /// Tag conditions, all of which must hold; none: every series.
    pub tags: Vec<(String, Vec<String>)>,
}

impl Default for Delete {
    fn default() -> Self {
        Delete {
            min_time: i64::MIN,
            max_time: i64::MAX,
            tags: Vec::new(),
        }
    }
}

impl Delete {
    /// Every row of the table.
    pub fn all() -> Self {
        Delete::default()
    }

    /// Only rows with `min <= time <= max`.
    pub fn time_range(mut self, min: i64, max: i64) -> Self {
        self.min_time = min;
        self.max_time = max;
        self
    }

    /// Also requires tag `tag` to be `value`.
    pub fn tag_eq(self, tag: impl Into<String>, value: impl Into<String>) -> Self {
        self.tag_in(tag, [value])
    }

    /// Also requires tag `tag` to be one of `values`.
    pub fn tag_in<S: Into<String>>(
        mut self,
        tag: impl Into<String>,
        values: impl IntoIterator<Item = S>,
    ) -> Self {
        self.tags
            .push((tag.into(), values.into_iter().map(Into::into).collect()));
        self
    }

    pub(crate) fn check(&self, schema: &TableSchema) -> Result<()> {
        check_tags(schema, &self.tags)
    }

    fn series_matches(&self, key: &SeriesKey) -> bool {
        self.tags
            .iter()
            .all(|(t, vs)| key.get(t).is_some_and(|v| vs.iter().any(|x| x == v)))
    }
}

fn check_tags(schema: &TableSchema, tags: &[(String, Vec<String>)]) -> Result<()> {
    for (t, _) in tags {
        match schema.column(t) {
            Some(c) if c.ty == crate::schema::ColumnType::Tag => {}
            Some(c) => {
                return Err(Error::InvalidInput(format!(
                    "table {:?}: column {t:?} is a {} column, not a tag; only tags can be named here",
                    schema.name, c.ty
                )));
            }
            None => {
                return Err(Error::NoSuchColumn {
                    table: schema.name.clone(),
                    column: t.clone(),
                });
            }
        }
    }
    Ok(())
}

/// A delete as the manifest keeps it: numbered, with the last sequence number it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeleteEntry {
    /// Deletes are numbered from 1 in the order issued, across tables.
    pub id: u64,
    /// Rows written up to this WAL sequence number are deleted; later ones are not.
    pub seq: u64,
    pub delete: Delete,
}

/// A table's lifecycle settings and the deletes still to be applied somewhere.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct TableLifecycle {
    pub retention: Option<Retention>,
    pub deletes: Vec<DeleteEntry>,
}

/// What a snapshot hides of one table: the deletes each source is subject to, and the
/// retention cutoffs as of the snapshot.
#[derive(Debug, Default)]
pub(crate) struct Hide {
    /// Per source (in the scan's source order): the deletes that apply to it.
    pub per_source: Vec<Vec<Arc<DeleteEntry>>>,
    /// Retention rules with their cutoffs: rows before a cutoff are expired.
    pub rules: Vec<(RowMatch, i64)>,
    pub default_cutoff: Option<i64>,
    pub level_rules: bool,
}

/// What is hidden of one series in one source.
#[derive(Debug, Default)]
pub(crate) struct SeriesHide {
    /// Time ranges hidden, inclusive.
    pub ranges: Vec<(i64, i64)>,
    /// With level rules: per level rank (0..=5, and 6 for no level), rows before this
    /// time are expired.
    pub level_cutoffs: Option<[i64; 7]>,
}

impl SeriesHide {
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty() && self.level_cutoffs.is_none()
    }

    /// Whether a row of this time may be hidden (whatever its level).
    pub fn may_hide(&self, time: i64) -> bool {
        self.ranges.iter().any(|&(a, b)| a <= time && time <= b)
            || self
                .level_cutoffs
                .is_some_and(|c| c.iter().any(|&cut| time < cut))
    }

    /// Keeps the rows of `arrays` that are not hidden; `time` is `arrays[0]`, `level`
    /// the index of the level column among them, if the rows have one.
    pub fn filter(&self, arrays: Vec<ArrayRef>, level: Option<usize>) -> Result<Vec<ArrayRef>> {
        let times = arrays[0].as_primitive::<Int64Type>();
        let levels = level.map(|i| arrays[i].as_primitive::<UInt8Type>());
        let mut hidden = 0;
        let keep: BooleanArray = (0..times.len())
            .map(|i| {
                let t = times.value(i);
                let mut hide = self.ranges.iter().any(|&(a, b)| a <= t && t <= b);
                if let Some(cuts) = &self.level_cutoffs {
                    let rank = match levels {
                        Some(l) if l.is_valid(i) => usize::from(l.value(i).min(5)),
                        _ => 6,
                    };
                    hide |= t < cuts[rank];
                }
                hidden += usize::from(hide);
                Some(!hide)
            })
            .collect();
        if hidden == 0 {
            return Ok(arrays);
        }
        arrays
            .iter()
            .map(|a| Ok(arrow_select::filter::filter(a.as_ref(), &keep)?))
            .collect()
    }
}

impl Hide {
    /// The hide of a table whose sources are subject to `per_source` deletes, as of
    /// reference time `reference` (see the module docs); `None` when nothing is hidden.
    pub fn new(
        lifecycle: Option<&TableLifecycle>,
        per_source: Vec<Vec<Arc<DeleteEntry>>>,
        reference: Option<i64>,
    ) -> Option<Hide> {
        let retention = lifecycle.and_then(|l| l.retention.as_ref());
        let cut = |keep: &Duration| {
            let keep = i64::try_from(keep.as_nanos()).unwrap_or(i64::MAX);
            reference.map_or(i64::MIN, |r| r.saturating_sub(keep))
        };
        let (rules, default_cutoff, level_rules) = match retention {
            Some(r) => (
                r.rules.iter().map(|(m, d)| (m.clone(), cut(d))).collect(),
                r.default.as_ref().map(cut),
                r.has_level_rules(),
            ),
            None => (Vec::new(), None, false),
        };
        let hide = Hide {
            per_source,
            rules,
            default_cutoff,
            level_rules,
        };
        let nothing = hide.per_source.iter().all(Vec::is_empty)
            && hide.default_cutoff.is_none_or(|c| c == i64::MIN)
            && hide.rules.iter().all(|(_, c)| *c == i64::MIN);
        (!nothing).then_some(hide)
    }

    /// Rows before this time are expired under every rule, if every row expires at all:
    /// scans need not read them.
    pub fn floor(&self) -> Option<i64> {
        let default = self.default_cutoff?;
        Some(self.rules.iter().fold(default, |f, (_, c)| f.min(*c)))
    }

    /// What is hidden of series `key` in source `source`.
    pub fn series(&self, source: usize, key: &SeriesKey) -> SeriesHide {
        let mut out = SeriesHide::default();
        if let Some(deletes) = self.per_source.get(source) {
            for d in deletes {
                if d.delete.series_matches(key) {
                    out.ranges.push((d.delete.min_time, d.delete.max_time));
                }
            }
        }
        if self.level_rules {
            let mut cuts = [i64::MIN; 7];
            for (rank, cut) in cuts.iter_mut().enumerate() {
                let level = Level::from_rank(rank as u8);
                *cut = self.cutoff(key, level);
            }
            if cuts.iter().any(|&c| c != i64::MIN) {
                out.level_cutoffs = Some(cuts);
            }
        } else {
            let cut = self.cutoff(key, None);
            if cut != i64::MIN {
                out.ranges.push((i64::MIN, cut - 1));
            }
        }
        out
    }

    /// The cutoff of a row of series `key` with `level`: the first matching rule's, else
    /// the default's.
    fn cutoff(&self, key: &SeriesKey, level: Option<Level>) -> i64 {
        for (m, cut) in &self.rules {
            let level_ok = match (m.levels, level) {
                (None, _) => true,
                (Some((lo, hi)), Some(l)) => lo <= l && l <= hi,
                (Some(_), None) => false,
            };
            if level_ok && m.series_matches(key) {
                return *cut;
            }
        }
        self.default_cutoff.unwrap_or(i64::MIN)
    }
}

/// The deletes of `lifecycle` that apply to a segment holding sequence numbers from
/// `min_seq` whose content has had every delete up to id `applied` applied.
pub(crate) fn deletes_for_segment(
    lifecycle: Option<&TableLifecycle>,
    min_seq: u64,
    applied: u64,
) -> Vec<Arc<DeleteEntry>> {
    lifecycle.map_or_else(Vec::new, |l| {
        l.deletes
            .iter()
            .filter(|d| d.id > applied && d.seq >= min_seq)
            .map(|d| Arc::new(d.clone()))
            .collect()
    })
}

/// Lifecycle settings of every table, as the manifest keeps them.
pub(crate) type Lifecycles = BTreeMap<String, TableLifecycle>;

/// The chunk without the rows `delete` removes; `None` when it removes none.
pub(crate) fn filter_chunk(
    chunk: &crate::head::Chunk,
    delete: &Delete,
) -> Result<Option<crate::head::Chunk>> {
    let matching: Vec<bool> = chunk
        .series
        .iter()
        .map(|k| delete.series_matches(k))
        .collect();
    let times = chunk.batch.time().values();
    let keep: BooleanArray = chunk
        .row_series
        .iter()
        .zip(times.iter())
        .map(|(&s, &t)| {
            Some(!(matching[s as usize] && delete.min_time <= t && t <= delete.max_time))
        })
        .collect();
    if keep.true_count() == keep.len() {
        return Ok(None);
    }
    let arrays = chunk
        .batch
        .arrays
        .iter()
        .map(|a| Ok(arrow_select::filter::filter(a.as_ref(), &keep)?))
        .collect::<Result<Vec<_>>>()?;
    let batch = crate::batch::TableBatch {
        table: chunk.batch.table.clone(),
        kind: chunk.batch.kind,
        columns: chunk.batch.columns.clone(),
        arrays,
    };
    let mut out = crate::head::Chunk::new(chunk.min_seq, batch);
    out.max_seq = chunk.max_seq;
    Ok(Some(out))
}
