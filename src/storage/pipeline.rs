//! Frames read, hashed and decoded in order on a helper thread, a few batches ahead of
//! the thread that judges them, so that replay and verification use two cores.

use std::io::Read;

use crate::core::chain::event_hash;
use crate::core::event::{DecodeError, Event};
use crate::core::format::{FrameReader, RawFrame, ReadError};
use crate::core::types::Hash32;

/// A frame with the work that needs no state: its hash and its decoded body.
pub struct Prepared {
    pub frame: RawFrame,
    pub hash: Hash32,
    pub decoded: Result<Event, DecodeError>,
}

/// A read error, and the offset just past the last complete frame before it.
pub type PreparedError = (ReadError, u64);

/// Frames handed over per channel message, and the body bytes after which a batch is sent
/// early (so memory stays bounded however large the frames).
const PREPARE_BATCH: usize = 256;
const PREPARE_BATCH_BYTES: usize = 256 * 1024;

type Batch = Vec<Result<Prepared, PreparedError>>;
type Spent = Vec<(RawFrame, Option<Event>)>;

/// Frames read, hashed and decoded in order on a helper thread, a few batches ahead.
pub struct Pipeline {
    rx: std::sync::mpsc::Receiver<Batch>,
    pending: std::vec::IntoIter<Result<Prepared, PreparedError>>,
    spent_tx: std::sync::mpsc::Sender<Spent>,
    spent: Spent,
    spent_bytes: usize,
}

impl Iterator for Pipeline {
    type Item = Result<Prepared, PreparedError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.pending.next() {
                return Some(item);
            }
            self.pending = self.rx.recv().ok()?.into_iter();
        }
    }
}

impl Pipeline {
    /// Hands a finished frame and event back to be freed on the helper thread, which
    /// allocated them: frees across threads contend on the allocator's locks.
    pub fn recycle(&mut self, frame: RawFrame, event: Option<Event>) {
        self.spent_bytes += frame.body.len();
        self.spent.push((frame, event));
        if self.spent.len() == PREPARE_BATCH || self.spent_bytes >= PREPARE_BATCH_BYTES {
            self.spent_bytes = 0;
            // If the helper has finished, the batch is simply dropped here.
            let _ = self.spent_tx.send(std::mem::replace(
                &mut self.spent,
                Vec::with_capacity(PREPARE_BATCH),
            ));
        }
    }
}

/// Runs `f` over the frames of `frames` (replay and verify then use two cores). The helper
/// stops when the frames end, at the first read error (passed on as the last item), or
/// when `f` returns.
pub fn pipelined<R: Read + Send, T>(
    mut frames: FrameReader<R>,
    f: impl FnOnce(&mut Pipeline) -> T,
) -> T {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Batch>(4);
    let (spent_tx, spent_rx) = std::sync::mpsc::channel::<Spent>();
    std::thread::scope(|s| {
        s.spawn(move || {
            let mut batch = Vec::with_capacity(PREPARE_BATCH);
            let mut bytes = 0;
            while let Some(item) = frames.next() {
                let stop = item.is_err();
                batch.push(match item {
                    Ok(frame) => {
                        bytes += frame.body.len();
                        Ok(Prepared {
                            hash: event_hash(&frame.body),
                            decoded: Event::decode(&frame.body),
                            frame,
                        })
                    }
                    Err(e) => Err((e, frames.offset())),
                });
                if stop || batch.len() == PREPARE_BATCH || bytes >= PREPARE_BATCH_BYTES {
                    bytes = 0;
                    // A closed channel means the consumer is done.
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(PREPARE_BATCH));
                    if tx.send(full).is_err() || stop {
                        return;
                    }
                    spent_rx.try_iter().for_each(drop);
                }
            }
            let _ = tx.send(batch);
        });
        let mut pipeline = Pipeline {
            rx,
            pending: Vec::new().into_iter(),
            spent_tx,
            spent: Vec::with_capacity(PREPARE_BATCH),
            spent_bytes: 0,
        };
        f(&mut pipeline)
        // `pipeline` (the receiver) is dropped here, before the scope joins the helper.
    })
}
