//! The file-system seam of durable mode: the [`Vfs`] / [`VfsFile`] traits
//! with exactly the operations the log and the snapshots need, [`StdFs`] on
//! `std::fs`, and `SimFs`, an in-memory test double that models power loss
//! (unsynced data and unsynced directory entries) and injects I/O faults
//! (compiled only for tests and with the `testing` feature).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

// The simulated file system is a test double: compiled for this crate's
// tests and with the `testing` feature only.
#[cfg(any(test, feature = "testing"))]
use std::collections::{BTreeMap, BTreeSet, HashMap};
#[cfg(any(test, feature = "testing"))]
use std::path::PathBuf;
#[cfg(any(test, feature = "testing"))]
use std::sync::{Arc, Mutex, MutexGuard};

/// An open file. Writes always go to the end of the file.
pub trait VfsFile: Send {
    /// Appends all of `data` at the end of the file (not durable until
    /// [`VfsFile::sync_data`]).
    fn write_all(&mut self, data: &[u8]) -> io::Result<()>;
    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read
    /// (0 at or past the end).
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;
    /// The file's current length.
    fn size(&mut self) -> io::Result<u64>;
    /// Truncates (or extends with zeros) the file to `len` bytes.
    fn set_len(&mut self, len: u64) -> io::Result<()>;
    /// Makes the file's data durable (`fdatasync`). Does not make a new
    /// directory entry durable: that takes [`Vfs::sync_dir`].
    fn sync_data(&mut self) -> io::Result<()>;
}

/// The file-system operations of durable mode.
///
/// Creating, renaming and removing a file change a directory entry, which
/// is durable only after [`Vfs::sync_dir`] on the containing directory.
pub trait Vfs: Send + Sync {
    /// Creates `path` empty (truncating an existing file) and opens it for
    /// appending and reading.
    fn create(&self, path: &Path) -> io::Result<Box<dyn VfsFile>>;
    /// Opens the existing file `path` for appending and reading.
    fn open(&self, path: &Path) -> io::Result<Box<dyn VfsFile>>;
    /// Reads the whole file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Renames `from` to `to`, replacing `to` if it exists. Both must be in
    /// the same directory.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes the file `path`.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// The names of the files in `dir` (not full paths), in no set order.
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Makes the directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Creates `dir` and its missing parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Whether `path` exists.
    fn exists(&self, path: &Path) -> io::Result<bool>;
    /// Takes an exclusive lock on the directory `dir` for as long as the
    /// returned guard lives, so that two processes never open one database
    /// at once. Fails with [`io::ErrorKind::WouldBlock`] if another holds
    /// it. The default takes no lock (a simulated disk has one user).
    fn lock_dir(&self, dir: &Path) -> io::Result<Option<Box<dyn Send + Sync>>> {
        let _ = dir;
        Ok(None)
    }
    /// Opens the existing file `path` for reading only, for tools that
    /// inspect files they must not change (and may lack write permission
    /// on); writes through the handle fail. The default opens it as
    /// [`Vfs::open`] does.
    #[cfg_attr(not(feature = "cli"), allow(dead_code))] // for the `pandodb` command
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn VfsFile>> {
        self.open(path)
    }
    /// Whether `path` is a directory (false, or an error, when nothing is
    /// there). The default: whether it exists and [`Vfs::list_dir`] lists
    /// it.
    #[cfg_attr(not(feature = "cli"), allow(dead_code))] // for the `pandodb` command
    fn is_dir(&self, path: &Path) -> io::Result<bool> {
        Ok(self.exists(path)? && self.list_dir(path).is_ok())
    }
}

// ---------------------------------------------------------------------------
// StdFs

/// [`Vfs`] on the real file system (`std::fs`).
#[derive(Debug, Clone, Copy, Default)]
pub struct StdFs;

struct StdFile(File);

impl VfsFile for StdFile {
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.0.seek(SeekFrom::End(0))?;
        Write::write_all(&mut self.0, data)
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.0.seek(SeekFrom::Start(offset))?;
        let mut n = 0;
        while n < buf.len() {
            match self.0.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }
    fn size(&mut self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }
}

impl Vfs for StdFs {
    fn lock_dir(&self, dir: &Path) -> io::Result<Option<Box<dyn Send + Sync>>> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join("LOCK"))?;
        super::lock::lock_within(f, super::lock::LOCK_PATIENCE)
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn VfsFile>> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(Box::new(StdFile(f)))
    }
    fn open(&self, path: &Path) -> io::Result<Box<dyn VfsFile>> {
        let f = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Box::new(StdFile(f)))
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if let Ok(name) = entry.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        #[cfg(unix)]
        {
            File::open(dir)?.sync_all()
        }
        #[cfg(not(unix))]
        {
            // Directory handles cannot be synced this way elsewhere; the
            // file system orders metadata itself.
            let _ = dir;
            Ok(())
        }
    }
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn VfsFile>> {
        Ok(Box::new(StdFile(File::open(path)?)))
    }
    fn is_dir(&self, path: &Path) -> io::Result<bool> {
        Ok(std::fs::metadata(path)?.is_dir())
    }
}

// ---------------------------------------------------------------------------
// SimFs: a test double, compiled only for this crate's tests and with the
// `testing` feature (every item below carries that cfg).

/// What a simulated power loss ([`SimFs::crash`]) does to unsynced state.
#[cfg(any(test, feature = "testing"))]
#[cfg_attr(not(test), allow(dead_code))] // the power-loss simulation is for tests
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// Every unsynced write and directory change survives.
    KeepAll,
    /// Every unsynced write and directory change is lost.
    DropAll,
    /// Per file, a random prefix of the unsynced writes survives (the last
    /// one possibly in part); a random prefix of the unsynced directory
    /// changes survives.
    KeepPrefix(u64),
    /// Every unsynced write lands, then each file's unsynced tail is
    /// overwritten with random bytes from a random offset on, and possibly
    /// cut short; a random prefix of the unsynced directory changes survives.
    Garble(u64),
}

#[cfg(any(test, feature = "testing"))]
#[derive(Clone)]
#[cfg_attr(not(test), allow(dead_code))] // the power-loss simulation is for tests
enum DataOp {
    Append(Vec<u8>),
    SetLen(u64),
}

#[cfg(any(test, feature = "testing"))]
#[derive(Default, Clone)]
struct Inode {
    durable: Vec<u8>,
    current: Vec<u8>,
    pending: Vec<DataOp>,
}

#[cfg(any(test, feature = "testing"))]
#[derive(Clone)]
enum DirOp {
    Link {
        path: PathBuf,
        ino: u64,
    },
    Unlink {
        path: PathBuf,
    },
    Rename {
        from: PathBuf,
        to: PathBuf,
        ino: u64,
    },
}

#[cfg(any(test, feature = "testing"))]
#[derive(Default, Clone)]
struct SimState {
    inodes: HashMap<u64, Inode>,
    next_ino: u64,
    names: BTreeMap<PathBuf, u64>,
    durable_names: BTreeMap<PathBuf, u64>,
    /// Unsynced directory changes, each with its directory.
    pending_dir: Vec<(PathBuf, DirOp)>,
    dirs: BTreeSet<PathBuf>,
    generation: u64,
    ops: u64,
    fail_at: Option<(u64, bool)>,
    space_limit: Option<u64>,
}

/// A tiny xorshift generator for the simulator (and tests).
#[cfg(any(test, feature = "testing"))]
#[cfg_attr(not(test), allow(dead_code))] // the power-loss simulation is for tests
#[derive(Debug, Clone)]
pub struct XorShift(u64);

#[cfg(any(test, feature = "testing"))]
#[cfg_attr(not(test), allow(dead_code))] // the power-loss simulation is for tests
impl XorShift {
    /// A generator from `seed` (any value, 0 included).
    pub fn new(seed: u64) -> XorShift {
        XorShift(seed ^ 0x9E37_79B9_7F4A_7C15 | 1)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// A number in `0..n` (`0` when `n == 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
}

#[cfg(any(test, feature = "testing"))]
fn parent(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

#[cfg(any(test, feature = "testing"))]
fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file", path.display()),
    )
}

#[cfg(any(test, feature = "testing"))]
impl SimState {
    fn tick(&mut self, what: &str) -> io::Result<()> {
        let idx = self.ops;
        self.ops += 1;
        match self.fail_at {
            Some((n, forever)) if idx == n || (forever && idx > n) => Err(io::Error::other(
                format!("injected fault at operation {idx} ({what})"),
            )),
            _ => Ok(()),
        }
    }

    fn used(&self) -> u64 {
        self.inodes.values().map(|i| i.current.len() as u64).sum()
    }

    fn check_dir(&self, path: &Path) -> io::Result<()> {
        if self.dirs.contains(&parent(path)) {
            Ok(())
        } else {
            Err(not_found(&parent(path)))
        }
    }

    fn inode(&mut self, ino: u64, generation: u64) -> io::Result<&mut Inode> {
        if generation != self.generation {
            return Err(io::Error::other("stale file handle from before a crash"));
        }
        self.inodes
            .get_mut(&ino)
            .ok_or_else(|| io::Error::other("stale file handle"))
    }

    fn apply_dir_op(names: &mut BTreeMap<PathBuf, u64>, op: &DirOp) {
        match op {
            DirOp::Link { path, ino } => {
                names.insert(path.clone(), *ino);
            }
            DirOp::Unlink { path } => {
                names.remove(path);
            }
            DirOp::Rename { from, to, ino } => {
                names.remove(from);
                names.insert(to.clone(), *ino);
            }
        }
    }
}

#[cfg(any(test, feature = "testing"))]
#[cfg_attr(not(test), allow(dead_code))] // the power-loss simulation is for tests
fn apply_data_op(data: &mut Vec<u8>, op: &DataOp) {
    match op {
        DataOp::Append(d) => data.extend_from_slice(d),
        DataOp::SetLen(n) => data.resize(*n as usize, 0),
    }
}

/// An in-memory [`Vfs`] for tests: a cloneable handle to one simulated disk
/// that models power loss and injects faults.
///
/// Every file has durable content plus pending (unsynced) writes and
/// truncations; creations, renames and removals are pending until the
/// directory is synced. Directories themselves are durable at once.
/// Every trait call (on the [`Vfs`] or on an open file) counts as one
/// operation, numbered from 0.
#[cfg(any(test, feature = "testing"))]
#[derive(Clone, Default)]
pub struct SimFs {
    state: Arc<Mutex<SimState>>,
}

#[cfg(any(test, feature = "testing"))]
#[cfg_attr(not(test), allow(dead_code))] // the power-loss simulation is for tests
impl SimFs {
    /// An empty simulated disk (only the root directory `/` exists).
    pub fn new() -> SimFs {
        let fs = SimFs::default();
        fs.lock().dirs.insert(PathBuf::from("/"));
        fs
    }

    fn lock(&self) -> MutexGuard<'_, SimState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A deep copy of the simulated disk, sharing nothing with `self`
    /// (open handles of `self` do not work on it).
    pub fn fork(&self) -> SimFs {
        let mut st = self.lock().clone();
        st.generation += 1;
        SimFs {
            state: Arc::new(Mutex::new(st)),
        }
    }

    /// Operation `n` (0-based, counting every trait call) fails; with
    /// `forever`, every later one fails too.
    pub fn fail_at(&self, n: u64, forever: bool) {
        self.lock().fail_at = Some((n, forever));
    }

    /// Stops injecting operation faults.
    pub fn clear_faults(&self) {
        self.lock().fail_at = None;
    }

    /// Writes that would make the total file size exceed `bytes` write what
    /// fits and fail with [`io::ErrorKind::StorageFull`]. `None`: no limit.
    pub fn set_space_limit(&self, bytes: Option<u64>) {
        self.lock().space_limit = bytes;
    }

    /// How many operations have been made so far.
    pub fn op_count(&self) -> u64 {
        self.lock().ops
    }

    /// Simulates a power loss: unsynced state is kept, lost or damaged as
    /// `mode` says; open file handles become stale; operation faults are
    /// cleared (the space limit stays).
    pub fn crash(&self, mode: CrashMode) {
        let mut st = self.lock();
        let st = &mut *st;
        st.generation += 1;
        st.fail_at = None;
        let mut rng = XorShift::new(match mode {
            CrashMode::KeepPrefix(s) | CrashMode::Garble(s) => s,
            _ => 0,
        });
        let keep_dir = match mode {
            CrashMode::KeepAll => st.pending_dir.len(),
            CrashMode::DropAll => 0,
            _ => rng.below(st.pending_dir.len() as u64 + 1) as usize,
        };
        for (_, op) in &st.pending_dir[..keep_dir] {
            SimState::apply_dir_op(&mut st.durable_names, op);
        }
        st.pending_dir.clear();
        st.names = st.durable_names.clone();
        let live: BTreeSet<u64> = st.names.values().copied().collect();
        st.inodes.retain(|ino, _| live.contains(ino));
        let mut inos: Vec<u64> = st.inodes.keys().copied().collect();
        inos.sort_unstable();
        for ino in inos {
            let inode = st.inodes.get_mut(&ino).expect("listed");
            match mode {
                CrashMode::KeepAll => inode.durable = inode.current.clone(),
                CrashMode::DropAll => {}
                CrashMode::KeepPrefix(_) => {
                    let n = inode.pending.len();
                    let k = rng.below(n as u64 + 1) as usize;
                    for op in &inode.pending[..k] {
                        apply_data_op(&mut inode.durable, op);
                    }
                    if let Some(DataOp::Append(d)) = inode.pending.get(k) {
                        let cut = rng.below(d.len() as u64) as usize;
                        inode.durable.extend_from_slice(&d[..cut]);
                    }
                }
                CrashMode::Garble(_) => {
                    if !inode.pending.is_empty() {
                        let mut stable = inode.durable.len();
                        for op in &inode.pending {
                            if let DataOp::SetLen(n) = op {
                                stable = stable.min(*n as usize);
                            }
                        }
                        let mut data = inode.current.clone();
                        if data.len() > stable {
                            let start = stable + rng.below((data.len() - stable) as u64) as usize;
                            for b in &mut data[start..] {
                                *b = rng.next_u64() as u8;
                            }
                            if rng.below(2) == 0 {
                                let end =
                                    start + rng.below((data.len() - start) as u64 + 1) as usize;
                                data.truncate(end);
                            }
                        }
                        inode.durable = data;
                    }
                }
            }
            inode.pending.clear();
            inode.current = inode.durable.clone();
        }
    }

    /// The current content of `path` (for tests), without counting an
    /// operation.
    pub fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        let st = self.lock();
        let ino = st.names.get(path)?;
        st.inodes.get(ino).map(|i| i.current.clone())
    }

    /// Replaces the content of `path` durably (for corruption tests),
    /// without counting an operation.
    pub fn overwrite(&self, path: &Path, data: Vec<u8>) {
        let mut st = self.lock();
        let st = &mut *st;
        let ino = match st.names.get(path) {
            Some(&ino) => ino,
            None => {
                let ino = st.next_ino;
                st.next_ino += 1;
                st.names.insert(path.to_path_buf(), ino);
                st.durable_names.insert(path.to_path_buf(), ino);
                ino
            }
        };
        let inode = st.inodes.entry(ino).or_default();
        inode.durable = data.clone();
        inode.current = data;
        inode.pending.clear();
    }
}

#[cfg(any(test, feature = "testing"))]
struct SimFile {
    fs: SimFs,
    ino: u64,
    generation: u64,
}

#[cfg(any(test, feature = "testing"))]
impl VfsFile for SimFile {
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        let mut st = self.fs.lock();
        let ticked = st.tick("write_all");
        let room = match st.space_limit {
            Some(limit) => limit.saturating_sub(st.used()),
            None => u64::MAX,
        };
        let inode = st.inode(self.ino, self.generation)?;
        if let Err(e) = ticked {
            // A failed write may still have written part of its data.
            let part = data[..data.len() / 2].to_vec();
            inode.current.extend_from_slice(&part);
            inode.pending.push(DataOp::Append(part));
            return Err(e);
        }
        let fits = (data.len() as u64).min(room) as usize;
        if fits > 0 {
            inode.current.extend_from_slice(&data[..fits]);
            inode.pending.push(DataOp::Append(data[..fits].to_vec()));
        }
        if fits < data.len() {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "simulated disk full",
            ));
        }
        Ok(())
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let mut st = self.fs.lock();
        st.tick("read_at")?;
        let inode = st.inode(self.ino, self.generation)?;
        let data = &inode.current;
        let start = (offset.min(data.len() as u64)) as usize;
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }
    fn size(&mut self) -> io::Result<u64> {
        let mut st = self.fs.lock();
        st.tick("size")?;
        Ok(st.inode(self.ino, self.generation)?.current.len() as u64)
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let mut st = self.fs.lock();
        st.tick("set_len")?;
        let inode = st.inode(self.ino, self.generation)?;
        inode.current.resize(len as usize, 0);
        inode.pending.push(DataOp::SetLen(len));
        Ok(())
    }
    fn sync_data(&mut self) -> io::Result<()> {
        let mut st = self.fs.lock();
        st.tick("sync_data")?;
        let inode = st.inode(self.ino, self.generation)?;
        inode.durable = inode.current.clone();
        inode.pending.clear();
        Ok(())
    }
}

#[cfg(any(test, feature = "testing"))]
impl Vfs for SimFs {
    fn create(&self, path: &Path) -> io::Result<Box<dyn VfsFile>> {
        let mut st = self.lock();
        st.tick("create")?;
        st.check_dir(path)?;
        let ino = st.next_ino;
        st.next_ino += 1;
        st.inodes.insert(ino, Inode::default());
        st.names.insert(path.to_path_buf(), ino);
        st.pending_dir.push((
            parent(path),
            DirOp::Link {
                path: path.to_path_buf(),
                ino,
            },
        ));
        let generation = st.generation;
        Ok(Box::new(SimFile {
            fs: self.clone(),
            ino,
            generation,
        }))
    }
    fn open(&self, path: &Path) -> io::Result<Box<dyn VfsFile>> {
        let mut st = self.lock();
        st.tick("open")?;
        let ino = *st.names.get(path).ok_or_else(|| not_found(path))?;
        let generation = st.generation;
        Ok(Box::new(SimFile {
            fs: self.clone(),
            ino,
            generation,
        }))
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let mut st = self.lock();
        st.tick("read")?;
        let ino = *st.names.get(path).ok_or_else(|| not_found(path))?;
        Ok(st.inodes[&ino].current.clone())
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.lock();
        st.tick("rename")?;
        if parent(from) != parent(to) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "SimFs renames only within a directory",
            ));
        }
        let ino = st.names.remove(from).ok_or_else(|| not_found(from))?;
        st.names.insert(to.to_path_buf(), ino);
        st.pending_dir.push((
            parent(to),
            DirOp::Rename {
                from: from.to_path_buf(),
                to: to.to_path_buf(),
                ino,
            },
        ));
        Ok(())
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut st = self.lock();
        st.tick("remove")?;
        st.names.remove(path).ok_or_else(|| not_found(path))?;
        st.pending_dir.push((
            parent(path),
            DirOp::Unlink {
                path: path.to_path_buf(),
            },
        ));
        Ok(())
    }
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut st = self.lock();
        st.tick("list_dir")?;
        if !st.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        Ok(st
            .names
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
            .collect())
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.lock();
        let st = &mut *st;
        st.tick("sync_dir")?;
        if !st.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        let pending = std::mem::take(&mut st.pending_dir);
        for (d, op) in pending {
            if d == dir {
                SimState::apply_dir_op(&mut st.durable_names, &op);
            } else {
                st.pending_dir.push((d, op));
            }
        }
        Ok(())
    }
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.lock();
        st.tick("create_dir_all")?;
        for a in dir.ancestors() {
            st.dirs.insert(a.to_path_buf());
        }
        Ok(())
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        let mut st = self.lock();
        st.tick("exists")?;
        Ok(st.names.contains_key(path) || st.dirs.contains(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sim_unsynced_entries_and_data_are_lost() {
        let fs = SimFs::new();
        let dir = Path::new("/d");
        fs.create_dir_all(dir).unwrap();
        let mut f = fs.create(&dir.join("a")).unwrap();
        f.write_all(b"hello").unwrap();
        f.sync_data().unwrap();
        fs.crash(CrashMode::KeepAll);
        assert_eq!(fs.read(&dir.join("a")).unwrap(), b"hello");
        fs.crash(CrashMode::DropAll);
        let mut f = fs.create(&dir.join("b")).unwrap();
        f.write_all(b"x").unwrap();
        f.sync_data().unwrap();
        fs.crash(CrashMode::DropAll);
        assert!(!fs.exists(&dir.join("b")).unwrap(), "entry not synced");
        let mut f = fs.create(&dir.join("b")).unwrap();
        fs.sync_dir(dir).unwrap();
        f.write_all(b"x").unwrap();
        fs.crash(CrashMode::DropAll);
        assert_eq!(fs.read(&dir.join("b")).unwrap(), b"", "data not synced");
        fs.rename(&dir.join("b"), &dir.join("c")).unwrap();
        fs.remove(&dir.join("a")).unwrap();
        fs.crash(CrashMode::DropAll);
        assert!(fs.exists(&dir.join("a")).unwrap());
        assert!(fs.exists(&dir.join("b")).unwrap());
        assert!(!fs.exists(&dir.join("c")).unwrap());
    }

    #[test]
    fn sim_faults_and_disk_full() {
        let fs = SimFs::new();
        fs.create_dir_all(Path::new("/d")).unwrap();
        let n = fs.op_count();
        fs.fail_at(n + 1, false);
        let mut f = fs.create(Path::new("/d/a")).unwrap();
        assert!(f.write_all(b"abcd").is_err());
        f.write_all(b"ef").unwrap();
        assert_eq!(fs.contents(Path::new("/d/a")).unwrap(), b"abef");
        fs.set_space_limit(Some(5));
        let e = f.write_all(b"xyz").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::StorageFull);
        assert_eq!(fs.contents(Path::new("/d/a")).unwrap(), b"abefx");
        fs.fail_at(fs.op_count(), true);
        assert!(f.sync_data().is_err());
        assert!(fs.list_dir(Path::new("/d")).is_err());
        fs.crash(CrashMode::DropAll);
        assert!(fs.list_dir(Path::new("/d")).unwrap().is_empty());
    }

    #[test]
    fn std_fs_round_trip() {
        let dir = std::env::temp_dir().join(format!("pandodb-stdfs-{}", std::process::id()));
        let fs = StdFs;
        fs.create_dir_all(&dir).unwrap();
        let a = dir.join("a");
        let mut f = fs.create(&a).unwrap();
        f.write_all(b"hello world").unwrap();
        f.set_len(5).unwrap();
        f.write_all(b"!").unwrap();
        f.sync_data().unwrap();
        assert_eq!(f.size().unwrap(), 6);
        let mut buf = [0u8; 4];
        assert_eq!(f.read_at(2, &mut buf).unwrap(), 4);
        assert_eq!(&buf, b"llo!");
        drop(f);
        let mut f = fs.open(&a).unwrap();
        f.write_all(b"?").unwrap();
        assert_eq!(fs.read(&a).unwrap(), b"hello!?");
        fs.rename(&a, &dir.join("b")).unwrap();
        fs.sync_dir(&dir).unwrap();
        assert_eq!(fs.list_dir(&dir).unwrap(), vec!["b".to_string()]);
        assert!(!fs.exists(&a).unwrap());
        fs.remove(&dir.join("b")).unwrap();
        std::fs::remove_dir(&dir).unwrap();
    }
}
