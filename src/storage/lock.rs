//! The database directory's lock on the real file system: an exclusive
//! `flock` on its LOCK file, taken by [`StdFs::lock_dir`](super::fs::StdFs).

use std::fs::File;
use std::io;

/// How long [`StdFs::lock_dir`](super::fs::StdFs) keeps trying a lock held elsewhere before
/// it reports the directory in use. A process forked by another thread of
/// this one holds a copy of every descriptor until it executes its
/// program (the LOCK file's too, although it closes on exec), so a
/// directory closed a moment ago can look locked for that moment.
pub(super) const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(1);

/// Takes the exclusive lock of `f`, trying again for up to `patience`
/// while someone else holds it.
pub(super) fn lock_within(
    f: File,
    patience: std::time::Duration,
) -> io::Result<Option<Box<dyn Send + Sync>>> {
    let start = std::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(1);
    loop {
        match f.try_lock() {
            Ok(()) => return Ok(Some(Box::new(f))),
            Err(std::fs::TryLockError::WouldBlock) if start.elapsed() < patience => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(10));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    "the database directory is in use by another process",
                ));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::fs::Vfs;
    use std::fs::OpenOptions;

    /// A lock held elsewhere for a moment (as by a child forked from
    /// another thread, until it executes its program) is taken once it is
    /// let go; one held throughout is `WouldBlock` once the patience is
    /// spent.
    #[test]
    fn lock_dir_waits_out_a_lock_held_for_a_moment() {
        let dir = std::env::temp_dir().join(format!("pandodb-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let open = || {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(dir.join("LOCK"))
                .unwrap()
        };
        // Another open file description holds the lock (flock locks of two
        // descriptions conflict, in one process too).
        let holder = open();
        holder.try_lock().unwrap();
        let err = lock_within(open(), std::time::Duration::ZERO)
            .err()
            .unwrap();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        let let_go = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            drop(holder);
        });
        // Generous patience: the test must not depend on the scheduler.
        let lock = lock_within(open(), std::time::Duration::from_secs(60)).unwrap();
        assert!(lock.is_some());
        let_go.join().unwrap();
        // Held by the new lock now: the default patience gives up.
        let err = crate::storage::fs::StdFs.lock_dir(&dir).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        drop(lock);
        assert!(crate::storage::fs::StdFs.lock_dir(&dir).unwrap().is_some());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
