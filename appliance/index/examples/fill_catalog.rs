//! Fills a database with a year of a busy contact centre, then times the Recordings search and
//! the Activity audit log queries against it, for `cargo xtask bench`.
//!
//! `fill_catalog <dir> <rows> [runs]` opens (creating) `<dir>/tapline.db` and, once (a marker
//! file remembers it), adds `<rows>` recordings rows and `<rows>` audit log rows: calls of 400
//! agents in 25 queues from 150,000 customers, answered in business hours (New York time)
//! on the days of the year to 2026-11-20, fewer at weekends; audit rows of 60 users signing in,
//! playing, downloading, holding and administering over the same year, appended through
//! `tapline_audit::append_at` so that the chain verifies. Only rows are made, no audio files.
//!
//! Then each query shape is run `runs` times (default 200) on one thread, with values drawn
//! from the same pools, and its latency printed, wall clock and the thread's CPU time:
//!
//! ```text
//! recordings customer number prefix, 8 chars     wall p50   0.41 p99   1.92 max   2.30 | cpu p50   0.38 p99   1.70 ms
//! ```
//!
//! The generator is seeded, so the same arguments give the same database.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use jiff::civil::{Date, Weekday, date};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use tapline_audit::{Entry, events, query};
use tapline_index::search::{self, Filter, Match, Request, TimeRange};
use tapline_store::{Store, rusqlite};

const ZONE: &str = "America/New_York";
const LAST_DAY: Date = date(2026, 11, 20);
const DAYS: i32 = 365;
const AGENTS: u64 = 400;
const CUSTOMERS: u64 = 150_000;
const USERS: u64 = 60;
const BATCH: usize = 50_000;
const QUEUES: &[&str] = &[
    "Sales",
    "Sales Spanish",
    "Renewals",
    "Billing",
    "Billing Disputes",
    "Collections",
    "Support Tier 1",
    "Support Tier 2",
    "Support Escalations",
    "Technical Support",
    "Onboarding",
    "Cancellations",
    "Retention",
    "Claims",
    "Claims Follow-up",
    "Fraud",
    "VIP",
    "Partners",
    "Shipping",
    "Returns",
    "Appointments",
    "Pharmacy",
    "Payments",
    "Outbound Campaign A",
    "Outbound Campaign B",
];
const FIRST_NAMES: &[&str] = &[
    "Maria", "James", "Aisha", "Chen", "Olivia", "Liam", "Sofia", "Noah", "Fatima", "Lucas",
    "Emma", "Mateo", "Priya", "Ethan", "Zoe", "Omar", "Hannah", "Diego", "Mei", "Samuel",
];
const LAST_NAMES: &[&str] = &[
    "Garcia", "Smith", "Khan", "Wang", "Johnson", "Brown", "Rossi", "Nguyen", "Okafor", "Silva",
    "Martin", "Lopez", "Patel", "Kim", "Novak", "Haddad", "Schmidt", "Cohen", "Tanaka", "Evans",
];
const AREA_CODES: &[&str] = &[
    "212", "646", "718", "917", "201", "973", "516", "631", "914", "203", "617", "215", "202",
    "305", "312", "404", "415", "213", "310", "512", "713", "214", "602", "206", "303",
];
const TENANT_NUMBERS: &[&str] = &[
    "+18005550100",
    "+18005550101",
    "+18005550102",
    "+18885550150",
    "+18885550151",
    "+12125550199",
];

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (dir, rows, runs) = match &args[..] {
        [dir, rows] => (dir, rows, "200"),
        [dir, rows, runs] => (dir, rows, runs.as_str()),
        _ => bail!("usage: fill_catalog <dir> <rows> [runs]"),
    };
    let rows: usize = rows.parse().context("rows")?;
    let runs: usize = runs.parse().context("runs")?;
    let data_dir = Path::new(dir);
    std::fs::create_dir_all(data_dir)?;
    let tz = TimeZone::get(ZONE)?;
    let store = Store::open_in(data_dir)?;
    let marker = data_dir.join(format!("catalog-{rows}"));
    if !marker.exists() {
        let started = Instant::now();
        fill_recordings(&store, &tz, rows)?;
        eprintln!(
            "fill_catalog: {rows} recordings in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let started = Instant::now();
        fill_audit(&store, &tz, rows)?;
        eprintln!(
            "fill_catalog: {rows} audit rows in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        store.checkpoint()?;
        std::fs::write(&marker, b"")?;
    }
    measure(&store, &tz, rows, runs)
}

/// splitmix64: small, seeded, and good enough to spread made-up data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// `count` instants over the year, in business hours (07:00 to 20:00 local), weekdays busier
/// than weekends, in order.
fn business_instants(tz: &TimeZone, count: usize, rng: &mut Rng) -> anyhow::Result<Vec<Timestamp>> {
    let first = LAST_DAY.checked_sub(SignedDuration::from_hours(24 * i64::from(DAYS - 1)))?;
    let days: Vec<Date> = (0..DAYS)
        .map(|n| first.checked_add(SignedDuration::from_hours(24 * i64::from(n))))
        .collect::<Result<_, _>>()?;
    let weight = |day: &Date| match day.weekday() {
        Weekday::Saturday => 3,
        Weekday::Sunday => 1,
        _ => 10,
    };
    let total_weight: u64 = days.iter().map(weight).sum();
    let mut instants = Vec::with_capacity(count);
    let mut assigned = 0usize;
    let mut weight_so_far = 0u64;
    for day in &days {
        weight_so_far += weight(day);
        let until = (count as u64 * weight_so_far / total_weight) as usize;
        let opening = day.at(7, 0, 0, 0).to_zoned(tz.clone())?.timestamp();
        let mut today: Vec<Timestamp> = (assigned..until)
            .map(|_| opening + SignedDuration::from_micros((rng.below(13 * 3_600_000_000)) as i64))
            .collect();
        today.sort_unstable();
        instants.extend(today);
        assigned = until;
    }
    Ok(instants)
}

fn agent_name(agent: u64) -> String {
    format!(
        "{} {}",
        FIRST_NAMES[(agent % 20) as usize],
        LAST_NAMES[(agent / 20 % 20) as usize]
    )
}

fn customer_number(customer: u64) -> String {
    format!(
        "+1{}{:07}",
        AREA_CODES[(customer % AREA_CODES.len() as u64) as usize],
        (customer * 7_919) % 10_000_000
    )
}

fn fill_recordings(store: &Store, tz: &TimeZone, rows: usize) -> anyhow::Result<()> {
    let mut rng = Rng(0x7461_706c_696e_6531);
    let instants = business_instants(tz, rows, &mut rng)?;
    let mut previous_second = String::new();
    let mut sequence = 0u32;
    for chunk in instants.chunks(BATCH) {
        store.write(|tx| {
            let mut insert = tx.prepare_cached(
                "INSERT INTO recordings (file_name, directory, status, source, call_type,
                     answered_at, ended_at, duration_ms, end_reason, transaction_id, sip_call_id,
                     caller_uri, caller_number, callee_uri, called_number, agent_ref, agent_id,
                     agent_extension, agent_name, customer_number, phone_channel, queue,
                     queue_name, case_id, account, wrap_up_code, codec, sample_rate, channels,
                     format, size_bytes, sha256, caller_packets, caller_lost, caller_jitter_ms,
                     callee_packets, callee_lost, callee_jitter_ms, record_reason, hold_count,
                     hold_ms)
                 VALUES (?1, ?2, 'complete', 'span', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12,
                     ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, 'PCMU', 8000, 2,
                     'pcm16', ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, 'percentage', ?33, ?34)",
            )?;
            for &answered in chunk {
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
                let seconds = 20 + rng.below(900) + rng.below(600) * u64::from(rng.chance(20));
                let ended = answered + SignedDuration::from_secs(seconds as i64);
                let outbound = rng.chance(25);
                let customer = customer_number(rng.below(CUSTOMERS));
                let tenant_number = *rng.pick(TENANT_NUMBERS);
                let agent = rng.below(AGENTS) + 1;
                // Most calls are on a phone the directory knows; some only name the agent in
                // a SIP header, and a few name no one.
                let (agent_ref, agent_name) = match rng.below(100) {
                    0..=91 => (Some(agent as i64), Some(agent_name(agent))),
                    92..=96 => (None, Some(agent_name(agent))),
                    _ => (None, None),
                };
                let transaction = format!("{:016x}{:08x}", rng.next(), rng.next() as u32);
                let (caller, called) = if outbound {
                    (tenant_number.to_owned(), customer.clone())
                } else {
                    (customer.clone(), tenant_number.to_owned())
                };
                let queue = if outbound {
                    QUEUES[23 + rng.below(2) as usize]
                } else {
                    QUEUES[rng.below(23) as usize]
                };
                let case_id = rng
                    .chance(70)
                    .then(|| format!("CASE-{:07}", rng.below(5_000_000)));
                let packets = (seconds * 50) as i64;
                let lost = if rng.chance(10) {
                    rng.below(200) as i64
                } else {
                    0
                };
                let holds = if rng.chance(15) { 1 + rng.below(3) } else { 0 };
                insert.execute(rusqlite::params![
                    file_name,
                    directory,
                    if outbound { "Outbound" } else { "Inbound" },
                    tapline_store::utc_text(answered),
                    tapline_store::utc_text(ended),
                    (seconds * 1000) as i64,
                    if rng.chance(60) {
                        "bye-caller"
                    } else {
                        "bye-callee"
                    },
                    transaction,
                    format!("{transaction}@pbx.example.com"),
                    format!("sip:{caller}@pbx.example.com"),
                    caller,
                    format!("sip:{called}@pbx.example.com"),
                    called,
                    agent_ref,
                    agent_ref.map(|n| format!("agent{n:03}")),
                    agent_ref.map(|n| format!("{}", 2000 + n)),
                    agent_name,
                    customer,
                    format!("{}", rng.below(96)),
                    if outbound { "Outbound" } else { "Inbound" },
                    queue,
                    case_id,
                    format!("ACCT-{:06}", rng.below(400_000)),
                    *rng.pick(&["Resolved", "Follow-up", "Sale", "No sale", "Escalated"]),
                    (seconds * 32_000) as i64,
                    format!(
                        "{:016x}{:016x}{:016x}{:016x}",
                        rng.next(),
                        rng.next(),
                        rng.next(),
                        rng.next()
                    ),
                    packets,
                    lost,
                    (rng.below(4000) as f64) / 100.0,
                    packets,
                    lost / 2,
                    (rng.below(4000) as f64) / 100.0,
                    holds as i64,
                    (holds * rng.below(120_000)) as i64,
                ])?;
            }
            Ok::<_, rusqlite::Error>(())
        })?;
    }
    Ok(())
}

fn username(user: u64) -> String {
    match user {
        0 => "admin".to_owned(),
        1..=4 => format!("auditor{user}"),
        _ => format!(
            "{}.{}",
            FIRST_NAMES[(user % 20) as usize].to_lowercase(),
            LAST_NAMES[(user * 7 % 20) as usize].to_lowercase()
        ),
    }
}

/// What one audit row records: event, sub event, object, comments, request URI, params.
fn audit_action(
    rng: &mut Rng,
) -> (
    &'static str,
    &'static str,
    String,
    String,
    String,
    serde_json::Value,
) {
    let recording = format!(
        "S2026{:02}{:02}/R2026{:02}{:02}{:06}0000.wav",
        1 + rng.below(11),
        1 + rng.below(28),
        1 + rng.below(11),
        1 + rng.below(28),
        rng.below(235_959)
    );
    let id = 1 + rng.below(1_000_000);
    match rng.below(100) {
        0..=29 => (
            "Web",
            events::LOGIN,
            String::new(),
            String::new(),
            "/signin".to_owned(),
            serde_json::json!({ "user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/131.0" }),
        ),
        30..=34 => (
            "Web",
            events::LOGIN_FAILED,
            String::new(),
            "wrong password".to_owned(),
            "/signin".to_owned(),
            serde_json::json!({ "failures": 1 + rng.below(4) }),
        ),
        35..=59 => (
            events::RECORDINGS,
            "Play",
            recording,
            String::new(),
            format!("/recordings/{id}/audio"),
            serde_json::json!({ "id": id, "range": "bytes=0-" }),
        ),
        60..=74 => (
            events::RECORDINGS,
            events::DOWNLOAD,
            recording,
            String::new(),
            format!("/recordings/{id}/download"),
            serde_json::json!({ "id": id, "bytes": rng.below(30_000_000) }),
        ),
        75..=76 => (
            events::RECORDINGS,
            events::LEGAL_HOLD,
            recording,
            format!("litigation hold, matter {}", 1000 + rng.below(300)),
            format!("/api/v1/recordings/{id}/hold"),
            serde_json::json!({ "scope": "call", "held": true, "changed": true }),
        ),
        77..=89 => (
            events::SFTP,
            *rng.pick(&[
                events::LOGIN,
                events::LIST_DIRECTORY,
                events::DOWNLOAD_STARTED,
                events::DOWNLOAD,
            ]),
            recording,
            String::new(),
            "sftp://tapline/".to_owned(),
            serde_json::json!({ "client": "SSH-2.0-OpenSSH_9.2p1" }),
        ),
        90..=94 => (
            events::DIRECTORY,
            *rng.pick(&[events::CREATED, events::UPDATED, events::DELETED]),
            format!("agent{:03}", 1 + rng.below(AGENTS)),
            String::new(),
            format!("/api/v1/agents/{}", 1 + rng.below(AGENTS)),
            serde_json::json!({ "field": "team", "to": format!("Team {}", rng.below(20)) }),
        ),
        _ => (
            events::ACCOUNT,
            *rng.pick(&[events::CREATED, events::UPDATED, events::PASSWORD_SET]),
            username(rng.below(USERS)),
            String::new(),
            "/accounts".to_owned(),
            serde_json::json!({ "role": *rng.pick(&["Supervisor", "Auditor", "Administrator"]) }),
        ),
    }
}

fn fill_audit(store: &Store, tz: &TimeZone, rows: usize) -> anyhow::Result<()> {
    let mut rng = Rng(0x6175_6469_746c_6f67);
    let instants = business_instants(tz, rows, &mut rng)?;
    let usernames: Vec<String> = (0..USERS).map(username).collect();
    for chunk in instants.chunks(BATCH) {
        store.write(|tx| {
            for &at in chunk {
                // A few users do most of the work, as on a real floor.
                let user = if rng.chance(50) {
                    rng.below(8)
                } else {
                    rng.below(USERS)
                };
                let ip = format!("10.20.{}.{}", user / 200, 10 + user % 200);
                let (event, sub_event, object, comments, uri, params) = audit_action(&mut rng);
                let entry = Entry {
                    username: &usernames[user as usize],
                    user_ip: &ip,
                    event,
                    sub_event,
                    event_object: &object,
                    comments: &comments,
                    request_uri: &uri,
                    params,
                };
                tapline_audit::append_at(tx, &entry, at)?;
            }
            Ok::<_, rusqlite::Error>(())
        })?;
    }
    Ok(())
}

/// Latencies of one query shape: wall time, and the CPU time of this thread, which other
/// work on the machine does not inflate.
struct Timings {
    wall: Vec<Duration>,
    cpu: Vec<Duration>,
    /// Rows all runs found: a shape that finds nothing measures nothing.
    found: usize,
}

fn thread_cpu() -> Duration {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(now.tv_sec.unsigned_abs(), now.tv_nsec.unsigned_abs() as u32)
}

impl Timings {
    fn run(
        runs: usize,
        mut query: impl FnMut(usize) -> anyhow::Result<usize>,
    ) -> anyhow::Result<Timings> {
        let mut wall = Vec::with_capacity(runs);
        let mut cpu = Vec::with_capacity(runs);
        let mut found = 0;
        for n in 0..runs {
            let (started, cpu_started) = (Instant::now(), thread_cpu());
            found += query(n)?;
            wall.push(started.elapsed());
            cpu.push(thread_cpu().saturating_sub(cpu_started));
        }
        wall.sort_unstable();
        cpu.sort_unstable();
        Ok(Timings { wall, cpu, found })
    }

    fn print(&self, table: &str, shape: &str) {
        let ms = |samples: &[Duration], p: usize| {
            let at = (samples.len() * p / 100).min(samples.len() - 1);
            samples[at].as_secs_f64() * 1000.0
        };
        println!(
            "{table:<10} {shape:<38} wall p50 {:6.2} p99 {:6.2} max {:6.2} | cpu p50 {:6.2} p99 {:6.2} ms{}",
            ms(&self.wall, 50),
            ms(&self.wall, 99),
            ms(&self.wall, 100),
            ms(&self.cpu, 50),
            ms(&self.cpu, 99),
            if self.found == 0 {
                "  (found nothing: not a fair measure)"
            } else {
                ""
            },
        );
    }
}

fn measure(store: &Store, tz: &TimeZone, rows: usize, runs: usize) -> anyhow::Result<()> {
    let mut rng = Rng(0x6d65_6173_7572_6521);
    let last_day = |days: i64| -> anyhow::Result<TimeRange> {
        let first = LAST_DAY.checked_sub(SignedDuration::from_hours(24 * (days - 1)))?;
        Ok(TimeRange::local_days(first, LAST_DAY, tz)?)
    };
    let week = last_day(7)?;
    let month = last_day(30)?;
    let random_day = |rng: &mut Rng| -> anyhow::Result<TimeRange> {
        let day = LAST_DAY.checked_sub(SignedDuration::from_hours(24 * rng.below(360) as i64))?;
        Ok(TimeRange::local_days(day, day, tz)?)
    };
    let page = |filter: &Filter, scope: Option<&[i64]>| -> anyhow::Result<usize> {
        let request = Request {
            filter,
            allowed_agents: scope,
            after: None,
            page_size: 50,
        };
        Ok(search::search(store, &request)?.rows.len())
    };
    // Pools the values are drawn from: what is in the database.
    let (numbers, cases, transactions): (Vec<String>, Vec<String>, Vec<String>) =
        store.read(|conn| {
            let column = |sql: &str| -> rusqlite::Result<Vec<String>> {
                conn.prepare(sql)?
                    .query_map([], |row| row.get(0))?
                    .collect()
            };
            Ok::<_, rusqlite::Error>((
                column("SELECT customer_number FROM recordings WHERE id % 997 = 0")?,
                column(
                    "SELECT case_id FROM recordings WHERE id % 997 = 0 AND case_id IS NOT NULL",
                )?,
                column("SELECT transaction_id FROM recordings WHERE id % 997 = 0")?,
            ))
        })?;
    let scope_of = |rng: &mut Rng, size: u64| -> Vec<i64> {
        let first = rng.below(AGENTS - size);
        (first + 1..=first + size).map(|n| n as i64).collect()
    };

    let rec = "recordings";
    Timings::run(runs, |_| page(&Filter::default(), None))?.print(rec, "no filter, newest first");
    Timings::run(runs, |_| {
        page(
            &Filter {
                answered: week,
                ..Filter::default()
            },
            None,
        )
    })?
    .print(rec, "last 7 local days");
    Timings::run(runs, |_| {
        let filter = Filter {
            answered: random_day(&mut rng)?,
            ..Filter::default()
        };
        page(&filter, None)
    })?
    .print(rec, "one local day");
    Timings::run(runs, |_| {
        let filter = Filter {
            agents: vec![1 + rng.below(AGENTS) as i64],
            ..Filter::default()
        };
        page(&filter, None)
    })?
    .print(rec, "one directory agent");
    Timings::run(runs, |_| {
        let filter = Filter {
            agent_name: Some(Match::Exact(agent_name(1 + rng.below(AGENTS)))),
            answered: month,
            ..Filter::default()
        };
        page(&filter, None)
    })?
    .print(rec, "agent name, last 30 days");
    Timings::run(runs, |_| {
        let scope = scope_of(&mut rng, 20);
        page(&Filter::default(), Some(&scope))
    })?
    .print(rec, "scope of 20 agents");
    Timings::run(runs, |_| {
        let scope = scope_of(&mut rng, 200);
        page(&Filter::default(), Some(&scope))
    })?
    .print(rec, "scope of 200 agents");
    Timings::run(runs, |_| {
        let scope = scope_of(&mut rng, 20);
        let filter = Filter {
            customer_number: Match::number(&format!("+1{}", rng.pick(AREA_CODES))),
            ..Filter::default()
        };
        page(&filter, Some(&scope))
    })?
    .print(rec, "scope of 20, area code prefix");
    Timings::run(runs, |_| {
        let filter = Filter {
            customer_number: Match::number(rng.pick::<String>(&numbers)),
            ..Filter::default()
        };
        page(&filter, None)
    })?
    .print(rec, "customer number (whole, as prefix)");
    Timings::run(runs, |_| {
        let number = rng.pick(&numbers);
        let filter = Filter {
            customer_number: Match::number(&number[..8]),
            ..Filter::default()
        };
        page(&filter, None)
    })?
    .print(rec, "customer number prefix, 8 chars");
    Timings::run(runs, |_| {
        let filter = Filter {
            customer_number: Match::number("+1"),
            queue: Match::text(rng.pick::<&str>(QUEUES)),
            ..Filter::default()
        };
        page(&filter, None)
    })?
    .print(rec, "prefix +1 and queue");
    Timings::run(runs, |_| {
        let filter = Filter {
            called_number: Match::number(&format!("{}=", rng.pick(TENANT_NUMBERS))),
            answered: random_day(&mut rng)?,
            ..Filter::default()
        };
        page(&filter, None)
    })?
    .print(rec, "called number exact, one day");
    Timings::run(runs, |_| {
        let filter = Filter {
            queue: Match::text(rng.pick::<&str>(QUEUES)),
            answered: week,
            ..Filter::default()
        };
        page(&filter, None)
    })?
    .print(rec, "queue, last 7 days");
    Timings::run(runs, |_| {
        let filter = Filter {
            queue: Match::text(rng.pick::<&str>(QUEUES)),
            agents: vec![1 + rng.below(AGENTS) as i64],
            ..Filter::default()
        };
        page(&filter, None)
    })?
    .print(rec, "queue and one agent");
    Timings::run(runs, |_| {
        let filter = Filter {
            case_id: Match::text(rng.pick::<String>(&cases)),
            ..Filter::default()
        };
        page(&filter, None)
    })?
    .print(rec, "case id");
    Timings::run(runs, |_| {
        let filter = Filter {
            transaction_id: Match::text(rng.pick::<String>(&transactions)),
            ..Filter::default()
        };
        page(&filter, None)
    })?
    .print(rec, "transaction id");
    Timings::run(runs, |_| {
        let filter = Filter {
            answered: month,
            agents: vec![1 + rng.below(AGENTS) as i64],
            ..Filter::default()
        };
        let mut after = None;
        let mut rows = 0;
        for _ in 0..5 {
            let request = Request {
                filter: &filter,
                allowed_agents: None,
                after,
                page_size: 20,
            };
            let page = search::search(store, &request)?;
            rows += page.rows.len();
            after = page.next;
        }
        Ok(rows)
    })?
    .print(rec, "one agent, 30 days, five pages of 20");
    Timings::run(runs, |_| {
        let id = 1 + rng.below(rows as u64) as i64;
        Ok(usize::from(search::by_id(store, id, None)?.is_some()))
    })?
    .print(rec, "detail by id");

    let aud = "audit log";
    let audit_page = |filter: &query::Filter| -> anyhow::Result<usize> {
        Ok(query::search(store, filter, None, 50)?.rows.len())
    };
    let one_user = |rng: &mut Rng| username(rng.below(USERS));
    Timings::run(runs, |_| audit_page(&query::Filter::default()))?.print(aud, "no filter");
    Timings::run(runs, |_| {
        let span = random_day(&mut rng)?;
        audit_page(&query::Filter {
            from: span.from,
            to: span.to,
            ..query::Filter::default()
        })
    })?
    .print(aud, "one day");
    Timings::run(runs, |_| {
        audit_page(&query::Filter {
            usernames: vec![one_user(&mut rng)],
            ..query::Filter::default()
        })
    })?
    .print(aud, "one user");
    Timings::run(runs, |_| {
        let usernames = vec![one_user(&mut rng), one_user(&mut rng), one_user(&mut rng)];
        audit_page(&query::Filter {
            usernames,
            from: month.from,
            ..query::Filter::default()
        })
    })?
    .print(aud, "three users, last 30 days");
    Timings::run(runs, |_| {
        let event = rng.pick(&[events::RECORDINGS, events::SFTP, "Web", events::ACCOUNT]);
        audit_page(&query::Filter {
            event: Some((*event).to_owned()),
            ..query::Filter::default()
        })
    })?
    .print(aud, "event");
    Timings::run(runs, |_| {
        audit_page(&query::Filter {
            event: Some(events::RECORDINGS.to_owned()),
            sub_event: Some(events::DOWNLOAD.to_owned()),
            usernames: vec![one_user(&mut rng)],
            ..query::Filter::default()
        })
    })?
    .print(aud, "event, sub event and user");
    Timings::run(runs, |_| {
        audit_page(&query::Filter {
            sub_event: Some(events::PASSWORD_SET.to_owned()),
            ..query::Filter::default()
        })
    })?
    .print(aud, "sub event only");
    Timings::run(runs, |_| {
        let object = format!("S2026{:02}*", 1 + rng.below(11));
        audit_page(&query::Filter {
            event_object: query::Match::parse(&object),
            ..query::Filter::default()
        })
    })?
    .print(aud, "object prefix (a month's directory)");
    Timings::run(runs, |_| {
        audit_page(&query::Filter {
            event_object: Some(query::Match::Exact(format!(
                "agent{:03}",
                1 + rng.below(AGENTS)
            ))),
            ..query::Filter::default()
        })
    })?
    .print(aud, "object exact (an agent)");
    Timings::run(runs, |_| {
        audit_page(&query::Filter {
            comments: Some(format!("matter {}", 1000 + rng.below(300))),
            from: month.from,
            ..query::Filter::default()
        })
    })?
    .print(aud, "comments text, last 30 days");
    Timings::run(runs, |_| Ok(query::event_pairs(store)?.len()))?
        .print(aud, "event and sub event lists");

    let started = Instant::now();
    let mut sink = std::io::sink();
    let mut counted = CountingWriter {
        inner: &mut sink,
        bytes: 0,
    };
    query::CsvExport::new(query::Filter {
        from: month.from,
        ..query::Filter::default()
    })
    .write_all(store, &mut counted)?;
    println!(
        "{aud:<10} {:<38} {:.2} s, {} bytes",
        "CSV export, last 30 days",
        started.elapsed().as_secs_f64(),
        counted.bytes
    );
    Ok(())
}

struct CountingWriter<'a, W> {
    inner: &'a mut W,
    bytes: u64,
}

impl<W: std::io::Write> std::io::Write for CountingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
