//! What a running database can tell about itself: [`Stats`] (see
//! `Db::stats`) and the latency [`Histogram`]s in it, recorded by
//! [`Recorder`]s: fixed log2 buckets of relaxed atomic counters, so
//! recording is two relaxed increments, no lock, no allocation.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The number of buckets of a [`Histogram`] (see [`Histogram::BUCKETS`]).
const BUCKETS: usize = 40;

/// The bucket of a duration of `ns` nanoseconds: its number of
/// significant bits, capped at the last bucket.
fn bucket(ns: u64) -> usize {
    ((u64::BITS - ns.leading_zeros()) as usize).min(BUCKETS - 1)
}

/// The largest duration bucket `b` holds, in nanoseconds (`u64::MAX` for
/// the last, open-ended one).
fn upper_ns(b: usize) -> u64 {
    if b + 1 >= BUCKETS {
        u64::MAX
    } else {
        (1u64 << b) - 1
    }
}

/// A latency histogram being recorded, shared by the threads that record
/// into it. [`Recorder::snapshot`] reads it into a [`Histogram`].
pub(crate) struct Recorder {
    buckets: [AtomicU64; BUCKETS],
    /// The sum of the recorded durations, in nanoseconds (wrapping).
    sum_ns: AtomicU64,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_ns: AtomicU64::new(0),
        }
    }
}

impl Recorder {
    /// Records one duration: two relaxed atomic increments.
    #[inline]
    pub(crate) fn record(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.buckets[bucket(ns)].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// The counts so far. Taken bucket by bucket without a lock: durations
    /// recorded meanwhile may be in some buckets and not yet in the sum
    /// (or the other way round), never counted twice.
    pub(crate) fn snapshot(&self) -> Histogram {
        Histogram {
            buckets: std::array::from_fn(|b| self.buckets[b].load(Ordering::Relaxed)),
            sum_ns: self.sum_ns.load(Ordering::Relaxed),
        }
    }
}

/// A latency histogram: how many durations fell into each of
/// [`BUCKETS`](Self::BUCKETS) fixed power-of-two buckets of nanoseconds,
/// and their sum. Cumulative
/// since the database was made (or opened).
///
/// Made for export to Prometheus-style metrics: [`buckets`](Self::buckets)
/// gives each bucket's upper bound (`le`) and count; add the counts up for
/// the cumulative series; [`count`](Self::count) and [`sum`](Self::sum) are
/// the `_count` and `_sum` series. [`quantile`](Self::quantile) estimates a
/// quantile to within a factor of two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Histogram {
    buckets: [u64; BUCKETS],
    sum_ns: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: [0; BUCKETS],
            sum_ns: 0,
        }
    }
}

impl Histogram {
    /// The number of buckets: bucket 0 holds 0 ns, bucket `b` (1 ≤ `b` < 39)
    /// the durations of `2^(b-1)` to `2^b - 1` ns, and the last bucket
    /// everything from `2^38` ns (about 275 s) on.
    pub const BUCKETS: usize = BUCKETS;

    /// The number of durations recorded.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// The sum of the durations recorded.
    pub fn sum(&self) -> Duration {
        Duration::from_nanos(self.sum_ns)
    }

    /// The mean duration (zero when none was recorded).
    pub fn mean(&self) -> Duration {
        match self.count() {
            0 => Duration::ZERO,
            n => Duration::from_nanos(self.sum_ns / n),
        }
    }

    /// Every bucket as (the largest duration it holds, its count), from the
    /// shortest durations on. The last bucket is open-ended: its bound is
    /// [`Duration::MAX`] (Prometheus' `+Inf`).
    pub fn buckets(&self) -> impl Iterator<Item = (Duration, u64)> + '_ {
        self.buckets.iter().enumerate().map(|(b, &n)| {
            let bound = match upper_ns(b) {
                u64::MAX => Duration::MAX,
                ns => Duration::from_nanos(ns),
            };
            (bound, n)
        })
    }

    /// An estimate of the `q` quantile (`q` in 0..=1, e.g. 0.5 or 0.99): the
    /// upper bound of the bucket holding it, so at most twice the true
    /// value, and never below it (the last, open-ended bucket gives its
    /// lower bound, 2^38 ns). `None` when nothing was recorded.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        // The rank of the quantile, 1-based: at least the first duration.
        let rank = ((q.clamp(0.0, 1.0) * count as f64).ceil() as u64).clamp(1, count);
        let mut seen = 0;
        for (b, &n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let ns = match upper_ns(b) {
                    u64::MAX => 1 << (BUCKETS - 2),
                    ns => ns,
                };
                return Some(Duration::from_nanos(ns));
            }
        }
        None
    }
}

/// A database's figures at one moment, from [`Db::stats`](crate::Db::stats).
/// Cheap to take: no figure walks the data (the row counts are kept by the
/// trees); it takes a few short locks (the feed's, each watch registry's)
/// and allocates the table names.
///
/// There is no memory figure: no cheap one exists (the trees share nodes
/// between versions, and counting nodes walks them all). The row counts,
/// the feed's and the watches' bytes are the sizes to watch.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Stats {
    /// The revision of the latest visible commit.
    pub revision: u64,
    /// The number of rows of each table at that revision, by table name.
    pub rows: BTreeMap<String, usize>,
    /// The number of registered (not yet fired) watches.
    pub watches: usize,
    /// An estimate of the heap bytes of the watch registries.
    pub watch_bytes: usize,
    /// The number of commits the change feed retains.
    pub feed_commits: usize,
    /// An estimate of the bytes of the commits the change feed retains
    /// (what [`Retention::bytes`](crate::Retention::bytes) limits).
    pub feed_bytes: usize,
    /// The latency of every successful commit that wrote something: from
    /// `WriteTxn::commit` being called to its return (in `Sync` mode
    /// including the wait for the log sync), after-commit hooks excluded.
    pub commit_latency: Histogram,
    /// The latency of every log sync of a database opened from a directory
    /// (`None` otherwise): writing a group of queued log records and the
    /// fdatasync after them. In `Sync` mode one per group commit; in
    /// `Batched` mode one per interval with something to write.
    pub sync_latency: Option<Histogram>,
}

/// The timing of commits: their latency histogram and the threshold of the
/// slow-commit warning.
pub(crate) struct CommitTiming {
    pub(crate) latency: Recorder,
    pub(crate) slow: Duration,
}

impl CommitTiming {
    pub(crate) fn new(slow: Duration) -> CommitTiming {
        CommitTiming {
            latency: Recorder::default(),
            slow,
        }
    }

    /// Records a commit of `revision` (writing `tables` tables) that took
    /// `elapsed`, and warns when that is the threshold or more.
    #[inline]
    pub(crate) fn done(&self, revision: u64, tables: usize, elapsed: Duration) {
        self.latency.record(elapsed);
        if elapsed >= self.slow {
            self.warn(revision, tables, elapsed);
        }
    }

    #[cold]
    #[inline(never)]
    fn warn(&self, revision: u64, tables: usize, elapsed: Duration) {
        tracing::warn!(
            revision,
            tables,
            elapsed_us = micros(elapsed),
            threshold_us = micros(self.slow),
            "pandodb: slow commit"
        );
    }
}

/// A duration in whole microseconds, for event fields.
pub(crate) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_powers_of_two() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(1), 1);
        assert_eq!(bucket(2), 2);
        assert_eq!(bucket(3), 2);
        assert_eq!(bucket(4), 3);
        assert_eq!(bucket(1023), 10);
        assert_eq!(bucket(1024), 11);
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
        for b in 0..BUCKETS - 1 {
            assert_eq!(bucket(upper_ns(b)), b);
            assert_eq!(bucket(upper_ns(b) + 1), b + 1);
        }
    }

    #[test]
    fn count_sum_and_quantiles() {
        let r = Recorder::default();
        assert_eq!(r.snapshot().quantile(0.5), None);
        assert_eq!(r.snapshot().mean(), Duration::ZERO);
        // 90 durations of 1 µs (bucket 10: 512..=1023 ns holds 1000 ns),
        // 10 of 1 ms.
        for _ in 0..90 {
            r.record(Duration::from_nanos(1000));
        }
        for _ in 0..10 {
            r.record(Duration::from_millis(1));
        }
        let h = r.snapshot();
        assert_eq!(h.count(), 100);
        assert_eq!(h.sum(), Duration::from_nanos(90 * 1000 + 10 * 1_000_000));
        assert_eq!(h.mean(), Duration::from_nanos(100_900));
        // The quantile is the upper bound of its bucket: within 2x above.
        assert_eq!(h.quantile(0.5), Some(Duration::from_nanos(1023)));
        assert_eq!(h.quantile(0.9), Some(Duration::from_nanos(1023)));
        assert_eq!(h.quantile(0.91), Some(Duration::from_nanos((1 << 20) - 1)));
        assert_eq!(h.quantile(0.99), Some(Duration::from_nanos((1 << 20) - 1)));
        assert_eq!(h.quantile(0.0), Some(Duration::from_nanos(1023)));
        assert_eq!(h.quantile(1.0), Some(Duration::from_nanos((1 << 20) - 1)));
        let nonzero: Vec<(Duration, u64)> = h.buckets().filter(|b| b.1 > 0).collect();
        assert_eq!(
            nonzero,
            [
                (Duration::from_nanos(1023), 90),
                (Duration::from_nanos((1 << 20) - 1), 10)
            ]
        );
        assert_eq!(h.buckets().count(), Histogram::BUCKETS);
        assert_eq!(h.buckets().last().unwrap().0, Duration::MAX);
    }

    #[test]
    fn the_last_bucket_is_open_ended() {
        let r = Recorder::default();
        r.record(Duration::from_secs(3600));
        r.record(Duration::MAX);
        let h = r.snapshot();
        assert_eq!(h.buckets().last().unwrap().1, 2);
        assert_eq!(h.quantile(0.5), Some(Duration::from_nanos(1 << 38)));
    }

    #[test]
    fn concurrent_records_are_all_counted() {
        let r = Recorder::default();
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let r = &r;
                s.spawn(move || {
                    for i in 0..10_000u64 {
                        r.record(Duration::from_nanos(t * 10_000 + i));
                    }
                });
            }
        });
        let h = r.snapshot();
        assert_eq!(h.count(), 40_000);
        assert_eq!(h.sum(), Duration::from_nanos((0..40_000u64).sum()));
        // Half the values are below 20 000 ns, in buckets up to 2^15 - 1.
        assert_eq!(h.quantile(0.5), Some(Duration::from_nanos((1 << 15) - 1)));
    }
}
