//! The log message templates: 50 base texts, each with 4 logger prefixes, so 200 templates,
//! with variable parts (ids, numbers, paths, user names, addresses) filled in per event.

use super::Level;
use crate::workload::rng::below;

/// Logger names put before each base text; each (logger, base) pair is one template.
const LOGGERS: [&str; 4] = ["api", "core", "store", "sched"];

/// Base texts for trace and debug events.
const DEBUG: [&str; 12] = [
    "{c}: entering handler {m} {p} for request {h}{h}",
    "{c}: cache lookup key={k} hit=false took {n}us",
    "{c}: cache lookup key={k} hit=true took {n}us",
    "{c}: acquired connection {n} from pool {t}_pool (idle={n}, active={n})",
    "{c}: parsed {n} headers from request {h}, content-length={b}",
    "{c}: SQL SELECT * FROM {t} WHERE id = {id} returned {n} rows",
    "{c}: feature flag {k} evaluated to true for user {u}",
    "{c}: span {h} started under trace, parent span {h}",
    "{c}: serialized response of {b} bytes for {p}",
    "{c}: retry policy for queue {q}: attempt {n} of 5, backoff {ms}ms",
    "{c}: config value {k} resolved from environment in {n}us",
    "{c}: scheduling job {id} on queue {q} with priority {n}",
];

/// Base texts for info events.
const INFO: [&str; 20] = [
    "{c}: {m} {p} {s} {ms}ms user={u} ip={ip}",
    "{c}: user {u} logged in from {ip}",
    "{c}: user {u} logged out after {n} minutes",
    "{c}: order {id} created for user {u} with {n} items",
    "{c}: payment {id} authorized for order {id}, amount {n}.{n} EUR",
    "{c}: job {id} from queue {q} finished in {ms}ms",
    "{c}: uploaded file {f} ({b} bytes) for user {u}",
    "{c}: cache {t} refreshed with {n} entries in {ms}ms",
    "{c}: connection from {ip} accepted, tls=1.3, cipher=TLS_AES_128_GCM_SHA256",
    "{c}: health check passed for dependency {t} in {ms}ms",
    "{c}: sent email template {k} to user {u}",
    "{c}: session {h}{h} renewed for user {u}",
    "{c}: shipment {id} for order {id} handed to carrier, {n} parcels",
    "{c}: search query for user {u} returned {n} results in {ms}ms",
    "{c}: consumer group {q} rebalanced, {n} partitions assigned",
    "{c}: flushed {n} metrics to {t} in {ms}ms",
    "{c}: api key {h} rotated by user {u}",
    "{c}: deployment of version {v} started with pid {id}",
    "{c}: inventory item {id} reserved, {n} left in stock",
    "{c}: webhook delivered to {p} with status {s} after {ms}ms",
];

/// Base texts for warn events.
const WARN: [&str; 10] = [
    "{c}: slow request {m} {p} took {ms}ms (threshold 500ms)",
    "{c}: retrying call to {t} after timeout, attempt {n}",
    "{c}: connection pool {t}_pool is {n}% used",
    "{c}: deprecated endpoint {p} called by user {u}",
    "{c}: rate limit nearly reached for user {u}: {n} requests in 60s",
    "{c}: cache miss ratio for {t} is {n}% over the last 5 minutes",
    "{c}: message {id} on queue {q} redelivered {n} times",
    "{c}: disk usage of volume {f} at {n}%",
    "{c}: certificate for {k}.example.com expires in {n} days",
    "{c}: GC pause of {ms}ms exceeded the 200ms target",
];

/// Base texts for error and fatal events.
const ERROR: [&str; 8] = [
    "{c}: request {m} {p} failed with status {S}: {e}",
    "{c}: database query on {t} failed: {e} (id={id})",
    "{c}: payment {id} declined for user {u}: {e}",
    "{c}: could not connect to {ip}:{n}: {e}",
    "{c}: job {id} on queue {q} failed after {n} attempts: {e}",
    "{c}: unhandled exception in handler for {p}: {e}",
    "{c}: failed to write {b} bytes to {f}: {e}",
    "{c}: upstream {t} returned an invalid response for request {h}",
];

const USERS: [&str; 24] = [
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
    "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "xavier", "yuki",
    "zoe", "amir", "chen",
];
const TABLES: [&str; 10] = [
    "orders",
    "users",
    "payments",
    "sessions",
    "inventory",
    "events",
    "accounts",
    "carts",
    "products",
    "invoices",
];
const RESOURCES: [&str; 8] = [
    "orders", "users", "carts", "products", "search", "payments", "sessions", "reports",
];
const QUEUES: [&str; 6] = [
    "emails",
    "billing-events",
    "thumbnails",
    "exports",
    "webhooks",
    "reindex",
];
const METHODS: [&str; 8] = ["GET", "GET", "GET", "GET", "POST", "POST", "PUT", "DELETE"];
const OK_STATUS: [&str; 6] = ["200", "200", "200", "201", "204", "304"];
const BAD_STATUS: [&str; 6] = ["400", "404", "409", "500", "502", "503"];
const ERRORS: [&str; 12] = [
    "connection reset by peer",
    "deadline exceeded",
    "timeout after 30s",
    "no such file or directory",
    "permission denied",
    "duplicate key value violates unique constraint",
    "insufficient funds",
    "broken pipe",
    "too many open files",
    "invalid argument",
    "connection refused",
    "out of memory",
];
const FILE_DIRS: [&str; 4] = ["/var/data", "/srv/uploads", "/mnt/archive", "/tmp/spool"];
const HEX: &[u8; 16] = b"0123456789abcdef";

/// Messages are at least this long, in bytes (padded with a request id when shorter).
pub const MIN_MESSAGE_LEN: usize = 40;
/// Messages are at most this long, in bytes (cut when longer; all text is ASCII).
pub const MAX_MESSAGE_LEN: usize = 200;

/// A variable part of a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Var {
    User,
    Id,
    Number,
    Millis,
    Path,
    File,
    Ip,
    Hex,
    Table,
    Key,
    Queue,
    Method,
    OkStatus,
    BadStatus,
    Error,
    Bytes,
    Version,
}

#[derive(Debug, Clone)]
enum Part {
    Text(String),
    Var(Var),
}

/// The 200 templates, parsed, grouped by level class.
#[derive(Debug)]
pub(crate) struct Templates {
    /// Indexed by [`class`]: debug (trace, debug), info, warn, error (error, fatal).
    classes: [Vec<Vec<Part>>; 4],
}

/// The template class of a level.
fn class(level: Level) -> usize {
    match level {
        Level::Trace | Level::Debug => 0,
        Level::Info => 1,
        Level::Warn => 2,
        Level::Error | Level::Fatal => 3,
    }
}

fn parse(text: &str, logger: &str) -> Vec<Part> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        literal.push_str(&rest[..open]);
        let close = open
            + rest[open..]
                .find('}')
                .expect("template braces are balanced");
        let var = match &rest[open + 1..close] {
            "c" => {
                literal.push_str(logger);
                None
            }
            "u" => Some(Var::User),
            "id" => Some(Var::Id),
            "n" => Some(Var::Number),
            "ms" => Some(Var::Millis),
            "p" => Some(Var::Path),
            "f" => Some(Var::File),
            "ip" => Some(Var::Ip),
            "h" => Some(Var::Hex),
            "t" => Some(Var::Table),
            "k" => Some(Var::Key),
            "q" => Some(Var::Queue),
            "m" => Some(Var::Method),
            "s" => Some(Var::OkStatus),
            "S" => Some(Var::BadStatus),
            "e" => Some(Var::Error),
            "b" => Some(Var::Bytes),
            "v" => Some(Var::Version),
            other => panic!("unknown template variable {{{other}}}"),
        };
        if let Some(var) = var {
            if !literal.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut literal)));
            }
            parts.push(Part::Var(var));
        }
        rest = &rest[close + 1..];
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        parts.push(Part::Text(literal));
    }
    parts
}

impl Templates {
    pub(crate) fn new() -> Templates {
        let class = |bases: &[&str]| {
            let mut templates = Vec::with_capacity(bases.len() * LOGGERS.len());
            for base in bases {
                for logger in LOGGERS {
                    templates.push(parse(base, logger));
                }
            }
            templates
        };
        Templates {
            classes: [class(&DEBUG), class(&INFO), class(&WARN), class(&ERROR)],
        }
    }

    /// Number of templates in all.
    pub(crate) fn len(&self) -> usize {
        self.classes.iter().map(Vec::len).sum()
    }

    /// Appends a message for `level` to `out`, drawing the template and its variable parts
    /// from `next` (a source of random 32-bit words).
    pub(crate) fn render(&self, level: Level, next: &mut impl FnMut() -> u32, out: &mut String) {
        let start = out.len();
        let templates = &self.classes[class(level)];
        let template = &templates[below(next(), templates.len() as u32) as usize];
        for part in template {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Var(var) => render_var(*var, next, out),
            }
        }
        if out.len() - start < MIN_MESSAGE_LEN {
            out.push_str(" request_id=");
            push_hex(out, next(), 8);
            push_hex(out, next(), 8);
        }
        out.truncate(start + MAX_MESSAGE_LEN.min(out.len() - start));
    }
}

fn pick<'a>(list: &[&'a str], r: u32) -> &'a str {
    list[below(r, list.len() as u32) as usize]
}

fn push_num(out: &mut String, n: u64) {
    use std::fmt::Write as _;
    let _ = write!(out, "{n}");
}

fn push_hex(out: &mut String, r: u32, digits: u32) {
    for i in (0..digits).rev() {
        out.push(char::from(HEX[((r >> (4 * i)) & 0xf) as usize]));
    }
}

fn render_var(var: Var, next: &mut impl FnMut() -> u32, out: &mut String) {
    let r = next();
    match var {
        Var::User => {
            out.push_str(pick(&USERS, r));
            push_num(out, u64::from(r & 0x3ff) % 1000);
        }
        Var::Id => push_num(out, 100_000 + u64::from(below(r, 9_900_000))),
        Var::Number => push_num(out, u64::from(below(r, 100))),
        // Roughly log-uniform from 1 ms to about 4 s.
        Var::Millis => push_num(out, 1 + (u64::from(r & 0xfff) >> below(next(), 12))),
        Var::Path => {
            out.push_str("/api/v");
            push_num(out, 1 + u64::from(r & 1));
            out.push('/');
            out.push_str(pick(&RESOURCES, r >> 1));
            out.push('/');
            push_num(out, 100_000 + u64::from(below(next(), 900_000)));
        }
        Var::File => {
            out.push_str(pick(&FILE_DIRS, r));
            out.push('/');
            out.push_str(pick(&TABLES, r.rotate_left(8)));
            out.push('/');
            push_hex(out, next(), 8);
            out.push_str(".parquet");
        }
        Var::Ip => {
            out.push_str("10.");
            for (i, shift) in [16, 8, 0].into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                push_num(out, u64::from((r >> shift) & 0xff));
            }
        }
        Var::Hex => push_hex(out, r, 8),
        Var::Table => out.push_str(pick(&TABLES, r)),
        Var::Key => {
            out.push_str(pick(&TABLES, r));
            out.push(':');
            push_num(out, u64::from(below(next(), 1_000_000)));
        }
        Var::Queue => out.push_str(pick(&QUEUES, r)),
        Var::Method => out.push_str(pick(&METHODS, r)),
        Var::OkStatus => out.push_str(pick(&OK_STATUS, r)),
        Var::BadStatus => out.push_str(pick(&BAD_STATUS, r)),
        Var::Error => out.push_str(pick(&ERRORS, r)),
        Var::Bytes => push_num(out, 1 + (u64::from(r) >> below(next(), 24).max(8))),
        Var::Version => {
            out.push_str("1.");
            push_num(out, u64::from(r & 0x1f));
            out.push('.');
            push_num(out, u64::from((r >> 8) & 0xf));
        }
    }
}
