//! The WAV files recordings are written to: written while the call runs, valid after every
//! [`WavWriter::sync_header`], and repairable after a crash.
//!
//! # Layout
//!
//! Our files hold exactly these chunks, in this order, and nothing after the audio:
//!
//! | Format | Chunks | Header bytes |
//! |--------|--------|--------------|
//! | [`SampleFormat::Pcm16`] | `RIFF`/`WAVE`, `fmt ` (16 bytes), `data` | 44 |
//! | [`SampleFormat::MuLaw`], [`SampleFormat::ALaw`] | `RIFF`/`WAVE`, `fmt ` (18 bytes, `cbSize` 0), `fact`, `data` | 58 |
//!
//! Non-PCM formats carry the `WAVEFORMATEX` fmt chunk and a `fact` chunk with the number of
//! frames because Windows' readers expect both. When the audio has an odd number of bytes
//! (8-bit, odd channel count × frames) a pad byte follows it, as RIFF chunks are word-aligned.
//!
//! # Crash safety
//!
//! **Invariant:** once `sync_header` has returned, the header describes exactly the audio
//! written before it, and the file is a valid WAV file up to that point: the sizes are only
//! written after the audio they count, and later audio goes after the counted bytes, which
//! readers ignore. The writer holds at most its buffer's worth of audio
//! ([`WavWriter::with_buffer`]); `sync_header` writes it out and flushes `W`, and the caller
//! then makes the file durable (`File::sync_data` through [`WavWriter::get_ref`]). Doing both
//! about once a second bounds what a power cut can lose.
//!
//! A file left behind by a crash holds a header from the last durable sync, possibly followed
//! by more audio and a partial frame, or (if the crash came between a sync and its fsync) a
//! header that counts audio that never reached the disk. [`read_info`] reports the latter as
//! [`WavError::Truncated`]. [`repair`] handles both: it recounts the audio from the file
//! length, drops the partial frame and rewrites the sizes.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};

/// How samples are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SampleFormat {
    /// 16-bit little-endian linear PCM (`WAVE_FORMAT_PCM`, 1).
    Pcm16,
    /// 8-bit G.711 µ-law (`WAVE_FORMAT_MULAW`, 7).
    MuLaw,
    /// 8-bit G.711 A-law (`WAVE_FORMAT_ALAW`, 6).
    ALaw,
}

impl SampleFormat {
    /// The `wFormatTag` of the fmt chunk.
    pub const fn format_tag(self) -> u16 {
        match self {
            SampleFormat::Pcm16 => 1,
            SampleFormat::ALaw => 6,
            SampleFormat::MuLaw => 7,
        }
    }

    /// Bytes per sample of one channel.
    pub const fn bytes_per_sample(self) -> u16 {
        match self {
            SampleFormat::Pcm16 => 2,
            SampleFormat::MuLaw | SampleFormat::ALaw => 1,
        }
    }

    const fn from_tag(format_tag: u16, bits_per_sample: u16) -> Option<Self> {
        match (format_tag, bits_per_sample) {
            (1, 16) => Some(SampleFormat::Pcm16),
            (6, 8) => Some(SampleFormat::ALaw),
            (7, 8) => Some(SampleFormat::MuLaw),
            _ => None,
        }
    }

    /// The fmt chunk body length: plain `PCMWAVEFORMAT` for PCM, `WAVEFORMATEX` otherwise.
    const fn fmt_len(self) -> u32 {
        match self {
            SampleFormat::Pcm16 => 16,
            SampleFormat::MuLaw | SampleFormat::ALaw => 18,
        }
    }

    const fn has_fact(self) -> bool {
        !matches!(self, SampleFormat::Pcm16)
    }

    /// Bytes before the audio in the files we write: 44 for PCM, 58 otherwise.
    const fn header_len(self) -> u64 {
        let fact = if self.has_fact() {
            CHUNK_HEADER_LEN + 4
        } else {
            0
        };
        RIFF_HEADER_LEN + CHUNK_HEADER_LEN + self.fmt_len() as u64 + fact + CHUNK_HEADER_LEN
    }
}

/// The shape of the audio in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WavSpec {
    pub format: SampleFormat,
    pub channels: u16,
    pub sample_rate: u32,
}

impl WavSpec {
    /// Bytes per frame (one sample of every channel), if it fits the header's 16 bits.
    pub fn block_align(&self) -> Option<u16> {
        self.channels.checked_mul(self.format.bytes_per_sample())
    }

    /// Checks the spec can be written and returns its block alignment.
    fn validate(&self) -> Result<u16, WavError> {
        if self.channels == 0 {
            return Err(WavError::InvalidSpec("no channels"));
        }
        if self.sample_rate == 0 {
            return Err(WavError::InvalidSpec("sample rate is zero"));
        }
        let block_align = self
            .block_align()
            .ok_or(WavError::InvalidSpec("too many channels for a frame"))?;
        if self
            .sample_rate
            .checked_mul(u32::from(block_align))
            .is_none()
        {
            return Err(WavError::InvalidSpec("byte rate does not fit in 32 bits"));
        }
        Ok(block_align)
    }
}

/// What [`read_info`] found in a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavInfo {
    pub spec: WavSpec,
    /// Where the audio starts.
    pub data_offset: u64,
    /// Audio bytes, as the header says (without any pad byte).
    pub data_len: u64,
    /// Whole frames in the audio.
    pub frames: u64,
}

/// What [`repair`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepairOutcome {
    /// Frames in the file now.
    pub frames: u64,
    /// The file was already a finished, consistent file, and was left untouched.
    pub was_consistent: bool,
    /// Bytes cut from the end: a partial frame, or anything beyond the RIFF size limit.
    pub truncated_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum WavError {
    #[error("WAV I/O failed")]
    Io(#[from] io::Error),
    #[error("invalid WAV spec: {0}")]
    InvalidSpec(&'static str),
    #[error("{method} does not match the {format:?} sample format")]
    WrongSampleType {
        format: SampleFormat,
        method: &'static str,
    },
    #[error("{samples} samples are not a whole number of {channels}-channel frames")]
    PartialFrame { samples: usize, channels: u16 },
    #[error("audio would exceed the 4 GiB limit of a RIFF file")]
    TooLarge,
    #[error("an earlier write failed; the file must be repaired")]
    Poisoned,
    #[error("not a RIFF/WAVE file: {0}")]
    NotWav(&'static str),
    #[error("malformed WAV file: {0}")]
    Malformed(&'static str),
    #[error("unsupported WAV format: tag {format_tag}, {bits_per_sample} bits per sample")]
    Unsupported {
        format_tag: u16,
        bits_per_sample: u16,
    },
    #[error("the header declares {declared} bytes of audio but the file holds {available}")]
    Truncated { declared: u64, available: u64 },
}

/// Writes a WAV file as audio arrives. See the [module docs](self) for the crash-safety
/// contract. Dropping the writer without [`finish`](WavWriter::finish) leaves the header of
/// the last sync and discards the audio still buffered, as a crash would.
#[derive(Debug)]
pub struct WavWriter<W: Write + Seek> {
    inner: W,
    spec: WavSpec,
    block_align: u16,
    /// Stream position of the `RIFF` tag: the file may start anywhere in `W`.
    start: u64,
    /// Audio bytes written so far, pad excluded.
    data_len: u64,
    /// Set when an I/O error left the stream position unknown; every later call fails.
    poisoned: bool,
    /// Audio counted in `data_len` and not yet written to `W`, in file byte order.
    pending: Vec<u8>,
    /// How many bytes `pending` may hold before they are written out.
    buffer: usize,
}

impl<W: Write + Seek> WavWriter<W> {
    /// Writes the header of an empty file at the current position of `inner`. Audio goes to
    /// `inner` as it is handed over; `inner` may buffer it.
    pub fn new(inner: W, spec: WavSpec) -> Result<Self, WavError> {
        WavWriter::with_buffer(inner, spec, 0)
    }

    /// Like [`new`](WavWriter::new), and holds up to `buffer` bytes of audio before writing
    /// them to `inner` in one write. Samples are converted to the file's byte order straight
    /// into this buffer, so an unbuffered `inner` (a `File`) needs no buffer of its own.
    pub fn with_buffer(mut inner: W, spec: WavSpec, buffer: usize) -> Result<Self, WavError> {
        let block_align = spec.validate()?;
        let start = inner.stream_position()?;
        inner.write_all(&header_bytes(spec, block_align, 0))?;
        Ok(WavWriter {
            inner,
            spec,
            block_align,
            start,
            data_len: 0,
            poisoned: false,
            pending: Vec::with_capacity(buffer),
            buffer,
        })
    }

    /// Appends interleaved 16-bit frames. Only for [`SampleFormat::Pcm16`].
    pub fn write_frames_i16(&mut self, interleaved: &[i16]) -> Result<(), WavError> {
        self.check_write(2, "write_frames_i16", interleaved.len())?;
        self.append_with(interleaved.len() * 2, |bytes| {
            // A loop over fixed-size pairs, which the compiler turns into plain copies on
            // little-endian machines.
            for (pair, sample) in bytes.chunks_exact_mut(2).zip(interleaved) {
                pair.copy_from_slice(&sample.to_le_bytes());
            }
        })
    }

    /// Appends interleaved 8-bit frames. Only for [`SampleFormat::MuLaw`] and
    /// [`SampleFormat::ALaw`].
    pub fn write_frames_u8(&mut self, interleaved: &[u8]) -> Result<(), WavError> {
        self.check_write(1, "write_frames_u8", interleaved.len())?;
        self.append_with(interleaved.len(), |bytes| {
            bytes.copy_from_slice(interleaved)
        })
    }

    /// Writes out the buffered audio, rewrites the sizes in the header to cover all of it,
    /// writes the pad byte if the audio has odd length, flushes `W` and returns to the end of
    /// the audio.
    /// After this (and an fsync by the caller) the file is valid as it stands.
    pub fn sync_header(&mut self) -> Result<(), WavError> {
        if self.poisoned {
            return Err(WavError::Poisoned);
        }
        let result = self.write_sizes();
        if result.is_err() {
            self.poisoned = true;
        }
        result.map_err(WavError::Io)
    }

    /// Syncs the header a last time and returns `W`, positioned after the pad byte if any.
    /// The caller fsyncs.
    pub fn finish(mut self) -> Result<W, WavError> {
        self.sync_header()?;
        let pad = self.data_len & 1;
        if pad != 0 {
            self.inner.seek(SeekFrom::Current(1))?;
        }
        Ok(self.inner)
    }

    pub fn frames_written(&self) -> u64 {
        self.data_len / u64::from(self.block_align)
    }

    pub fn spec(&self) -> WavSpec {
        self.spec
    }

    /// The underlying stream, for instance to fsync the file after a sync.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    fn check_write(
        &self,
        bytes_per_sample: u16,
        method: &'static str,
        samples: usize,
    ) -> Result<(), WavError> {
        if self.poisoned {
            return Err(WavError::Poisoned);
        }
        if self.spec.format.bytes_per_sample() != bytes_per_sample {
            return Err(WavError::WrongSampleType {
                format: self.spec.format,
                method,
            });
        }
        if !samples.is_multiple_of(usize::from(self.spec.channels)) {
            return Err(WavError::PartialFrame {
                samples,
                channels: self.spec.channels,
            });
        }
        Ok(())
    }

    /// Appends `len` bytes of audio, which `fill` writes in place at the end of the buffer.
    /// The buffer is written out first when they would not fit, or with them when they are
    /// more than it holds.
    fn append_with(&mut self, len: usize, fill: impl FnOnce(&mut [u8])) -> Result<(), WavError> {
        let new_len = u64::try_from(len)
            .ok()
            .and_then(|len| self.data_len.checked_add(len))
            .filter(|&len| riff_size(self.spec.format.header_len(), len).is_some())
            .ok_or(WavError::TooLarge)?;
        if self.pending.len() + len > self.buffer && len <= self.buffer {
            self.write_pending().map_err(WavError::Io)?;
        }
        let start = self.pending.len();
        self.pending.resize(start + len, 0);
        fill(&mut self.pending[start..]);
        if self.pending.len() > self.buffer {
            self.write_pending().map_err(WavError::Io)?;
        }
        self.data_len = new_len;
        Ok(())
    }

    /// Writes the buffered audio to `W`.
    fn write_pending(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let written = self.inner.write_all(&self.pending);
        self.pending.clear();
        if written.is_err() {
            // Part of the audio may be in the file: the position no longer matches
            // `data_len`.
            self.poisoned = true;
        }
        written
    }

    /// Rewrites the whole header, which is shorter than a disk block, in one write: on a
    /// buffered file a sync costs two writes and two seeks, however many fields change.
    fn write_sizes(&mut self) -> io::Result<()> {
        let header_len = self.spec.format.header_len();
        let end = self.start + header_len + self.data_len;
        let (Some(_), Ok(data)) = (
            riff_size(header_len, self.data_len),
            u32::try_from(self.data_len),
        ) else {
            // `append` never lets the audio grow past the limit.
            return Err(io::Error::other("audio length beyond the RIFF limit"));
        };
        self.write_pending()?;
        // Every write leaves the stream at `end`; the pad byte goes there and is overwritten
        // by the audio that follows.
        if self.data_len & 1 == 1 {
            self.inner.write_all(&[0])?;
        }
        self.inner.seek(SeekFrom::Start(self.start))?;
        self.inner
            .write_all(&header_bytes(self.spec, self.block_align, data))?;
        self.inner.seek(SeekFrom::Start(end))?;
        self.inner.flush()
    }
}

/// Makes a WAV file of ours that a crash left open consistent again: the audio is recounted
/// from the file length, a trailing partial frame is cut off and the sizes are rewritten,
/// then the file is fsynced. A file that is already consistent is not written at all.
///
/// Refuses, without touching the file, anything that is not a RIFF/WAVE file in one of our
/// formats.
///
/// One ambiguity is resolved towards the header: if it declares an odd audio length and
/// exactly one byte follows, that byte is taken as the pad byte written by the sync, although
/// it may be a single 8-bit sample written after it.
pub fn repair(file: &mut File) -> Result<RepairOutcome, WavError> {
    let file_len = file.metadata()?.len();
    file.seek(SeekFrom::Start(0))?;
    let header = parse_header(file, file_len)?;
    let block_align = u64::from(header.block_align);
    let declared = header.data_len;
    let available = file_len - header.data_offset;
    let declared_frames = declared / block_align;

    let consistent = declared.is_multiple_of(block_align)
        && available == declared + (declared & 1)
        && u64::from(header.riff_size) == file_len - 8
        && header
            .fact
            .is_none_or(|(_, frames)| u64::from(frames) == declared_frames);
    if consistent {
        return Ok(RepairOutcome {
            frames: declared_frames,
            was_consistent: true,
            truncated_bytes: 0,
        });
    }

    // A RIFF size that covers the whole file while more than the audio follows the data
    // header means chunks after the audio, which we never write: a crash only ever leaves a
    // RIFF size smaller than the file.
    if u64::from(header.riff_size) == file_len - 8 && available > declared + (declared & 1) {
        return Err(WavError::Malformed("chunks after the audio"));
    }

    let audio = if declared & 1 == 1 && available == declared + 1 {
        declared
    } else {
        available
    };
    // The most audio a RIFF size can count after this header; a pad byte may cost one frame.
    let limit = (u64::from(u32::MAX) + 8).saturating_sub(header.data_offset);
    let mut data_len = audio.min(limit);
    data_len -= data_len % block_align;
    if riff_size(header.data_offset, data_len).is_none() {
        data_len = data_len.saturating_sub(block_align);
    }
    let riff = riff_size(header.data_offset, data_len).ok_or(WavError::TooLarge)?;
    // Bounded by the RIFF size above.
    let data = u32::try_from(data_len).map_err(|_| WavError::TooLarge)?;
    let frames = data_len / block_align;

    let new_len = header.data_offset + data_len + (data_len & 1);
    // Growing by one byte writes a zero pad byte.
    file.set_len(new_len)?;
    file.seek(SeekFrom::Start(RIFF_SIZE_OFFSET))?;
    file.write_all(&riff.to_le_bytes())?;
    if let Some((offset, _)) = header.fact {
        file.seek(SeekFrom::Start(offset))?;
        file.write_all(&u32::try_from(frames).unwrap_or(u32::MAX).to_le_bytes())?;
    }
    file.seek(SeekFrom::Start(header.data_offset - 4))?;
    file.write_all(&data.to_le_bytes())?;
    file.sync_all()?;

    Ok(RepairOutcome {
        frames,
        was_consistent: false,
        truncated_bytes: file_len.saturating_sub(new_len),
    })
}

/// Reads the header of a WAV file of ours from the start of `reader`. Fails if the audio the
/// header declares is not all there, which is how a file that needs [`repair`] shows.
pub fn read_info(mut reader: impl Read + Seek) -> Result<WavInfo, WavError> {
    let stream_len = reader.seek(SeekFrom::End(0))?;
    reader.seek(SeekFrom::Start(0))?;
    let header = parse_header(&mut reader, stream_len)?;
    let available = stream_len - header.data_offset;
    if header.data_len > available {
        return Err(WavError::Truncated {
            declared: header.data_len,
            available,
        });
    }
    Ok(WavInfo {
        spec: header.spec,
        data_offset: header.data_offset,
        data_len: header.data_len,
        frames: header.data_len / u64::from(header.block_align),
    })
}

const RIFF_HEADER_LEN: u64 = 12;
const CHUNK_HEADER_LEN: u64 = 8;
const RIFF_SIZE_OFFSET: u64 = 4;

/// The RIFF chunk size for `data_len` bytes of audio after `header_len` bytes of header, or
/// `None` past the 32-bit limit. The size counts everything after its own field, pad included.
fn riff_size(header_len: u64, data_len: u64) -> Option<u32> {
    let total = header_len
        .checked_add(data_len)?
        .checked_add(data_len & 1)?;
    u32::try_from(total.checked_sub(8)?).ok()
}

fn header_bytes(spec: WavSpec, block_align: u16, data_len: u32) -> Vec<u8> {
    let format = spec.format;
    let header_len = format.header_len();
    let mut h = Vec::with_capacity(header_len as usize);
    h.extend_from_slice(b"RIFF");
    // An empty file is always within the limit.
    let riff = riff_size(header_len, u64::from(data_len)).unwrap_or(u32::MAX);
    h.extend_from_slice(&riff.to_le_bytes());
    h.extend_from_slice(b"WAVE");
    h.extend_from_slice(b"fmt ");
    h.extend_from_slice(&format.fmt_len().to_le_bytes());
    h.extend_from_slice(&format.format_tag().to_le_bytes());
    h.extend_from_slice(&spec.channels.to_le_bytes());
    h.extend_from_slice(&spec.sample_rate.to_le_bytes());
    // `validate` checked that the byte rate fits.
    let byte_rate = spec.sample_rate.saturating_mul(u32::from(block_align));
    h.extend_from_slice(&byte_rate.to_le_bytes());
    h.extend_from_slice(&block_align.to_le_bytes());
    h.extend_from_slice(&(format.bytes_per_sample() * 8).to_le_bytes());
    if format.fmt_len() == 18 {
        // cbSize: no extra format bytes.
        h.extend_from_slice(&0u16.to_le_bytes());
    }
    if format.has_fact() {
        h.extend_from_slice(b"fact");
        h.extend_from_slice(&4u32.to_le_bytes());
        h.extend_from_slice(&(data_len / u32::from(block_align)).to_le_bytes());
    }
    h.extend_from_slice(b"data");
    h.extend_from_slice(&data_len.to_le_bytes());
    h
}

/// A parsed header, with the offsets `repair` rewrites.
struct Header {
    spec: WavSpec,
    block_align: u16,
    riff_size: u32,
    data_offset: u64,
    data_len: u64,
    /// Offset and value of the fact chunk's frame count.
    fact: Option<(u64, u32)>,
}

/// Walks the chunks from the start of `reader` up to the `data` chunk. Unknown chunks are
/// skipped; chunks are bounded by `stream_len`, so a lying size field cannot loop forever.
fn parse_header<R: Read + Seek>(reader: &mut R, stream_len: u64) -> Result<Header, WavError> {
    let mut riff = [0; 12];
    read_exact_or(
        reader,
        &mut riff,
        WavError::NotWav("shorter than a RIFF header"),
    )?;
    if &riff[0..4] != b"RIFF" || &riff[8..12] != b"WAVE" {
        return Err(WavError::NotWav("no RIFF/WAVE signature"));
    }
    let riff_size = u32::from_le_bytes([riff[4], riff[5], riff[6], riff[7]]);

    let mut fmt: Option<(WavSpec, u16)> = None;
    let mut fact = None;
    let mut position = RIFF_HEADER_LEN;
    loop {
        if position + CHUNK_HEADER_LEN > stream_len {
            return Err(WavError::Malformed("no data chunk"));
        }
        reader.seek(SeekFrom::Start(position))?;
        let mut chunk = [0; 8];
        read_exact_or(
            reader,
            &mut chunk,
            WavError::Malformed("truncated chunk header"),
        )?;
        let size = u32::from_le_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
        let body = position + CHUNK_HEADER_LEN;
        match &chunk[0..4] {
            b"fmt " if fmt.is_none() => fmt = Some(parse_fmt(reader, size)?),
            b"fact" if fact.is_none() && size >= 4 => {
                let mut value = [0; 4];
                read_exact_or(
                    reader,
                    &mut value,
                    WavError::Malformed("truncated fact chunk"),
                )?;
                fact = Some((body, u32::from_le_bytes(value)));
            }
            b"data" => {
                let (spec, block_align) =
                    fmt.ok_or(WavError::Malformed("data chunk before fmt chunk"))?;
                return Ok(Header {
                    spec,
                    block_align,
                    riff_size,
                    data_offset: body,
                    data_len: u64::from(size),
                    fact,
                });
            }
            _ => {}
        }
        position = body + u64::from(size) + u64::from(size & 1);
    }
}

/// Parses a fmt chunk body and accepts only the formats we write, with consistent fields.
fn parse_fmt<R: Read>(reader: &mut R, size: u32) -> Result<(WavSpec, u16), WavError> {
    if size < 16 {
        return Err(WavError::Malformed("fmt chunk too short"));
    }
    let mut f = [0; 16];
    read_exact_or(reader, &mut f, WavError::Malformed("truncated fmt chunk"))?;
    let u16_at = |i: usize| u16::from_le_bytes([f[i], f[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes([f[i], f[i + 1], f[i + 2], f[i + 3]]);
    let (format_tag, channels, sample_rate) = (u16_at(0), u16_at(2), u32_at(4));
    let (byte_rate, block_align, bits_per_sample) = (u32_at(8), u16_at(12), u16_at(14));

    let format =
        SampleFormat::from_tag(format_tag, bits_per_sample).ok_or(WavError::Unsupported {
            format_tag,
            bits_per_sample,
        })?;
    let spec = WavSpec {
        format,
        channels,
        sample_rate,
    };
    let expected_align = spec
        .validate()
        .map_err(|_| WavError::Malformed("invalid channels or sample rate"))?;
    if block_align != expected_align
        || Some(byte_rate) != sample_rate.checked_mul(u32::from(block_align))
    {
        return Err(WavError::Malformed(
            "inconsistent block alignment or byte rate",
        ));
    }
    Ok((spec, block_align))
}

/// `read_exact`, with running out of bytes reported as `eof` rather than as an I/O error.
fn read_exact_or<R: Read>(reader: &mut R, buf: &mut [u8], eof: WavError) -> Result<(), WavError> {
    reader.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => eof,
        _ => WavError::Io(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    const PCM_STEREO_16K: WavSpec = WavSpec {
        format: SampleFormat::Pcm16,
        channels: 2,
        sample_rate: 16000,
    };
    const MULAW_MONO_8K: WavSpec = WavSpec {
        format: SampleFormat::MuLaw,
        channels: 1,
        sample_rate: 8000,
    };

    /// Deterministic samples that reach both extremes.
    fn samples_i16(count: usize) -> Vec<i16> {
        (0..count)
            .map(|i| ((i as i64 * 7919 + 123) % 65536 - 32768) as i16)
            .collect()
    }

    fn samples_u8(count: usize) -> Vec<u8> {
        (0..count).map(|i| (i * 37 + 11) as u8).collect()
    }

    /// The audio bytes as they are laid out in the file.
    fn audio_bytes(format: SampleFormat, samples: usize) -> Vec<u8> {
        match format {
            SampleFormat::Pcm16 => samples_i16(samples)
                .iter()
                .flat_map(|s| s.to_le_bytes())
                .collect(),
            SampleFormat::MuLaw | SampleFormat::ALaw => samples_u8(samples),
        }
    }

    /// Writes the frames `first..first + frames` of the test signal.
    fn write_frames<W: Write + Seek>(writer: &mut WavWriter<W>, first: usize, frames: usize) {
        let channels = usize::from(writer.spec().channels);
        let range = first * channels..(first + frames) * channels;
        match writer.spec().format {
            SampleFormat::Pcm16 => writer.write_frames_i16(&samples_i16(range.end)[range]),
            SampleFormat::MuLaw | SampleFormat::ALaw => {
                writer.write_frames_u8(&samples_u8(range.end)[range])
            }
        }
        .unwrap();
    }

    fn write_file(path: &Path, spec: WavSpec, frames: usize) {
        let mut writer = WavWriter::new(File::create(path).unwrap(), spec).unwrap();
        write_frames(&mut writer, 0, frames);
        writer.finish().unwrap().sync_all().unwrap();
    }

    /// Runs `script` with Debian's Python, the independent reader, one path per argument.
    fn python(script: &str, paths: &[PathBuf]) -> String {
        let output = Command::new("/usr/bin/python3")
            .arg("-c")
            .arg(script)
            .args(paths)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "python failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Reads PCM files with Python's `wave` module; also checks the RIFF size by hand, which
    /// `wave` does not. One line per file: channels, width, rate, frames, then the samples.
    const PYTHON_WAVE: &str = r#"
import array, struct, sys, wave
for path in sys.argv[1:]:
    raw = open(path, 'rb').read()
    assert struct.unpack('<I', raw[4:8])[0] == len(raw) - 8, 'RIFF size'
    with wave.open(path, 'rb') as w:
        samples = array.array('h')
        samples.frombytes(w.readframes(w.getnframes()))
        if sys.byteorder == 'big':
            samples.byteswap()
        print(w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes(),
              w.getcomptype(), ' '.join(map(str, samples)))
"#;

    /// `wave` alone, on a file still being written: audio after the data chunk is ignored.
    const PYTHON_WAVE_LIVE: &str = r#"
import array, sys, wave
with wave.open(sys.argv[1], 'rb') as w:
    samples = array.array('h')
    samples.frombytes(w.readframes(w.getnframes()))
    if sys.byteorder == 'big':
        samples.byteswap()
    print(w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes(),
          w.getcomptype(), ' '.join(map(str, samples)))
"#;

    /// Parses G.711 files chunk by chunk with `struct`, insisting on exact sizes and pad bytes.
    /// One line per file: chunk list, the seven WAVEFORMATEX fields, fact, data length, hex.
    const PYTHON_RIFF: &str = r#"
import struct, sys
for path in sys.argv[1:]:
    b = open(path, 'rb').read()
    assert b[0:4] == b'RIFF' and b[8:12] == b'WAVE', 'signature'
    assert struct.unpack('<I', b[4:8])[0] == len(b) - 8, 'RIFF size'
    pos, chunks, fmt, fact, data = 12, [], None, None, None
    while pos < len(b):
        cid, size = b[pos:pos + 4], struct.unpack('<I', b[pos + 4:pos + 8])[0]
        body = b[pos + 8:pos + 8 + size]
        assert len(body) == size, 'chunk overruns the file'
        chunks.append(cid.decode().strip())
        if cid == b'fmt ':
            fmt = struct.unpack('<HHIIHHH', body)
        elif cid == b'fact':
            fact = struct.unpack('<I', body)[0]
        elif cid == b'data':
            data = body
        pos += 8 + size + (size & 1)
    assert pos == len(b), 'missing pad byte or trailing bytes'
    print('/'.join(chunks), *fmt, fact, len(data), data.hex() or '-')
"#;

    /// What the independent reader should print for a file holding the first `frames` frames
    /// of the test signal.
    fn expected_python_line(spec: WavSpec, frames: usize) -> String {
        let samples = frames * usize::from(spec.channels);
        let block_align = spec.block_align().unwrap();
        match spec.format {
            SampleFormat::Pcm16 => {
                let values: Vec<String> =
                    samples_i16(samples).iter().map(|s| s.to_string()).collect();
                let line = format!(
                    "{} 2 {} {frames} NONE {}",
                    spec.channels,
                    spec.sample_rate,
                    values.join(" ")
                );
                line.trim_end().to_string()
            }
            SampleFormat::MuLaw | SampleFormat::ALaw => {
                let hex: String = samples_u8(samples)
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                format!(
                    "fmt/fact/data {} {} {} {} {block_align} 8 0 {frames} {samples} {}",
                    spec.format.format_tag(),
                    spec.channels,
                    spec.sample_rate,
                    spec.sample_rate * u32::from(block_align),
                    if hex.is_empty() { "-".to_string() } else { hex }
                )
            }
        }
    }

    fn python_lines(spec: WavSpec, paths: &[PathBuf]) -> Vec<String> {
        let script = match spec.format {
            SampleFormat::Pcm16 => PYTHON_WAVE,
            SampleFormat::MuLaw | SampleFormat::ALaw => PYTHON_RIFF,
        };
        python(script, paths)
            .lines()
            .map(|l| l.trim_end().to_string())
            .collect()
    }

    /// A stream that counts the writes it is given.
    struct CountingWrites {
        inner: Cursor<Vec<u8>>,
        writes: usize,
    }

    impl Write for CountingWrites {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.writes += 1;
            self.inner.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Seek for CountingWrites {
        fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
            self.inner.seek(pos)
        }
    }

    #[test]
    fn a_buffered_writer_writes_its_audio_in_one_piece_at_each_sync() {
        for spec in [PCM_STEREO_16K, MULAW_MONO_8K] {
            let frame = usize::from(spec.block_align().unwrap());
            let stream = CountingWrites {
                inner: Cursor::new(Vec::new()),
                writes: 0,
            };
            // Room for 100 frames: 30 at a time fill it after four writes.
            let mut writer = WavWriter::with_buffer(stream, spec, 100 * frame).unwrap();
            let header = writer.get_ref().writes;
            for first in [0, 30, 60] {
                write_frames(&mut writer, first, 30);
            }
            assert_eq!(writer.get_ref().writes, header, "90 frames stay buffered");
            assert_eq!(writer.frames_written(), 90);
            write_frames(&mut writer, 90, 30);
            assert_eq!(
                writer.get_ref().writes,
                header + 1,
                "a full buffer is written whole"
            );
            // More than the buffer holds goes out at once, with what was buffered.
            write_frames(&mut writer, 120, 250);
            assert_eq!(writer.get_ref().writes, header + 2);
            write_frames(&mut writer, 370, 5);
            writer.sync_header().unwrap();
            let mut expected = header_bytes(spec, frame as u16, (375 * frame) as u32);
            expected.extend(audio_bytes(spec.format, 375 * usize::from(spec.channels)));
            if expected.len() % 2 == 1 {
                expected.push(0); // the pad byte after odd-length audio
            }
            let bytes = writer.finish().unwrap().inner.into_inner();
            assert_eq!(bytes, expected, "{spec:?}");
        }
    }

    #[test]
    fn headers_are_byte_exact() {
        // (spec, frames, expected file)
        let cases: Vec<(WavSpec, usize, Vec<u8>)> = vec![
            (
                PCM_STEREO_16K,
                1,
                [
                    &b"RIFF"[..],
                    &40u32.to_le_bytes(),
                    b"WAVEfmt ",
                    &16u32.to_le_bytes(),
                    &[1, 0, 2, 0],
                    &16000u32.to_le_bytes(),
                    &64000u32.to_le_bytes(),
                    &[4, 0, 16, 0],
                    b"data",
                    &4u32.to_le_bytes(),
                    &audio_bytes(SampleFormat::Pcm16, 2),
                ]
                .concat(),
            ),
            (
                MULAW_MONO_8K,
                3,
                [
                    &b"RIFF"[..],
                    &54u32.to_le_bytes(),
                    b"WAVEfmt ",
                    &18u32.to_le_bytes(),
                    &[7, 0, 1, 0],
                    &8000u32.to_le_bytes(),
                    &8000u32.to_le_bytes(),
                    &[1, 0, 8, 0, 0, 0],
                    b"fact",
                    &4u32.to_le_bytes(),
                    &3u32.to_le_bytes(),
                    b"data",
                    &3u32.to_le_bytes(),
                    &samples_u8(3),
                    &[0],
                ]
                .concat(),
            ),
            (
                WavSpec {
                    format: SampleFormat::ALaw,
                    channels: 2,
                    sample_rate: 8000,
                },
                0,
                [
                    &b"RIFF"[..],
                    &50u32.to_le_bytes(),
                    b"WAVEfmt ",
                    &18u32.to_le_bytes(),
                    &[6, 0, 2, 0],
                    &8000u32.to_le_bytes(),
                    &16000u32.to_le_bytes(),
                    &[2, 0, 8, 0, 0, 0],
                    b"fact",
                    &4u32.to_le_bytes(),
                    &0u32.to_le_bytes(),
                    b"data",
                    &0u32.to_le_bytes(),
                ]
                .concat(),
            ),
        ];
        for (spec, frames, expected) in cases {
            let mut writer = WavWriter::new(Cursor::new(Vec::new()), spec).unwrap();
            write_frames(&mut writer, 0, frames);
            assert_eq!(writer.frames_written(), frames as u64);
            let cursor = writer.finish().unwrap();
            assert_eq!(cursor.position(), expected.len() as u64, "{spec:?}");
            assert_eq!(cursor.into_inner(), expected, "{spec:?}");

            // The same file written after other data in the stream.
            let mut prefixed = Cursor::new(b"xyz".to_vec());
            prefixed.set_position(3);
            let mut writer = WavWriter::new(prefixed, spec).unwrap();
            write_frames(&mut writer, 0, frames);
            let bytes = writer.finish().unwrap().into_inner();
            assert_eq!(bytes[3..], expected[..], "{spec:?} after a prefix");
        }
    }

    #[test]
    fn python_reads_what_we_write() {
        let dir = tempfile::tempdir().unwrap();
        // (spec, frames)
        let cases = [
            (PCM_STEREO_16K, 16000),
            (PCM_STEREO_16K, 0),
            (
                WavSpec {
                    format: SampleFormat::Pcm16,
                    channels: 1,
                    sample_rate: 8000,
                },
                1601,
            ),
            (
                WavSpec {
                    format: SampleFormat::Pcm16,
                    channels: 3,
                    sample_rate: 48000,
                },
                7,
            ),
            (MULAW_MONO_8K, 161),
            (MULAW_MONO_8K, 0),
            (
                WavSpec {
                    format: SampleFormat::ALaw,
                    channels: 2,
                    sample_rate: 8000,
                },
                80,
            ),
            (
                WavSpec {
                    format: SampleFormat::MuLaw,
                    channels: 3,
                    sample_rate: 16000,
                },
                5,
            ),
            (
                WavSpec {
                    format: SampleFormat::ALaw,
                    channels: 1,
                    sample_rate: 8000,
                },
                1,
            ),
        ];
        for (i, (spec, frames)) in cases.into_iter().enumerate() {
            let path = dir.path().join(format!("{i}.wav"));
            write_file(&path, spec, frames);
            let info = read_info(File::open(&path).unwrap()).unwrap();
            assert_eq!(info.spec, spec);
            assert_eq!(info.frames, frames as u64);
            assert_eq!(info.data_offset, spec.format.header_len());
            assert_eq!(
                python_lines(spec, &[path]),
                [expected_python_line(spec, frames)],
                "{spec:?} with {frames} frames"
            );
        }
    }

    #[test]
    fn a_reader_after_each_sync_sees_all_synced_audio() {
        let dir = tempfile::tempdir().unwrap();
        for spec in [PCM_STEREO_16K, MULAW_MONO_8K] {
            let path = dir.path().join("live.wav");
            let mut writer = WavWriter::new(File::create(&path).unwrap(), spec).unwrap();
            let mut written = 0;
            // Batches of odd sizes, so 8-bit mono passes through odd lengths and pad bytes.
            for batch in [1, 160, 7, 0, 333] {
                write_frames(&mut writer, written, batch);
                written += batch;
                writer.sync_header().unwrap();
                writer.get_ref().sync_data().unwrap();
                let synced = written;

                // A crash now leaves the file exactly as it is: strictly valid.
                let snapshot = dir.path().join("snapshot.wav");
                std::fs::copy(&path, &snapshot).unwrap();
                assert_eq!(
                    python_lines(spec, &[snapshot]),
                    [expected_python_line(spec, synced)],
                    "{spec:?} after {synced} frames"
                );

                // Audio written after the sync is not counted yet and does not disturb a
                // reader of the live file.
                write_frames(&mut writer, written, 5);
                written += 5;
                let info = read_info(File::open(&path).unwrap()).unwrap();
                assert_eq!(info.frames, synced as u64, "{spec:?}");
                if spec.format == SampleFormat::Pcm16 {
                    assert_eq!(
                        python(PYTHON_WAVE_LIVE, std::slice::from_ref(&path)).trim_end(),
                        expected_python_line(spec, synced),
                        "{spec:?} live after {synced} frames"
                    );
                }
            }
            writer.finish().unwrap().sync_all().unwrap();
            assert_eq!(
                python_lines(spec, &[path]),
                [expected_python_line(spec, written)]
            );
        }
    }

    /// A writer that synced, wrote more, and crashed at some point: the file is cut at every
    /// length between the end of its header and the end of what was written.
    #[test]
    fn repair_recovers_every_crash_point() {
        let dir = tempfile::tempdir().unwrap();
        // (spec, frames synced, frames written after the last sync)
        let cases = [
            (PCM_STEREO_16K, 3, 2),
            (PCM_STEREO_16K, 0, 2),
            (MULAW_MONO_8K, 5, 4),
            (MULAW_MONO_8K, 4, 3),
            (
                WavSpec {
                    format: SampleFormat::ALaw,
                    channels: 3,
                    sample_rate: 8000,
                },
                3,
                2,
            ),
            (
                WavSpec {
                    format: SampleFormat::Pcm16,
                    channels: 1,
                    sample_rate: 8000,
                },
                2,
                3,
            ),
        ];
        for (spec, synced, unsynced) in cases {
            let original = dir.path().join("original.wav");
            let mut writer = WavWriter::new(File::create(&original).unwrap(), spec).unwrap();
            write_frames(&mut writer, 0, synced);
            writer.sync_header().unwrap();
            write_frames(&mut writer, synced, unsynced);
            drop(writer);
            let full = std::fs::read(&original).unwrap();

            let block_align = u64::from(spec.block_align().unwrap());
            let data_offset = spec.format.header_len();
            let synced_len = synced as u64 * block_align;
            let mut repaired = Vec::new();
            let mut expected = Vec::new();
            for cut in data_offset..=full.len() as u64 {
                let path = dir.path().join(format!("cut-{cut}.wav"));
                std::fs::write(&path, &full[..cut as usize]).unwrap();
                let outcome = repair(&mut open_rw(&path)).unwrap();

                let available = cut - data_offset;
                // A byte right after odd synced audio is taken for the sync's pad byte.
                let frames = if synced_len % 2 == 1 && available == synced_len + 1 {
                    synced as u64
                } else {
                    available / block_align
                };
                let data_len = frames * block_align;
                let new_len = data_offset + data_len + data_len % 2;
                let consistent = cut == data_offset + synced_len + synced_len % 2;
                let context = format!("{spec:?}, {synced}+{unsynced} frames, cut at {cut}");
                assert_eq!(
                    outcome,
                    RepairOutcome {
                        frames,
                        was_consistent: consistent,
                        truncated_bytes: cut.saturating_sub(new_len),
                    },
                    "{context}"
                );
                assert!(
                    frames >= synced as u64 || cut < data_offset + synced_len,
                    "{context}"
                );
                assert_eq!(
                    std::fs::metadata(&path).unwrap().len(),
                    new_len,
                    "{context}"
                );
                assert_eq!(
                    read_info(File::open(&path).unwrap()).unwrap().frames,
                    frames
                );
                // Repairing again finds nothing to do.
                assert!(
                    repair(&mut open_rw(&path)).unwrap().was_consistent,
                    "{context}"
                );

                expected.push(expected_python_line(spec, frames as usize));
                repaired.push(path);
            }
            assert_eq!(python_lines(spec, &repaired), expected, "{spec:?}");
        }
    }

    #[test]
    fn repair_leaves_finished_files_byte_identical() {
        let dir = tempfile::tempdir().unwrap();
        // (spec, frames)
        let cases = [
            (PCM_STEREO_16K, 10),
            (PCM_STEREO_16K, 0),
            (MULAW_MONO_8K, 7),
            (MULAW_MONO_8K, 8),
            (
                WavSpec {
                    format: SampleFormat::ALaw,
                    channels: 3,
                    sample_rate: 8000,
                },
                3,
            ),
        ];
        for (spec, frames) in cases {
            let path = dir.path().join("finished.wav");
            write_file(&path, spec, frames);
            let before = std::fs::read(&path).unwrap();
            let outcome = repair(&mut open_rw(&path)).unwrap();
            assert_eq!(
                outcome,
                RepairOutcome {
                    frames: frames as u64,
                    was_consistent: true,
                    truncated_bytes: 0
                },
                "{spec:?}"
            );
            assert_eq!(std::fs::read(&path).unwrap(), before, "{spec:?}");
        }
    }

    type ErrorCheck = fn(&WavError) -> bool;

    #[test]
    fn repair_refuses_what_is_not_ours_without_touching_it() {
        let good = {
            let mut writer = WavWriter::new(Cursor::new(Vec::new()), MULAW_MONO_8K).unwrap();
            write_frames(&mut writer, 0, 4);
            writer.finish().unwrap().into_inner()
        };
        let with_fmt = |tag: u16, bits: u16, align: u16| {
            let mut bytes = good.clone();
            bytes[20..22].copy_from_slice(&tag.to_le_bytes());
            bytes[32..34].copy_from_slice(&align.to_le_bytes());
            bytes[34..36].copy_from_slice(&bits.to_le_bytes());
            bytes
        };
        let data_before_fmt = [
            &b"RIFF"[..],
            &16u32.to_le_bytes(),
            b"WAVE",
            b"data",
            &4u32.to_le_bytes(),
            &[0xFF; 4],
        ]
        .concat();
        let list_after_data = {
            let mut bytes = [&good[..], b"LIST", &4u32.to_le_bytes(), b"INFO"].concat();
            let riff = u32::try_from(bytes.len() - 8).unwrap();
            bytes[4..8].copy_from_slice(&riff.to_le_bytes());
            bytes
        };
        // (name, file, the error it must produce)
        let cases: Vec<(&str, Vec<u8>, ErrorCheck)> = vec![
            ("empty", Vec::new(), |e| matches!(e, WavError::NotWav(_))),
            ("text", b"hello, this is not audio at all".to_vec(), |e| {
                matches!(e, WavError::NotWav(_))
            }),
            (
                "avi",
                [&b"RIFF"[..], &[4, 0, 0, 0], b"AVI LIST"].concat(),
                |e| matches!(e, WavError::NotWav(_)),
            ),
            ("rf64", [&b"RF64"[..], &good[4..]].concat(), |e| {
                matches!(e, WavError::NotWav(_))
            }),
            ("cut in the fmt chunk", good[..30].to_vec(), |e| {
                matches!(e, WavError::Malformed(_))
            }),
            ("cut before the data chunk", good[..50].to_vec(), |e| {
                matches!(e, WavError::Malformed(_))
            }),
            ("float", with_fmt(3, 32, 4), |e| {
                matches!(
                    e,
                    WavError::Unsupported {
                        format_tag: 3,
                        bits_per_sample: 32
                    }
                )
            }),
            ("extensible", with_fmt(0xFFFE, 8, 1), |e| {
                matches!(
                    e,
                    WavError::Unsupported {
                        format_tag: 0xFFFE,
                        ..
                    }
                )
            }),
            ("8-bit PCM", with_fmt(1, 8, 1), |e| {
                matches!(e, WavError::Unsupported { .. })
            }),
            ("bad block align", with_fmt(7, 8, 2), |e| {
                matches!(e, WavError::Malformed(_))
            }),
            ("data before fmt", data_before_fmt, |e| {
                matches!(e, WavError::Malformed(_))
            }),
            ("chunk after the audio", list_after_data, |e| {
                matches!(e, WavError::Malformed("chunks after the audio"))
            }),
        ];
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes, is_expected) in cases {
            let path = dir.path().join("foreign");
            std::fs::write(&path, &bytes).unwrap();
            let error = repair(&mut open_rw(&path)).unwrap_err();
            assert!(is_expected(&error), "{name}: {error:?}");
            assert_eq!(std::fs::read(&path).unwrap(), bytes, "{name}");
        }
    }

    #[test]
    fn read_info_flags_a_header_ahead_of_the_audio() {
        let mut writer = WavWriter::new(Cursor::new(Vec::new()), PCM_STEREO_16K).unwrap();
        write_frames(&mut writer, 0, 10);
        let mut bytes = writer.finish().unwrap().into_inner();
        bytes.truncate(bytes.len() - 6);
        let error = read_info(Cursor::new(bytes)).unwrap_err();
        assert!(
            matches!(
                error,
                WavError::Truncated {
                    declared: 40,
                    available: 34
                }
            ),
            "{error:?}"
        );
    }

    #[test]
    fn writer_refuses_misuse() {
        let pcm = || WavWriter::new(Cursor::new(Vec::new()), PCM_STEREO_16K).unwrap();
        let mulaw = || WavWriter::new(Cursor::new(Vec::new()), MULAW_MONO_8K).unwrap();
        let check = |result: Result<(), WavError>, expected: fn(&WavError) -> bool| {
            let error = result.unwrap_err();
            assert!(expected(&error), "{error:?}");
        };
        check(pcm().write_frames_u8(&[0, 0]), |e| {
            matches!(e, WavError::WrongSampleType { .. })
        });
        check(mulaw().write_frames_i16(&[0]), |e| {
            matches!(e, WavError::WrongSampleType { .. })
        });
        check(pcm().write_frames_i16(&[1, 2, 3]), |e| {
            matches!(
                e,
                WavError::PartialFrame {
                    samples: 3,
                    channels: 2
                }
            )
        });

        let invalid = [
            WavSpec {
                channels: 0,
                ..PCM_STEREO_16K
            },
            WavSpec {
                sample_rate: 0,
                ..PCM_STEREO_16K
            },
            WavSpec {
                channels: 40000,
                ..PCM_STEREO_16K
            },
            WavSpec {
                sample_rate: u32::MAX,
                ..PCM_STEREO_16K
            },
        ];
        for spec in invalid {
            let error = WavWriter::new(Cursor::new(Vec::new()), spec).unwrap_err();
            assert!(
                matches!(error, WavError::InvalidSpec(_)),
                "{spec:?}: {error:?}"
            );
        }
    }

    /// A stream that keeps only its length and its first bytes, so the 4 GiB limit can be
    /// reached without storing 4 GiB.
    #[derive(Default)]
    struct Sink {
        position: u64,
        len: u64,
        head: Vec<u8>,
    }

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            for (i, &byte) in buf
                .iter()
                .enumerate()
                .take(64usize.saturating_sub(self.position as usize))
            {
                let at = self.position as usize + i;
                if self.head.len() <= at {
                    self.head.resize(at + 1, 0);
                }
                self.head[at] = byte;
            }
            self.position += buf.len() as u64;
            self.len = self.len.max(self.position);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Seek for Sink {
        fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
            self.position = match to {
                SeekFrom::Start(p) => p,
                SeekFrom::Current(d) => self.position.checked_add_signed(d).unwrap(),
                SeekFrom::End(d) => self.len.checked_add_signed(d).unwrap(),
            };
            Ok(self.position)
        }
    }

    #[test]
    fn audio_stops_at_the_riff_limit() {
        // µ-law header: 58 bytes, so the RIFF size is 50 + audio + pad and the largest audio
        // that fits is even: 2^32 - 1 - 50 - 1.
        let limit: u64 = u64::from(u32::MAX) - 51;
        let mut writer = WavWriter::new(Sink::default(), MULAW_MONO_8K).unwrap();
        let block = vec![0xFF_u8; 1 << 26];
        let mut written = 0;
        while written < limit {
            let n = (limit - written).min(block.len() as u64) as usize;
            writer.write_frames_u8(&block[..n]).unwrap();
            written += n as u64;
        }
        assert!(matches!(
            writer.write_frames_u8(&[0xFF]),
            Err(WavError::TooLarge)
        ));
        assert!(matches!(
            writer.write_frames_u8(&block),
            Err(WavError::TooLarge)
        ));
        assert_eq!(writer.frames_written(), limit);
        let sink = writer.finish().unwrap();
        assert_eq!(sink.len, 58 + limit);
        let field = |at: usize| u32::from_le_bytes(sink.head[at..at + 4].try_into().unwrap());
        assert_eq!(field(4), u32::MAX - 1);
        assert_eq!(u64::from(field(46)), limit);
        assert_eq!(u64::from(field(54)), limit);
    }

    /// A stream that fails once `budget` bytes have been written, like a full disk.
    struct FullDisk {
        inner: Cursor<Vec<u8>>,
        budget: usize,
    }

    impl Write for FullDisk {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.budget == 0 {
                return Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"));
            }
            let n = buf.len().min(self.budget);
            self.budget -= n;
            self.inner.write(&buf[..n])
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Seek for FullDisk {
        fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
            self.inner.seek(to)
        }
    }

    #[test]
    fn a_failed_write_poisons_the_writer() {
        let disk = FullDisk {
            inner: Cursor::new(Vec::new()),
            budget: 44 + 10,
        };
        let mut writer = WavWriter::new(disk, PCM_STEREO_16K).unwrap();
        write_frames(&mut writer, 0, 2);
        assert!(matches!(
            writer.write_frames_i16(&[1, 2, 3, 4]),
            Err(WavError::Io(_))
        ));
        assert!(matches!(
            writer.write_frames_i16(&[1, 2]),
            Err(WavError::Poisoned)
        ));
        assert!(matches!(writer.sync_header(), Err(WavError::Poisoned)));
        assert_eq!(writer.frames_written(), 2);
        assert!(matches!(writer.finish(), Err(WavError::Poisoned)));
    }

    fn open_rw(path: &Path) -> File {
        File::options().read(true).write(true).open(path).unwrap()
    }
}
