//! `tapline index --date YYYY-MM-DD`: writes one local tenant day's index files again, on
//! demand (after restoring recordings, or to pick up a call that was still being recorded
//! when the daily run wrote the day).

use anyhow::{Context, bail};
use tapline_index::jiff;
use tapline_store::Store;

/// File problems printed one by one; the detailed index lists them all.
const PROBLEMS_PRINTED: usize = 20;

/// Writes the brief and detailed index files of local tenant day `date`, in `Index/` and in
/// the day's `S` directory, and prints what it wrote. The day must be over in the tenant's
/// time zone: an index written earlier would be missing the rest of the day's calls, and the
/// daily run, finding it there, would not write it again.
pub(crate) fn run(config: &tapline_config::Config, date: jiff::civil::Date) -> anyhow::Result<()> {
    let tz = &config.tenant.timezone;
    if !tapline_index::day::has_ended(date, tz, jiff::Timestamp::now()) {
        bail!(
            "{date} is not over yet in {}, the tenant's time zone: its index is written after \
             its last call, once local midnight has passed",
            config.tenant.timezone_name
        );
    }
    let data_dir = &config.storage.data_dir;
    tapline_provisioning::prepare_data_dir(data_dir)?;
    let store = Store::open_in(data_dir)?;
    let root = tapline_index::recordings_root(data_dir);
    let report = tapline_index::generate_day(&store, &root, tz, date)
        .with_context(|| format!("cannot write the index files of {date}"))?;

    println!(
        "index of {date} ({}): {} calls in the brief index, {} in the detailed index",
        config.tenant.timezone_name, report.brief_lines, report.detailed_lines
    );
    for path in &report.written {
        println!("  wrote     {}", path.display());
    }
    for path in &report.unchanged {
        println!("  unchanged {}", path.display());
    }
    if !report.in_progress.is_empty() {
        println!(
            "{} calls still being recorded were left out: {}",
            report.in_progress.len(),
            report.in_progress.join(", ")
        );
    }
    if !report.problems.is_empty() {
        println!(
            "{} recordings failed the file check (STATUS in the detailed index):",
            report.problems.len()
        );
        for (file, problem) in report.problems.iter().take(PROBLEMS_PRINTED) {
            println!("  {file}: {problem}");
        }
        if report.problems.len() > PROBLEMS_PRINTED {
            println!("  and {} more", report.problems.len() - PROBLEMS_PRINTED);
        }
    }
    if !report.unreadable_rows.is_empty() {
        println!(
            "{} rows with an unreadable answer time were left out: {}",
            report.unreadable_rows.len(),
            report.unreadable_rows.join(", ")
        );
    }
    Ok(())
}
