//! Times the daily index of a busy day, for `cargo xtask bench`.
//!
//! `index_bench <dir> <calls> <runs>` fills `<dir>` (once; kept for later runs) with a data
//! directory holding `<calls>` complete recordings answered over one local day in Los
//! Angeles, spread over its two UTC `S` directories, each a small but valid WAV file, then
//! writes that day's index files `<runs>` times, from scratch each time, printing one line a
//! run:
//!
//! ```text
//! run 1: 1.234567 s, brief 26543210 bytes, detailed 47654321 bytes
//! ```
//!
//! The files are read from the page cache, as on an appliance where the day's recordings
//! were written hours before: what is timed is the index's own work (query, one `open` and
//! header read a file, CSV, two `fsync`ed files and their hard-linked copies).

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};
use jiff::civil::{Date, date};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use tapline_index::day::DaySpan;
use tapline_media::wav::{SampleFormat, WavSpec, WavWriter};
use tapline_store::{Store, rusqlite};

const DAY: Date = date(2026, 6, 6);
const ZONE: &str = "America/Los_Angeles";
/// Frames of audio in each file: 0.1 s. The index reads headers only, so the length of the
/// audio does not change what is timed.
const FRAMES: usize = 800;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, calls, runs] = &args[..] else {
        bail!("usage: index_bench <dir> <calls> <runs>");
    };
    let calls: usize = calls.parse().context("calls")?;
    let runs: usize = runs.parse().context("runs")?;
    let data_dir = Path::new(dir);
    let tz = TimeZone::get(ZONE)?;
    let marker = data_dir.join(format!("complete-{calls}"));
    if !marker.exists() {
        if data_dir.exists() {
            std::fs::remove_dir_all(data_dir)?;
        }
        std::fs::create_dir_all(data_dir)?;
        let started = Instant::now();
        fill(data_dir, &tz, calls)?;
        std::fs::write(&marker, b"")?;
        eprintln!(
            "index_bench: {calls} recordings made in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    let store = Store::open_in(data_dir)?;
    let root = tapline_index::recordings_root(data_dir);
    for run in 1..=runs {
        // From scratch: with the files already there and unchanged, nothing would be written.
        for name in [
            tapline_index::day::brief_file_name(DAY),
            tapline_index::day::detailed_file_name(DAY),
        ] {
            for dir in [
                root.join("Index"),
                root.join(tapline_index::day::day_directory(DAY)),
            ] {
                let _ = std::fs::remove_file(dir.join(&name));
            }
        }
        let started = Instant::now();
        let report = tapline_index::generate_day(&store, &root, &tz, DAY)?;
        let elapsed = started.elapsed();
        if report.brief_lines != calls || !report.problems.is_empty() {
            bail!(
                "run {run}: {} lines and {} problems, expected {calls} lines and none",
                report.brief_lines,
                report.problems.len()
            );
        }
        let size = |path: &Path| std::fs::metadata(path).map_or(0, |m| m.len());
        println!(
            "run {run}: {:.6} s, brief {} bytes, detailed {} bytes",
            elapsed.as_secs_f64(),
            size(
                &root
                    .join("Index")
                    .join(tapline_index::day::brief_file_name(DAY))
            ),
            size(
                &root
                    .join("Index")
                    .join(tapline_index::day::detailed_file_name(DAY))
            ),
        );
    }
    Ok(())
}

/// `calls` recordings evenly over the local day, as the recorder leaves them.
fn fill(data_dir: &Path, tz: &TimeZone, calls: usize) -> anyhow::Result<()> {
    let store = Store::open_in(data_dir)?;
    let root = tapline_index::recordings_root(data_dir);
    let span = DaySpan::of(DAY, tz)?;
    let spacing = span.length() / i32::try_from(calls.max(1))?;
    let template = wav_bytes()?;
    let sha256 = "5f".repeat(32);
    store.write(|tx| {
        let mut insert = tx.prepare(
            "INSERT INTO recordings (file_name, directory, status, source, call_type,
                 answered_at, ended_at, duration_ms, end_reason, transaction_id, sip_call_id,
                 caller_number, called_number, agent_name, phone_channel, queue, queue_name,
                 case_id, account, codec, sample_rate, channels, format, size_bytes, sha256,
                 caller_packets, caller_lost, caller_jitter_ms, callee_packets, callee_lost,
                 callee_jitter_ms)
             VALUES (?1, ?2, 'complete', 'span', ?3, ?4, ?5, ?6, 'bye', ?7, ?7, ?8, ?9, ?10,
                     ?11, 'inbound', ?12, ?13, ?14, 'PCMU', 8000, 2, 'pcm16', ?15, ?16,
                     ?17, 1, 0.75, ?17, 0, 0.5)",
        )?;
        let mut previous_second = String::new();
        let mut sequence = 0;
        for n in 0..calls {
            let answered = span.start + spacing * i32::try_from(n).unwrap_or(i32::MAX);
            let utc = TimeZone::UTC.to_datetime(answered);
            let directory = utc.strftime("S%Y%m%d").to_string();
            let second = utc.strftime("R%Y%m%d%H%M%S").to_string();
            sequence = if second == previous_second {
                sequence + 1
            } else {
                0
            };
            let file_name = format!("{second}{sequence:04}.wav");
            previous_second = second;
            let dir = root.join(&directory);
            std::fs::create_dir_all(&dir).map_err(to_sql)?;
            std::fs::write(dir.join(&file_name), &template).map_err(to_sql)?;
            let seconds = 30 + (n % 600) as i64;
            let ended = answered + SignedDuration::from_secs(seconds);
            // One agent in ten has a name that must be quoted.
            let agent = if n % 10 == 0 {
                format!("Agent {}, \"Team {}\"", n % 250, n % 7)
            } else {
                format!("Agent {}", n % 250)
            };
            insert.execute(rusqlite::params![
                file_name,
                directory,
                if n % 5 == 0 { "Outbound" } else { "Inbound" },
                iso(answered),
                iso(ended),
                seconds * 1000,
                format!("{n:016x}@pbx.example.com"),
                format!("+1415555{:04}", n % 10_000),
                format!("800555{:04}", n % 1000),
                agent,
                format!("{}", n % 48),
                format!("Support queue {}", n % 12),
                format!("CASE-{n}"),
                format!("ACCT-{}", n % 5000),
                template.len() as i64,
                sha256,
                seconds * 50,
            ])?;
        }
        Ok::<_, rusqlite::Error>(())
    })?;
    Ok(())
}

fn wav_bytes() -> anyhow::Result<Vec<u8>> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    let spec = WavSpec {
        format: SampleFormat::Pcm16,
        channels: 2,
        sample_rate: 8000,
    };
    let mut writer = WavWriter::new(&mut bytes, spec)?;
    writer.write_frames_i16(&vec![0; FRAMES * 2])?;
    writer.finish()?;
    Ok(bytes.into_inner())
}

fn to_sql(err: std::io::Error) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(err))
}

fn iso(at: Timestamp) -> String {
    TimeZone::UTC
        .to_datetime(at)
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}
