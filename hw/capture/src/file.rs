//! Reading capture files: classic pcap (either byte order, micro- or nanosecond stamps) and
//! pcapng, told apart by their first four bytes rather than by the file name.

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::{Block, PcapNgReader};

use crate::Frame;

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("cannot open capture file {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a pcap or pcapng file", path.display())]
    NotACapture { path: PathBuf },
    #[error("capture file {} is damaged after {frames} frames", path.display())]
    Damaged {
        path: PathBuf,
        frames: u64,
        #[source]
        source: pcap_file::PcapError,
    },
    #[error("capture file {} names interface {interface}, which it never described", path.display())]
    UnknownInterface { path: PathBuf, interface: u32 },
}

/// A capture file being read, frame by frame.
pub struct CaptureFile {
    path: PathBuf,
    frames: u64,
    format: Format,
}

enum Format {
    Pcap {
        reader: PcapReader<Box<dyn Read + Send>>,
        link_type: u32,
    },
    PcapNg {
        reader: PcapNgReader<Box<dyn Read + Send>>,
        link_types: Vec<u32>,
    },
}

const PCAP_MAGICS: [[u8; 4]; 4] = [
    [0xd4, 0xc3, 0xb2, 0xa1],
    [0xa1, 0xb2, 0xc3, 0xd4],
    [0x4d, 0x3c, 0xb2, 0xa1],
    [0xa1, 0xb2, 0x3c, 0x4d],
];
const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];

impl CaptureFile {
    pub fn open(path: &Path) -> Result<CaptureFile, CaptureError> {
        let file = std::fs::File::open(path).map_err(|source| CaptureError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        CaptureFile::from_reader(path, BufReader::with_capacity(1 << 16, file))
    }

    /// Reads a capture held in memory; `name` is used in messages.
    pub fn from_bytes(
        name: &Path,
        bytes: impl AsRef<[u8]> + Send + 'static,
    ) -> Result<CaptureFile, CaptureError> {
        CaptureFile::from_reader(name, std::io::Cursor::new(bytes))
    }

    fn from_reader(
        path: &Path,
        mut reader: impl Read + Send + 'static,
    ) -> Result<CaptureFile, CaptureError> {
        let not_capture = || CaptureError::NotACapture {
            path: path.to_path_buf(),
        };
        let mut magic = [0u8; 4];
        reader.read_exact(&mut magic).map_err(|_| not_capture())?;
        let reader: Box<dyn Read + Send> = Box::new(std::io::Cursor::new(magic).chain(reader));
        let damaged = |source| CaptureError::Damaged {
            path: path.to_path_buf(),
            frames: 0,
            source,
        };
        let format = if PCAP_MAGICS.contains(&magic) {
            let reader = PcapReader::new(reader).map_err(damaged)?;
            let link_type = u32::from(reader.header().datalink);
            Format::Pcap { reader, link_type }
        } else if magic == PCAPNG_MAGIC {
            let reader = PcapNgReader::new(reader).map_err(damaged)?;
            Format::PcapNg {
                reader,
                link_types: Vec::new(),
            }
        } else {
            return Err(not_capture());
        };
        Ok(CaptureFile {
            path: path.to_path_buf(),
            frames: 0,
            format,
        })
    }

    /// Frames read so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Hands the next frame to `f`; `Ok(false)` at the end of the file. A truncated or damaged
    /// file ends in an error that says how many frames were good.
    pub fn next_frame(&mut self, f: impl FnOnce(Frame<'_>)) -> Result<bool, CaptureError> {
        let damaged = |frames, source| CaptureError::Damaged {
            path: self.path.clone(),
            frames,
            source,
        };
        match &mut self.format {
            Format::Pcap { reader, link_type } => match reader.next_packet() {
                None => Ok(false),
                Some(Err(source)) => Err(damaged(self.frames, source)),
                Some(Ok(packet)) => {
                    f(Frame {
                        timestamp: SystemTime::UNIX_EPOCH + packet.timestamp,
                        link_type: *link_type,
                        data: &packet.data,
                    });
                    self.frames += 1;
                    Ok(true)
                }
            },
            Format::PcapNg { reader, link_types } => loop {
                let block = match reader.next_block() {
                    None => return Ok(false),
                    Some(Err(source)) => return Err(damaged(self.frames, source)),
                    Some(Ok(block)) => block,
                };
                let (interface, timestamp, data) = match block {
                    Block::SectionHeader(_) => {
                        // A new section starts a new numbering of interfaces.
                        link_types.clear();
                        continue;
                    }
                    Block::InterfaceDescription(description) => {
                        link_types.push(u32::from(description.linktype));
                        continue;
                    }
                    Block::EnhancedPacket(packet) => {
                        (packet.interface_id, packet.timestamp, packet.data)
                    }
                    Block::SimplePacket(packet) => (0, Duration::ZERO, packet.data),
                    _ => continue,
                };
                let Some(&link_type) = link_types.get(interface as usize) else {
                    return Err(CaptureError::UnknownInterface {
                        path: self.path.clone(),
                        interface,
                    });
                };
                f(Frame {
                    timestamp: SystemTime::UNIX_EPOCH + timestamp,
                    link_type,
                    data: &data,
                });
                self.frames += 1;
                return Ok(true);
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use pcap_file::DataLink;
    use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};

    use super::*;

    fn pcap_with(frames: &[(u64, &[u8])]) -> Vec<u8> {
        let header = PcapHeader {
            datalink: DataLink::ETHERNET,
            ..Default::default()
        };
        let mut writer = PcapWriter::with_header(Vec::new(), header).unwrap();
        for (micros, data) in frames {
            let packet = PcapPacket {
                timestamp: Duration::from_micros(*micros),
                orig_len: data.len() as u32,
                data: Cow::Borrowed(data),
            };
            writer.write_packet(&packet).unwrap();
        }
        writer.into_writer()
    }

    fn read_all(file: &mut CaptureFile) -> Result<Vec<(u64, u32, Vec<u8>)>, CaptureError> {
        let mut out = Vec::new();
        loop {
            let mut frame = None;
            if !file.next_frame(|f| {
                let micros = f.timestamp.duration_since(SystemTime::UNIX_EPOCH).unwrap();
                frame = Some((micros.as_micros() as u64, f.link_type, f.data.to_vec()));
            })? {
                return Ok(out);
            }
            out.extend(frame);
        }
    }

    #[test]
    fn reads_every_frame_with_its_time_and_link_type() {
        let bytes = pcap_with(&[(1_000_000, b"first"), (1_020_000, b"second")]);
        let mut file = CaptureFile::from_bytes(Path::new("t.pcap"), bytes).unwrap();
        let frames = read_all(&mut file).unwrap();
        assert_eq!(
            frames,
            [
                (1_000_000, 1, b"first".to_vec()),
                (1_020_000, 1, b"second".to_vec())
            ]
        );
        assert_eq!(file.frames(), 2);
    }

    #[test]
    fn a_truncated_file_says_how_far_it_got() {
        let mut bytes = pcap_with(&[(1, b"complete frame"), (2, b"this one is cut short")]);
        bytes.truncate(bytes.len() - 5);
        let mut file = CaptureFile::from_bytes(Path::new("cut.pcap"), bytes).unwrap();
        let err = read_all(&mut file).unwrap_err();
        assert!(
            matches!(err, CaptureError::Damaged { frames: 1, .. }),
            "{err}"
        );
        assert!(
            err.to_string()
                .starts_with("capture file cut.pcap is damaged after 1 frames")
        );
    }

    #[test]
    fn other_files_are_not_captures() {
        for bytes in [b"GIF89a....".to_vec(), b"ab".to_vec(), Vec::new()] {
            let err = CaptureFile::from_bytes(Path::new("x"), bytes)
                .err()
                .unwrap();
            assert!(matches!(err, CaptureError::NotACapture { .. }), "{err}");
        }
    }
}
