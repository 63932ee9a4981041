//! The links under test: shmq, iceoryx2 publish-subscribe, a Unix domain
//! socket and a pipe. Each one writes the whole payload on send and copies
//! the whole payload out on receive, busy-polling for it.

use std::io::{ErrorKind, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use iceoryx2::port::backpressure_strategy::BackpressureStrategy;
use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::port::update_connections::UpdateConnections;
use iceoryx2::prelude::*;

use crate::link::{Res, Rx, Tx};

/// How long a side waits for the other to show up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Ring slots of every queue-like link (shmq, iceoryx2's subscriber buffer,
/// the bare ring) for payloads up to 4 KiB.
pub const SLOTS: usize = 4096;
/// Bytes of a ring (or buffer) of large payloads.
const LARGE_RING: usize = 64 << 20;
/// shmq's slot size for large payloads: a message takes many slots.
const LARGE_SLOT: usize = 4064;

/// Slots (messages) of the queue-like links for payloads of `size`
/// bytes: [`SLOTS`] up to 4 KiB, else as many as 64 MiB hold (at least 4),
/// so that a 4 MiB payload does not need a 16 GiB ring.
pub fn slots_for(size: usize) -> usize {
    if size <= 4096 {
        SLOTS
    } else {
        (LARGE_RING / size.next_power_of_two()).max(4)
    }
}

// ---- shmq ----------------------------------------------------------------

/// Creates queue `name` in `dir` with one group `g` (done by the parent
/// before the workers start).
/// Payloads over 4 KiB take many slots of [`LARGE_SLOT`] bytes, in a ring
/// of 64 MiB.
pub fn shmq_create(dir: &Path, name: &str, size: usize) -> Res<()> {
    let (slots, slot_size) = if size <= 4096 {
        (SLOTS, size)
    } else {
        (LARGE_RING / (LARGE_SLOT + 32), LARGE_SLOT)
    };
    let opts = shmq::Options::new()
        .dir(dir)
        .slots(slots as u64)
        .slot_size(slot_size)
        .overflow(shmq::Overflow::Block);
    let q = shmq::Queue::create(name, &opts)?;
    q.create_group("g", shmq::Start::Earliest)?;
    Ok(())
}

/// shmq's producer.
pub struct ShmqTx(shmq::Producer);

impl ShmqTx {
    /// Opens a producer of queue `name`.
    pub fn open(dir: &Path, name: &str) -> Res<ShmqTx> {
        let q = shmq::Queue::open_with(name, &shmq::Options::new().dir(dir))?;
        Ok(ShmqTx(q.producer()?))
    }
}

impl Tx for ShmqTx {
    #[inline(always)]
    fn send(&mut self, payload: &[u8]) -> Res<()> {
        self.0.publish(payload)?;
        Ok(())
    }
}

/// shmq's consumer of group `g`, ack=auto.
pub struct ShmqRx(shmq::Consumer);

impl ShmqRx {
    /// Opens the consumer of group `g` of queue `name`.
    pub fn open(dir: &Path, name: &str) -> Res<ShmqRx> {
        let q = shmq::Queue::open_with(name, &shmq::Options::new().dir(dir))?;
        Ok(ShmqRx(q.consumer("g", shmq::ConsumerOptions::new())?))
    }
}

impl Rx for ShmqRx {
    #[inline(always)]
    fn recv(&mut self, buf: &mut [u8]) -> Res<()> {
        loop {
            if let Some(m) = self.0.try_receive()? {
                buf.copy_from_slice(m.payload());
                return Ok(());
            }
            std::hint::spin_loop();
        }
    }
}

// ---- iceoryx2 -------------------------------------------------------------

/// An iceoryx2 publish-subscribe service of byte slices, with lossless
/// settings: no safe overflow (a full subscriber buffer holds the publisher
/// back instead of dropping its oldest sample), and the publisher retries
/// until delivered.
fn iox_service(node: &Node<ipc::Service>, name: &str, size: usize) -> Res<IoxService> {
    let name: ServiceName = name.try_into()?;
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    loop {
        // Both processes open-or-create; one of them may find the other
        // half-way through creating it, and tries again.
        match node
            .service_builder(&name)
            .publish_subscribe::<[u8]>()
            .enable_safe_overflow(false)
            .subscriber_max_buffer_size(slots_for(size))
            .subscriber_max_borrowed_samples(2)
            .history_size(0)
            .max_publishers(1)
            .max_subscribers(1)
            .open_or_create()
        {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(format!("iceoryx2 service {name}: {e:?}").into()),
        }
    }
}

/// Waits until the service has its publisher and its subscriber: a sample
/// sent before the subscriber is connected is not delivered to it.
fn iox_wait_connected(svc: &IoxService) -> Res<()> {
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    while svc.dynamic_config().number_of_subscribers() < 1
        || svc.dynamic_config().number_of_publishers() < 1
    {
        if Instant::now() > deadline {
            return Err("iceoryx2: the other side did not connect".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// A process's iceoryx2 node; every port of the process belongs to it.
pub fn iox_node() -> Res<Node<ipc::Service>> {
    Ok(NodeBuilder::new().create::<ipc::Service>()?)
}

type IoxService =
    iceoryx2::service::port_factory::publish_subscribe::PortFactory<ipc::Service, [u8], ()>;

/// An iceoryx2 publisher, sending through zero-copy loans.
pub struct IoxTx {
    service: IoxService,
    publisher: Publisher<ipc::Service, [u8], ()>,
}

impl IoxTx {
    /// Creates the publisher of service `name`.
    pub fn open(node: &Node<ipc::Service>, name: &str, size: usize) -> Res<IoxTx> {
        let svc = iox_service(node, name, size)?;
        let publisher = svc
            .publisher_builder()
            .initial_max_slice_len(size)
            .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
            .max_loaned_samples(1)
            .create()?;
        Ok(IoxTx {
            service: svc,
            publisher,
        })
    }

    /// Waits until the subscriber is there and receiving (create every
    /// port of the process first: the other side may be waiting for one of
    /// them). A subscriber counted by the service may not have attached to
    /// its connection yet, and samples sent before it does are dropped once
    /// its buffer is full: so this sends empty "hello" samples until the
    /// subscriber's `connect` says (file `ready`) that one arrived.
    pub fn connect(&self, ready: &Path) -> Res<()> {
        iox_wait_connected(&self.service)?;
        self.publisher.update_connections()?;
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        while !ready.exists() {
            if Instant::now() > deadline {
                return Err("iceoryx2: the subscriber never saw a sample".into());
            }
            self.publisher
                .loan_slice_uninit(0)?
                .write_from_slice(&[])
                .send()?;
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }
}

impl Tx for IoxTx {
    #[inline(always)]
    fn send(&mut self, payload: &[u8]) -> Res<()> {
        // The loan is a chunk of the publisher's shared data segment; the
        // payload is written into it in place and its offset handed over.
        let sample = self.publisher.loan_slice_uninit(payload.len())?;
        sample.write_from_slice(payload).send()?;
        Ok(())
    }
}

/// An iceoryx2 subscriber.
pub struct IoxRx {
    service: IoxService,
    subscriber: Subscriber<ipc::Service, [u8], ()>,
}

impl IoxRx {
    /// Creates the subscriber of service `name` (of payloads of `size`).
    pub fn open(node: &Node<ipc::Service>, name: &str, size: usize) -> Res<IoxRx> {
        let svc = iox_service(node, name, size)?;
        let subscriber = svc
            .subscriber_builder()
            .buffer_size(slots_for(size))
            .create()?;
        Ok(IoxRx {
            service: svc,
            subscriber,
        })
    }

    /// Waits until the publisher is there and a first "hello" sample
    /// arrived, then says so (creates the file `ready`).
    pub fn connect(&self, ready: &Path) -> Res<()> {
        iox_wait_connected(&self.service)?;
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        while self.subscriber.receive()?.is_none() {
            if Instant::now() > deadline {
                return Err("iceoryx2: no sample from the publisher".into());
            }
            std::thread::sleep(Duration::from_micros(100));
        }
        std::fs::write(ready, b"")?;
        Ok(())
    }
}

impl Rx for IoxRx {
    #[inline(always)]
    fn recv(&mut self, buf: &mut [u8]) -> Res<()> {
        loop {
            if let Some(sample) = self.subscriber.receive()? {
                // Skip the empty "hello" samples of `connect`.
                if !sample.payload().is_empty() {
                    buf.copy_from_slice(sample.payload());
                    return Ok(());
                }
                continue;
            }
            std::hint::spin_loop();
        }
    }
}

// ---- byte streams: a Unix domain socket, a pipe ---------------------------

/// A non-blocking byte stream; one `write` and one `read` system call per
/// message (more only if the kernel splits it), spinning on `WouldBlock`.
pub struct Stream<S>(pub S);

impl<S: Write> Tx for Stream<S> {
    #[inline(always)]
    fn send(&mut self, payload: &[u8]) -> Res<()> {
        let mut done = 0;
        while done < payload.len() {
            match self.0.write(&payload[done..]) {
                Ok(n) => done += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => std::hint::spin_loop(),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

impl<S: Read> Rx for Stream<S> {
    #[inline(always)]
    fn recv(&mut self, buf: &mut [u8]) -> Res<()> {
        let mut done = 0;
        while done < buf.len() {
            match self.0.read(&mut buf[done..]) {
                Ok(0) => return Err("the other side closed the stream".into()),
                Ok(n) => done += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => std::hint::spin_loop(),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

/// The listening side of the Unix socket at `path`: accepts one peer.
pub fn uds_accept(path: &Path) -> Res<std::os::unix::net::UnixStream> {
    let listener = std::os::unix::net::UnixListener::bind(path)?;
    let (s, _) = listener.accept()?;
    s.set_nonblocking(true)?;
    Ok(s)
}

/// The connecting side of the Unix socket at `path`, retrying until the
/// other side listens.
pub fn uds_connect(path: &Path) -> Res<std::os::unix::net::UnixStream> {
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    loop {
        match std::os::unix::net::UnixStream::connect(path) {
            Ok(s) => {
                s.set_nonblocking(true)?;
                return Ok(s);
            }
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(1)),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Makes the FIFO at `path` (done by the parent).
pub fn fifo_create(path: &Path) -> Res<()> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())?;
    // SAFETY: `c` is a NUL-terminated path that outlives the call.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(())
}

/// Opens the FIFO at `path` non-blocking, for reading and writing: Linux
/// lets a FIFO be opened O_RDWR without waiting for the other side, and a
/// writer never sees a closed pipe while it holds a read end itself.
pub fn fifo_open(path: &Path) -> Res<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    Ok(std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?)
}
