//! The STUN/TURN relay: Tapline's (`tapline turn`) beside coturn's `turnserver`, each pinned
//! to one core, under the same load from the same client, side by side in one run:
//!
//! 1. Relaying: [`CLIENTS`] clients, each with an allocation and a channel bound to an echo
//!    peer, send [`MESSAGE_BYTES`]-byte ChannelData messages, [`RATE`] a second in all, for
//!    [`TRAFFIC`]. Measured: datagrams relayed (both ways) per CPU-second of the relay, loss,
//!    and round trips.
//! 2. Allocations a second: [`ALLOCATIONS`] Allocate exchanges with credentials, the 401
//!    round trip included, [`IN_FLIGHT`] at a time.
//! 3. Holding [`CONCURRENT`] allocations at once on one relay address, and the relay's
//!    resident memory then.
//!
//! The load is the benchmark's own client ([`load`]), built on Tapline's STUN codec, rather
//! than coturn's `turnutils_uclient`: the same shape (clients, message size, channels), but
//! paced to a fixed rate, with every round trip timed for percentiles, and with each client on
//! a loopback address of its own. It asks for no EVEN-PORT and binds channel 0x4000, within
//! RFC 8656's range, so both relays get the same requests.
//!
//! Each relay is started afresh for every run ([`relay`]) and stopped at its end, so no run
//! inherits another's allocations and no relay outlives the benchmark.

mod floor;
mod load;
mod relay;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::ops::RangeInclusive;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};

use self::relay::{Kind, Memory, Relay};
use super::{RUNS, median, met};
use crate::cargo;

/// Clients of the relaying test, and what each sends: a message the size of 20 ms of G.711
/// audio with its RTP header, as `turnutils_uclient` sends by default.
pub(super) const CLIENTS: usize = 50;
pub(super) const MESSAGE_BYTES: usize = 170;
/// Messages a second from all clients together; each is relayed twice (to the peer, back).
pub(super) const RATE: u64 = 20_000;
pub(super) const TRAFFIC: Duration = Duration::from_secs(5);
/// How long what is still on its way may take to come back before it counts as lost.
const DRAIN: Duration = Duration::from_secs(1);
/// The allocation-rate test.
pub(super) const ALLOCATIONS: usize = 3_000;
pub(super) const IN_FLIGHT: usize = 64;
/// The concurrency test: nearly every port of [`RELAY_PORTS`] on one relayed address.
pub(super) const CONCURRENT: usize = 16_000;
/// Setting up may take this long before what is unfinished counts as failed.
const SET_UP_LIMIT: Duration = Duration::from_secs(20);
const ALLOCATIONS_LIMIT: Duration = Duration::from_secs(30);
const CONCURRENT_LIMIT: Duration = Duration::from_secs(60);
/// The goals.
const GOAL_RATIO: f64 = 2.0;
const GOAL_ALLOCATIONS_PER_SECOND: f64 = 1_000.0;

/// What both relays are configured with.
const REALM: &str = "tapline";
const SECRET: &str = "tapline-benchmark-rest-secret";
const RELAY_PORTS: RangeInclusive<u16> = 49152..=65535;
/// The load runs on the core the relays do not.
const LOAD_CORE: usize = 0;
/// Address blocks (`127.B.x.y`) of each test's clients.
const TRAFFIC_BLOCK: u8 = 10;
const ALLOCATIONS_BLOCK: u8 = 11;
const CONCURRENT_BLOCK: u8 = 12;
/// Descriptors for [`CONCURRENT`] client sockets here, and for a relay's sockets (coturn
/// keeps two per allocation); the relays inherit the limit.
const OPEN_FILES: u64 = 65_536;

/// What the runs measured; index 0 is Tapline, 1 coturn, as in [`Kind::BOTH`].
pub(super) struct Turn {
    runs: [Vec<Run>; 2],
    /// The forwarding floor's runs, one after each pair of relay runs.
    floor: Vec<FloorRun>,
    holding: [Holding; 2],
    coturn_version: String,
    load_average: String,
    /// The open-file limit the relays ran with.
    open_files: u64,
}

/// One run against one relay.
struct Run {
    sent: u64,
    at_peer: u64,
    echoed: u64,
    /// Over which the messages were sent.
    sending: Duration,
    /// Over which the relay's CPU time was counted: from the first message to the last back,
    /// or to the end of the drain.
    measured: Duration,
    /// The relay's CPU time over the traffic and its drain.
    cpu: Duration,
    /// Datagrams the kernel dropped at the relay's full socket buffers.
    socket_drops: u64,
    p50: Duration,
    p99: Duration,
    allocations: load::Setup,
}

impl Run {
    fn relayed(&self) -> u64 {
        self.at_peer + self.echoed
    }

    fn relayed_per_cpu_second(&self) -> f64 {
        self.relayed() as f64 / self.cpu.as_secs_f64().max(0.01)
    }

    fn relayed_per_second(&self) -> f64 {
        self.relayed() as f64 / self.sending.as_secs_f64().max(1e-3)
    }

    fn lost(&self) -> u64 {
        self.sent - self.echoed
    }

    fn allocations_per_second(&self) -> f64 {
        self.allocations.ready as f64 / self.allocations.elapsed.as_secs_f64().max(1e-3)
    }
}

/// One run of the forwarding floor under the relaying load.
struct FloorRun {
    sent: u64,
    at_peer: u64,
    echoed: u64,
    cpu: Duration,
}

impl FloorRun {
    fn relayed_per_cpu_second(&self) -> f64 {
        (self.at_peer + self.echoed) as f64 / self.cpu.as_secs_f64().max(0.01)
    }
}

/// The concurrency test against one relay.
struct Holding {
    setup: load::Setup,
    before: Memory,
    after: Memory,
    /// Whether the relay was still running once they were all made.
    running: bool,
}

pub(super) fn measure() -> anyhow::Result<Turn> {
    cargo(&["build", "--release", "--locked", "--package", "tapline"])?;
    let open_files = raise_open_files()?;
    if open_files < OPEN_FILES {
        eprintln!(
            "xtask: the open-file limit is {open_files}, short of {OPEN_FILES}: a relay that \
             needs more than one descriptor per allocation cannot hold {CONCURRENT}"
        );
    }
    let dir = std::env::current_dir()?.join("target/bench/turn");
    std::fs::create_dir_all(&dir)?;
    let coturn_version = relay::coturn_version()?;
    let load_average = std::fs::read_to_string("/proc/loadavg")?
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(", ");
    // The load runs on a thread of its own pinned to its core, so that nothing this process
    // starts later inherits the pinning.
    let (runs, floor, holding) = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                pin(LOAD_CORE)?;
                measure_pinned(&dir)
            })
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the load thread panicked")))
    })?;
    Ok(Turn {
        runs,
        floor,
        holding,
        coturn_version,
        load_average,
        open_files,
    })
}

type Measured = ([Vec<Run>; 2], Vec<FloorRun>, [Holding; 2]);

fn measure_pinned(dir: &Path) -> anyhow::Result<Measured> {
    let mut runs: [Vec<Run>; 2] = [Vec::new(), Vec::new()];
    let mut floor = Vec::new();
    for number in 1..=RUNS {
        for (slot, kind) in Kind::BOTH.into_iter().enumerate() {
            let run = one_run(kind, dir).with_context(|| format!("{kind:?}, run {number}"))?;
            eprintln!(
                "xtask: turn run {number}, {kind:?}: {} sent, {} back, {:.0} relayed/s, \
                 {:.2} CPU-s, {:.0} relayed per CPU-s, p99 {:.2} ms, {} dropped at its sockets; \
                 {:.0} allocations/s",
                run.sent,
                run.echoed,
                run.relayed_per_second(),
                run.cpu.as_secs_f64(),
                run.relayed_per_cpu_second(),
                run.p99.as_secs_f64() * 1e3,
                run.socket_drops,
                run.allocations_per_second(),
            );
            runs[slot].push(run);
        }
        let run = floor_run().with_context(|| format!("the forwarding floor, run {number}"))?;
        eprintln!(
            "xtask: turn run {number}, forwarding floor: {} sent, {} back, {:.2} CPU-s, \
             {:.0} relayed per CPU-s",
            run.sent,
            run.echoed,
            run.cpu.as_secs_f64(),
            run.relayed_per_cpu_second(),
        );
        floor.push(run);
    }
    let holding = [hold(Kind::Tapline, dir)?, hold(Kind::Coturn, dir)?];
    Ok((runs, floor, holding))
}

/// The relaying test against the forwarding floor, with the same load as the relays get.
fn floor_run() -> anyhow::Result<FloorRun> {
    let peer = load::echo_peer()?;
    let floor = floor::Floor::start(peer.local_addr()?)?;
    let clients = load::ready_clients(floor::LISTEN, TRAFFIC_BLOCK, CLIENTS)?;
    load::check_path(&clients, &peer, MESSAGE_BYTES)?;
    let cpu_before = floor.cpu_time()?;
    let traffic = load::relay_traffic(&clients, &peer, MESSAGE_BYTES, RATE, TRAFFIC, DRAIN)?;
    let cpu = floor.cpu_time()?.saturating_sub(cpu_before);
    floor.stop()?;
    Ok(FloorRun {
        sent: traffic.sent,
        at_peer: traffic.at_peer,
        echoed: traffic.echoed,
        cpu,
    })
}

/// The relaying and allocation-rate tests against a fresh `kind`.
fn one_run(kind: Kind, dir: &Path) -> anyhow::Result<Run> {
    let mut relay = Relay::start(kind, dir)?;
    let peer = load::echo_peer()?;
    let (clients, setup) = load::set_up(
        relay.addr,
        TRAFFIC_BLOCK,
        CLIENTS,
        CLIENTS,
        Some(peer.local_addr()?),
        SET_UP_LIMIT,
    )?;
    if setup.ready != CLIENTS {
        bail!(
            "{} of {CLIENTS} clients set up; failures: {:?}",
            setup.ready,
            setup.failures
        );
    }
    load::check_path(&clients, &peer, MESSAGE_BYTES)?;
    let cpu_before = relay.cpu_time()?;
    let traffic = load::relay_traffic(&clients, &peer, MESSAGE_BYTES, RATE, TRAFFIC, DRAIN)?;
    let cpu = relay.cpu_time()?.saturating_sub(cpu_before);
    let socket_drops = relay.socket_drops()?;
    drop(clients);
    let (clients, allocations) = load::set_up(
        relay.addr,
        ALLOCATIONS_BLOCK,
        ALLOCATIONS,
        IN_FLIGHT,
        None,
        ALLOCATIONS_LIMIT,
    )?;
    drop(clients);
    if !relay.is_running() {
        bail!("the relay stopped during the run");
    }
    Ok(Run {
        sent: traffic.sent,
        at_peer: traffic.at_peer,
        echoed: traffic.echoed,
        sending: traffic.sending,
        measured: traffic.elapsed,
        cpu,
        socket_drops,
        p50: traffic.round_trip_quantile(0.50),
        p99: traffic.round_trip_quantile(0.99),
        allocations,
    })
}

/// The concurrency test against a fresh `kind`.
fn hold(kind: Kind, dir: &Path) -> anyhow::Result<Holding> {
    let mut relay = Relay::start(kind, dir)?;
    let before = relay.memory()?;
    let (clients, setup) = load::set_up(
        relay.addr,
        CONCURRENT_BLOCK,
        CONCURRENT,
        IN_FLIGHT,
        None,
        CONCURRENT_LIMIT,
    )?;
    // Let whatever the relay does after answering settle before reading its memory.
    std::thread::sleep(Duration::from_secs(1));
    let running = relay.is_running();
    let after = if running {
        relay.memory()?
    } else {
        Memory::default()
    };
    drop(clients);
    eprintln!(
        "xtask: turn, {kind:?}: {} of {CONCURRENT} allocations held in {:.1} s, VmRSS {} KiB \
         (from {} KiB), VmHWM {} KiB; failures: {:?}",
        setup.ready,
        setup.elapsed.as_secs_f64(),
        after.rss_kib,
        before.rss_kib,
        after.hwm_kib,
        setup.failures
    );
    Ok(Holding {
        setup,
        before,
        after,
        running,
    })
}

/// Raises this process's open-file limit, for the clients and the relays, to
/// [`OPEN_FILES`] (root may, with CAP_SYS_RESOURCE) or else as far as the hard limit goes.
/// Returns the limit in force.
fn raise_open_files() -> anyhow::Result<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let current = getrlimit(Resource::Nofile);
    let wanted = |limit: Option<u64>| Some(limit.map_or(OPEN_FILES, |l| l.max(OPEN_FILES)));
    let raised = Rlimit {
        current: wanted(current.current),
        maximum: wanted(current.maximum),
    };
    if setrlimit(Resource::Nofile, raised).is_err() {
        let hard = Rlimit {
            current: current.maximum,
            maximum: current.maximum,
        };
        setrlimit(Resource::Nofile, hard).context("cannot raise the open-file limit")?;
    }
    Ok(getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX))
}

/// Moves the calling thread onto one core.
fn pin(core: usize) -> anyhow::Result<()> {
    let mut set = rustix::thread::CpuSet::new();
    set.set(core);
    rustix::thread::sched_setaffinity(None, &set)
        .with_context(|| format!("cannot pin a thread to core {core}"))
}

/// The medians of a figure over the runs against each relay.
fn medians(runs: &[Vec<Run>; 2], figure: impl Fn(&Run) -> f64) -> [f64; 2] {
    [0, 1].map(|slot| median(&mut runs[slot].iter().map(&figure).collect::<Vec<_>>()))
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

impl Turn {
    pub(super) fn write_section(&self, out: &mut String) -> anyhow::Result<()> {
        let names = ["Tapline", "coturn"];
        let per_cpu = medians(&self.runs, Run::relayed_per_cpu_second);
        let per_second = medians(&self.runs, Run::relayed_per_second);
        let cpu_share = medians(&self.runs, |r| {
            r.cpu.as_secs_f64() / r.measured.as_secs_f64().max(1e-3)
        });
        let lost = medians(&self.runs, |r| r.lost() as f64);
        let p50 = medians(&self.runs, |r| r.p50.as_secs_f64() * 1e3);
        let p99 = medians(&self.runs, |r| r.p99.as_secs_f64() * 1e3);
        let allocations = medians(&self.runs, Run::allocations_per_second);
        let most_lost = self.runs[0].iter().map(Run::lost).max().unwrap_or(0);

        writeln!(out, "## STUN/TURN relay\n")?;
        writeln!(
            out,
            "Tapline's relay (`tapline turn`) beside coturn's `turnserver` ({}, Debian's \
             package), each started afresh for every run with a configuration of the \
             benchmark's own (UDP on a loopback address of its own, relayed ports \
             {}–{}, TURN REST secret, loopback peers allowed) and pinned to core {} \
             (`taskset`); the load runs on core {LOAD_CORE}. The load is the benchmark's own \
             client, built on Tapline's STUN codec: each client sends from a loopback address \
             of its own, allocates with REST credentials (the 401 round trip included), \
             asks for no EVEN-PORT and binds channel 0x4000 to an echo peer; both relays get \
             the same requests. Load average when the run began: {} (this machine has {} \
             cores; a loaded machine makes every figure noisier).\n",
            self.coturn_version,
            RELAY_PORTS.start(),
            RELAY_PORTS.end(),
            relay::SERVER_CORE,
            self.load_average,
            std::thread::available_parallelism().map_or(0, |n| n.get()),
        )?;
        writeln!(
            out,
            "**Relaying.** {CLIENTS} clients, {MESSAGE_BYTES}-byte ChannelData messages, \
             {RATE} messages/s in all for {} s, each echoed by the peer, so the relay forwards \
             {} datagrams/s. Relayed datagrams per CPU-second: datagrams forwarded (both ways) \
             over the time the relay's threads spent on a CPU (`/proc/PID/task/*/schedstat`) from the \
             first message until the last came back, or {} s after the last was sent. Lost: sent \
             and not back by then. Round trip: client to peer and back through the relay. \
             Medians of {RUNS} runs.\n",
            TRAFFIC.as_secs(),
            RATE * 2,
            DRAIN.as_secs(),
        )?;
        writeln!(
            out,
            "| | relayed datagrams/s | relay CPU, share of a core | relayed datagrams per \
             CPU-second | lost | p50 round trip | p99 round trip |"
        )?;
        writeln!(out, "|---|---:|---:|---:|---:|---:|---:|")?;
        for slot in 0..2 {
            writeln!(
                out,
                "| {} | {:.0} | {:.0}% | {:.0} | {:.0} | {:.2} ms | {:.2} ms |",
                names[slot],
                per_second[slot],
                cpu_share[slot] * 100.0,
                per_cpu[slot],
                lost[slot],
                p50[slot],
                p99[slot]
            )?;
        }
        writeln!(
            out,
            "| **Tapline / coturn** | {:.2}× | {:.2}× | **{:.2}×** | | {:.2}× | {:.2}× |\n",
            per_second[0] / per_second[1],
            cpu_share[0] / cpu_share[1],
            per_cpu[0] / per_cpu[1],
            p50[0] / p50[1],
            p99[0] / p99[1]
        )?;
        writeln!(
            out,
            "Each run (dropped at its sockets: datagrams the kernel dropped because a receive \
             buffer of one of the relay's sockets was full, from `/proc/net/udp`):\n\n\
             | relay | run | sent | at the peer | back | dropped at its sockets | relay \
             CPU-seconds | relayed per CPU-second | p99 round trip | allocations/s |"
        )?;
        writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")?;
        for (slot, runs) in self.runs.iter().enumerate() {
            for (number, run) in runs.iter().enumerate() {
                writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} | {:.2} | {:.0} | {:.2} ms | {:.0} |",
                    names[slot],
                    number + 1,
                    run.sent,
                    run.at_peer,
                    run.echoed,
                    run.socket_drops,
                    run.cpu.as_secs_f64(),
                    run.relayed_per_cpu_second(),
                    run.p99.as_secs_f64() * 1e3,
                    run.allocations_per_second()
                )?;
            }
        }
        for (number, run) in self.floor.iter().enumerate() {
            writeln!(
                out,
                "| forwarding floor | {} | {} | {} | {} | | {:.2} | {:.0} | | |",
                number + 1,
                run.sent,
                run.at_peer,
                run.echoed,
                run.cpu.as_secs_f64(),
                run.relayed_per_cpu_second(),
            )?;
        }
        writeln!(out)?;

        let floor = median(
            &mut self
                .floor
                .iter()
                .map(FloorRun::relayed_per_cpu_second)
                .collect::<Vec<_>>(),
        );
        writeln!(
            out,
            "**The forwarding floor.** The same load, in the same runs, through a forwarder that \
             does nothing but move the datagrams (`xtask/src/bench/turn/floor.rs`): no STUN, no \
             credentials, no permissions, no counting, with the system calls of Tapline's \
             datagram path in the same pattern, from a thread pinned to core {}. What it costs \
             a datagram is what the kernel charges for the datagram alone, on this machine; \
             a relay built on these system calls can at best match it.\n",
            relay::SERVER_CORE,
        )?;
        writeln!(
            out,
            "| | relayed datagrams per CPU-second | CPU per relayed datagram | against coturn |"
        )?;
        writeln!(out, "|---|---:|---:|---:|")?;
        for (name, rate) in [
            ("forwarding floor", floor),
            ("Tapline", per_cpu[0]),
            ("coturn", per_cpu[1]),
        ] {
            writeln!(
                out,
                "| {name} | {rate:.0} | {:.2} µs | {:.2}× |",
                1e6 / rate.max(1.0),
                rate / per_cpu[1].max(1.0)
            )?;
        }
        // Each floor run beside coturn's run of the same round, which the same state of the
        // machine affected.
        let paired: Vec<f64> = self
            .floor
            .iter()
            .zip(&self.runs[1])
            .map(|(floor, coturn)| {
                floor.relayed_per_cpu_second() / coturn.relayed_per_cpu_second().max(1.0)
            })
            .collect();
        let lowest = paired.iter().copied().fold(f64::INFINITY, f64::min);
        let highest = paired.iter().copied().fold(0.0, f64::max);
        writeln!(
            out,
            "\nAgainst the floor's, Tapline's CPU per relayed datagram is {:+.0}% and coturn's \
             {:+.0}% (a few per cent either way is run-to-run noise). Even with nothing beyond \
             the floor, a relay would reach {:.2}× coturn here; run by run, the floor reached \
             {lowest:.2}–{highest:.2}× coturn's figure of the same round.\n",
            (floor / per_cpu[0].max(1.0) - 1.0) * 100.0,
            (floor / per_cpu[1].max(1.0) - 1.0) * 100.0,
            floor / per_cpu[1].max(1.0),
        )?;

        writeln!(
            out,
            "**Allocations a second.** {ALLOCATIONS} allocations, {IN_FLIGHT} in flight, each \
             from a client of its own: Allocate, 401, Allocate with credentials, success. \
             Timed from the first request to the last answer; medians of {RUNS} runs.\n"
        )?;
        writeln!(out, "| | allocations/s | failed (all runs) |")?;
        writeln!(out, "|---|---:|---:|")?;
        for slot in 0..2 {
            let failed: usize = self.runs[slot]
                .iter()
                .map(|r| r.allocations.failures.values().sum::<usize>())
                .sum();
            writeln!(
                out,
                "| {} | {:.0} | {failed} |",
                names[slot], allocations[slot]
            )?;
        }
        writeln!(
            out,
            "| **Tapline / coturn** | **{:.2}×** | |\n",
            allocations[0] / allocations[1]
        )?;

        writeln!(
            out,
            "**{CONCURRENT} allocations at once** on one relayed address, {IN_FLIGHT} being \
             made at a time, each from a client of its own; resident memory (`/proc/PID/status`) \
             a second after the last answer. Run once. Open-file limit of both relays: {}.\n",
            self.open_files,
        )?;
        writeln!(
            out,
            "| | held | refused or unanswered | VmRSS before | VmRSS holding them | VmHWM | per \
             allocation | time to make them |"
        )?;
        writeln!(out, "|---|---:|---|---:|---:|---:|---:|---:|")?;
        for (slot, holding) in self.holding.iter().enumerate() {
            let refused = if holding.setup.failures.is_empty() {
                "none".to_owned()
            } else {
                describe(&holding.setup.failures)
            };
            let per_allocation = if holding.setup.ready == 0 || !holding.running {
                "".to_owned()
            } else {
                let grown = holding.after.rss_kib.saturating_sub(holding.before.rss_kib);
                format!("{:.1} KiB", grown as f64 / holding.setup.ready as f64)
            };
            let stopped = if holding.running {
                ""
            } else {
                " (the relay stopped)"
            };
            writeln!(
                out,
                "| {} | {}{stopped} | {refused} | {} | {} | {} | {per_allocation} | {:.1} s |",
                names[slot],
                holding.setup.ready,
                mib(holding.before.rss_kib),
                mib(holding.after.rss_kib),
                mib(holding.after.hwm_kib),
                holding.setup.elapsed.as_secs_f64()
            )?;
        }
        writeln!(out)?;

        let ours = &self.holding[0];
        writeln!(out, "Goals:\n")?;
        writeln!(
            out,
            "- At least {GOAL_RATIO}× coturn's relayed datagrams per core with zero loss: {} \
             ({:.2}×; at most {most_lost} lost in a run).",
            met(per_cpu[0] / per_cpu[1] >= GOAL_RATIO && most_lost == 0),
            per_cpu[0] / per_cpu[1]
        )?;
        writeln!(
            out,
            "  The forwarding floor reaches {:.2}× coturn: the goal {}.",
            floor / per_cpu[1].max(1.0),
            if floor / per_cpu[1].max(1.0) >= GOAL_RATIO {
                "is within reach of a relay on these system calls"
            } else {
                "is beyond what any relay on these system calls could reach on this machine"
            }
        )?;
        writeln!(
            out,
            "- At least {GOAL_ALLOCATIONS_PER_SECOND:.0} allocations a second: {} ({:.0}/s).",
            met(allocations[0] >= GOAL_ALLOCATIONS_PER_SECOND),
            allocations[0]
        )?;
        writeln!(
            out,
            "- {CONCURRENT} concurrent allocations on one relayed address: {} ({} held, {} \
             resident).\n",
            met(ours.running && ours.setup.ready == CONCURRENT),
            ours.setup.ready,
            mib(ours.after.rss_kib)
        )?;
        writeln!(
            out,
            "Reproduce: `cargo xtask bench` as root (it pins processes and raises the open-file \
             limit, to {OPEN_FILES} where allowed; coturn is installed with its service masked), or only this \
             part, which rewrites only this section: `cargo xtask bench turn`.\n"
        )?;
        Ok(())
    }
}

/// `"486 Allocation Quota Reached" × 11904, …`
fn describe(failures: &BTreeMap<String, usize>) -> String {
    failures
        .iter()
        .map(|(reason, count)| format!("{count}: {reason}"))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_get_distinct_loopback_addresses() {
        let addresses: std::collections::HashSet<_> = (0..CONCURRENT)
            .map(|i| load::client_ip(CONCURRENT_BLOCK, i))
            .collect();
        assert_eq!(addresses.len(), CONCURRENT);
        assert!(addresses.iter().all(|ip| ip.is_loopback()));
    }
}
