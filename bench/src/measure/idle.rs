//! Waiting for the process to go quiet before the timed queries.

use std::time::{Duration, Instant};

/// Clock ticks a second in `/proc/<pid>/stat` (`USER_HZ`, 100 on every Linux build).
const TICKS_PER_SECOND: u64 = 100;

/// CPU time this process has used so far, all its threads, in clock ticks; `None` where
/// `/proc/self/stat` cannot be read.
fn cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_ticks(&stat)
}

/// utime + stime of a `/proc/<pid>/stat` line.
fn parse_ticks(stat: &str) -> Option<u64> {
    // The command name is in parentheses and may hold spaces and parentheses: the fields
    // after its last `)` start at field 3 (state), so utime (14) and stime (15) are the
    // 12th and 13th of them.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Waits, for at most `limit`, until this process uses under 5 % of a core over one
/// second while the caller waits: until background work the engines started after their
/// load is done (tsink compacts the segments it flushed for minutes after it reopens, on
/// the cores every engine's timed queries run on). Returns how long it waited; at once
/// where `/proc/self/stat` cannot be read.
pub fn wait_until_idle(limit: Duration) -> Duration {
    let start = Instant::now();
    let Some(mut before) = cpu_ticks() else {
        return Duration::ZERO;
    };
    while start.elapsed() < limit {
        std::thread::sleep(Duration::from_secs(1));
        let Some(now) = cpu_ticks() else { break };
        if now.saturating_sub(before) < TICKS_PER_SECOND / 20 {
            break;
        }
        before = now;
    }
    start.elapsed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_read_after_a_command_name_with_spaces_and_parentheses() {
        let stat = "4242 (a b) c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 37 5 0 0 20 0 3 0";
        assert_eq!(parse_ticks(stat), Some(42));
        assert_eq!(parse_ticks("4242 (short) S 1"), None);
        assert_eq!(parse_ticks("no parentheses"), None);
    }
}
