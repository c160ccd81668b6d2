//! The index files as other programs read them: Python's `csv` module and LibreOffice Calc.
//! Both are peers we did not write; a missing one fails the test, naming its package.

mod common;

use std::path::Path;

use jiff::civil::{Date, date};

use common::{Call, Rig, peer};

/// Names that need every rule of RFC 4180: commas, quotes, both, a line break, and text that
/// is not ASCII.
const AGENTS: [&str; 7] = [
    "Smith, Jo",
    "Jo \"JJ\" Smith",
    "\"Quoted\"",
    "O'Brien, \"Bo\", Jr.",
    "José Müller-Łukasiewicz",
    "Line one\r\nline two",
    "trailing comma,",
];

const DAY: Date = date(2026, 6, 6);

/// A day whose calls carry the awkward names in AGENT NAME and in QUEUE NAME and EXTERNAL
/// VARIABLE 1 too.
fn awkward_day() -> Rig {
    let rig = Rig::new("America/Los_Angeles");
    for (i, agent) in AGENTS.iter().enumerate() {
        let mut call = Call::at(&format!("2026-06-06T18:00:{i:02}Z")).agent(agent);
        call.queue_name = Some(format!("Queue {agent}"));
        call.external_variable_1 = Some(agent.to_string());
        rig.record(&call);
    }
    rig.generate(DAY);
    rig
}

/// Runs Python `script` with `args`; returns its standard output, parsed as JSON.
fn python(script: &str, args: &[&Path]) -> serde_json::Value {
    let output = peer("python3", "python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON from python3")
}

/// Every row of a CSV file as Python's `csv` module reads it.
const READ_CSV: &str = r#"
import csv, json, sys
with open(sys.argv[1], newline="", encoding="utf-8") as f:
    json.dump(list(csv.reader(f)), sys.stdout)
"#;

fn cells(rows: &serde_json::Value, header: &str) -> Vec<String> {
    let rows = rows.as_array().expect("rows");
    let headers = rows[0].as_array().expect("header row");
    let index = headers
        .iter()
        .position(|h| h == header)
        .unwrap_or_else(|| panic!("no column {header}"));
    rows[1..]
        .iter()
        .map(|row| row[index].as_str().expect("text cell").to_owned())
        .collect()
}

#[test]
fn python_s_csv_module_reads_back_every_name() {
    let rig = awkward_day();
    for path in [rig.brief_path(DAY), rig.detailed_path(DAY)] {
        let rows = python(READ_CSV, &[&path]);
        assert_eq!(cells(&rows, "AGENT NAME"), AGENTS, "{}", path.display());
        assert_eq!(cells(&rows, "EXTERNAL VARIABLE 1"), AGENTS);
        let queues: Vec<String> = AGENTS.iter().map(|a| format!("Queue {a}")).collect();
        assert_eq!(cells(&rows, "QUEUE NAME"), queues);
        let widths: Vec<usize> = rows
            .as_array()
            .expect("rows")
            .iter()
            .map(|r| r.as_array().expect("row").len())
            .collect();
        assert!(widths.iter().all(|w| *w == widths[0]), "{widths:?}");
        assert_eq!(widths.len(), AGENTS.len() + 1);
    }
}

#[test]
fn python_s_csv_writer_writes_the_same_bytes() {
    // What Python's own writer makes of the rows it read: the "excel" dialect is RFC 4180
    // with minimal quoting and CRLF, so a file that follows the RFC comes back byte for byte.
    const REWRITE: &str = r#"
import csv, io, json, sys
with open(sys.argv[1], newline="", encoding="utf-8") as f:
    rows = list(csv.reader(f))
out = io.StringIO(newline="")
csv.writer(out, dialect="excel").writerows(rows)
json.dump(out.getvalue(), sys.stdout)
"#;
    let rig = awkward_day();
    for path in [rig.brief_path(DAY), rig.detailed_path(DAY)] {
        let rewritten = python(REWRITE, &[&path]);
        let ours = std::fs::read_to_string(&path).expect("index");
        assert_eq!(
            rewritten.as_str(),
            Some(ours.as_str()),
            "{}",
            path.display()
        );
    }
}

#[test]
fn libreoffice_calc_reads_back_every_name() {
    let rig = awkward_day();
    let work = tempfile::tempdir().expect("temporary directory");
    // A profile of its own, so that tests running at once do not share LibreOffice's lock.
    let profile = format!(
        "-env:UserInstallation=file://{}/profile",
        work.path().display()
    );
    let soffice = |args: &[&str]| {
        let output = peer("soffice", "libreoffice-calc-nogui")
            .arg(&profile)
            .arg("--headless")
            .args(args)
            .output()
            .expect("soffice runs");
        assert!(
            output.status.success(),
            "soffice {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let source = work.path().join("I20260606.csv");
    std::fs::copy(rig.brief_path(DAY), &source).expect("copy");
    let sheets = work.path().join("sheets");
    let back = work.path().join("back");
    let (sheets_dir, back_dir) = (
        sheets.to_str().expect("UTF-8 path"),
        back.to_str().expect("UTF-8 path"),
    );
    // Import as a user opening the file would: comma-separated, double-quoted, UTF-8 (76),
    // from line 1. Then from the spreadsheet back to CSV with the same settings.
    soffice(&[
        "--infilter=CSV:44,34,76,1",
        "--convert-to",
        "xlsx",
        "--outdir",
        sheets_dir,
        source.to_str().expect("UTF-8 path"),
    ]);
    let sheet = sheets.join("I20260606.xlsx");
    assert!(sheet.is_file(), "LibreOffice wrote no spreadsheet");
    soffice(&[
        "--convert-to",
        "csv:Text - txt - csv (StarCalc):44,34,76,1",
        "--outdir",
        back_dir,
        sheet.to_str().expect("UTF-8 path"),
    ]);
    let rows = python(READ_CSV, &[&back.join("I20260606.csv")]);
    // Line breaks come back as LibreOffice keeps them in a cell: LF.
    let expected: Vec<String> = AGENTS.iter().map(|a| a.replace("\r\n", "\n")).collect();
    assert_eq!(cells(&rows, "AGENT NAME"), expected);
    assert_eq!(cells(&rows, "EXTERNAL VARIABLE 1"), expected);
    let queues: Vec<String> = expected.iter().map(|a| format!("Queue {a}")).collect();
    assert_eq!(cells(&rows, "QUEUE NAME"), queues);
    // The header, file names and transaction ids survive as text, whole.
    let ours = python(READ_CSV, &[&rig.brief_path(DAY)]);
    assert_eq!(rows.as_array().expect("rows")[0], ours[0]);
    for header in ["FILENAME", "DIRECTORY", "TRANSACTION ID", "CALL TYPE"] {
        assert_eq!(cells(&rows, header), cells(&ours, header), "{header}");
    }
}
