//! Peak resident memory of this process (Linux `/proc`), per benchmark phase where the
//! kernel lets the peak be reset.

/// Where a peak figure comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PeakScope {
    /// The peak of this phase alone: the peak was reset at its start.
    Phase,
    /// The process's running peak since it started (the reset was refused).
    Process,
    /// No figure: there is no `/proc/self/status`.
    Unavailable,
}

/// Peak resident set size of this process (`VmHWM` of `/proc/self/status`), bytes.
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Resets the peak to the current resident size (writes `5` to `/proc/self/clear_refs`);
/// whether the kernel allowed it.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Measures the peak resident memory of a phase: [`PhaseMemory::start`] before it,
/// [`PhaseMemory::peak`] after.
#[derive(Debug, Clone, Copy)]
pub struct PhaseMemory {
    reset: bool,
}

impl PhaseMemory {
    /// Resets the peak, if the kernel allows.
    pub fn start() -> PhaseMemory {
        PhaseMemory {
            reset: reset_peak_rss(),
        }
    }

    /// The peak since [`PhaseMemory::start`] (or of the process), and which it is.
    pub fn peak(&self) -> (Option<u64>, PeakScope) {
        match peak_rss() {
            None => (None, PeakScope::Unavailable),
            Some(b) if self.reset => (Some(b), PeakScope::Phase),
            Some(b) => (Some(b), PeakScope::Process),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_peak_is_reported_with_its_scope() {
        let phase = PhaseMemory::start();
        let (bytes, scope) = phase.peak();
        if cfg!(target_os = "linux") {
            assert!(bytes.unwrap() > 0);
            assert_ne!(scope, PeakScope::Unavailable);
        } else {
            assert_eq!((bytes, scope), (None, PeakScope::Unavailable));
        }
    }
}
