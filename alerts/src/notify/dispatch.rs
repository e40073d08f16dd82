//! A notifier's queue and worker thread: retries with backoff, a bound, statistics.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::{Notification, Notifier};
use crate::state::nanos;

/// How notifications are queued and retried.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Delivery {
    /// Notifications each notifier may hold waiting; one offered past it is dropped and
    /// counted. Default: 1,000.
    pub queue: usize,
    /// The wait before the first retry of a failed send; it doubles at each retry.
    /// Default: 500 ms.
    pub first_backoff: Duration,
    /// The longest wait between retries. Default: 30 s.
    pub max_backoff: Duration,
    /// How long a notification is retried before it is given up (counted as failed).
    /// Default: 10 minutes.
    pub give_up_after: Duration,
    /// On shutdown, how long the worker goes on sending what is queued. Default: 5 s.
    pub shutdown_grace: Duration,
}

impl Default for Delivery {
    fn default() -> Self {
        Delivery {
            queue: 1000,
            first_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            give_up_after: Duration::from_secs(600),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

impl Delivery {
    /// Short waits, for tests: backoff from 10 ms to 100 ms, given up after 5 s.
    pub fn for_tests() -> Delivery {
        Delivery {
            queue: 100,
            first_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(100),
            give_up_after: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(2),
        }
    }
}

/// What a notifier has done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotifierStats {
    /// The notifier's name.
    pub name: String,
    /// Notifications delivered.
    pub sent: u64,
    /// Sends that failed and were retried.
    pub retries: u64,
    /// Notifications given up after [`Delivery::give_up_after`], or still queued when
    /// the shutdown grace ran out.
    pub failed: u64,
    /// Notifications dropped because the queue was full.
    pub dropped: u64,
    /// Notifications waiting now.
    pub queued: u64,
    /// The last send error, if any.
    pub last_error: Option<String>,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    sent: AtomicU64,
    retries: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    last_error: Mutex<Option<String>>,
}

struct Queue {
    items: VecDeque<Notification>,
    stopping: bool,
}

/// One notifier with its queue and worker.
pub(crate) struct Dispatcher {
    notifier: Arc<dyn Notifier>,
    delivery: Delivery,
    shared: Arc<Shared>,
    /// Per rule, the evaluation time its alerts were last queued.
    last_queued: Mutex<HashMap<String, i64>>,
    worker: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("notifier", &self.notifier.name())
            .finish_non_exhaustive()
    }
}

impl Dispatcher {
    pub fn start(notifier: Arc<dyn Notifier>, delivery: Delivery) -> Dispatcher {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                items: VecDeque::new(),
                stopping: false,
            }),
            wake: Condvar::new(),
            sent: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            last_error: Mutex::new(None),
        });
        let worker = {
            let notifier = Arc::clone(&notifier);
            let shared = Arc::clone(&shared);
            let delivery = delivery.clone();
            std::thread::Builder::new()
                .name("sextant-notify".into())
                .spawn(move || work(&*notifier, &shared, &delivery))
                .expect("spawning a notifier thread")
        };
        Dispatcher {
            notifier,
            delivery,
            shared,
            last_queued: Mutex::new(HashMap::new()),
            worker: Some(worker),
        }
    }

    /// Whether the notifier is due to hear of `rule`'s alerts at evaluation time `time`
    /// (see the module's documentation): so that a notification is built only when some
    /// notifier will be offered it.
    pub fn due(&self, rule: &str, time: i64, changed: bool) -> bool {
        is_due(
            &self.last_queued.lock(),
            self.notifier.repeat_interval(),
            rule,
            time,
            changed,
        )
    }

    /// Queues `n` if the notifier is due to hear of it.
    pub fn offer(&self, n: &Notification) {
        if n.alerts.is_empty() {
            return;
        }
        let mut last = self.last_queued.lock();
        if !is_due(
            &last,
            self.notifier.repeat_interval(),
            &n.rule,
            n.time,
            n.changed,
        ) {
            return;
        }
        let mut q = self.shared.queue.lock();
        if q.items.len() >= self.delivery.queue {
            drop(q);
            drop(last);
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                notifier = %self.notifier.name(),
                rule = %n.rule,
                "a notification was dropped: the notifier's queue of {} is full",
                self.delivery.queue
            );
            return;
        }
        // Only what was queued counts as sent: a dropped one is offered again at the next
        // evaluation that is due.
        last.insert(n.rule.clone(), n.time);
        q.items.push_back(n.clone());
        self.shared.wake.notify_one();
    }

    /// Records that the alerts of `rule` were sent at `t` (by the process before a
    /// restart), so they are not sent again before they are due.
    pub fn seed(&self, rule: &str, t: i64) {
        let mut last = self.last_queued.lock();
        let at = last.entry(rule.to_string()).or_insert(t);
        *at = (*at).max(t);
    }

    pub fn stats(&self) -> NotifierStats {
        NotifierStats {
            name: self.notifier.name(),
            sent: self.shared.sent.load(Ordering::Relaxed),
            retries: self.shared.retries.load(Ordering::Relaxed),
            failed: self.shared.failed.load(Ordering::Relaxed),
            dropped: self.shared.dropped.load(Ordering::Relaxed),
            queued: self.shared.queue.lock().items.len() as u64,
            last_error: self.shared.last_error.lock().clone(),
        }
    }
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        self.shared.queue.lock().stopping = true;
        self.shared.wake.notify_all();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

fn is_due(
    last_queued: &HashMap<String, i64>,
    repeat: Option<std::time::Duration>,
    rule: &str,
    time: i64,
    changed: bool,
) -> bool {
    changed
        || match (repeat, last_queued.get(rule)) {
            (_, None) => true,
            (None, Some(_)) => false,
            (Some(every), Some(&at)) => time.saturating_sub(at) >= nanos(every),
        }
}

fn work(notifier: &dyn Notifier, shared: &Shared, delivery: &Delivery) {
    let mut deadline: Option<Instant> = None;
    loop {
        let n = {
            let mut q = shared.queue.lock();
            loop {
                if q.stopping && deadline.is_none() {
                    deadline = Instant::now()
                        .checked_add(delivery.shutdown_grace)
                        .or(Some(Instant::now()));
                }
                if let Some(n) = q.items.front() {
                    break n.clone();
                }
                if q.stopping {
                    return;
                }
                shared.wake.wait(&mut q);
            }
        };
        let first = Instant::now();
        let mut backoff = delivery.first_backoff;
        let delivered = loop {
            match notifier.send(&n) {
                Ok(()) => break true,
                Err(e) => {
                    let past_shutdown = deadline.is_some_and(|d| Instant::now() >= d);
                    if first.elapsed() >= delivery.give_up_after || past_shutdown {
                        tracing::error!(
                            notifier = %notifier.name(),
                            rule = %n.rule,
                            error = %e,
                            "a notification was given up after {:.1} s of retries",
                            first.elapsed().as_secs_f64()
                        );
                        *shared.last_error.lock() = Some(e);
                        break false;
                    }
                    shared.retries.fetch_add(1, Ordering::Relaxed);
                    *shared.last_error.lock() = Some(e);
                    // Sleeps the backoff, woken early by a shutdown.
                    let mut q = shared.queue.lock();
                    let wait = match deadline {
                        Some(d) => backoff.min(d.saturating_duration_since(Instant::now())),
                        None => backoff,
                    };
                    shared.wake.wait_for(&mut q, wait);
                    if q.stopping && deadline.is_none() {
                        deadline = Instant::now()
                            .checked_add(delivery.shutdown_grace)
                            .or(Some(Instant::now()));
                    }
                    backoff = backoff.saturating_mul(2).min(delivery.max_backoff);
                }
            }
        };
        let counter = if delivered {
            &shared.sent
        } else {
            &shared.failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let mut q = shared.queue.lock();
        q.items.pop_front();
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let left = q.items.len() as u64;
            q.items.clear();
            shared.failed.fetch_add(left, Ordering::Relaxed);
            return;
        }
    }
}
