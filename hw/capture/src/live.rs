//! Live capture from a network interface, such as the NIC a switch mirrors the voice VLAN to.
//!
//! An `AF_PACKET` socket with a `TPACKET_V3` receive ring: the kernel writes captured frames
//! into blocks of memory shared with us through `mmap`, so a frame costs neither a system call
//! nor a copy. A block belongs to the kernel while it fills, and to us once it is full or
//! about [`RETIRE_AFTER_MS`] milliseconds have passed since its first frame, so a quiet link
//! still delivers promptly. The status word at the head of each block says who owns it; we read it with
//! Acquire ordering before touching the block and hand the block back with a Release store
//! after we are done with it.
//!
//! # Why this module may use `unsafe`
//!
//! The workspace denies `unsafe_code`. This module allows it because the ring is memory shared
//! with the kernel and setting it up takes socket options whose values are C structs: there is
//! no safe interface to either. The unsafe code is kept to those calls, mapping and unmapping
//! the ring, and viewing one block we own as a byte slice; each block says why it is sound.
//! Everything read out of a block is parsed by safe code ([`frames_in_block`]) that checks
//! every offset against the block, so a bad value from the kernel or a driver ends the walk of
//! that block instead of reading outside it. Such blocks are counted in
//! [`LiveStats::malformed_blocks`].
//!
//! # What the frames hold
//!
//! - Ethernet frames from the moment the kernel received them, nanosecond stamps included.
//!   Interfaces that are not Ethernet are refused, as their frames would be misread.
//! - The kernel takes 802.1Q tags out of frames before packet sockets see them, and they are
//!   not put back: a frame from the mirrored voice VLAN arrives untagged.
//! - Frames the NIC itself could not take in are not counted here, only those the kernel
//!   could not fit in the ring ([`LiveStats::drops`]); the NIC's count is in `ip -s link`.

#![allow(unsafe_code)]

use std::io;
use std::mem::{offset_of, size_of};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::mm::{MapFlags, ProtFlags};
use rustix::net::{AddressFamily, SocketFlags, SocketType};

use crate::Frame;

/// Bytes in one block of the ring. A power of two, so a whole number of pages.
const BLOCK_SIZE: u32 = 1 << 20;
/// The kernel wants a frame size that divides the block, but `TPACKET_V3` packs frames by their
/// real length, so it limits nothing: a frame may be as long as the block.
const FRAME_SIZE: u32 = 2048;
/// How long a block with frames in it may stay with the kernel before we get it.
const RETIRE_AFTER_MS: u32 = 10;
/// The pcap LINKTYPE_ETHERNET.
const LINKTYPE_ETHERNET: u32 = 1;
/// Fanout members share frames by flow hash, and IP fragments are reassembled first so that
/// all of one datagram reaches the same member.
const FANOUT_MODE: u32 = libc::PACKET_FANOUT_HASH | libc::PACKET_FANOUT_FLAG_DEFRAG;

/// How to capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveOptions {
    /// Blocks of 1 MiB in the ring: how much the kernel can hold while we fall behind.
    pub block_count: u32,
    /// Share the interface with the other captures that join this group (in the same network
    /// namespace): each flow goes to one member, so several workers can split the load.
    pub fanout: Option<u16>,
}

impl Default for LiveOptions {
    /// 64 MiB of ring and no fanout.
    fn default() -> LiveOptions {
        LiveOptions {
            block_count: 64,
            fanout: None,
        }
    }
}

/// Counts since the capture was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiveStats {
    /// Frames the kernel had for this capture, including those it dropped.
    pub packets: u64,
    /// Frames the kernel dropped because the ring was full.
    pub drops: u64,
    /// Times the ring filled up, so that the kernel stopped capturing until a block came back.
    pub freezes: u64,
    /// Blocks whose contents pointed outside the block; frames after the bad one were lost.
    /// Anything but 0 means a kernel or driver bug.
    pub malformed_blocks: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("no permission to capture on {interface} (needs CAP_NET_RAW)")]
    NotPermitted {
        interface: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot open a packet socket for {interface}")]
    Socket {
        interface: String,
        #[source]
        source: io::Error,
    },
    #[error("interface {interface} does not exist")]
    NoSuchInterface { interface: String },
    #[error("cannot look up interface {interface}")]
    Lookup {
        interface: String,
        #[source]
        source: io::Error,
    },
    #[error("interface {interface} is not Ethernet (ARPHRD {hardware_type})")]
    NotEthernet {
        interface: String,
        hardware_type: u16,
    },
    #[error("cannot set up the capture ring on {interface} ({call})")]
    Ring {
        interface: String,
        call: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("cannot bind the capture to {interface}")]
    Bind {
        interface: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot put {interface} into promiscuous mode")]
    Promiscuous {
        interface: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot join fanout group {group} on {interface}")]
    Fanout {
        interface: String,
        group: u16,
        #[source]
        source: io::Error,
    },
    #[error("cannot wait for frames on {interface}")]
    Wait {
        interface: String,
        #[source]
        source: io::Error,
    },
    /// The socket reported an error, such as the link going down. The capture stays usable and
    /// resumes when the link comes back.
    #[error("capture on {interface} was interrupted")]
    Interrupted {
        interface: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot read capture statistics of {interface}")]
    Stats {
        interface: String,
        #[source]
        source: io::Error,
    },
}

/// A capture of every frame on one interface, in promiscuous mode.
///
/// Drive it by calling [`LiveCapture::next_block`] in a loop on a thread of its own. To wait
/// from an event loop instead, watch the descriptor ([`AsFd`]) for readability and call
/// `next_block` with a zero timeout, which never blocks.
pub struct LiveCapture {
    ring: Ring,
    fd: OwnedFd,
    interface: String,
    /// The block the kernel will hand over next: it fills them in order, round the ring.
    next: usize,
    stats: LiveStats,
}

impl LiveCapture {
    /// Starts capturing every frame on `interface`, which must be Ethernet, into a ring of
    /// `options.block_count` MiB of kernel memory. Needs `CAP_NET_RAW`.
    pub fn open(interface: &str, options: &LiveOptions) -> Result<LiveCapture, LiveError> {
        let name = || interface.to_owned();
        let ring_err = |call| {
            move |source| LiveError::Ring {
                interface: name(),
                call,
                source,
            }
        };
        let request = ring_request(options.block_count).map_err(ring_err("PACKET_RX_RING"))?;
        let ifindex = interface_index(interface)?;

        // No protocol yet: a packet socket with one receives from every interface at once, and
        // frames from elsewhere would be in the ring before `bind` narrows it to ours.
        let fd = rustix::net::socket_with(
            AddressFamily::PACKET,
            SocketType::RAW,
            SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|errno| {
            let source = io::Error::from(errno);
            if errno == Errno::PERM || errno == Errno::ACCESS {
                LiveError::NotPermitted {
                    interface: name(),
                    source,
                }
            } else {
                LiveError::Socket {
                    interface: name(),
                    source,
                }
            }
        })?;

        let version = libc::tpacket_versions::TPACKET_V3 as libc::c_int;
        set_packet_option(fd.as_fd(), libc::PACKET_VERSION, &version)
            .map_err(ring_err("PACKET_VERSION"))?;
        set_packet_option(fd.as_fd(), libc::PACKET_RX_RING, &request)
            .map_err(ring_err("PACKET_RX_RING"))?;
        let ring = Ring::map(fd.as_fd(), options.block_count).map_err(ring_err("mmap"))?;

        bind(fd.as_fd(), ifindex).map_err(|source| {
            if source.raw_os_error() == Some(libc::ENODEV) {
                LiveError::NoSuchInterface { interface: name() }
            } else {
                LiveError::Bind {
                    interface: name(),
                    source,
                }
            }
        })?;
        let hardware_type = bound_hardware_type(fd.as_fd()).map_err(|source| LiveError::Bind {
            interface: name(),
            source,
        })?;
        if hardware_type != libc::ARPHRD_ETHER && hardware_type != libc::ARPHRD_LOOPBACK {
            return Err(LiveError::NotEthernet {
                interface: name(),
                hardware_type,
            });
        }

        // The kernel leaves promiscuous mode when the socket closes, even if we crash.
        let membership = libc::packet_mreq {
            mr_ifindex: ifindex,
            mr_type: libc::PACKET_MR_PROMISC as libc::c_ushort,
            mr_alen: 0,
            mr_address: [0; 8],
        };
        set_packet_option(fd.as_fd(), libc::PACKET_ADD_MEMBERSHIP, &membership).map_err(
            |source| LiveError::Promiscuous {
                interface: name(),
                source,
            },
        )?;

        // Joining takes a bound socket.
        if let Some(group) = options.fanout {
            let fanout = u32::from(group) | (FANOUT_MODE << 16);
            set_packet_option(fd.as_fd(), libc::PACKET_FANOUT, &fanout).map_err(|source| {
                LiveError::Fanout {
                    interface: name(),
                    group,
                    source,
                }
            })?;
        }

        Ok(LiveCapture {
            ring,
            fd,
            interface: name(),
            next: 0,
            stats: LiveStats::default(),
        })
    }

    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// Waits up to `timeout` for the next block of frames and hands each frame to `f`, in the
    /// order they were captured. Returns how many there were: 0 if the time ran out.
    ///
    /// [`LiveError::Interrupted`] reports the link going down (or having been down when the
    /// capture opened) once; the capture stays usable and goes on when the link is back.
    pub fn next_block(
        &mut self,
        timeout: Duration,
        mut f: impl FnMut(Frame<'_>),
    ) -> Result<usize, LiveError> {
        // `None` when the timeout is too long to matter: wait as long as it takes.
        let deadline = Instant::now().checked_add(timeout);
        loop {
            if let Some(walked) = self.ring.consume(self.next, &mut f) {
                self.next = (self.next + 1) % self.ring.block_count;
                if walked.malformed {
                    self.stats.malformed_blocks += 1;
                }
                return Ok(walked.delivered);
            }
            let left = match deadline {
                Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => return Ok(0),
                },
                None => None,
            };
            // Readiness only says some block may be ours; the status word above decides.
            self.wait(left)?;
        }
    }

    /// Counts since the capture was opened. The kernel resets its counters each time they are
    /// read, so this adds them up.
    pub fn stats(&mut self) -> Result<LiveStats, LiveError> {
        let kernel = packet_statistics(self.fd.as_fd()).map_err(|source| LiveError::Stats {
            interface: self.interface.clone(),
            source,
        })?;
        let stats = &mut self.stats;
        stats.packets = stats.packets.saturating_add(kernel.tp_packets.into());
        stats.drops = stats.drops.saturating_add(kernel.tp_drops.into());
        stats.freezes = stats.freezes.saturating_add(kernel.tp_freeze_q_cnt.into());
        Ok(*stats)
    }

    fn wait(&self, timeout: Option<Duration>) -> Result<(), LiveError> {
        let timeout = timeout.and_then(|t| Timespec::try_from(t).ok());
        let mut fds = [PollFd::new(&self.fd, PollFlags::IN | PollFlags::ERR)];
        match rustix::event::poll(&mut fds, timeout.as_ref()) {
            Ok(_) | Err(Errno::INTR) => {}
            Err(errno) => {
                return Err(LiveError::Wait {
                    interface: self.interface.clone(),
                    source: errno.into(),
                });
            }
        }
        if fds[0].revents().contains(PollFlags::ERR) {
            // Reading the error clears it, so the next wait does not see it again.
            let pending =
                rustix::net::sockopt::socket_error(&self.fd).map_err(|errno| LiveError::Wait {
                    interface: self.interface.clone(),
                    source: errno.into(),
                })?;
            if let Err(errno) = pending {
                return Err(LiveError::Interrupted {
                    interface: self.interface.clone(),
                    source: errno.into(),
                });
            }
        }
        Ok(())
    }
}

impl AsFd for LiveCapture {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl std::fmt::Debug for LiveCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveCapture")
            .field("interface", &self.interface)
            .field("blocks", &self.ring.block_count)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// The ring to ask the kernel for, checked first so that bad options are reported as such
/// rather than as whatever the kernel makes of them: no blocks at all would remove the ring.
fn ring_request(block_count: u32) -> io::Result<libc::tpacket_req3> {
    let frame_count = (BLOCK_SIZE / FRAME_SIZE)
        .checked_mul(block_count)
        .filter(|_| block_count > 0)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a ring of {block_count} blocks of 1 MiB is not possible"),
            )
        })?;
    Ok(libc::tpacket_req3 {
        tp_block_size: BLOCK_SIZE,
        tp_block_nr: block_count,
        tp_frame_size: FRAME_SIZE,
        tp_frame_nr: frame_count,
        tp_retire_blk_tov: RETIRE_AFTER_MS,
        tp_sizeof_priv: 0,
        tp_feature_req_word: 0,
    })
}

/// Looks the name up on a socket anyone may open, so that a wrong name is reported as such
/// even to a user who could not capture.
fn interface_index(interface: &str) -> Result<libc::c_int, LiveError> {
    let lookup_err = |source| LiveError::Lookup {
        interface: interface.to_owned(),
        source,
    };
    let socket = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|errno| lookup_err(errno.into()))?;
    match rustix::net::netdevice::name_to_index(&socket, interface) {
        Ok(index) => libc::c_int::try_from(index).map_err(|_| {
            lookup_err(io::Error::other(format!(
                "interface index {index} is out of range"
            )))
        }),
        // Also what names too long to exist give.
        Err(Errno::NODEV) => Err(LiveError::NoSuchInterface {
            interface: interface.to_owned(),
        }),
        Err(errno) => Err(lookup_err(errno.into())),
    }
}

/// Sets a `SOL_PACKET` option whose value is the C struct or integer `value`.
fn set_packet_option<T: Copy>(fd: BorrowedFd<'_>, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` points to an initialised `T` of the length given, which outlives the
    // call; the kernel only reads it, and checks the length against what `name` expects.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            name,
            std::ptr::from_ref(value).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Starts the capture: every protocol, from interface `ifindex` only.
fn bind(fd: BorrowedFd<'_>, ifindex: libc::c_int) -> io::Result<()> {
    let address = libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as libc::c_ushort,
        sll_protocol: (libc::ETH_P_ALL as u16).to_be(),
        sll_ifindex: ifindex,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 0,
        sll_addr: [0; 8],
    };
    // SAFETY: `address` is an initialised `sockaddr_ll` of the length given, which outlives the
    // call; the kernel only reads it.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            std::ptr::from_ref(&address).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The `ARPHRD_*` type of the interface a bound packet socket captures from.
fn bound_hardware_type(fd: BorrowedFd<'_>) -> io::Result<u16> {
    let mut address = libc::sockaddr_ll {
        sll_family: 0,
        sll_protocol: 0,
        sll_ifindex: 0,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 0,
        sll_addr: [0; 8],
    };
    let mut len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: `address` is writable for `len` bytes and outlives the call; the kernel writes at
    // most `len` bytes into it, and every bit pattern is a valid `sockaddr_ll`.
    let rc = unsafe {
        libc::getsockname(
            fd.as_raw_fd(),
            std::ptr::from_mut(&mut address).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(address.sll_hatype)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The kernel's counts since they were last read.
fn packet_statistics(fd: BorrowedFd<'_>) -> io::Result<libc::tpacket_stats_v3> {
    let mut stats = libc::tpacket_stats_v3 {
        tp_packets: 0,
        tp_drops: 0,
        tp_freeze_q_cnt: 0,
    };
    let mut len = size_of::<libc::tpacket_stats_v3>() as libc::socklen_t;
    // SAFETY: `stats` is writable for `len` bytes and outlives the call; the kernel writes at
    // most `len` bytes into it, and every bit pattern is a valid `tpacket_stats_v3`.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            std::ptr::from_mut(&mut stats).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(stats)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The mapped receive ring: `block_count` blocks of [`BLOCK_SIZE`] bytes, each owned in turn by
/// the kernel, which fills it, and by us, as its status word says.
struct Ring {
    base: NonNull<u8>,
    block_size: usize,
    block_count: usize,
}

// SAFETY: the mapping belongs to this value alone and nothing about it is tied to the thread
// that made it; blocks are only read through `&mut self`.
unsafe impl Send for Ring {}

impl Ring {
    /// Maps the ring that `PACKET_RX_RING` made on `fd`.
    fn map(fd: BorrowedFd<'_>, block_count: u32) -> io::Result<Ring> {
        let block_size = BLOCK_SIZE as usize;
        let block_count = block_count as usize;
        let len = block_size
            .checked_mul(block_count)
            .filter(|&len| len > 0)
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: a new shared mapping where the kernel chooses (null hint), so it overlaps no
        // memory of ours; `len` is the size of the ring the kernel allocated for `fd`.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                fd,
                0,
            )
        }?;
        let base = NonNull::new(ptr.cast::<u8>())
            .ok_or_else(|| io::Error::other("the ring was mapped at address 0"))?;
        Ok(Ring {
            base,
            block_size,
            block_count,
        })
    }

    /// Walks block `index` if the kernel has handed it to us, then hands it back. `None` if
    /// the kernel still has it.
    fn consume(&mut self, index: usize, f: impl FnMut(Frame<'_>)) -> Option<Walked> {
        let index = index % self.block_count;
        if self.status(index).load(Ordering::Acquire) & libc::TP_STATUS_USER == 0 {
            return None;
        }
        // SAFETY: the block lies within the mapping (index < block_count). The kernel handed
        // it to us, and the Acquire load above makes its writes to it visible; it writes to
        // the block again only after the Release store below, by when the slice is gone.
        let block = unsafe {
            std::slice::from_raw_parts(
                self.base.as_ptr().add(index * self.block_size),
                self.block_size,
            )
        };
        let walked = frames_in_block(block, f);
        self.status(index)
            .store(libc::TP_STATUS_KERNEL, Ordering::Release);
        Some(walked)
    }

    fn status(&self, index: usize) -> &AtomicU32 {
        // SAFETY: the status word lies within block `index`, which lies within the mapping, and
        // lives as long as `self`. It is 4-aligned: the mapping starts on a page, and blocks
        // are whole pages. We only ever touch it atomically; the kernel orders its own
        // accesses with barriers.
        unsafe {
            AtomicU32::from_ptr(
                self.base
                    .as_ptr()
                    .add(index * self.block_size + BLOCK_STATUS)
                    .cast(),
            )
        }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: exactly the mapping made in `map`, unmapped once; nothing borrowed from it
        // outlives `&mut self`.
        let unmapped = unsafe {
            rustix::mm::munmap(
                self.base.as_ptr().cast(),
                self.block_size * self.block_count,
            )
        };
        // Only fails for a range that was never mapped, which `map` rules out.
        debug_assert!(unmapped.is_ok(), "munmap: {unmapped:?}");
    }
}

// Where the fields the walk reads sit in a block, and in each frame header within it.
const BLOCK_STATUS: usize = offset_of!(libc::tpacket_block_desc, hdr.bh1.block_status);
const BLOCK_NUM_PKTS: usize = offset_of!(libc::tpacket_block_desc, hdr.bh1.num_pkts);
const BLOCK_FIRST_PKT: usize = offset_of!(libc::tpacket_block_desc, hdr.bh1.offset_to_first_pkt);
const FRAME_HEADER_LEN: usize = size_of::<libc::tpacket3_hdr>();
const FRAME_NEXT: usize = offset_of!(libc::tpacket3_hdr, tp_next_offset);
const FRAME_SEC: usize = offset_of!(libc::tpacket3_hdr, tp_sec);
const FRAME_NSEC: usize = offset_of!(libc::tpacket3_hdr, tp_nsec);
const FRAME_SNAPLEN: usize = offset_of!(libc::tpacket3_hdr, tp_snaplen);
const FRAME_MAC: usize = offset_of!(libc::tpacket3_hdr, tp_mac);

/// What walking one block found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Walked {
    /// Frames handed on.
    delivered: usize,
    /// Something in the block pointed outside it or made no sense, so the walk stopped there.
    malformed: bool,
}

/// Hands each frame of a block, as the kernel lays it out, to `f`. Every offset and length is
/// checked against the block; the first that does not fit ends the walk.
fn frames_in_block(block: &[u8], mut f: impl FnMut(Frame<'_>)) -> Walked {
    let mut walked = Walked {
        delivered: 0,
        malformed: false,
    };
    let (Some(count), Some(first)) = (
        read_u32(block, BLOCK_NUM_PKTS),
        read_u32(block, BLOCK_FIRST_PKT),
    ) else {
        walked.malformed = true;
        return walked;
    };
    let mut offset = first as usize;
    // Each step moves forward by at least a frame header, so a huge `count` cannot keep this
    // going for longer than the block lasts.
    for remaining in (0..count).rev() {
        let Some((frame, next)) = frame_at(block, offset) else {
            walked.malformed = true;
            break;
        };
        f(frame);
        walked.delivered += 1;
        if remaining == 0 {
            break;
        }
        match offset.checked_add(next) {
            Some(after) if next >= FRAME_HEADER_LEN => offset = after,
            _ => {
                walked.malformed = true;
                break;
            }
        }
    }
    walked
}

/// The frame whose header is at `offset`, and the distance to the next header.
fn frame_at(block: &[u8], offset: usize) -> Option<(Frame<'_>, usize)> {
    let header = block.get(offset..offset.checked_add(FRAME_HEADER_LEN)?)?;
    let next = read_u32(header, FRAME_NEXT)? as usize;
    let seconds = read_u32(header, FRAME_SEC)?;
    let nanos = read_u32(header, FRAME_NSEC)?;
    let snaplen = read_u32(header, FRAME_SNAPLEN)? as usize;
    let mac = read_u16(header, FRAME_MAC)? as usize;
    if nanos >= 1_000_000_000 {
        return None;
    }
    let start = offset.checked_add(mac)?;
    let data = block.get(start..start.checked_add(snaplen)?)?;
    let timestamp = SystemTime::UNIX_EPOCH.checked_add(Duration::new(u64::from(seconds), nanos))?;
    let frame = Frame {
        timestamp,
        link_type: LINKTYPE_ETHERNET,
        data,
    };
    Some((frame, next))
}

/// The ring is written by the kernel of this machine, so its integers are in native order.
fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let field = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_ne_bytes(field.try_into().ok()?))
}

fn read_u16(bytes: &[u8], at: usize) -> Option<u16> {
    let field = bytes.get(at..at.checked_add(2)?)?;
    Some(u16::from_ne_bytes(field.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;
    use std::sync::{Arc, mpsc};
    use std::thread;

    use super::*;

    // Blocks laid out as the kernel lays them out: the block header, then frames at 16-byte
    // boundaries, each a header followed by its bytes at `tp_mac`.
    const FIRST_FRAME: usize = 48;
    const MAC: usize = 82;

    fn put_u32(block: &mut [u8], at: usize, value: u32) {
        block[at..at + 4].copy_from_slice(&value.to_ne_bytes());
    }

    fn put_u16(block: &mut [u8], at: usize, value: u16) {
        block[at..at + 2].copy_from_slice(&value.to_ne_bytes());
    }

    /// A block of `len` bytes holding `frames`; returns it and where each frame header is.
    fn block_with(len: usize, frames: &[(u32, u32, &[u8])]) -> (Vec<u8>, Vec<usize>) {
        let mut block = vec![0; len];
        put_u32(&mut block, BLOCK_NUM_PKTS, frames.len() as u32);
        put_u32(&mut block, BLOCK_FIRST_PKT, FIRST_FRAME as u32);
        let mut headers = Vec::new();
        let mut offset = FIRST_FRAME;
        for (i, (seconds, nanos, data)) in frames.iter().enumerate() {
            let next = (MAC + data.len()).next_multiple_of(16);
            let last = i + 1 == frames.len();
            put_u32(
                &mut block,
                offset + FRAME_NEXT,
                if last { 0 } else { next as u32 },
            );
            put_u32(&mut block, offset + FRAME_SEC, *seconds);
            put_u32(&mut block, offset + FRAME_NSEC, *nanos);
            put_u32(&mut block, offset + FRAME_SNAPLEN, data.len() as u32);
            put_u16(&mut block, offset + FRAME_MAC, MAC as u16);
            block[offset + MAC..offset + MAC + data.len()].copy_from_slice(data);
            headers.push(offset);
            offset += next;
        }
        (block, headers)
    }

    fn three_frames() -> (Vec<u8>, Vec<usize>) {
        block_with(
            4096,
            &[
                (1_700_000_000, 1, b"first frame"),
                (1_700_000_000, 999_999_999, b"second"),
                (1_700_000_001, 0, &[0xab; 300]),
            ],
        )
    }

    fn walk(block: &[u8]) -> (Vec<(Duration, Vec<u8>)>, Walked) {
        let mut frames = Vec::new();
        let walked = frames_in_block(block, |frame| {
            assert_eq!(frame.link_type, LINKTYPE_ETHERNET);
            let since = frame
                .timestamp
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap();
            frames.push((since, frame.data.to_vec()));
        });
        assert_eq!(walked.delivered, frames.len());
        (frames, walked)
    }

    #[test]
    fn a_block_gives_its_frames_in_order_with_their_times() {
        let (block, _) = three_frames();
        let (frames, walked) = walk(&block);
        assert!(!walked.malformed);
        assert_eq!(
            frames,
            [
                (Duration::new(1_700_000_000, 1), b"first frame".to_vec()),
                (
                    Duration::new(1_700_000_000, 999_999_999),
                    b"second".to_vec()
                ),
                (Duration::new(1_700_000_001, 0), vec![0xab; 300]),
            ]
        );
    }

    #[test]
    fn a_frame_may_end_exactly_at_the_end_of_the_block() {
        let data = [7; 100];
        let (block, _) = block_with(FIRST_FRAME + MAC + data.len(), &[(1, 0, &data)]);
        let (frames, walked) = walk(&block);
        assert!(!walked.malformed);
        assert_eq!(frames, [(Duration::new(1, 0), data.to_vec())]);
    }

    #[test]
    fn an_empty_block_gives_nothing() {
        let (block, _) = block_with(4096, &[]);
        assert_eq!(
            walk(&block),
            (
                vec![],
                Walked {
                    delivered: 0,
                    malformed: false
                }
            )
        );
    }

    /// Each case spoils one value of a good three-frame block and says how many frames are
    /// still delivered before the walk stops.
    #[test]
    fn bad_offsets_and_counts_stop_the_walk_inside_the_block() {
        type Spoil = fn(&mut Vec<u8>, &[usize]);
        let cases: &[(&str, Spoil, usize)] = &[
            ("block shorter than its header", |b, _| b.truncate(10), 0),
            (
                "first frame past the end",
                |b, _| put_u32(b, BLOCK_FIRST_PKT, 5000),
                0,
            ),
            (
                "first header runs off the end",
                |b, _| put_u32(b, BLOCK_FIRST_PKT, 4076),
                0,
            ),
            (
                "first frame at u32::MAX",
                |b, _| put_u32(b, BLOCK_FIRST_PKT, u32::MAX),
                0,
            ),
            (
                "more frames counted than chained",
                |b, _| put_u32(b, BLOCK_NUM_PKTS, 1000),
                3,
            ),
            (
                "u32::MAX frames counted",
                |b, _| put_u32(b, BLOCK_NUM_PKTS, u32::MAX),
                3,
            ),
            (
                "next frame past the end",
                |b, h| put_u32(b, h[0] + FRAME_NEXT, 8000),
                1,
            ),
            (
                "next frame at u32::MAX",
                |b, h| put_u32(b, h[1] + FRAME_NEXT, u32::MAX),
                2,
            ),
            (
                "next frame inside this header",
                |b, h| put_u32(b, h[0] + FRAME_NEXT, 1),
                1,
            ),
            (
                "bytes start past the end",
                |b, h| put_u16(b, h[1] + FRAME_MAC, u16::MAX),
                1,
            ),
            (
                "bytes run past the end",
                |b, h| put_u32(b, h[2] + FRAME_SNAPLEN, 4000),
                2,
            ),
            (
                "u32::MAX bytes",
                |b, h| put_u32(b, h[0] + FRAME_SNAPLEN, u32::MAX),
                0,
            ),
            (
                "a second or more of nanoseconds",
                |b, h| put_u32(b, h[1] + FRAME_NSEC, 1_000_000_000),
                1,
            ),
        ];
        for (name, spoil, delivered) in cases {
            let (mut block, headers) = three_frames();
            spoil(&mut block, &headers);
            let (frames, walked) = walk(&block);
            assert_eq!(
                walked,
                Walked {
                    delivered: *delivered,
                    malformed: true
                },
                "{name}"
            );
            // What did come out is what was put in.
            let (good, _) = walk(&three_frames().0);
            assert_eq!(frames, good[..*delivered], "{name}");
        }
    }

    #[test]
    fn opening_an_interface_that_does_not_exist_names_it() {
        for name in ["tl-absent0", "a-name-too-long-for-any-interface"] {
            let err = LiveCapture::open(name, &LiveOptions::default()).unwrap_err();
            assert!(matches!(err, LiveError::NoSuchInterface { .. }), "{err}");
            assert_eq!(err.to_string(), format!("interface {name} does not exist"));
        }
    }

    #[test]
    fn a_ring_size_the_kernel_cannot_take_is_refused_before_anything_opens() {
        for block_count in [0, u32::MAX] {
            let options = LiveOptions {
                block_count,
                fanout: None,
            };
            let err = LiveCapture::open("tl-absent0", &options).unwrap_err();
            assert!(
                matches!(&err, LiveError::Ring { call: "PACKET_RX_RING", source, .. }
                    if source.kind() == io::ErrorKind::InvalidInput),
                "{err:?}"
            );
            assert_eq!(
                err.to_string(),
                "cannot set up the capture ring on tl-absent0 (PACKET_RX_RING)"
            );
        }
    }

    #[test]
    fn captures_every_datagram_a_phone_sends_past_a_span_port() {
        if !privileged("captures_every_datagram_a_phone_sends_past_a_span_port") {
            return;
        }
        let net = TestNet::create("one");
        let workers = rig::run(&net, &[LiveOptions::default()], 1);
        let worker = &workers[0];
        eprintln!(
            "captured {} datagrams in {} blocks; kernel counts {:?}",
            worker.datagrams.len(),
            worker.blocks,
            worker.stats
        );
        rig::assert_each_captured_once(&workers);
        assert!(
            worker.stats.packets >= u64::from(rig::DATAGRAMS),
            "{:?}",
            worker.stats
        );
        assert_eq!(worker.stats.drops, 0, "{:?}", worker.stats);
        assert_eq!(worker.stats.malformed_blocks, 0, "{:?}", worker.stats);
    }

    #[test]
    fn fanout_workers_share_the_interface_one_flow_each() {
        if !privileged("fanout_workers_share_the_interface_one_flow_each") {
            return;
        }
        let net = TestNet::create("fan");
        let options = LiveOptions {
            block_count: 4,
            fanout: Some(7),
        };
        let workers = rig::run(&net, &[options, options], 8);
        for (i, worker) in workers.iter().enumerate() {
            eprintln!(
                "worker {i} captured {} datagrams; kernel counts {:?}",
                worker.datagrams.len(),
                worker.stats
            );
            assert_eq!(worker.stats.drops, 0, "{:?}", worker.stats);
        }
        rig::assert_each_captured_once(&workers);
        // A flow is one source port here, and all of it must reach the same worker.
        for port in rig::source_ports(&workers[0]) {
            assert!(
                !rig::source_ports(&workers[1]).contains(&port),
                "flow from port {port} was split between workers"
            );
        }
    }

    #[test]
    fn frames_the_ring_had_no_room_for_are_counted_as_drops() {
        if !privileged("frames_the_ring_had_no_room_for_are_counted_as_drops") {
            return;
        }
        let net = TestNet::create("full");
        let seen = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicBool::new(false));
        let (opened_tx, opened_rx) = mpsc::channel();
        let capture = {
            let (namespace, seen, sent) = (net.capture_ns.clone(), seen.clone(), sent.clone());
            thread::spawn(move || {
                enter(&namespace);
                // One block: far less than the phone is about to send.
                let options = LiveOptions {
                    block_count: 1,
                    fanout: None,
                };
                let mut live = LiveCapture::open(rig::SPAN, &options).expect("should open span0");
                opened_tx.send(()).expect("the phone should wait for us");
                let mut delivered = 0;
                let give_up = Instant::now() + Duration::from_secs(10);
                while !seen.load(Ordering::Acquire) && Instant::now() < give_up {
                    delivered += live
                        .next_block(Duration::from_millis(200), |frame| {
                            if rig::is_probe(frame.data) {
                                seen.store(true, Ordering::Release);
                            }
                        })
                        .expect("capture should go on");
                }
                // Fall behind on purpose until the burst is over, then catch up.
                while !sent.load(Ordering::Acquire) && Instant::now() < give_up {
                    thread::sleep(Duration::from_millis(10));
                }
                loop {
                    let frames = live
                        .next_block(Duration::from_millis(200), |_| {})
                        .expect("capture should go on");
                    if frames == 0 {
                        break;
                    }
                    delivered += frames;
                }
                let first = live.stats().expect("should read the counts");
                let second = live.stats().expect("should read the counts again");
                (delivered, first, second)
            })
        };
        let phone = {
            let namespace = net.phone_ns.clone();
            thread::spawn(move || {
                enter(&namespace);
                let socket = rig::phone_socket();
                opened_rx.recv().expect("the capture should open");
                rig::probe_until_seen(&socket, &seen);
                for _ in 0..2000 {
                    socket
                        .send_to(&[0x55; 1400], rig::PEER)
                        .expect("should send");
                }
                sent.store(true, Ordering::Release);
            })
        };
        let phone = phone.join();
        let (delivered, first, second) = capture.join().expect("the capture failed");
        phone.expect("the phone failed");
        eprintln!("delivered {delivered} frames; kernel counts {first:?}");

        assert!(first.drops > 0, "{first:?}");
        assert!(first.freezes > 0, "{first:?}");
        // Every frame the kernel had was either delivered or counted as dropped.
        assert_eq!(first.packets, delivered as u64 + first.drops, "{first:?}");
        // The kernel resets its counts when read; ours carry on.
        assert!(
            second.packets >= first.packets,
            "{second:?} after {first:?}"
        );
        assert_eq!(second.drops, first.drops, "{second:?} after {first:?}");
    }

    #[test]
    fn a_link_going_down_is_reported_and_the_capture_resumes_when_it_is_back() {
        if !privileged("a_link_going_down_is_reported_and_the_capture_resumes_when_it_is_back") {
            return;
        }
        let net = TestNet::create("flap");
        let seen = Arc::new(AtomicBool::new(false));
        let (up_tx, up_rx) = mpsc::channel();
        let capture = {
            let (namespace, seen) = (net.capture_ns.clone(), seen.clone());
            thread::spawn(move || {
                enter(&namespace);
                let mut live = LiveCapture::open(rig::SPAN, &LiveOptions::default())
                    .expect("should open span0");
                ip(&["-n", &namespace, "link", "set", rig::SPAN, "down"]);
                // Frames from before the link went down may come first.
                let give_up = Instant::now() + Duration::from_secs(10);
                let err = loop {
                    assert!(
                        Instant::now() < give_up,
                        "the link going down was not reported"
                    );
                    if let Err(err) = live.next_block(Duration::from_millis(200), |_| {}) {
                        break err;
                    }
                };
                assert!(
                    matches!(&err, LiveError::Interrupted { interface, source }
                        if interface == rig::SPAN && source.kind() == io::ErrorKind::NetworkDown),
                    "{err:?}"
                );
                assert_eq!(err.to_string(), "capture on span0 was interrupted");
                // Reported once, not on every call after.
                let frames = live.next_block(Duration::ZERO, |_| {});
                assert!(matches!(frames, Ok(0)), "{frames:?}");

                ip(&["-n", &namespace, "link", "set", rig::SPAN, "up"]);
                up_tx.send(()).expect("the phone should wait for the link");
                while !seen.load(Ordering::Acquire) && Instant::now() < give_up {
                    live.next_block(Duration::from_millis(200), |frame| {
                        if rig::is_probe(frame.data) {
                            seen.store(true, Ordering::Release);
                        }
                    })
                    .expect("capture should go on once the link is back");
                }
            })
        };
        let phone = {
            let namespace = net.phone_ns.clone();
            thread::spawn(move || {
                enter(&namespace);
                let socket = rig::phone_socket();
                up_rx
                    .recv()
                    .expect("the capture should bring the link back up");
                rig::probe_until_seen(&socket, &seen);
            })
        };
        let phone = phone.join();
        capture.join().expect("the capture failed");
        phone.expect("the phone failed");
    }

    /// Whether to go on with a test that needs root; without root it fails, unless told to skip.
    fn privileged(test: &str) -> bool {
        if rustix::process::geteuid().is_root() {
            return true;
        }
        let needs = "root (CAP_NET_ADMIN to create network namespaces and a veth pair, \
                     CAP_NET_RAW to capture)";
        if std::env::var_os("TAPLINE_SKIP_PRIVILEGED").is_some_and(|v| v == "1") {
            eprintln!("SKIPPED: {test} needs {needs}; TAPLINE_SKIP_PRIVILEGED=1 is set");
            return false;
        }
        panic!(
            "{test} needs {needs}. Run it as root, or set TAPLINE_SKIP_PRIVILEGED=1 to skip it."
        );
    }

    /// Two network namespaces of our own joined by a veth pair: `phone0`, where a phone sends
    /// from, and `span0`, the capture port. `span0` has no address, like a SPAN port, and the
    /// phone's peer 192.0.2.2 is reached through a MAC address no one has, like traffic
    /// mirrored from elsewhere: only a promiscuous capture sees it. Both namespaces, and the
    /// veth pair with them, are deleted on drop.
    struct TestNet {
        capture_ns: String,
        phone_ns: String,
    }

    impl TestNet {
        fn create(tag: &str) -> TestNet {
            let pid = std::process::id();
            let net = TestNet {
                capture_ns: format!("tapline-live-{pid}-{tag}-a"),
                phone_ns: format!("tapline-live-{pid}-{tag}-b"),
            };
            let (a, b) = (net.capture_ns.as_str(), net.phone_ns.as_str());
            let peer_mac = rig::PEER_MAC.map(|byte| format!("{byte:02x}")).join(":");
            ip(&["netns", "add", a]);
            ip(&["netns", "add", b]);
            ip(&[
                "-n",
                a,
                "link",
                "add",
                rig::SPAN,
                "type",
                "veth",
                "peer",
                "name",
                rig::PHONE,
                "netns",
                b,
            ]);
            // No IPv6 link-local addresses, so neither end sends frames of its own accord
            // and every frame a test sees is one it sent.
            ip(&[
                "-n",
                a,
                "link",
                "set",
                rig::SPAN,
                "addrgenmode",
                "none",
                "up",
            ]);
            ip(&["-n", b, "address", "add", "192.0.2.1/24", "dev", rig::PHONE]);
            ip(&[
                "-n",
                b,
                "link",
                "set",
                rig::PHONE,
                "addrgenmode",
                "none",
                "up",
            ]);
            ip(&[
                "-n",
                b,
                "neighbour",
                "add",
                "192.0.2.2",
                "lladdr",
                &peer_mac,
                "dev",
                rig::PHONE,
                "nud",
                "permanent",
            ]);
            net
        }
    }

    impl Drop for TestNet {
        fn drop(&mut self) {
            for namespace in [&self.capture_ns, &self.phone_ns] {
                let deleted = std::process::Command::new("ip")
                    .args(["netns", "delete", namespace])
                    .status();
                if !deleted.as_ref().is_ok_and(|status| status.success()) {
                    eprintln!("could not delete network namespace {namespace}: {deleted:?}");
                }
            }
        }
    }

    fn ip(args: &[&str]) {
        let output = std::process::Command::new("ip")
            .args(args)
            .output()
            .expect("iproute2's ip should run");
        assert!(
            output.status.success(),
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Moves the calling thread, and only it, into a namespace made by `ip netns add`.
    fn enter(namespace: &str) {
        let file = std::fs::File::open(std::path::Path::new("/run/netns").join(namespace))
            .expect("the namespace should exist");
        rustix::thread::move_into_link_name_space(
            file.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .expect("should enter the namespace");
    }

    /// A phone sending datagrams past capture workers, each on a thread of its own.
    mod rig {
        use std::collections::BTreeSet;
        use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};

        use super::*;

        pub(super) const SPAN: &str = "span0";
        pub(super) const PHONE: &str = "phone0";
        /// The peer's MAC address: locally administered, and no interface of ours has it.
        pub(super) const PEER_MAC: [u8; 6] = [0x02, 0x54, 0x4c, 0x00, 0x00, 0x02];
        pub(super) const DATAGRAMS: u32 = 2000;
        const PHONE_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
        pub(super) const PEER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 2), 5060);
        /// Sent until a worker sees one, to know the link carries frames before counting.
        const PROBE: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 2), 9);
        const PAYLOAD_LEN: usize = 172;

        pub(super) struct Worker {
            /// Sequence number, source port and capture time of each datagram, as captured.
            pub(super) datagrams: Vec<(u32, u16, SystemTime)>,
            /// The clock just before the capture opened and just after it ended.
            pub(super) open_from: SystemTime,
            pub(super) open_until: SystemTime,
            pub(super) blocks: usize,
            pub(super) stats: LiveStats,
        }

        /// Sends [`DATAGRAMS`] datagrams to [`PEER`] from `flows` source ports in turn, while
        /// one worker per `options` captures on `span0`; returns what each worker saw.
        pub(super) fn run(net: &TestNet, options: &[LiveOptions], flows: u32) -> Vec<Worker> {
            let probe_seen = Arc::new(AtomicBool::new(false));
            let sent = Arc::new(AtomicBool::new(false));
            let (opened_tx, opened_rx) = mpsc::channel();
            let workers: Vec<_> = options
                .iter()
                .map(|&options| {
                    let namespace = net.capture_ns.clone();
                    let (probe_seen, sent) = (probe_seen.clone(), sent.clone());
                    let opened = opened_tx.clone();
                    thread::spawn(move || {
                        enter(&namespace);
                        let open_from = SystemTime::now();
                        let live = LiveCapture::open(SPAN, &options).expect("should open span0");
                        opened.send(()).expect("the sender should wait for us");
                        capture(live, open_from, &probe_seen, &sent)
                    })
                })
                .collect();
            drop(opened_tx);

            let namespace = net.phone_ns.clone();
            let workers_len = workers.len();
            let sender = thread::spawn(move || {
                enter(&namespace);
                let sockets: Vec<_> = (0..flows).map(|_| phone_socket()).collect();
                for _ in 0..workers_len {
                    opened_rx
                        .recv_timeout(Duration::from_secs(30))
                        .expect("every worker should open its capture");
                }
                probe_until_seen(&sockets[0], &probe_seen);
                for seq in 0..DATAGRAMS {
                    let socket = &sockets[(seq % flows) as usize];
                    socket.send_to(&payload(seq), PEER).expect("should send");
                }
                sent.store(true, Ordering::Release);
            });

            let sent_result = sender.join();
            let workers: Vec<Worker> = workers
                .into_iter()
                .map(|worker| worker.join().expect("a capture worker failed"))
                .collect();
            sent_result.expect("the sender failed");
            workers
        }

        /// Captures until the phone has sent everything and a wait then comes up empty.
        fn capture(
            mut live: LiveCapture,
            open_from: SystemTime,
            probe_seen: &AtomicBool,
            sent: &AtomicBool,
        ) -> Worker {
            let mut worker = Worker {
                datagrams: Vec::new(),
                open_from,
                open_until: open_from,
                blocks: 0,
                stats: LiveStats::default(),
            };
            let give_up = Instant::now() + Duration::from_secs(30);
            while Instant::now() < give_up {
                let sent_before = sent.load(Ordering::Acquire);
                let frames = live
                    .next_block(Duration::from_millis(200), |frame| {
                        match udp_in(frame.data) {
                            Some((_, _, to, _)) if to == PROBE => {
                                probe_seen.store(true, Ordering::Release);
                            }
                            Some((mac, from, to, data)) if to == PEER => {
                                assert_eq!(mac, PEER_MAC, "sent to the peer's MAC address");
                                assert_eq!(*from.ip(), PHONE_IP);
                                let seq = u32::from_be_bytes(
                                    data[..4].try_into().expect("payload has a sequence number"),
                                );
                                assert_eq!(data, payload(seq), "datagram {seq}");
                                worker.datagrams.push((seq, from.port(), frame.timestamp));
                            }
                            _ => {}
                        }
                    })
                    .expect("capture should go on");
                if frames > 0 {
                    worker.blocks += 1;
                } else if sent_before {
                    break;
                }
            }
            worker.stats = live.stats().expect("should read the counts");
            worker.open_until = SystemTime::now();
            worker
        }

        /// Sends probes from `socket` until a capture says it saw one: then the link is known to
        /// carry frames.
        pub(super) fn probe_until_seen(socket: &UdpSocket, seen: &AtomicBool) {
            let started = Instant::now();
            while !seen.load(Ordering::Acquire) {
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "no probe reached the capture in 10 s"
                );
                socket
                    .send_to(b"probe", PROBE)
                    .expect("should send a probe");
                thread::sleep(Duration::from_millis(10));
            }
        }

        pub(super) fn is_probe(frame: &[u8]) -> bool {
            udp_in(frame).is_some_and(|(_, _, to, _)| to == PROBE)
        }

        /// A socket to send from as the phone; call on a thread in the phone's namespace.
        pub(super) fn phone_socket() -> UdpSocket {
            UdpSocket::bind((PHONE_IP, 0)).expect("should bind in the phone's namespace")
        }

        pub(super) fn assert_each_captured_once(workers: &[Worker]) {
            let mut times = vec![0u32; DATAGRAMS as usize];
            for worker in workers {
                for &(seq, _, _) in &worker.datagrams {
                    times[seq as usize] += 1;
                }
                // In the order captured, each stamp is later than the one before, and all are
                // times the capture was open.
                for pair in worker.datagrams.windows(2) {
                    assert!(pair[0].2 < pair[1].2, "stamps out of order: {pair:?}");
                }
                let open = worker.open_from..=worker.open_until;
                for datagram in &worker.datagrams {
                    assert!(open.contains(&datagram.2), "{datagram:?} outside {open:?}");
                }
            }
            let missing: Vec<_> = (0..DATAGRAMS).filter(|&s| times[s as usize] == 0).collect();
            let repeated: Vec<_> = (0..DATAGRAMS).filter(|&s| times[s as usize] > 1).collect();
            assert!(
                missing.is_empty() && repeated.is_empty(),
                "{} datagrams missing {missing:?}, {} captured more than once {repeated:?}",
                missing.len(),
                repeated.len()
            );
        }

        pub(super) fn source_ports(worker: &Worker) -> BTreeSet<u16> {
            worker.datagrams.iter().map(|&(_, port, _)| port).collect()
        }

        /// Sequence number first, then bytes that differ from datagram to datagram.
        fn payload(seq: u32) -> Vec<u8> {
            let mut payload = seq.to_be_bytes().to_vec();
            payload.extend((0..PAYLOAD_LEN - 4).map(|i| (seq as usize * 31 + i) as u8));
            payload
        }

        /// Destination MAC address, source, destination and payload of a UDP datagram in an
        /// Ethernet frame.
        fn udp_in(frame: &[u8]) -> Option<([u8; 6], SocketAddrV4, SocketAddrV4, &[u8])> {
            let be16 = |bytes: &[u8], at: usize| {
                Some(u16::from_be_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
            };
            let destination_mac = frame.get(..6)?.try_into().ok()?;
            if be16(frame, 12)? != 0x0800 {
                return None;
            }
            let ip = frame.get(14..)?;
            if *ip.get(9)? != 17 {
                return None;
            }
            let address = |at: usize| {
                Some(Ipv4Addr::from(
                    <[u8; 4]>::try_from(ip.get(at..at + 4)?).ok()?,
                ))
            };
            let udp = ip.get(usize::from(ip.first()? & 0x0f) * 4..)?;
            let len = usize::from(be16(udp, 4)?);
            Some((
                destination_mac,
                SocketAddrV4::new(address(12)?, be16(udp, 0)?),
                SocketAddrV4::new(address(16)?, be16(udp, 2)?),
                udp.get(8..len)?,
            ))
        }
    }
}
