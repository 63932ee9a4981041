//! A doorbell: a datagram socket bound to a path in the queue's
//! directory (`.shmq-bell-<id>`), readable once rung, that any process
//! sharing that directory can ring with one `sendto(2)`: in any network
//! namespace (a pathname socket is found through the filesystem, not the
//! network namespace, unlike an abstract one), and in any mount namespace
//! that mounts the directory. Async waiters hand its fd to their event
//! loop; wakers ring it by id. When its owner's process dies the kernel
//! closes it, and a ring finds nobody there (`ECONNREFUSED`, or `ENOENT`
//! once the file is gone): that is how a dead waiter is noticed, in any
//! PID namespace; the ringer then removes the stale file.
//!
//! The path is reached through `/proc/self/fd/<dir fd>/...`, so a queue
//! directory of any length fits the 108 bytes of a socket address.
//!
//! A FIFO would turn a dead reader into SIGPIPE for the writer; an
//! eventfd cannot be named by another process. Anyone who may write the
//! queue's directory may ring a doorbell there: a stray ring is a spurious
//! wake-up, which waiters tolerate.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::{Arc, RwLock};

use rustix::io::Errno;
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketAddrUnix, SocketFlags, SocketType};

/// Where one queue's doorbells live: its directory, held open (`O_PATH`)
/// so that a socket path through `/proc/self/fd` stays short.
#[derive(Debug)]
pub(crate) struct Place {
    dir: OwnedFd,
}

impl Place {
    /// The doorbells' place of a queue whose file is in `dir`.
    pub(crate) fn open(dir: &Path) -> std::io::Result<Place> {
        use rustix::fs::{Mode, OFlags};
        let dir = rustix::fs::open(
            dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Place { dir })
    }

    fn file_name(id: u64) -> String {
        format!(".shmq-bell-{id:016x}")
    }

    fn addr(&self, id: u64) -> std::io::Result<SocketAddrUnix> {
        Ok(SocketAddrUnix::new(format!(
            "/proc/self/fd/{}/{}",
            self.dir.as_raw_fd(),
            Self::file_name(id)
        ))?)
    }

    /// Removes doorbell `id`'s socket file (its owner is gone, or done).
    fn remove(&self, id: u64) {
        let _ = rustix::fs::unlinkat(&self.dir, Self::file_name(id), rustix::fs::AtFlags::empty());
    }
}

fn datagram_socket() -> std::io::Result<OwnedFd> {
    Ok(rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::DGRAM,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    )?)
}

/// A doorbell this process owns: bound to its path until dropped (then
/// the file is removed).
#[derive(Debug)]
pub(crate) struct Doorbell {
    fd: OwnedFd,
    id: u64,
    place: Arc<Place>,
}

impl Doorbell {
    /// Binds a doorbell at `place`, named by `pid` and a fresh random nonce
    /// (retried with another nonce if the name is taken). Returns it and
    /// its id.
    pub(crate) fn bind(place: &Arc<Place>, pid: u32) -> std::io::Result<Doorbell> {
        for _ in 0..16 {
            let mut nonce = [0u8; 4];
            rustix::rand::getrandom(&mut nonce, rustix::rand::GetRandomFlags::empty())?;
            let nonce = u32::from_le_bytes(nonce);
            if nonce == 0 {
                continue;
            }
            let id = (u64::from(pid) << 32) | u64::from(nonce);
            let fd = datagram_socket()?;
            match rustix::net::bind(&fd, &place.addr(id)?) {
                Ok(()) => {
                    return Ok(Doorbell {
                        fd,
                        id,
                        place: place.clone(),
                    });
                }
                // Somebody holds that name (a stale owner's file, or a
                // squatter): another nonce.
                Err(Errno::ADDRINUSE) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            "no free doorbell name after 16 random tries",
        ))
    }

    /// Its id: the owner's pid (high half) and its nonce (low half).
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Reads every ring waiting, so the fd stops being readable. Returns
    /// how many there were.
    pub(crate) fn drain(&self) -> usize {
        let mut n = 0;
        let mut buf = [0u8; 8];
        loop {
            match rustix::net::recv(&self.fd, &mut buf, RecvFlags::DONTWAIT) {
                Ok(_) => n += 1,
                // EAGAIN: empty. Anything else (it cannot happen on a
                // bound datagram socket) would repeat: stop too.
                Err(_) => return n,
            }
        }
    }
}

impl Drop for Doorbell {
    fn drop(&mut self) {
        self.place.remove(self.id);
    }
}

impl AsFd for Doorbell {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The process's one unbound socket for ringing, made at the first ring.
static RINGER: std::sync::OnceLock<Option<OwnedFd>> = std::sync::OnceLock::new();

/// Rings doorbell `id` at `place`: one `sendto(2)` of one byte, never
/// blocking. `true`: rung, or already ringing (its queue of rings is
/// full); `false`: gone (no socket listens at that path: its owner closed
/// it or died; a stale file is removed).
pub(crate) fn ring(place: &Place, id: u64) -> bool {
    let Some(fd) = RINGER.get_or_init(|| datagram_socket().ok()) else {
        // No socket can be made (out of fds): the waiter cannot be told,
        // but it is not gone. Its event loop's next wake-up (or timeout)
        // finds the message.
        return true;
    };
    let Ok(addr) = place.addr(id) else {
        return true;
    };
    // Ok, or EAGAIN (its queue is full: it is readable already), or an
    // error that says nothing of the owner: rung as far as we can tell.
    match rustix::net::sendto(fd, &[1], SendFlags::DONTWAIT | SendFlags::NOSIGNAL, &addr) {
        Err(Errno::CONNREFUSED) => {
            place.remove(id);
            false
        }
        Err(Errno::NOENT) => false,
        _ => true,
    }
}

/// The doorbell places of the queues this process has mapped, by the
/// address range of their doorbell tables in the mapping: how a waker,
/// which knows only a table (`protocol/doorbell.rs`), finds the directory.
static PLACES: RwLock<Vec<(std::ops::Range<usize>, Arc<Place>)>> = RwLock::new(Vec::new());

/// Records that the doorbell tables at addresses `tables` are `place`'s
/// (a queue just mapped).
pub(crate) fn register(tables: std::ops::Range<usize>, place: Arc<Place>) {
    let mut p = PLACES.write().unwrap_or_else(|e| e.into_inner());
    p.retain(|(t, _)| *t != tables);
    p.push((tables, place));
}

/// Forgets the tables at `tables` (their mapping is going away).
pub(crate) fn unregister(tables: std::ops::Range<usize>) {
    PLACES
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|(t, _)| *t != tables);
}

/// Rings doorbell `id` of the table at address `table` ([`ring`] at its
/// place). A table this process does not know (cannot happen) counts as
/// rung.
pub(crate) fn ring_at(table: usize, id: u64) -> bool {
    let place = PLACES
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .find(|(t, _)| t.contains(&table))
        .map(|(_, p)| p.clone());
    match place {
        Some(p) => ring(&p, id),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readable(fd: BorrowedFd<'_>) -> bool {
        let mut fds = [rustix::event::PollFd::new(
            &fd,
            rustix::event::PollFlags::IN,
        )];
        rustix::event::poll(&mut fds, Some(&rustix::time::Timespec::default())).unwrap() == 1
    }

    fn place() -> (tempfile::TempDir, Arc<Place>) {
        let d = tempfile::tempdir().unwrap();
        let p = Arc::new(Place::open(d.path()).unwrap());
        (d, p)
    }

    #[test]
    fn rung_it_is_readable_until_drained() {
        let (_d, p) = place();
        let bell = Doorbell::bind(&p, std::process::id()).unwrap();
        assert!(!readable(bell.as_fd()));
        assert!(ring(&p, bell.id()));
        assert!(ring(&p, bell.id()));
        assert!(readable(bell.as_fd()));
        assert!(readable(bell.as_fd()), "still readable: nothing drained it");
        assert_eq!(bell.drain(), 2);
        assert!(!readable(bell.as_fd()));
        assert_eq!(bell.drain(), 0);
    }

    #[test]
    fn a_closed_doorbell_is_gone_and_its_file_too() {
        let (d, p) = place();
        let bell = Doorbell::bind(&p, std::process::id()).unwrap();
        let id = bell.id();
        let file = d.path().join(Place::file_name(id));
        assert!(file.exists());
        drop(bell);
        assert!(!file.exists(), "its owner removes it");
        assert!(!ring(&p, id), "gone");
        // A dead owner leaves its file: the ring that finds it gone
        // removes it.
        let fd = datagram_socket().unwrap();
        rustix::net::bind(&fd, &p.addr(id).unwrap()).unwrap();
        drop(fd);
        assert!(file.exists());
        assert!(!ring(&p, id));
        assert!(!file.exists());
    }

    #[test]
    fn a_long_directory_still_fits_a_socket_address() {
        let d = tempfile::tempdir().unwrap();
        let deep = d.path().join("d".repeat(200)).join("e".repeat(200));
        std::fs::create_dir_all(&deep).unwrap();
        let p = Arc::new(Place::open(&deep).unwrap());
        let bell = Doorbell::bind(&p, 1).unwrap();
        assert!(ring(&p, bell.id()));
        assert_eq!(bell.drain(), 1);
    }

    #[test]
    fn a_full_doorbell_still_rings() {
        let (_d, p) = place();
        let bell = Doorbell::bind(&p, std::process::id()).unwrap();
        for _ in 0..100_000 {
            assert!(ring(&p, bell.id()), "a full queue of rings is not gone");
        }
        assert!(bell.drain() > 0);
    }

    #[test]
    fn rings_find_their_place_by_table() {
        let (_d, p) = place();
        let bell = Doorbell::bind(&p, 3).unwrap();
        register(0x1000..0x1200, p.clone());
        assert!(ring_at(0x1100, bell.id()));
        assert_eq!(bell.drain(), 1);
        unregister(0x1000..0x1200);
        assert!(ring_at(0x1100, bell.id()), "unknown table: counted as rung");
        assert_eq!(bell.drain(), 0);
    }
}
