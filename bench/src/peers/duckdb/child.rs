//! The driver process: `python3` running [`SCRIPT`], and the protocol spoken with it over
//! its standard input and output (described at the top of `driver.py`).
//!
//! Every failure is an [`Error::Peer`] whose message says what failed and ends with the
//! last lines the driver wrote to standard error, which a thread keeps as they come (so the
//! child never blocks on a full pipe).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow_array::RecordBatch;
use serde_json::Value;

use super::PEER;
use crate::{Error, Result};

/// The driver script, written next to the peer's database when the peer starts.
pub const SCRIPT: &str = include_str!("driver.py");

/// The Python interpreter: `$SEXTANT_BENCH_PYTHON`, else `python3` on the `PATH`.
pub fn python() -> String {
    std::env::var("SEXTANT_BENCH_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// Most bytes of the driver's standard error kept for messages.
const STDERR_KEEP: usize = 4096;

/// A running driver.
pub struct Driver {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    stderr: Arc<Mutex<String>>,
    /// The versions the driver reported: `duckdb 2.0.1, pyarrow 26.0.1, python 3.11.7`.
    pub versions: String,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("pid", &self.child.id())
            .field("versions", &self.versions)
            .finish_non_exhaustive()
    }
}

/// A reply: its JSON header and the Arrow IPC bytes after it.
#[derive(Debug)]
pub struct Reply {
    /// The header (`ok` was true).
    pub header: Value,
    /// The Arrow IPC stream, empty for replies without a table.
    pub payload: Vec<u8>,
}

impl Reply {
    /// The number `key` of the header.
    pub fn number(&self, key: &str) -> Result<f64> {
        self.header[key].as_f64().ok_or_else(|| Error::Peer {
            peer: PEER,
            message: format!("the driver's reply has no number `{key}`: {}", self.header),
        })
    }

    /// The payload's batches.
    pub fn batches(&self) -> Result<Vec<RecordBatch>> {
        let reader =
            arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(&self.payload), None)
                .map_err(|e| protocol(format!("its answer is not an Arrow IPC stream: {e}")))?;
        let schema = reader.schema();
        let mut batches = reader
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| protocol(format!("its answer is not an Arrow IPC stream: {e}")))?;
        if batches.is_empty() {
            batches.push(RecordBatch::new_empty(schema));
        }
        Ok(batches)
    }
}

fn protocol(message: String) -> Error {
    Error::Peer {
        peer: PEER,
        message: format!("the DuckDB driver broke the protocol: {message}"),
    }
}

impl Driver {
    /// Writes [`SCRIPT`] into `dir` and starts it with [`python()`]; checks that it imports
    /// duckdb and pyarrow (the `hello` request).
    pub fn start(dir: &Path) -> Result<Driver> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            action: "creating",
            path: dir.to_path_buf(),
            source,
        })?;
        let script: PathBuf = dir.join("driver.py");
        std::fs::write(&script, SCRIPT).map_err(|source| Error::Io {
            action: "writing",
            path: script.clone(),
            source,
        })?;
        let python = python();
        let mut child = Command::new(&python)
            .arg(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::Peer {
                peer: PEER,
                message: format!(
                    "cannot start `{python} {}` ({e}); the DuckDB peer needs Python 3 with \
                     `pip install duckdb==2.0.1 pyarrow` (or set SEXTANT_BENCH_PYTHON)",
                    script.display()
                ),
            })?;
        let (Some(stdin), Some(stdout), Some(mut err)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            unreachable!("all three streams were piped");
        };
        let stderr = Arc::new(Mutex::new(String::new()));
        let kept = Arc::clone(&stderr);
        std::thread::Builder::new()
            .name("duckdb-stderr".into())
            .spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = err.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let mut text = kept.lock().unwrap_or_else(|e| e.into_inner());
                    text.push_str(&String::from_utf8_lossy(&buf[..n]));
                    if text.len() > 2 * STDERR_KEEP {
                        let mut cut = text.len() - STDERR_KEEP;
                        while !text.is_char_boundary(cut) {
                            cut += 1;
                        }
                        text.drain(..cut);
                    }
                }
            })
            .map_err(|source| {
                let _ = child.kill();
                let _ = child.wait();
                Error::Io {
                    action: "starting a thread to read the standard error of",
                    path: script.clone(),
                    source,
                }
            })?;
        let mut driver = Driver {
            child,
            stdin: Some(stdin),
            stdout: BufReader::new(stdout),
            stderr,
            versions: String::new(),
        };
        let hello = driver.request(&serde_json::json!({"op": "hello"}))?;
        driver.versions = format!(
            "duckdb {}, pyarrow {}, python {}",
            hello.header["duckdb"].as_str().unwrap_or("?"),
            hello.header["pyarrow"].as_str().unwrap_or("?"),
            hello.header["python"].as_str().unwrap_or("?"),
        );
        Ok(driver)
    }

    /// The driver's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `request` and reads its reply; a reply with `ok: false` is an error with the
    /// driver's message.
    pub fn request(&mut self, request: &Value) -> Result<Reply> {
        self.request_with(request, &[])
    }

    /// Sends `request` followed by `payload` (an Arrow IPC stream; its length is put in the
    /// request as `ipc_bytes`), and reads the reply as [`Driver::request`] does.
    pub fn request_with(&mut self, request: &Value, payload: &[u8]) -> Result<Reply> {
        let op = request["op"].as_str().unwrap_or("?").to_owned();
        let mut request = request.clone();
        if !payload.is_empty()
            && let Some(fields) = request.as_object_mut()
        {
            fields.insert("ipc_bytes".to_owned(), Value::from(payload.len()));
        }
        let mut line = serde_json::to_vec(&request).map_err(|e| protocol(e.to_string()))?;
        line.push(b'\n');
        let sent = match self.stdin.as_mut() {
            Some(stdin) => stdin
                .write_all(&line)
                .and_then(|()| stdin.write_all(payload))
                .and_then(|()| stdin.flush()),
            None => Err(std::io::ErrorKind::BrokenPipe.into()),
        };
        if let Err(e) = sent {
            return Err(self.died(&format!("sending `{op}` failed ({e})")));
        }
        let mut header = String::new();
        match self.stdout.read_line(&mut header) {
            Ok(0) => return Err(self.died(&format!("it gave no reply to `{op}`"))),
            Ok(_) if !header.ends_with('\n') => {
                return Err(self.died(&format!("its reply to `{op}` ended mid-line")));
            }
            Ok(_) => {}
            Err(e) => return Err(self.died(&format!("reading its reply to `{op}` failed ({e})"))),
        }
        // Past a reply that breaks the framing, the stream is out of step: the driver is
        // stopped, and every later request fails.
        let header: Value = match serde_json::from_str(&header) {
            Ok(header) => header,
            Err(e) => {
                self.stop();
                return Err(protocol(format!(
                    "its reply to `{op}` is not a JSON line ({e}): {:?}",
                    header.chars().take(200).collect::<String>()
                )));
            }
        };
        let Some(len) = header["ipc_bytes"].as_u64() else {
            self.stop();
            return Err(protocol(format!(
                "its reply to `{op}` has no `ipc_bytes`: {header}"
            )));
        };
        let mut payload = Vec::new();
        let read = match (&mut self.stdout).take(len).read_to_end(&mut payload) {
            Ok(read) => read,
            Err(e) => {
                return Err(self.died(&format!("reading its answer to `{op}` failed ({e})")));
            }
        };
        if read as u64 != len {
            return Err(self.died(&format!(
                "its answer to `{op}` ended after {read} of {len} bytes"
            )));
        }
        if header["ok"].as_bool() != Some(true) {
            let error = header["error"].as_str().unwrap_or("(no message)");
            return Err(Error::Peer {
                peer: PEER,
                message: format!("`{op}` failed in the driver: {error}"),
            });
        }
        Ok(Reply { header, payload })
    }

    /// The error for a driver that stopped answering: its exit status if it has exited,
    /// and the end of its standard error. The driver is stopped.
    fn died(&mut self, what: &str) -> Error {
        // Give the process a moment to exit and the reader thread to take its last words.
        let mut status = None;
        for _ in 0..20 {
            if let Ok(Some(s)) = self.child.try_wait() {
                status = Some(s);
                break;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        std::thread::sleep(Duration::from_millis(50));
        let status = status.map_or("it was still running".to_owned(), |s| format!("it {s}"));
        self.stop();
        Error::Peer {
            peer: PEER,
            message: format!(
                "the DuckDB driver (`{} driver.py`, pid {}) failed: {what}; {status}; its \
                 standard error: {}",
                python(),
                self.child.id(),
                self.stderr_tail()
            ),
        }
    }

    /// Stops a driver that can no longer be talked to: closes its input and kills it.
    fn stop(&mut self) {
        self.stdin = None;
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The last lines the driver wrote to standard error, or `(nothing)`.
    pub fn stderr_tail(&self) -> String {
        let text = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        let text = text.trim();
        if text.is_empty() {
            return "(nothing)".to_owned();
        }
        let mut start = text.len().saturating_sub(STDERR_KEEP);
        while !text.is_char_boundary(start) {
            start += 1;
        }
        text[start..].to_owned()
    }
}

impl Drop for Driver {
    /// Asks the driver to quit and closes its input; kills it if it has not exited after
    /// a few seconds (it is this process's own child).
    fn drop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"{\"op\": \"quit\"}\n");
        }
        for _ in 0..200 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
