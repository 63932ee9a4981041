//! A doorbell: a datagram socket with an abstract name (Linux), readable
//! once rung, that any process on the host (in the same network
//! namespace) can ring with one `sendto(2)`. Async waiters hand its fd to
//! their event loop; wakers ring it by name. When its owner's process
//! dies the kernel closes it, and a ring finds nobody there
//! (`ECONNREFUSED`): that is how a dead waiter is noticed.
//!
//! A FIFO would turn a dead reader into SIGPIPE for the writer; an
//! eventfd cannot be named by another process. Anyone may ring a doorbell
//! whose name they know (names hold a random nonce kept in the queue
//! file): a stray ring is a spurious wake-up, which waiters tolerate.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::OnceLock;

use rustix::io::Errno;
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketAddrUnix, SocketFlags, SocketType};

/// The abstract name of doorbell `id` (an owner's pid and nonce).
fn name(id: u64) -> std::io::Result<SocketAddrUnix> {
    Ok(SocketAddrUnix::new_abstract_name(
        format!("shmq-doorbell-{id:016x}").as_bytes(),
    )?)
}

fn datagram_socket() -> std::io::Result<OwnedFd> {
    Ok(rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::DGRAM,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    )?)
}

/// A doorbell this process owns: bound to its name until dropped.
#[derive(Debug)]
pub(crate) struct Doorbell {
    fd: OwnedFd,
    id: u64,
}

impl Doorbell {
    /// Binds a doorbell named by `pid` and a fresh random nonce (retried
    /// with another nonce if the name is taken). Returns it and its id.
    pub(crate) fn bind(pid: u32) -> std::io::Result<Doorbell> {
        for _ in 0..16 {
            let mut nonce = [0u8; 4];
            rustix::rand::getrandom(&mut nonce, rustix::rand::GetRandomFlags::empty())?;
            let nonce = u32::from_le_bytes(nonce);
            if nonce == 0 {
                continue;
            }
            let id = (u64::from(pid) << 32) | u64::from(nonce);
            let fd = datagram_socket()?;
            match rustix::net::bind(&fd, &name(id)?) {
                Ok(()) => return Ok(Doorbell { fd, id }),
                // Somebody holds that name (a stale owner, or a squatter):
                // another nonce.
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

impl AsFd for Doorbell {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The process's one unbound socket for ringing, made at the first ring.
static RINGER: OnceLock<Option<OwnedFd>> = OnceLock::new();

/// Rings doorbell `id`: one `sendto(2)` of one byte, never blocking.
/// `true`: rung, or already ringing (its queue of rings is full);
/// `false`: gone (no socket has that name: its owner closed it or died).
pub(crate) fn ring(id: u64) -> bool {
    let Some(fd) = RINGER.get_or_init(|| datagram_socket().ok()) else {
        // No socket can be made (out of fds): the waiter cannot be told,
        // but it is not gone. Its event loop's next wake-up (or timeout)
        // finds the message.
        return true;
    };
    let Ok(addr) = name(id) else {
        return true;
    };
    // Ok, or EAGAIN (its queue is full: it is readable already), or an
    // error that says nothing of the owner: rung as far as we can tell.
    !matches!(
        rustix::net::sendto(fd, &[1], SendFlags::DONTWAIT | SendFlags::NOSIGNAL, &addr),
        Err(Errno::CONNREFUSED | Errno::NOENT)
    )
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

    #[test]
    fn rung_it_is_readable_until_drained() {
        let bell = Doorbell::bind(std::process::id()).unwrap();
        assert!(!readable(bell.as_fd()));
        assert!(ring(bell.id()));
        assert!(ring(bell.id()));
        assert!(readable(bell.as_fd()));
        assert!(readable(bell.as_fd()), "still readable: nothing drained it");
        assert_eq!(bell.drain(), 2);
        assert!(!readable(bell.as_fd()));
        assert_eq!(bell.drain(), 0);
    }

    #[test]
    fn a_closed_doorbell_is_gone() {
        let bell = Doorbell::bind(std::process::id()).unwrap();
        let id = bell.id();
        drop(bell);
        assert!(!ring(id), "gone");
    }

    #[test]
    fn a_full_doorbell_still_rings() {
        let bell = Doorbell::bind(std::process::id()).unwrap();
        for _ in 0..100_000 {
            assert!(ring(bell.id()), "a full queue of rings is not gone");
        }
        assert!(bell.drain() > 0);
    }
}
