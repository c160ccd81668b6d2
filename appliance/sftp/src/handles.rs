//! The files and directories a session has open, and what has been sent of each file.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;

use crate::jail::Directory;
use crate::path::JailPath;
use crate::protocol::Handle;

/// Open handles per session. OpenSSH's client keeps at most `limits@openssh.com`'s
/// open-handle count of requests in flight, so this is also the smallest value that leaves
/// its 64 outstanding reads alone.
pub(crate) const MAX_OPEN_HANDLES: usize = 64;

/// Out-of-order ranges remembered per download beyond the contiguous part already sent.
/// Clients reorder only within their window of outstanding reads; a client that scatters
/// more than this is told the truth in bytes, but its download counts as partial.
const MAX_RANGES_AHEAD: usize = 1024;

#[derive(Debug, Default)]
pub(crate) struct Handles {
    next: u32,
    open: HashMap<Handle, Open>,
}

#[derive(Debug)]
pub(crate) enum Open {
    File(OpenFile),
    Dir(OpenDir),
}

#[derive(Debug)]
pub(crate) struct OpenFile {
    pub(crate) file: File,
    pub(crate) path: JailPath,
    pub(crate) transfer: Transfer,
}

#[derive(Debug)]
pub(crate) struct OpenDir {
    pub(crate) dir: Directory,
    pub(crate) path: JailPath,
    pub(crate) entries_listed: u64,
}

impl Open {
    pub(crate) fn path(&self) -> &JailPath {
        match self {
            Open::File(file) => &file.path,
            Open::Dir(dir) => &dir.path,
        }
    }
}

impl Handles {
    /// Stores `open` under a new handle; `None` (and `open` dropped, closing it) when the
    /// session already has [`MAX_OPEN_HANDLES`].
    pub(crate) fn insert(&mut self, open: Open) -> Option<Handle> {
        if self.open.len() >= MAX_OPEN_HANDLES {
            return None;
        }
        loop {
            let handle = Handle(self.next);
            self.next = self.next.wrapping_add(1);
            if handle != Handle::FOREIGN && !self.open.contains_key(&handle) {
                self.open.insert(handle, open);
                return Some(handle);
            }
        }
    }

    pub(crate) fn get_mut(&mut self, handle: Handle) -> Option<&mut Open> {
        self.open.get_mut(&handle)
    }

    pub(crate) fn remove(&mut self, handle: Handle) -> Option<Open> {
        self.open.remove(&handle)
    }

    /// Every handle still open, in the order they were opened.
    pub(crate) fn drain(&mut self) -> Vec<Open> {
        let mut all: Vec<(Handle, Open)> = self.open.drain().collect();
        all.sort_by_key(|(handle, _)| handle.0);
        all.into_iter().map(|(_, open)| open).collect()
    }
}

/// What a download has sent: bytes in total, and which ranges, to tell whether the whole
/// file went out however the client ordered its reads.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Transfer {
    bytes_sent: u64,
    /// Everything before this offset has been sent.
    contiguous: u64,
    /// Ranges sent beyond `contiguous`: start to end, not touching it.
    ahead: BTreeMap<u64, u64>,
}

impl Transfer {
    pub(crate) fn record(&mut self, offset: u64, len: u64) {
        self.bytes_sent = self.bytes_sent.saturating_add(len);
        let end = offset.saturating_add(len);
        if offset <= self.contiguous {
            self.contiguous = self.contiguous.max(end);
            while let Some(entry) = self.ahead.first_entry() {
                if *entry.key() > self.contiguous {
                    break;
                }
                let (_, end) = entry.remove_entry();
                self.contiguous = self.contiguous.max(end);
            }
        } else if self.ahead.len() < MAX_RANGES_AHEAD {
            let slot = self.ahead.entry(offset).or_insert(end);
            *slot = (*slot).max(end);
        }
    }

    pub(crate) fn bytes_sent(&self) -> u64 {
        self.bytes_sent
    }

    /// Whether every byte of a file of `size` bytes has been sent.
    pub(crate) fn covers(&self, size: u64) -> bool {
        self.contiguous >= size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_and_reordered_reads_cover_the_file() {
        let mut transfer = Transfer::default();
        transfer.record(0, 10);
        transfer.record(20, 10);
        assert!(!transfer.covers(30));
        transfer.record(10, 10);
        assert!(transfer.covers(30));
        assert_eq!(transfer.bytes_sent(), 30);
        transfer.record(0, 30);
        assert_eq!(transfer.bytes_sent(), 60, "bytes count every send");
    }

    #[test]
    fn overlapping_and_nested_ranges_merge() {
        let mut transfer = Transfer::default();
        transfer.record(50, 50);
        transfer.record(60, 10);
        transfer.record(40, 20);
        transfer.record(0, 40);
        assert!(transfer.covers(100));
        assert!(!transfer.covers(101));
        transfer.record(u64::MAX - 1, 5);
        assert_eq!(transfer.bytes_sent(), 125);
    }

    #[test]
    fn scattered_ranges_are_bounded() {
        let mut transfer = Transfer::default();
        for n in 1..=(MAX_RANGES_AHEAD as u64 + 100) {
            transfer.record(n * 10, 5);
        }
        assert_eq!(transfer.ahead.len(), MAX_RANGES_AHEAD);
    }

    #[test]
    fn handles_are_bounded_and_reused_only_when_free() {
        let mut handles = Handles::default();
        let file = || {
            Open::File(OpenFile {
                file: tempfile::tempfile().unwrap(),
                path: JailPath::root(),
                transfer: Transfer::default(),
            })
        };
        let issued: Vec<Handle> = (0..MAX_OPEN_HANDLES)
            .map(|_| handles.insert(file()).unwrap())
            .collect();
        assert!(handles.insert(file()).is_none());
        assert!(handles.remove(issued[3]).is_some());
        handles.next = issued[0].0;
        let again = handles.insert(file()).unwrap();
        assert_eq!(again, issued[3], "the only free slot among those issued");
        handles.next = u32::MAX;
        assert!(handles.remove(issued[5]).is_some());
        assert_ne!(handles.insert(file()).unwrap(), Handle::FOREIGN);
        assert_eq!(handles.drain().len(), MAX_OPEN_HANDLES);
    }
}
