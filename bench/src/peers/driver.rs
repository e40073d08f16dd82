//! A peer in a process of its own (a driver), and the protocol spoken with it over its
//! standard input and output: DuckDB's Python driver ([`super::duckdb`]) and tsink's
//! process ([`super::tsink`]) speak it.
//!
//! Requests are JSON objects, one a line; a request with `ipc_bytes` is followed by that
//! many bytes (an Arrow IPC stream). Each gets one reply: a JSON header line with `ok` and
//! `ipc_bytes`, then that many bytes (an Arrow IPC stream, 0 for replies without a table).
//! A failure is a header `{"ok": false, "error": "...", "ipc_bytes": 0}`. `{"op": "quit"}`
//! gets no reply: the driver exits. [`serve`] is the driver's side of it in Rust.
//!
//! Every failure is an [`Error::Peer`] whose message says what failed and ends with the
//! last lines the driver wrote to standard error, which a thread keeps as they come (so the
//! child never blocks on a full pipe), or says they were shown.
//!
//! Replies are read by a thread of their own, so that a driver that stops answering is
//! found out: a request waits for its reply at most [`Driver::set_deadline`]'s time
//! ([`DEADLINE`] unless set; a load is given [`LOAD_DEADLINE`] through
//! [`Driver::request_within`]), after which the driver is stopped and the request fails.
//! Sending is not bounded: a driver that stops reading its input while a request larger
//! than the pipe's buffer (a batch of DuckDB's load in batches) is being written still
//! holds the harness.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow_array::RecordBatch;
use serde_json::Value;

use crate::{Error, Result};

/// Most bytes of a driver's standard error kept for messages.
const STDERR_KEEP: usize = 4096;

/// How long a request waits for its reply unless [`Driver::set_deadline`] says otherwise:
/// far longer than any query of the workloads takes (the slowest, lastpoint on DuckDB at
/// the standard size, about 18 s).
pub const DEADLINE: Duration = Duration::from_secs(600);

/// How long a load waits for its reply: the tsink load of the standard size would take
/// about two hours (README, "Against tsink").
pub const LOAD_DEADLINE: Duration = Duration::from_secs(6 * 3600);

/// What becomes of a driver's standard error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stderr {
    /// Kept (its last [`STDERR_KEEP`] bytes) for the messages of failures.
    Keep,
    /// Written where this process writes its own (progress bars show).
    Inherit,
}

/// A running driver.
pub struct Driver {
    peer: &'static str,
    /// What it is, for messages: "the DuckDB driver (`python3 driver.py`)".
    label: String,
    child: Child,
    stdin: Option<ChildStdin>,
    /// The replies, as the thread that reads standard output frames them.
    replies: Receiver<Next>,
    /// How long [`Driver::request`] waits for a reply.
    deadline: Duration,
    /// `None` when inherited.
    stderr: Option<Arc<Mutex<String>>>,
}

/// What the reading thread found next on the driver's standard output. After anything
/// but a reply the stream is out of step or ended, and the thread stops.
#[derive(Debug)]
enum Next {
    /// A header line and the payload it announced.
    Reply(Value, Vec<u8>),
    /// The output ended before a reply began.
    Ended,
    /// The output ended inside the header line.
    MidLine,
    /// Reading failed.
    Failed(std::io::Error),
    /// The header line is not JSON (the error, the line's start).
    NotJson(String, String),
    /// The header has no `ipc_bytes`.
    NoLength(Value),
    /// The payload ended after `read` of `len` bytes.
    Short { read: usize, len: u64 },
}

impl Next {
    /// Reads the next reply from `out`.
    fn read(out: &mut impl BufRead) -> Next {
        let mut header = String::new();
        match out.read_line(&mut header) {
            Ok(0) => return Next::Ended,
            Ok(_) if !header.ends_with('\n') => return Next::MidLine,
            Ok(_) => {}
            Err(e) => return Next::Failed(e),
        }
        let header: Value = match serde_json::from_str(&header) {
            Ok(header) => header,
            Err(e) => {
                let start = header.chars().take(200).collect();
                return Next::NotJson(e.to_string(), start);
            }
        };
        let Some(len) = header["ipc_bytes"].as_u64() else {
            return Next::NoLength(header);
        };
        let mut payload = Vec::new();
        match out.take(len).read_to_end(&mut payload) {
            Ok(read) if read as u64 == len => Next::Reply(header, payload),
            Ok(read) => Next::Short { read, len },
            Err(e) => Next::Failed(e),
        }
    }
}

/// Starts the thread that reads `stdout`'s replies into a channel, until the stream ends
/// or is out of step.
fn read_replies(peer: &'static str, stdout: ChildStdout) -> std::io::Result<Receiver<Next>> {
    let (send, replies) = mpsc::channel();
    std::thread::Builder::new()
        .name(format!("{peer}-replies"))
        .spawn(move || {
            let mut out = BufReader::new(stdout);
            loop {
                let read = Next::read(&mut out);
                let more = matches!(read, Next::Reply(..));
                if send.send(read).is_err() || !more {
                    return;
                }
            }
        })?;
    Ok(replies)
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("label", &self.label)
            .field("pid", &self.child.id())
            .finish_non_exhaustive()
    }
}

/// A reply: its JSON header and the Arrow IPC bytes after it.
#[derive(Debug)]
pub struct Reply {
    peer: &'static str,
    /// The header (`ok` was true).
    pub header: Value,
    /// The Arrow IPC stream, empty for replies without a table.
    pub payload: Vec<u8>,
}

impl Reply {
    /// The number `key` of the header.
    pub fn number(&self, key: &str) -> Result<f64> {
        self.header[key].as_f64().ok_or_else(|| Error::Peer {
            peer: self.peer,
            message: format!("the driver's reply has no number `{key}`: {}", self.header),
        })
    }

    /// The seconds `key` of the header, as a duration.
    pub fn duration(&self, key: &str) -> Result<Duration> {
        let secs = self.number(key)?;
        Duration::try_from_secs_f64(secs).map_err(|e| Error::Peer {
            peer: self.peer,
            message: format!("the driver's reply has `{key}` {secs}, not a duration ({e})"),
        })
    }

    /// The payload's batches.
    pub fn batches(&self) -> Result<Vec<RecordBatch>> {
        let broken = |e| Error::Peer {
            peer: self.peer,
            message: format!("the driver's answer is not an Arrow IPC stream: {e}"),
        };
        let reader =
            arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(&self.payload), None)
                .map_err(broken)?;
        let schema = reader.schema();
        let mut batches = reader.collect::<Result<Vec<_>, _>>().map_err(broken)?;
        if batches.is_empty() {
            batches.push(RecordBatch::new_empty(schema));
        }
        Ok(batches)
    }
}

impl Driver {
    /// Starts `command` as the driver of `peer`, its standard input and output piped for
    /// the protocol. `label` names it in messages ("the DuckDB driver (`python3
    /// driver.py`)"). The error is the operating system's, for the caller to explain.
    pub fn spawn(
        peer: &'static str,
        label: String,
        command: &mut Command,
        stderr: Stderr,
    ) -> std::io::Result<Driver> {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(match stderr {
                Stderr::Keep => Stdio::piped(),
                Stderr::Inherit => Stdio::inherit(),
            })
            .spawn()?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            unreachable!("both streams were piped");
        };
        let threads = (|| -> std::io::Result<_> {
            let kept = child
                .stderr
                .take()
                .map(|err| keep_stderr(peer, err))
                .transpose()?;
            Ok((kept, read_replies(peer, stdout)?))
        })();
        let (kept, replies) = match threads {
            Ok(threads) => threads,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(std::io::Error::new(
                    e.kind(),
                    format!("starting a thread to read its output failed: {e}"),
                ));
            }
        };
        Ok(Driver {
            peer,
            label,
            child,
            stdin: Some(stdin),
            replies,
            deadline: DEADLINE,
            stderr: kept,
        })
    }

    /// How long each later request waits for its reply (see [`Driver::request_within`]).
    pub fn set_deadline(&mut self, deadline: Duration) {
        self.deadline = deadline;
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
        self.request_within(request, payload, self.deadline)
    }

    /// [`Driver::request_with`], waiting at most `deadline` for the reply: past it the
    /// driver is stopped (killed) and the request fails, as do all later ones.
    pub fn request_within(
        &mut self,
        request: &Value,
        payload: &[u8],
        deadline: Duration,
    ) -> Result<Reply> {
        let op = request["op"].as_str().unwrap_or("?").to_owned();
        let mut request = request.clone();
        if !payload.is_empty()
            && let Some(fields) = request.as_object_mut()
        {
            fields.insert("ipc_bytes".to_owned(), Value::from(payload.len()));
        }
        let mut line = serde_json::to_vec(&request).map_err(|e| self.protocol(e.to_string()))?;
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
        // Past a reply that breaks the framing, the stream is out of step: the driver is
        // stopped, and every later request fails.
        let (header, payload) = match self.replies.recv_timeout(deadline) {
            Ok(Next::Reply(header, payload)) => (header, payload),
            Ok(Next::Ended) | Err(RecvTimeoutError::Disconnected) => {
                return Err(self.died(&format!("it gave no reply to `{op}`")));
            }
            Ok(Next::MidLine) => {
                return Err(self.died(&format!("its reply to `{op}` ended mid-line")));
            }
            Ok(Next::Failed(e)) => {
                return Err(self.died(&format!("reading its reply to `{op}` failed ({e})")));
            }
            Ok(Next::NotJson(e, start)) => {
                self.stop();
                return Err(self.protocol(format!(
                    "its reply to `{op}` is not a JSON line ({e}): {start:?}"
                )));
            }
            Ok(Next::NoLength(header)) => {
                self.stop();
                return Err(
                    self.protocol(format!("its reply to `{op}` has no `ipc_bytes`: {header}"))
                );
            }
            Ok(Next::Short { read, len }) => {
                return Err(self.died(&format!(
                    "its answer to `{op}` ended after {read} of {len} bytes"
                )));
            }
            Err(RecvTimeoutError::Timeout) => {
                return Err(self.died(&format!(
                    "it gave no reply to `{op}` within {deadline:?}, so it was stopped"
                )));
            }
        };
        if header["ok"].as_bool() != Some(true) {
            let error = header["error"].as_str().unwrap_or("(no message)");
            return Err(Error::Peer {
                peer: self.peer,
                message: format!("`{op}` failed in {}: {error}", self.label),
            });
        }
        Ok(Reply {
            peer: self.peer,
            header,
            payload,
        })
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
            peer: self.peer,
            message: format!(
                "{} (pid {}) failed: {what}; {status}; its standard error: {}",
                self.label,
                self.child.id(),
                self.stderr_tail()
            ),
        }
    }

    /// The error for a reply that breaks the protocol.
    fn protocol(&self, message: String) -> Error {
        Error::Peer {
            peer: self.peer,
            message: format!("{} broke the protocol: {message}", self.label),
        }
    }

    /// Stops a driver that can no longer be talked to: closes its input and kills it.
    fn stop(&mut self) {
        self.stdin = None;
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The last lines the driver wrote to standard error, `(nothing)`, or `(shown above)`
    /// when it is inherited.
    pub fn stderr_tail(&self) -> String {
        let Some(stderr) = &self.stderr else {
            return "(shown above)".to_owned();
        };
        let text = stderr.lock().unwrap_or_else(|e| e.into_inner());
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

/// Starts a thread that keeps the last [`STDERR_KEEP`] bytes (at most twice that) of `err`.
fn keep_stderr(
    peer: &'static str,
    mut err: std::process::ChildStderr,
) -> std::io::Result<Arc<Mutex<String>>> {
    let stderr = Arc::new(Mutex::new(String::new()));
    let kept = Arc::clone(&stderr);
    std::thread::Builder::new()
        .name(format!("{peer}-stderr"))
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
        })?;
    Ok(stderr)
}

/// The driver's side of the protocol, for the driver of `peer` written in Rust: reads requests from
/// standard input until `quit` or its end, and answers each with `handle`'s reply, a
/// header (whose `ok` and `ipc_bytes` this sets) and Arrow IPC bytes, or its error as a
/// failure. A request that is not a JSON line, or whose `ipc_bytes` is not a count, leaves
/// the stream out of step: it is answered as a failure and serving stops with the error.
pub fn serve(
    peer: &'static str,
    handle: impl FnMut(&Value, Vec<u8>) -> Result<(Value, Vec<u8>)>,
) -> Result<()> {
    let stdin = std::io::stdin();
    let output = std::io::BufWriter::new(std::io::stdout().lock());
    serve_on(peer, stdin.lock(), output, handle)
}

/// [`serve`] over `input` and `output`.
pub fn serve_on(
    peer: &'static str,
    mut input: impl BufRead,
    mut output: impl Write,
    mut handle: impl FnMut(&Value, Vec<u8>) -> Result<(Value, Vec<u8>)>,
) -> Result<()> {
    let io = |source| Error::Io {
        action: "speaking the driver protocol over",
        path: "standard input and output".into(),
        source,
    };
    let mut line = String::new();
    loop {
        line.clear();
        if input.read_line(&mut line).map_err(io)? == 0 {
            return Ok(());
        }
        let request: Value = match serde_json::from_str(&line) {
            Ok(request) => request,
            Err(e) => {
                let message = format!("a request is not a JSON line ({e})");
                reply(&mut output, Err(message.clone())).map_err(io)?;
                return Err(Error::Peer { peer, message });
            }
        };
        if request["op"] == "quit" {
            return Ok(());
        }
        let mut payload = Vec::new();
        match &request["ipc_bytes"] {
            Value::Null => {}
            Value::Number(n) if n.is_u64() => {
                let len = n.as_u64().unwrap_or_default();
                (&mut input)
                    .take(len)
                    .read_to_end(&mut payload)
                    .map_err(io)?;
                if payload.len() as u64 != len {
                    return Ok(()); // The other side went away mid-request.
                }
            }
            other => {
                let message = format!("`ipc_bytes` is not a count of bytes: {other}");
                reply(&mut output, Err(message.clone())).map_err(io)?;
                return Err(Error::Peer { peer, message });
            }
        }
        let answer = handle(&request, payload).map_err(|e| e.to_string());
        reply(&mut output, answer).map_err(io)?;
    }
}

/// Writes one reply: the header line and the payload.
fn reply(
    out: &mut impl Write,
    answer: std::result::Result<(Value, Vec<u8>), String>,
) -> std::io::Result<()> {
    let (mut header, payload) = match answer {
        Ok((header, payload)) => (header, payload),
        Err(error) => (serde_json::json!({"ok": false, "error": error}), Vec::new()),
    };
    if !header.is_object() {
        header = serde_json::json!({});
    }
    if let Some(fields) = header.as_object_mut() {
        fields.entry("ok").or_insert(Value::Bool(true));
        fields.insert("ipc_bytes".to_owned(), Value::from(payload.len()));
    }
    let mut line = serde_json::to_vec(&header).map_err(std::io::Error::other)?;
    line.push(b'\n');
    out.write_all(&line)?;
    out.write_all(&payload)?;
    out.flush()
}

/// `batch` as an Arrow IPC stream (the payload of a reply with a table).
pub fn ipc(batch: &RecordBatch) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let mut writer = arrow_ipc::writer::StreamWriter::try_new(&mut bytes, &batch.schema())?;
    writer.write(batch)?;
    writer.finish()?;
    drop(writer);
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Int64Array;

    /// The replies `serve_on` writes for `input`, each as its header and payload, and its
    /// result; the handler echoes the payload's length and answers `table` with a batch.
    fn served(input: &[u8]) -> (Vec<(Value, Vec<u8>)>, Result<()>) {
        let mut output = Vec::new();
        let result = serve_on(
            "test",
            input,
            &mut output,
            |request, payload| match request["op"].as_str() {
                Some("echo") => Ok((serde_json::json!({"got": payload.len()}), Vec::new())),
                Some("table") => {
                    let batch = RecordBatch::try_from_iter([(
                        "x",
                        Arc::new(Int64Array::from(vec![1, 2, 3])) as _,
                    )])?;
                    Ok((serde_json::json!({}), ipc(&batch)?))
                }
                _ => Err(Error::Peer {
                    peer: "test",
                    message: "no such request".into(),
                }),
            },
        );
        let mut replies = Vec::new();
        let mut rest = output.as_slice();
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            let header: Value = serde_json::from_slice(&rest[..end]).unwrap();
            let len = header["ipc_bytes"].as_u64().unwrap() as usize;
            let payload = rest[end + 1..end + 1 + len].to_vec();
            rest = &rest[end + 1 + len..];
            replies.push((header, payload));
        }
        assert!(rest.is_empty(), "bytes after the last reply");
        (replies, result)
    }

    #[test]
    fn requests_with_payloads_get_one_reply_each_and_quit_ends_serving() {
        let input = b"{\"op\": \"echo\", \"ipc_bytes\": 3}\nabc{\"op\": \"table\"}\n\
                      {\"op\": \"nope\"}\n{\"op\": \"quit\"}\n{\"op\": \"echo\"}\n";
        let (replies, result) = served(input);
        result.unwrap();
        assert_eq!(replies.len(), 3, "nothing is answered after quit");
        assert_eq!(replies[0].0["ok"], true);
        assert_eq!(replies[0].0["got"], 3);
        let reply = Reply {
            peer: "test",
            header: replies[1].0.clone(),
            payload: replies[1].1.clone(),
        };
        assert_eq!(reply.batches().unwrap()[0].num_rows(), 3);
        // A failed request is a reply with the error, and serving goes on.
        assert_eq!(replies[2].0["ok"], false);
        assert!(
            replies[2].0["error"]
                .as_str()
                .unwrap()
                .contains("no such request")
        );
    }

    #[test]
    fn a_driver_that_does_not_answer_in_time_is_stopped() {
        // It reads the request and never answers.
        let mut command = Command::new("sh");
        command.args(["-c", "read line; exec sleep 60"]);
        let mut driver =
            Driver::spawn("test", "a silent driver".into(), &mut command, Stderr::Keep).unwrap();
        driver.set_deadline(Duration::from_millis(300));
        let started = std::time::Instant::now();
        let error = driver
            .request(&serde_json::json!({"op": "query"}))
            .unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "it was waited for"
        );
        let message = error.to_string();
        assert!(message.contains("no reply to `query` within"), "{message}");
        assert!(
            driver.child.try_wait().unwrap().is_some(),
            "it was not stopped"
        );
        // Later requests fail at once.
        assert!(driver.request(&serde_json::json!({"op": "query"})).is_err());
    }

    #[test]
    fn a_request_out_of_step_is_answered_as_a_failure_and_ends_serving() {
        for input in [
            &b"not json\n{\"op\": \"echo\"}\n"[..],
            b"{\"op\": \"echo\", \"ipc_bytes\": -1}\n{\"op\": \"echo\"}\n",
            b"{\"op\": \"echo\", \"ipc_bytes\": \"3\"}\nabc",
        ] {
            let (replies, result) = served(input);
            assert!(result.is_err(), "{}", String::from_utf8_lossy(input));
            assert_eq!(replies.len(), 1);
            assert_eq!(replies[0].0["ok"], false);
        }
        // The input ending mid-request (the other side went away) ends serving quietly.
        let (replies, result) = served(b"{\"op\": \"echo\", \"ipc_bytes\": 10}\nabc");
        result.unwrap();
        assert!(replies.is_empty());
    }
}
