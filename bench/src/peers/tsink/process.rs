//! tsink in a process of its own, as DuckDB is: `sextant-bench tsink-peer` ([`serve`])
//! holds the store, and `sextant-bench run` talks to it over the protocol of
//! [`crate::peers::driver`] ([`TsinkProcess`]).
//!
//! Why: with tsink linked into the bench process, its 86.4 M points loaded at scale 1000
//! slowed the engines in that process (Sextant, Parquet) but not DuckDB in its own
//! (README, "With tsink loaded, every engine is slower"). In a process of its own tsink's
//! heap and threads are its own, every engine runs beside the same kind of neighbour, and
//! tsink's peak memory is tsink's alone.
//!
//! Requests (the framing is [`crate::peers::driver`]'s):
//!
//! - `{"op": "hello"}` -> `{"peer": "tsink"}`;
//! - `{"op": "load", "config": CpuConfig, "dir": PATH, "batch_rows": N, "durability":
//!   "always" | "never" | {"interval_ns": N}, "progress": BOOL}` -> `{"load": TsinkLoad}`:
//!   [`TsinkPeer::load`] in the process, which then holds the store;
//! - `{"op": "query", "query": DevopsQuery}` -> `{"secs": S}` and the answer as one batch:
//!   `secs` times [`TsinkPeer::batch`] alone, as a run times an in-process engine's
//!   `execute`; sending the answer is not in it. A query tsink cannot express fails with
//!   the reason.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use serde_json::{Value, json};
use sextant_engine::Durability;

use super::{LoadOptions, PEER, TsinkLoad, TsinkPeer, Unanswered};
use crate::measure::remove;
use crate::peers::driver::{self, Driver, LOAD_DEADLINE, Stderr};
use crate::peers::{Engine, PeerOptions, Unavailable};
use crate::queries::{BenchQuery, DevopsQuery};
use crate::run::Phase;
use crate::run::table::count;
use crate::workload::cpu::CpuConfig;
use crate::workload::source::WorkloadSpec;
use crate::{Error, Result};

/// The hidden subcommand of `sextant-bench` that runs [`serve`].
pub const SUBCOMMAND: &str = "tsink-peer";

/// The `sextant-bench` executable to start tsink's process from: this process's own.
pub fn executable() -> Result<PathBuf> {
    std::env::current_exe().map_err(|e| Error::Peer {
        peer: PEER,
        message: format!("cannot find this process's executable to start tsink's from: {e}"),
    })
}

/// tsink holding a cpu workload in a process of its own, open for queries.
#[derive(Debug)]
pub struct TsinkProcess {
    driver: Mutex<Driver>,
}

impl TsinkProcess {
    /// Starts `exe tsink-peer` and has it load the cpu workload of `config` into `dir` as
    /// [`TsinkPeer::load`] does in this process (its progress bar, if asked, and its
    /// messages go to this process's standard error); returns the process, open for
    /// queries, and what the load took.
    pub fn load(
        exe: &Path,
        config: &CpuConfig,
        dir: &Path,
        opts: &LoadOptions,
    ) -> Result<(TsinkProcess, TsinkLoad)> {
        let dir = dir.to_str().ok_or_else(|| Error::Peer {
            peer: PEER,
            message: format!("the directory {} is not UTF-8", dir.display()),
        })?;
        let label = format!("tsink's process (`{} {SUBCOMMAND}`)", exe.display());
        let mut driver = Driver::spawn(
            PEER,
            label,
            Command::new(exe).arg(SUBCOMMAND),
            Stderr::Inherit,
        )
        .map_err(|e| Error::Peer {
            peer: PEER,
            message: format!("cannot start `{} {SUBCOMMAND}`: {e}", exe.display()),
        })?;
        let hello = driver.request(&json!({"op": "hello"}))?;
        if hello.header["peer"] != PEER {
            return Err(Error::Peer {
                peer: PEER,
                message: format!(
                    "`{} {SUBCOMMAND}` is not tsink's process: it said {}",
                    exe.display(),
                    hello.header
                ),
            });
        }
        let load = json!({
            "op": "load",
            "config": config,
            "dir": dir,
            "batch_rows": opts.batch_rows,
            "durability": durability_json(opts.durability),
            "progress": opts.progress,
        });
        let reply = driver.request_within(&load, &[], LOAD_DEADLINE)?;
        let load =
            serde_json::from_value(reply.header["load"].clone()).map_err(|e| Error::Peer {
                peer: PEER,
                message: format!("tsink's process sent a load it cannot describe ({e})"),
            })?;
        let process = TsinkProcess {
            driver: Mutex::new(driver),
        };
        Ok((process, load))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Driver> {
        self.driver.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The answer to `query` as one batch with the columns of [`DevopsQuery::sql`]'s
    /// answer, and how long tsink took to make it, in its process.
    pub fn batch(&self, query: &DevopsQuery) -> Result<(RecordBatch, Duration)> {
        let reply = self
            .lock()
            .request(&json!({"op": "query", "query": query}))?;
        let took = reply.duration("secs")?;
        let mut batches = reply.batches()?;
        if batches.len() != 1 {
            return Err(Error::Peer {
                peer: PEER,
                message: format!(
                    "tsink's process answered in {} batches, not 1",
                    batches.len()
                ),
            });
        }
        Ok((batches.remove(0), took))
    }

    /// Loads the cpu workloads for a run into `<run dir>/tsink`: the engine and its two
    /// loading phases, `write` and `flush`. The logs workload, which this peer does not
    /// load, a process that does not start and a load that fails in tsink give an
    /// [`Unavailable`] engine whose reason is shown for every query: a peer's failure
    /// does not discard Sextant's figures.
    pub(crate) fn engine(
        spec: &WorkloadSpec,
        opts: &PeerOptions<'_>,
    ) -> Result<(Box<dyn Engine>, Vec<Phase>)> {
        let dir = opts.dir.join(PEER);
        let WorkloadSpec::Cpu(config) = spec else {
            // Not to be mistaken for this run's data.
            remove(&dir)?;
            let engine = Unavailable {
                name: PEER,
                reason: "the tsink peer loads the cpu workloads only: its select API could \
                         count events per service or level (labels), but not search message \
                         text, look up a trace id or rank templates, so the logs workload is \
                         not wired to it"
                    .to_owned(),
            };
            return Ok((Box::new(engine), Vec::new()));
        };
        let load_options = LoadOptions {
            batch_rows: opts.batch_rows,
            durability: opts.durability,
            progress: opts.progress,
        };
        let loaded =
            executable().and_then(|exe| TsinkProcess::load(&exe, config, &dir, &load_options));
        let (process, load) = match loaded {
            Ok(loaded) => loaded,
            Err(e @ Error::Peer { .. }) => {
                let engine = Unavailable::after_failed_load(PEER, &e);
                return Ok((Box::new(engine), Vec::new()));
            }
            Err(e) => return Err(e),
        };
        let mut write = Phase::new(PEER, "write", spec, load.rows, load.wall_secs);
        write.engine_secs = Some(load.write_secs);
        write.set_memory(load.write_memory);
        write.samples = load.samples.clone();
        write.note = Some(format!(
            "{} rows/s counting only the time inside insert_rows calls ({} points, one per \
             value; one writer thread; rows/s above includes generation and building tsink's \
             rows); in a process of its own, whose peak memory this is",
            count((load.rows as f64 / load.write_secs.max(1e-9)).round() as u64),
            count(load.points),
        ));
        if load.background_errors > 0
            && let Some(note) = write.note.as_mut()
        {
            note.push_str(&format!(
                "; {} background flush/compaction failure(s), retried (last: {})",
                load.background_errors,
                load.last_background_error.as_deref().unwrap_or("not given")
            ));
        }
        let mut flush = Phase::new(PEER, "flush", spec, load.rows, load.close_secs);
        flush.set_disk(load.bytes, spec);
        flush.set_memory(load.close_memory);
        let settle = &load.settle;
        flush.note = Some(format!(
            "close = final flush; every file of its directory; reopened for the queries in {:.2} s, \
             then {} {:.0} s for its background compaction ({} pass(es) compacted something)",
            load.reopen_secs,
            if settle.settled {
                "waited"
            } else {
                "gave up waiting after"
            },
            settle.secs,
            settle.compactions
        ));
        Ok((Box::new(process), vec![write, flush]))
    }
}

/// The devops queries it can express, answered as a competent user of its API would; the
/// statement shown for each is the calls it makes ([`TsinkPeer::calls`]).
impl Engine for TsinkProcess {
    fn name(&self) -> &'static str {
        PEER
    }

    fn statement(&self, query: &BenchQuery) -> Result<String, String> {
        let Some(devops) = &query.devops else {
            return Err("tsink answers only the devops queries".to_owned());
        };
        match TsinkPeer::unavailable(devops) {
            Some(reason) => Err(reason.to_owned()),
            None => Ok(TsinkPeer::calls(devops)),
        }
    }

    fn execute(&self, query: &BenchQuery, statement: &str) -> Result<Vec<RecordBatch>> {
        Ok(self.execute_timed(query, statement)?.0)
    }

    /// The time tsink took in its process ([`TsinkProcess::batch`]).
    fn execute_timed(
        &self,
        query: &BenchQuery,
        _statement: &str,
    ) -> Result<(Vec<RecordBatch>, Duration)> {
        let devops = query.devops.as_ref().ok_or_else(|| Error::Peer {
            peer: PEER,
            message: format!("{} is not a devops query", query.name),
        })?;
        let (batch, took) = self.batch(devops)?;
        Ok((vec![batch], took))
    }
}

/// Sextant's durability as a request carries it.
fn durability_json(durability: Durability) -> Value {
    match durability {
        Durability::Always => json!("always"),
        Durability::Never => json!("never"),
        Durability::Interval(d) => json!({"interval_ns": d.as_nanos() as u64}),
    }
}

/// The durability of a request, or why it is none.
fn durability_of(value: &Value) -> Result<Durability, String> {
    match value {
        Value::String(s) if s == "always" => Ok(Durability::Always),
        Value::String(s) if s == "never" => Ok(Durability::Never),
        _ => match value["interval_ns"].as_u64() {
            Some(ns) if ns > 0 => Ok(Durability::Interval(Duration::from_nanos(ns))),
            _ => Err(format!(
                "`durability` is \"always\", \"never\" or {{\"interval_ns\": N > 0}}, not {value}"
            )),
        },
    }
}

/// `sextant-bench tsink-peer`: serves the requests of [`TsinkProcess`] on standard input
/// and output until `quit` or the end of the input.
pub fn serve() -> Result<()> {
    let mut store: Option<TsinkPeer> = None;
    driver::serve(PEER, |request, _payload| {
        let bad = |message: String| Error::Peer {
            peer: PEER,
            message,
        };
        match request["op"].as_str() {
            Some("hello") => Ok((json!({"peer": PEER}), Vec::new())),
            Some("load") => {
                let config: CpuConfig = serde_json::from_value(request["config"].clone())
                    .map_err(|e| bad(format!("`config` is not a cpu workload ({e})")))?;
                let dir = request["dir"]
                    .as_str()
                    .ok_or_else(|| bad("`dir` is not a path".to_owned()))?;
                let batch_rows = request["batch_rows"]
                    .as_u64()
                    .ok_or_else(|| bad("`batch_rows` is not a count".to_owned()))?;
                let opts = LoadOptions {
                    batch_rows: batch_rows as usize,
                    durability: durability_of(&request["durability"]).map_err(bad)?,
                    progress: request["progress"].as_bool().unwrap_or(false),
                };
                // The store of an earlier load is closed before its directory is replaced.
                store = None;
                let (peer, load) = TsinkPeer::load(&config, Path::new(dir), &opts)?;
                store = Some(peer);
                let load = serde_json::to_value(&load)
                    .map_err(|e| bad(format!("cannot describe the load ({e})")))?;
                Ok((json!({ "load": load }), Vec::new()))
            }
            Some("query") => {
                let query: DevopsQuery = serde_json::from_value(request["query"].clone())
                    .map_err(|e| bad(format!("`query` is not a devops query ({e})")))?;
                let peer = store
                    .as_ref()
                    .ok_or_else(|| bad("a query before any load".to_owned()))?;
                let started = Instant::now();
                let batch = match peer.batch(&query) {
                    Ok(batch) => batch,
                    Err(Unanswered::Failed(e)) => return Err(e),
                    Err(Unanswered::NotAvailable(reason)) => return Err(bad(reason.to_owned())),
                };
                let secs = started.elapsed().as_secs_f64();
                Ok((json!({ "secs": secs }), driver::ipc(&batch)?))
            }
            other => Err(bad(format!("no request `{}`", other.unwrap_or("(no op)")))),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durability_goes_through_a_request_unchanged() {
        for d in [
            Durability::Always,
            Durability::Never,
            Durability::Interval(Duration::from_millis(250)),
        ] {
            assert_eq!(durability_of(&durability_json(d)), Ok(d));
        }
        assert!(durability_of(&json!({"interval_ns": 0})).is_err());
        assert!(durability_of(&json!("sometimes")).is_err());
    }
}
