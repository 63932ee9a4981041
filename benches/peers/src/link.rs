//! One way of moving a message from one process to another, and the two
//! measurements every peer gets through it: a ping-pong (latency) and a
//! stream (throughput). The loops are generic, so each peer's send and
//! receive are inlined into the same loop as the others'.

use std::time::Instant;

use hdrhistogram::Histogram;

/// Errors of a worker: the bench stops at the first.
pub type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// The sending end of a link.
pub trait Tx {
    /// Writes the whole payload into the link.
    fn send(&mut self, payload: &[u8]) -> Res<()>;
}

/// The receiving end of a link.
pub trait Rx {
    /// Busy-polls until one whole message arrived and copies all of it
    /// into `buf` (whose length is the payload size).
    fn recv(&mut self, buf: &mut [u8]) -> Res<()>;
}

/// The pinging side: sends, waits for the echo, `warmup + count` times;
/// the last `count` one-way times (round trip / 2, ns) go to the histogram.
pub fn ping(
    tx: &mut impl Tx,
    rx: &mut impl Rx,
    size: usize,
    count: u64,
    warmup: u64,
) -> Res<Histogram<u64>> {
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    let mut payload = vec![0u8; size];
    let mut buf = vec![0u8; size];
    for i in 0..warmup + count {
        // A fresh first and last byte each time, checked on the echo: the
        // whole payload made the trip, not a stale one.
        payload[0] = i as u8;
        payload[size - 1] = (i >> 8) as u8;
        let t0 = Instant::now();
        tx.send(&payload)?;
        rx.recv(&mut buf)?;
        let rtt = t0.elapsed().as_nanos() as u64;
        std::hint::black_box(&mut buf);
        if buf[0] != payload[0] || buf[size - 1] != payload[size - 1] {
            return Err(format!("round trip {i}: the echo is not the message sent").into());
        }
        if i >= warmup {
            h.saturating_record((rtt / 2).max(1));
        }
    }
    Ok(h)
}

/// The answering side: receives and sends the same bytes back.
pub fn pong(tx: &mut impl Tx, rx: &mut impl Rx, size: usize, count: u64) -> Res<()> {
    let mut buf = vec![0u8; size];
    for _ in 0..count {
        rx.recv(&mut buf)?;
        tx.send(&buf)?;
    }
    Ok(())
}

/// The producer of a stream: `count` messages as fast as the link takes
/// them, each carrying its index in its first 8 bytes.
pub fn produce(tx: &mut impl Tx, size: usize, count: u64) -> Res<()> {
    let mut payload = vec![7u8; size.max(8)];
    for i in 0..count {
        payload[..8].copy_from_slice(&i.to_le_bytes());
        tx.send(&payload[..size])?;
    }
    Ok(())
}

/// What the consumer of a stream saw.
pub struct Streamed {
    /// Nanoseconds from the first message received to the last.
    pub elapsed_ns: u64,
    /// Messages received.
    pub received: u64,
    /// Messages that did not arrive in order: each gap or step back counts
    /// once. 0 for a lossless, ordered link.
    pub disorder: u64,
}

/// The consumer of a stream of `count` messages (of at least 8 bytes):
/// receives until the last one (index `count - 1`) arrives, checking the
/// order.
pub fn consume(rx: &mut impl Rx, size: usize, count: u64) -> Res<Streamed> {
    if size < 8 {
        return Err("a stream's messages carry their index: 8 bytes at least".into());
    }
    let index = |buf: &[u8]| u64::from_le_bytes(buf[..8].try_into().expect("8 bytes"));
    let mut buf = vec![0u8; size];
    rx.recv(&mut buf)?;
    let start = Instant::now();
    let (mut expect, mut received, mut disorder) =
        (index(&buf) + 1, 1, u64::from(index(&buf) != 0));
    while expect < count {
        rx.recv(&mut buf)?;
        // The whole copy counts: the compiler may not drop the bytes that
        // nothing below reads.
        std::hint::black_box(&mut buf);
        let i = index(&buf);
        received += 1;
        if i != expect {
            disorder += 1;
        }
        expect = i + 1;
    }
    Ok(Streamed {
        elapsed_ns: start.elapsed().as_nanos() as u64,
        received,
        disorder,
    })
}
