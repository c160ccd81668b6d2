//! The appliance as it is installed: a switch mirrors the contact centre's voice VLAN to the
//! appliance's SPAN port, and `tapline run` records every call it sees there.
//!
//! The set-up is real, in network namespaces of the test's own. An agent phone and a PBX, both
//! SIPp, talk across a veth pair (the voice VLAN). Traffic control on the phone's port copies
//! every frame, both ways, to a second veth pair whose far end, `span0`, is the appliance's SPAN
//! port: exactly what a switch's SPAN session does. `span0` has no address, so only a passive,
//! promiscuous capture sees anything on it. The phone places two overlapping calls, each side
//! playing a tone of its own; the recordings are then checked with tools we did not write:
//! SIPp's own message log for the call times, sox for the reference audio, Python's `wave`
//! for the files, `sha256sum`, and curl for `/metrics`.
//!
//! It needs root (namespaces, traffic control, raw sockets). `TAPLINE_SKIP_PRIVILEGED=1`
//! skips it, loudly, where root is not to be had.

// Every function here fails the test on anything unexpected, like the test's body does.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::Signal;
use tapline_directory::{AgentFields, DeviceFields, DeviceKind};
use tapline_tests::{
    Appliance, Daemon, RecordingRow, eventually, peer, recording_rows, sha256sum, tapline_bin,
};

/// The SIPp scenarios: the phone's (`uac.xml`) and the PBX's (`uas.xml`). See README.md there.
const SIPP_DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/sipp");

/// RFC 5737 documentation addresses: the agent phone and the PBX on the voice VLAN.
const PHONE_IP: &str = "198.51.100.20";
const PBX_IP: &str = "198.51.100.10";

/// G.711 µ-law: 8000 samples a second, 160 of them (20 ms) in each RTP packet.
const RATE: u32 = 8000;
const SAMPLES_PER_PACKET: usize = 160;

/// What each call plays: the caller's tone (left channel), the callee's (right), and seconds
/// of audio each way. The scenarios pick the audio files by call number and stay on the line
/// 300 ms longer than the audio lasts. The tones are chosen for the click check:
/// - not multiples of 50 Hz, whose 20 ms packets would each hold whole cycles, so that every
///   join fell at the same phase of the tone, maybe a zero crossing, where a gap is no step;
/// - not 1000 Hz or another submultiple of 8 kHz, which repeat every few samples, so that the
///   observed peak can sit well under the true amplitude (why G.711 test tones are 1004 or
///   1020 Hz);
/// - under 1.1 kHz, where a tone cannot step as far as from its peak to silence.
struct Script {
    caller_hz: u32,
    callee_hz: u32,
    talk_s: u32,
}

const CALLS: [Script; 2] = [
    Script {
        caller_hz: 440,
        callee_hz: 1020,
        talk_s: 6,
    },
    Script {
        caller_hz: 530,
        callee_hz: 860,
        talk_s: 4,
    },
];

/// SIPp names call N `tapline-span-N@<phone's address>` (`-cid_str`).
fn call_id(n: usize) -> String {
    format!("tapline-span-{n}@{PHONE_IP}")
}

/// The tests here share the machine's two cores with SIPp and tapline: one at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn calls_mirrored_to_the_span_port_are_recorded_exactly() {
    if !privileged() {
        return;
    }
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    require_peers();
    let net = Topology::create();
    let appliance = Appliance::new("[capture]\ninterfaces = [\"span0\"]\n");
    let work = appliance.path().join("sipp");
    std::fs::create_dir(&work).unwrap();
    let audio = make_audio(&work);

    let mut daemon = start_tapline(&net, &appliance);
    let seen_by_sipp = place_calls(&net, &work);
    let calls: Vec<String> = (1..=CALLS.len()).map(call_id).collect();

    eventually_or_log(&daemon, Duration::from_secs(20), "complete rows", || {
        let rows = recording_rows(&appliance.data_dir());
        let complete = |id: &String| {
            rows.iter()
                .any(|r| &r.sip_call_id == id && r.status == "complete")
        };
        calls.iter().all(complete).then_some(())
    });
    check_metrics(&net, &mut daemon, &appliance);
    daemon.stop(Signal::TERM);

    // What a clean stop leaves behind: one row per call, nothing left open.
    let rows = recording_rows(&appliance.data_dir());
    assert_eq!(rows.len(), CALLS.len(), "one row per call: {rows:?}");
    for (n, script) in CALLS.iter().enumerate() {
        let id = call_id(n + 1);
        let row = rows.iter().find(|r| r.sip_call_id == id).unwrap();
        let sipp = &seen_by_sipp[&id];
        check_call(n + 1, script, row, sipp, &audio[n]);
    }
    eprintln!("span test took {:.1} s", started.elapsed().as_secs_f64());
}

/// The transfers' scenarios (RFC 5589): see README.md there.
const TRANSFER_DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/sipp-transfer");

/// The customer (the transferee), the agent (the transferor) and a colleague (the target).
const CUSTOMER_IP: &str = "198.51.100.10";
const AGENT_IP: &str = "198.51.100.20";
const COLLEAGUE_IP: &str = "198.51.100.30";

/// One call of the transfer: its name in the scenarios (the audio files are
/// `<caller>.pcap` and `<callee>.pcap`), each party's tone, and its RTP streams.
struct Leg {
    caller: &'static str,
    callee: &'static str,
    caller_hz: u32,
    callee_hz: u32,
    rtp: [(u32, u16, u32); 2],
}

/// The customer's call to the agent (x), the agent's consultation with the colleague (y),
/// and the customer's call to the colleague that replaces it (z). Every party plays 2 s.
const LEGS: [Leg; 3] = [
    Leg {
        caller: "customer-x",
        callee: "agent-x",
        caller_hz: 440,
        callee_hz: 1020,
        rtp: [
            (0x7A11_0001, 0x0101, 0x1111_0000),
            (0x7A11_0002, 0x0202, 0x2222_0000),
        ],
    },
    Leg {
        caller: "agent-y",
        callee: "colleague-y",
        caller_hz: 530,
        callee_hz: 860,
        rtp: [
            (0x7A11_0003, 0x0303, 0x3333_0000),
            (0x7A11_0004, 0x0404, 0x4444_0000),
        ],
    },
    Leg {
        caller: "customer-z",
        callee: "colleague-z",
        caller_hz: 620,
        callee_hz: 940,
        rtp: [
            (0x7A11_0005, 0xFFF0, 0xFFFF_F000),
            (0x7A11_0006, 0x0606, 0x6666_0000),
        ],
    },
];
const LEG_TALK_S: u32 = 2;

/// The Call-IDs, as the scenarios' `-cid_str` make them (the REFER and the Replaces header
/// name the consultation's).
const CUSTOMER_CALL: &str = "tapline-xfer-1@198.51.100.10";
const CONSULTATION: &str = "tapline-consult@198.51.100.20";
const REPLACING_CALL: &str = "tapline-replaces-1@198.51.100.10";

#[test]
fn an_attended_transfer_is_recorded_as_three_linked_calls() {
    if !privileged() {
        return;
    }
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    require_peers();
    let calls = [CUSTOMER_CALL, CONSULTATION, REPLACING_CALL];
    let recorded = record_transfer(&LEGS, &calls, transfer);
    let data_dir = recorded.appliance.data_dir();

    let rows = &recorded.rows;
    assert_eq!(rows.len(), 3, "one row per call: {rows:?}");
    let links = transfer_links(&data_dir);
    eprintln!("transaction id, parent, holds: {links:?}");
    // The replacing call names the consultation it replaced; the customer's first call was
    // put on hold once, the others never.
    assert_eq!(
        links,
        [
            (CUSTOMER_CALL.to_owned(), None, Some(1)),
            (CONSULTATION.to_owned(), None, Some(0)),
            (
                REPLACING_CALL.to_owned(),
                Some(CONSULTATION.to_owned()),
                Some(0)
            ),
        ]
    );
    // The customer reaches the agent's phone (by its MAC), the agent consults the colleague
    // (agent to agent), and the customer is put through to the colleague (by its IP).
    assert_eq!(
        attributions(&data_dir),
        [
            (
                CUSTOMER_CALL.to_owned(),
                Some("agent".into()),
                Some("Inbound".into())
            ),
            (
                CONSULTATION.to_owned(),
                Some("colleague".into()),
                Some("Direct Agent Access".into())
            ),
            (
                REPLACING_CALL.to_owned(),
                Some("colleague".into()),
                Some("Inbound".into())
            ),
        ]
    );
    check_legs(
        &LEGS,
        &calls,
        &["bye from callee", "bye from callee", "bye from caller"],
        &recorded,
    );
    eprintln!(
        "transfer test took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// The blind transfer's two calls: the customer's call to the agent (x), which the agent
/// ends by REFER, and the customer's new call to the colleague (z). Tones and RTP starts of
/// their own, unlike any of [`LEGS`]; the agent's stream wraps its sequence number and
/// timestamp mid-call. 1060 Hz rather than a tone over 1.1 kHz: see [`Script`].
const BLIND_LEGS: [Leg; 2] = [
    Leg {
        caller: "customer-x",
        callee: "agent-x",
        caller_hz: 470,
        callee_hz: 1060,
        rtp: [
            (0x7A11_0011, 0x1111, 0x0BAD_0000),
            (0x7A11_0012, 0xFFC0, 0xFFFF_E000),
        ],
    },
    Leg {
        caller: "customer-z",
        callee: "colleague-z",
        caller_hz: 690,
        callee_hz: 980,
        rtp: [
            (0x7A11_0013, 0x1313, 0x1313_0000),
            (0x7A11_0014, 0x1414, 0x1414_0000),
        ],
    },
];

/// The blind transfer's Call-IDs, as the scenarios' `-cid_str` make them, and the target the
/// agent's REFER names.
const REFERRING_CALL: &str = "tapline-blind-1@198.51.100.10";
const REFERRED_CALL: &str = "tapline-referred-1@198.51.100.10";
const BLIND_REFER_TO: &str = "sip:2002@198.51.100.30:5060";

#[test]
fn a_blind_transfer_is_recorded_as_two_linked_calls() {
    if !privileged() {
        return;
    }
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    require_peers();
    let calls = [REFERRING_CALL, REFERRED_CALL];
    let recorded = record_transfer(&BLIND_LEGS, &calls, blind_transfer);
    let data_dir = recorded.appliance.data_dir();

    let rows = &recorded.rows;
    assert_eq!(rows.len(), 2, "one row per call: {rows:?}");
    let links = transfer_links(&data_dir);
    eprintln!("transaction id, parent, holds: {links:?}");
    // No Replaces names the first call: the new call is linked to it by the REFER's target
    // and its Referred-By alone. The customer was put on hold once before the REFER.
    assert_eq!(
        links,
        [
            (REFERRING_CALL.to_owned(), None, Some(1)),
            (
                REFERRED_CALL.to_owned(),
                Some(REFERRING_CALL.to_owned()),
                Some(0)
            ),
        ]
    );
    // The first call also says where it went, so the transfer can be followed forwards.
    assert_eq!(
        referred_to(&data_dir),
        [
            (REFERRING_CALL.to_owned(), Some(BLIND_REFER_TO.to_owned())),
            (REFERRED_CALL.to_owned(), None),
        ]
    );
    // The customer reaches the agent's phone (by its MAC), then the colleague's (by its IP).
    assert_eq!(
        attributions(&data_dir),
        [
            (
                REFERRING_CALL.to_owned(),
                Some("agent".into()),
                Some("Inbound".into())
            ),
            (
                REFERRED_CALL.to_owned(),
                Some("colleague".into()),
                Some("Inbound".into())
            ),
        ]
    );
    check_legs(
        &BLIND_LEGS,
        &calls,
        &["bye from callee", "bye from caller"],
        &recorded,
    );
    eprintln!(
        "blind transfer test took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// What a transfer test leaves to check: the appliance (whose directory holds the
/// recordings), its rows, what SIPp saw of each call, and what each leg's parties played.
struct Recorded {
    appliance: Appliance,
    rows: Vec<RecordingRow>,
    seen: HashMap<String, SeenBySipp>,
    audio: Vec<Audio>,
}

/// Builds the switch and the appliance, makes each leg's audio, maps the agent's desk phone
/// (by its MAC address only) and the colleague's (by its IP), runs tapline and the SIPp
/// processes `phones` starts, and stops tapline once each of `calls` is recorded complete.
fn record_transfer(
    legs: &[Leg],
    calls: &[&str],
    phones: fn(&Switch, &Path) -> HashMap<String, SeenBySipp>,
) -> Recorded {
    let net = Switch::create();
    let appliance = Appliance::new("[capture]\ninterfaces = [\"span0\"]\n");
    let work = appliance.path().join("sipp");
    std::fs::create_dir(&work).unwrap();
    let audio: Vec<Audio> = legs
        .iter()
        .map(|leg| {
            let (caller_packets, caller_pcm) =
                make_tone(&work, leg.caller, leg.caller_hz, LEG_TALK_S, leg.rtp[0]);
            let (callee_packets, callee_pcm) =
                make_tone(&work, leg.callee, leg.callee_hz, LEG_TALK_S, leg.rtp[1]);
            Audio {
                caller_packets,
                callee_packets,
                caller_pcm,
                callee_pcm,
            }
        })
        .collect();

    let agent_mac = run(net.exec(&net.agent, "cat").arg("/sys/class/net/b0/address"));
    map_devices(
        &appliance.data_dir(),
        &[
            ("agent", DeviceKind::Mac, agent_mac.trim()),
            ("colleague", DeviceKind::PhoneIp, COLLEAGUE_IP),
        ],
    );

    let mut daemon = start_tapline_in(net.exec(&net.tap, tapline_bin()), &appliance);
    let seen = phones(&net, &work);
    eventually_or_log(&daemon, Duration::from_secs(20), "complete rows", || {
        let rows = recording_rows(&appliance.data_dir());
        let complete = |id: &&str| {
            rows.iter()
                .any(|r| r.sip_call_id == *id && r.status == "complete")
        };
        calls.iter().all(complete).then_some(())
    });
    daemon.stop(Signal::TERM);

    Recorded {
        rows: recording_rows(&appliance.data_dir()),
        appliance,
        seen,
        audio,
    }
}

/// Checks each leg's recording with [`check_recording`]: `calls` gives each leg's Call-ID
/// and `ends` its end reason; no leg's tones may be heard in another leg's recording.
fn check_legs(legs: &[Leg], calls: &[&str], ends: &[&str], recorded: &Recorded) {
    let tones: Vec<u32> = legs
        .iter()
        .flat_map(|leg| [leg.caller_hz, leg.callee_hz])
        .collect();
    for (((leg, &id), &end), audio) in legs.iter().zip(calls).zip(ends).zip(&recorded.audio) {
        let row = recorded.rows.iter().find(|r| r.sip_call_id == id).unwrap();
        check_recording(
            &format!("{} to {}", leg.caller, leg.callee),
            [leg.caller_hz, leg.callee_hz],
            &tones,
            end,
            row,
            &recorded.seen[id],
            audio,
        );
    }
}

/// Each recording's transaction id, parent transaction id and hold count, in the order the
/// calls were answered, as the daily index and an auditor read them.
fn transfer_links(data_dir: &Path) -> Vec<(String, Option<String>, Option<i64>)> {
    let db = tapline_store::rusqlite::Connection::open(data_dir.join("tapline.db")).unwrap();
    let mut statement = db
        .prepare(
            "SELECT transaction_id, parent_transaction_id, hold_count FROM recordings
             ORDER BY answered_at",
        )
        .unwrap();
    statement
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Adds an agent per entry to the directory, with the one device association given.
fn map_devices(data_dir: &Path, devices: &[(&str, DeviceKind, &str)]) {
    tapline_provisioning::prepare_data_dir(data_dir).unwrap();
    let store = tapline_store::Store::open_in(data_dir).unwrap();
    let actor = tapline_audit::Actor {
        username: "test",
        user_ip: "",
        request_uri: "",
    };
    for &(agent_id, kind, value) in devices {
        let fields = AgentFields {
            agent_id: agent_id.into(),
            name: agent_id.into(),
            ..AgentFields::default()
        };
        tapline_directory::agents::create(&store, &fields, &actor).unwrap();
        let device = DeviceFields {
            kind,
            value: value.into(),
            agent_id: agent_id.into(),
            recording_group: None,
            recording_type: None,
        };
        tapline_directory::devices::add(&store, &device, &actor).unwrap();
    }
}

/// Each recording's transaction id, agent and call type, in the order the calls were
/// answered.
fn attributions(data_dir: &Path) -> Vec<(String, Option<String>, Option<String>)> {
    let db = tapline_store::rusqlite::Connection::open(data_dir.join("tapline.db")).unwrap();
    let mut statement = db
        .prepare("SELECT transaction_id, agent_id, call_type FROM recordings ORDER BY answered_at")
        .unwrap();
    statement
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Each recording's transaction id and where the call was transferred (its REFER's
/// Refer-To), in the order the calls were answered.
fn referred_to(data_dir: &Path) -> Vec<(String, Option<String>)> {
    let db = tapline_store::rusqlite::Connection::open(data_dir.join("tapline.db")).unwrap();
    let mut statement = db
        .prepare("SELECT transaction_id, referred_to FROM recordings ORDER BY answered_at")
        .unwrap();
    statement
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Runs the five SIPp processes of the attended transfer (see the scenarios' README.md) and
/// returns when each call was answered and ended, from the log of the party that placed it.
fn transfer(net: &Switch, work: &Path) -> HashMap<String, SeenBySipp> {
    run_phones(
        net,
        work,
        &[
            (
                &net.colleague,
                "colleague",
                format!("-i {COLLEAGUE_IP} -p 5060 -mi {COLLEAGUE_IP} -mp 20000 -m 2"),
            ),
            (
                &net.agent,
                "agent-answer",
                format!("-i {AGENT_IP} -p 5060 -mi {AGENT_IP} -mp 16384 -m 1"),
            ),
        ],
        &[
            (
                &net.agent,
                "agent-consult",
                format!(
                    "{COLLEAGUE_IP}:5060 -i {AGENT_IP} -p 5062 -mi {AGENT_IP} -mp 16484 -m 1 \
                     -cid_str tapline-consult@%s"
                ),
            ),
            (
                &net.customer,
                "customer-transfer",
                format!(
                    "{COLLEAGUE_IP}:5060 -i {CUSTOMER_IP} -p 5062 -mi {CUSTOMER_IP} -mp 10100 \
                     -m 1 -cid_str tapline-replaces-%u@%s"
                ),
            ),
            (
                &net.customer,
                "customer-call",
                format!(
                    "{AGENT_IP}:5060 -i {CUSTOMER_IP} -p 5060 -mi {CUSTOMER_IP} -mp 10000 -m 1 \
                     -cid_str tapline-xfer-%u@%s"
                ),
            ),
        ],
        &[CUSTOMER_CALL, CONSULTATION, REPLACING_CALL],
    )
}

/// Runs the three SIPp processes of the blind transfer (see the scenarios' README.md) and
/// returns when each call was answered and ended, from the log of the party that placed it.
fn blind_transfer(net: &Switch, work: &Path) -> HashMap<String, SeenBySipp> {
    run_phones(
        net,
        work,
        &[
            (
                &net.colleague,
                "colleague-blind",
                format!("-i {COLLEAGUE_IP} -p 5060 -mi {COLLEAGUE_IP} -mp 20000 -m 1"),
            ),
            (
                &net.agent,
                "agent-blind",
                format!("-i {AGENT_IP} -p 5060 -mi {AGENT_IP} -mp 16384 -m 1"),
            ),
        ],
        &[
            (
                &net.customer,
                "customer-blind-transfer",
                format!(
                    "{COLLEAGUE_IP}:5060 -i {CUSTOMER_IP} -p 5062 -mi {CUSTOMER_IP} -mp 10100 \
                     -m 1 -cid_str tapline-referred-%u@%s"
                ),
            ),
            (
                &net.customer,
                "customer-call",
                format!(
                    "{AGENT_IP}:5060 -i {CUSTOMER_IP} -p 5060 -mi {CUSTOMER_IP} -mp 10000 -m 1 \
                     -cid_str tapline-blind-%u@%s"
                ),
            ),
        ],
        &[REFERRING_CALL, REFERRED_CALL],
    )
}

/// One SIPp process of a transfer: the namespace of its phone, its scenario (and log) name in
/// [`TRANSFER_DATA`], and its arguments.
type Phone<'a> = (&'a str, &'static str, String);

/// Starts the `answering` SIPp processes and waits until each listens on port 5060, then
/// starts the `placing` ones together, whose scenarios wait, timed from now, for the steps
/// they follow. Every process must succeed; returns when each of `calls` was answered and
/// ended, from the logs of the `placing` processes.
fn run_phones(
    net: &Switch,
    work: &Path,
    answering: &[Phone<'_>],
    placing: &[Phone<'_>],
    calls: &[&str],
) -> HashMap<String, SeenBySipp> {
    let spawn = |(namespace, name, args): &Phone<'_>| {
        let scenario = Path::new(TRANSFER_DATA).join(format!("{name}.xml"));
        Sipp::spawn(net.exec(namespace, "sipp"), name, &scenario, work, args)
    };
    let mut answerers: Vec<Sipp> = answering.iter().map(spawn).collect();
    for (namespace, _, _) in answering {
        eventually(Duration::from_secs(10), "SIPp to listen", || {
            let listening = run(net.exec(namespace, "ss").args(["-Hlun", "sport = :5060"]));
            (!listening.trim().is_empty()).then_some(())
        });
    }
    let mut placers: Vec<Sipp> = placing.iter().map(spawn).collect();
    for process in placers.iter_mut().rev().chain(answerers.iter_mut().rev()) {
        process.wait(Duration::from_secs(30));
    }
    let mut seen = HashMap::new();
    for (_, log, _) in placing {
        let text = std::fs::read_to_string(work.join(format!("{log}-messages.log"))).unwrap();
        seen.extend(sipp_call_times(&text));
    }
    for &id in calls {
        let call = seen.get(id).copied().unwrap_or_default();
        assert!(
            call.answered.is_some() && call.bye.is_some(),
            "SIPp's logs have no 200 OK or BYE for {id}: {seen:?}"
        );
    }
    seen
}

/// A switch of three ports, each mirrored to the SPAN port: the customer's, the agent's and
/// the colleague's phones each in a namespace of its own, deleted on drop.
///
/// ```text
///  customer ns 198.51.100.10 a0 ── swa ┐
///  agent ns    198.51.100.20 b0 ── swb ├─ br0 (switch ns)   every frame entering swa, swb
///  colleague   198.51.100.30 c0 ── swc ┘                    or swc is copied out of mir0
///                                        mir0 <── veth ──> span0 (no address)  tap ns
/// ```
///
/// Mirroring each port's ingress copies every frame exactly once: it enters the switch at the
/// port of the phone that sent it.
struct Switch {
    customer: String,
    agent: String,
    colleague: String,
    switch: String,
    tap: String,
}

impl Switch {
    fn create() -> Switch {
        let pid = std::process::id();
        let name = |role: &str| format!("tapline-xfer-{pid}-{role}");
        // The guard exists before anything is made, so a failure half-way still cleans up.
        let net = Switch {
            customer: name("customer"),
            agent: name("agent"),
            colleague: name("colleague"),
            switch: name("switch"),
            tap: name("tap"),
        };
        let switch = net.switch.as_str();
        for namespace in net.namespaces() {
            ip(&format!("netns add {namespace}"));
            ip(&format!("-n {namespace} link set lo up"));
        }
        ip(&format!(
            "-n {switch} link add br0 type bridge stp_state 0 forward_delay 0"
        ));
        ip(&format!("-n {switch} link set br0 addrgenmode none up"));
        // The SPAN port: span0 has no address, so only a passive capture sees anything there.
        ip(&format!(
            "-n {switch} link add mir0 type veth peer name span0 netns {tap}",
            tap = net.tap
        ));
        ip(&format!("-n {switch} link set mir0 addrgenmode none up"));
        ip(&format!(
            "-n {} link set span0 addrgenmode none up",
            net.tap
        ));
        for (namespace, host, port, address) in [
            (&net.customer, "a0", "swa", CUSTOMER_IP),
            (&net.agent, "b0", "swb", AGENT_IP),
            (&net.colleague, "c0", "swc", COLLEAGUE_IP),
        ] {
            ip(&format!(
                "-n {switch} link add {port} type veth peer name {host} netns {namespace}"
            ));
            ip(&format!(
                "-n {namespace} address add {address}/24 dev {host}"
            ));
            // Checksums filled in by the kernel, as on a wire (see `Topology::create`).
            run(net
                .exec(namespace, "ethtool")
                .args(["-K", host, "tx", "off"]));
            ip(&format!(
                "-n {namespace} link set {host} addrgenmode none up"
            ));
            ip(&format!("-n {switch} link set {port} master br0"));
            ip(&format!("-n {switch} link set {port} addrgenmode none up"));
            tc(switch, &format!("qdisc add dev {port} clsact"));
            tc(
                switch,
                &format!(
                    "filter add dev {port} ingress u32 match u32 0 0 \
                     action mirred egress mirror dev mir0"
                ),
            );
        }
        net
    }

    fn namespaces(&self) -> [&String; 5] {
        [
            &self.customer,
            &self.agent,
            &self.colleague,
            &self.switch,
            &self.tap,
        ]
    }

    /// `program` in `namespace`.
    fn exec(&self, namespace: &str, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", namespace]).arg(program);
        command
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        for namespace in self.namespaces() {
            let deleted = Command::new("ip")
                .args(["netns", "delete", namespace])
                .status();
            if !deleted.as_ref().is_ok_and(|status| status.success()) {
                eprintln!("could not delete network namespace {namespace}: {deleted:?}");
            }
        }
    }
}

/// Whether to go on: without root the test fails, naming what it needs, unless told to skip.
fn privileged() -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    let needs = "root (CAP_NET_ADMIN for network namespaces, veth pairs and traffic control; \
                 CAP_NET_RAW for the capture and SIPp's RTP)";
    if std::env::var_os("TAPLINE_SKIP_PRIVILEGED").is_some_and(|v| v == "1") {
        eprintln!("SKIPPED: the SPAN port test needs {needs}; TAPLINE_SKIP_PRIVILEGED=1 is set");
        return false;
    }
    panic!(
        "the SPAN port test needs {needs}. Run it as root, or set TAPLINE_SKIP_PRIVILEGED=1 \
         to skip it."
    );
}

/// Every program the test runs, checked up front so that a missing one names its package.
fn require_peers() {
    for (program, package) in [
        ("ip", "iproute2"),
        ("tc", "iproute2"),
        ("ss", "iproute2"),
        ("ethtool", "ethtool"),
        ("sipp", "sip-tester"),
        ("sox", "sox"),
        ("curl", "curl"),
        ("sha256sum", "coreutils"),
        ("/usr/bin/python3", "python3"),
    ] {
        peer(program, package);
    }
}

/// The namespaces of the set-up, deleted on drop (and with them every interface in them):
///
/// ```text
///  phone ns                                  pbx ns
///  198.51.100.20 ph0 <=== voice VLAN ===> pb0 198.51.100.10
///                 |  tc mirred, both ways
///                mir0 <--- veth ---> span0 (no address)  tap ns: tapline run
/// ```
struct Topology {
    phone: String,
    pbx: String,
    tap: String,
}

impl Topology {
    fn create() -> Topology {
        let pid = std::process::id();
        // The guard exists before anything is made, so a failure half-way still cleans up.
        let net = Topology {
            phone: format!("tapline-span-{pid}-phone"),
            pbx: format!("tapline-span-{pid}-pbx"),
            tap: format!("tapline-span-{pid}-tap"),
        };
        let (phone, pbx, tap) = (net.phone.as_str(), net.pbx.as_str(), net.tap.as_str());
        for namespace in [phone, pbx, tap] {
            ip(&format!("netns add {namespace}"));
            // The web, SFTP and TURN listeners bind 127.0.0.1 in the tap namespace.
            ip(&format!("-n {namespace} link set lo up"));
        }
        ip(&format!(
            "-n {phone} link add ph0 type veth peer name pb0 netns {pbx}"
        ));
        ip(&format!(
            "-n {phone} link add mir0 type veth peer name span0 netns {tap}"
        ));
        ip(&format!("-n {phone} address add {PHONE_IP}/24 dev ph0"));
        ip(&format!("-n {pbx} address add {PBX_IP}/24 dev pb0"));
        // veth leaves UDP checksums to offload hardware that does not exist; have the kernel
        // fill them in, so that what SIPp and the SPAN port see is what a wire carries.
        run(net.exec(phone, "ethtool").args(["-K", "ph0", "tx", "off"]));
        run(net.exec(pbx, "ethtool").args(["-K", "pb0", "tx", "off"]));
        // No IPv6 addresses, so no interface chatters on its own; span0 stays silent and
        // without any address, like a SPAN port.
        for (namespace, interface) in [
            (phone, "ph0"),
            (phone, "mir0"),
            (pbx, "pb0"),
            (tap, "span0"),
        ] {
            ip(&format!(
                "-n {namespace} link set {interface} addrgenmode none up"
            ));
        }
        // The SPAN session: every frame the phone's port receives (ingress) or sends (egress)
        // is copied out of mir0, and so arrives on span0. `u32 match u32 0 0` matches every
        // frame, like `matchall`, but is also in kernels built without cls_matchall.
        tc(phone, "qdisc add dev ph0 clsact");
        for direction in ["ingress", "egress"] {
            tc(
                phone,
                &format!(
                    "filter add dev ph0 {direction} u32 match u32 0 0 \
                     action mirred egress mirror dev mir0"
                ),
            );
        }
        net
    }

    /// `program` in `namespace`.
    fn exec(&self, namespace: &str, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", namespace]).arg(program);
        command
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for namespace in [&self.phone, &self.pbx, &self.tap] {
            let deleted = Command::new("ip")
                .args(["netns", "delete", namespace])
                .status();
            if !deleted.as_ref().is_ok_and(|status| status.success()) {
                eprintln!("could not delete network namespace {namespace}: {deleted:?}");
            }
        }
    }
}

/// `ip ARGS`, the arguments split at spaces (none of ours has one).
fn ip(args: &str) {
    run(Command::new("ip").args(args.split_whitespace()));
}

/// `tc ARGS` in `namespace`.
fn tc(namespace: &str, args: &str) {
    run(Command::new("tc")
        .args(["-n", namespace])
        .args(args.split_whitespace()));
}

/// Runs `command` to completion, failing the test with its output unless it succeeds.
fn run(command: &mut Command) -> String {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// What one call's parties send: the RTP packets in each direction, and the audio as sox
/// decodes it (the reference the recording is compared with).
struct Audio {
    caller_packets: i64,
    callee_packets: i64,
    caller_pcm: PathBuf,
    callee_pcm: PathBuf,
}

/// Each call's RTP streams, caller's first: SSRC, first sequence number, first timestamp.
/// RFC 3550 has them start at random; call 1's caller starts just short of the wrap, so that
/// its sequence number and timestamp roll over mid-call, as some call's always will.
const RTP_STARTS: [[(u32, u16, u32); 2]; 2] = [
    [
        (0x5EED_0011, 0xFFF0, 0xFFFF_F000),
        (0x5EED_0012, 0x1B2C, 0x0A1B_2C3D),
    ],
    [
        (0x5EED_0021, 0x3D4E, 0x4E5F_6071),
        (0x5EED_0022, 0x7081, 0x8192_A3B4),
    ],
];

/// Makes the audio both parties of each call play (`caller-N.pcap`, `callee-N.pcap` in SIPp's
/// working directory, named in the scenarios).
fn make_audio(work: &Path) -> Vec<Audio> {
    CALLS
        .iter()
        .zip(RTP_STARTS)
        .enumerate()
        .map(|(i, (script, [caller, callee]))| {
            let n = i + 1;
            let seconds = script.talk_s;
            let (caller_packets, caller_pcm) = make_tone(
                work,
                &format!("caller-{n}"),
                script.caller_hz,
                seconds,
                caller,
            );
            let (callee_packets, callee_pcm) = make_tone(
                work,
                &format!("callee-{n}"),
                script.callee_hz,
                seconds,
                callee,
            );
            Audio {
                caller_packets,
                callee_packets,
                caller_pcm,
                callee_pcm,
            }
        })
        .collect()
}

/// Makes `name.ul`, a tone in µ-law, with sox, and wraps it into `name.pcap` for SIPp; returns
/// the number of packets, and `name.s16`: sox's own decoding of the µ-law, which is what the
/// recording should hold, sample for sample.
fn make_tone(
    work: &Path,
    name: &str,
    hz: u32,
    seconds: u32,
    rtp_start: (u32, u16, u32),
) -> (i64, PathBuf) {
    let ulaw = work.join(format!("{name}.ul"));
    let pcm = work.join(format!("{name}.s16"));
    let seconds = seconds.to_string();
    // A steady tone at about -10 dBFS with 20 ms fades; -D: no dither, so the audio is the
    // same on every run.
    run(Command::new("sox")
        .args(["-D", "-n", "-t", "ul", "-r", "8000", "-c", "1"])
        .arg(&ulaw)
        .args(["synth", &seconds, "sine", &hz.to_string(), "vol", "0.3"])
        .args(["fade", "0.02", &seconds, "0.02"]));
    run(Command::new("sox")
        .args(["-t", "ul", "-r", "8000", "-c", "1"])
        .arg(&ulaw)
        .args(["-t", "s16", "-e", "signed-integer", "-L"])
        .arg(&pcm));
    let audio = std::fs::read(&ulaw).unwrap();
    let packets = write_rtp_pcap(&work.join(format!("{name}.pcap")), &audio, rtp_start);
    (packets as i64, pcm)
}

/// Writes µ-law `audio` as 20 ms RTP packets (PCMU, payload type 0) in an Ethernet/IPv4/UDP
/// pcap for SIPp's `play_pcap_audio`. SIPp sends the UDP payloads at the pace of the pcap's
/// timestamps, from and to each call's own addresses and ports: the other headers are
/// placeholders. Returns the number of packets.
fn write_rtp_pcap(path: &Path, audio: &[u8], (ssrc, seq0, ts0): (u32, u16, u32)) -> usize {
    // Classic pcap: version 2.4, microsecond timestamps, snaplen 65535, linktype 1 (Ethernet).
    let mut file = [0xA1B2_C3D4, 0x0004_0002, 0, 0, 65535, 1]
        .map(u32::to_le_bytes)
        .concat();
    let packets = audio.chunks_exact(SAMPLES_PER_PACKET);
    let count = packets.len();
    for (k, payload) in packets.enumerate() {
        // The marker bit starts a talkspurt.
        let marker = if k == 0 { 0x80 } else { 0 };
        let sequence = seq0.wrapping_add(k as u16);
        let timestamp = ts0.wrapping_add((k * SAMPLES_PER_PACKET) as u32);
        let rtp = [
            &[0x80, marker][..],
            &sequence.to_be_bytes(),
            &timestamp.to_be_bytes(),
            &ssrc.to_be_bytes(),
            payload,
        ]
        .concat();
        let udp_len = 8 + rtp.len() as u16;
        let udp = [[6000, 6000, udp_len, 0].map(u16::to_be_bytes).concat(), rtp].concat();
        // IPv4, DF, TTL 64, UDP, from and to 0.0.0.0.
        let mut ip = [
            0x4500,
            20 + udp_len,
            k as u16,
            0x4000,
            0x4011,
            0,
            0,
            0,
            0,
            0,
        ];
        ip[5] = !ip.iter().fold(0u16, |sum, &word| {
            let (sum, carry) = sum.overflowing_add(word);
            sum + u16::from(carry)
        });
        let frame = [
            &[0; 12][..],
            &[0x08, 0x00],
            &ip.map(u16::to_be_bytes).concat(),
            &udp,
        ]
        .concat();
        // SIPp 3.6 takes a zero timestamp for "no previous packet" and would send the second
        // packet at once: start at 1 s.
        let usec = 1_000_000 + k as u32 * 20_000;
        let len = frame.len() as u32;
        file.extend(
            [usec / 1_000_000, usec % 1_000_000, len, len]
                .map(u32::to_le_bytes)
                .concat(),
        );
        file.extend(frame);
    }
    std::fs::write(path, file).unwrap();
    count
}

/// Starts `tapline run` in the tap namespace and waits until it captures on span0.
fn start_tapline(net: &Topology, appliance: &Appliance) -> Daemon {
    start_tapline_in(net.exec(&net.tap, tapline_bin()), appliance)
}

/// Starts `command` (tapline, in the tap namespace) as `tapline run`, and waits until it
/// captures on span0.
fn start_tapline_in(mut command: Command, appliance: &Appliance) -> Daemon {
    command
        .args(["run", "--config"])
        .arg(&appliance.config)
        .env_remove("TAPLINE_CONFIG")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("JOURNAL_STREAM")
        .env("TAPLINE_LOG", "info");
    let mut daemon = Daemon::spawn(command);
    // The capture socket is open and bound before the service says so: from here on no
    // frame on span0 is missed.
    let endpoint = daemon.wait_for_stdout("listening: span ", Duration::from_secs(30));
    assert_eq!(endpoint, "SPAN capture on span0");
    daemon
}

/// A SIPp process, killed if the test ends before it does.
struct Sipp {
    child: Child,
    name: &'static str,
    log: PathBuf,
}

impl Sipp {
    /// SIPp in `namespace`, running the scenario `name` (`uac` or `uas`) with `args` (split at
    /// spaces), its output and logs in `work`.
    fn start(net: &Topology, namespace: &str, name: &'static str, work: &Path, args: &str) -> Sipp {
        let scenario = Path::new(SIPP_DATA).join(format!("{name}.xml"));
        Sipp::spawn(net.exec(namespace, "sipp"), name, &scenario, work, args)
    }

    /// `sipp` (as `command`, in its namespace) running `scenario` under `name`.
    fn spawn(
        mut command: Command,
        name: &'static str,
        scenario: &Path,
        work: &Path,
        args: &str,
    ) -> Sipp {
        let log = work.join(format!("{name}.out"));
        let child = command
            .args(args.split_whitespace())
            .arg("-sf")
            .arg(scenario)
            .args(["-nostdin", "-trace_err", "-error_file"])
            .arg(work.join(format!("{name}-errors.log")))
            .args(["-trace_msg", "-message_file"])
            .arg(work.join(format!("{name}-messages.log")))
            // Bounds: the calls take about 8 s; nothing waits longer than this for a message.
            .args("-timeout 30s -timeout_error -recv_timeout 15000".split(' '))
            // Every call on the one socket at port 5060, like a real phone.
            .args(["-t", "u1"])
            // The scenarios name their audio pcaps relative to here.
            .current_dir(work)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(log.with_extension("err")).unwrap())
            .spawn()
            .unwrap();
        Sipp { child, name, log }
    }

    /// Waits for SIPp to exit; it must have succeeded within `timeout`.
    fn wait(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "SIPp {} still running after {timeout:?}:\n{}",
                self.name,
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(
            status.success(),
            "SIPp {} failed ({status}):\n{}",
            self.name,
            self.output()
        );
    }

    /// The end of SIPp's screen and its error log, for failure messages.
    fn output(&self) -> String {
        let mut text = String::new();
        let errors = self.log.with_file_name(format!("{}-errors.log", self.name));
        let stderr = self.log.with_extension("err");
        for path in [&self.log, &errors, &stderr] {
            let content = std::fs::read_to_string(path).unwrap_or_default();
            let lines: Vec<&str> = content.lines().collect();
            let tail = lines[lines.len().saturating_sub(40)..].join("\n");
            let _ = writeln!(text, "--- {}\n{tail}", path.display());
        }
        text
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// When SIPp saw a call answered (the 200 OK reaching the caller) and hung up (the BYE
/// leaving or reaching it), in seconds on the machine's clock.
#[derive(Debug, Clone, Copy, Default)]
struct SeenBySipp {
    answered: Option<f64>,
    bye: Option<f64>,
}

/// The PBX answers, the phone places the calls, one a second, so that they overlap; returns
/// what the phone's SIPp logged of each call.
fn place_calls(net: &Topology, work: &Path) -> HashMap<String, SeenBySipp> {
    let calls = CALLS.len();
    let mut uas = Sipp::start(
        net,
        &net.pbx,
        "uas",
        work,
        &format!("-i {PBX_IP} -p 5060 -mi {PBX_IP} -mp 10000 -m {calls}"),
    );
    // An INVITE sent before the PBX listens would be refused with an ICMP error.
    eventually(Duration::from_secs(10), "SIPp's PBX to listen", || {
        let listening = run(net.exec(&net.pbx, "ss").args(["-Hlun", "sport = :5060"]));
        (!listening.trim().is_empty()).then_some(())
    });
    // -r 1 -rp 1000: a new call every second. -cid_str: Call-IDs that say which call is which.
    let mut uac = Sipp::start(
        net,
        &net.phone,
        "uac",
        work,
        &format!(
            "{PBX_IP}:5060 -i {PHONE_IP} -p 5060 -mi {PHONE_IP} -mp 16384 -m {calls} -l {calls} \
             -r 1 -rp 1000 -cid_str tapline-span-%u@%s"
        ),
    );
    uac.wait(Duration::from_secs(40));
    uas.wait(Duration::from_secs(10));

    let log = std::fs::read_to_string(work.join("uac-messages.log")).unwrap();
    let seen = sipp_call_times(&log);
    for n in 1..=CALLS.len() {
        let call = seen.get(&call_id(n)).copied().unwrap_or_default();
        assert!(
            call.answered.is_some() && call.bye.is_some(),
            "SIPp's log has no 200 OK or BYE for call {n}: {seen:?}"
        );
    }
    let (first, second) = (seen[&call_id(1)], seen[&call_id(2)]);
    assert!(
        second.answered < first.bye,
        "the calls overlap, as the scenario means them to: {seen:?}"
    );
    seen
}

/// Reads SIPp's message log (`-trace_msg`): each message follows a line of dashes and the
/// time it was sent or received, e.g. `----- 2026-01-02 10:11:12.123456`.
fn sipp_call_times(log: &str) -> HashMap<String, SeenBySipp> {
    let mut calls: HashMap<String, SeenBySipp> = HashMap::new();
    for entry in log
        .split("-----------------------------------------------")
        .skip(1)
    {
        let mut lines = entry.lines().map(str::trim);
        let stamp = lines.next().unwrap();
        let time = stamp.rsplit(' ').next().unwrap();
        let seconds = time.split(':').fold(0.0, |total, part| {
            total * 60.0 + part.parse::<f64>().unwrap()
        });
        let direction = lines.next().unwrap();
        let message: Vec<&str> = lines.skip_while(|l| l.is_empty()).collect();
        let header = |name: &str| {
            message
                .iter()
                .find_map(|l| l.strip_prefix(name))
                .map(str::trim)
                .unwrap_or_default()
        };
        let call = calls.entry(header("Call-ID:").to_owned()).or_default();
        let start = message.first().copied().unwrap_or_default();
        if direction.contains("received")
            && start.starts_with("SIP/2.0 200")
            && header("CSeq:").ends_with("INVITE")
        {
            call.answered.get_or_insert(seconds);
        }
        // The call ends with the first BYE, whichever party sends it.
        if start.starts_with("BYE ") {
            call.bye.get_or_insert(seconds);
        }
    }
    // A call over midnight: its BYE is on the next day.
    for call in calls.values_mut() {
        if let (Some(answered), Some(bye)) = (call.answered, call.bye.as_mut())
            && *bye < answered
        {
            *bye += 86_400.0;
        }
    }
    calls
}

/// `eventually`, with tapline's log in the failure message.
fn eventually_or_log<T>(
    daemon: &Daemon,
    timeout: Duration,
    what: &str,
    f: impl FnMut() -> Option<T>,
) -> T {
    std::panic::catch_unwind(AssertUnwindSafe(|| eventually(timeout, what, f)))
        .unwrap_or_else(|_| panic!("tapline's log:\n{}", daemon.stderr()))
}

/// `/metrics`, fetched with curl inside the tap namespace (the web listener is on its
/// loopback), trusting only the certificate the daemon made: no kernel drops on span0, and
/// every call counted as complete. The recorder brings the counters up to date every 500 ms.
fn check_metrics(net: &Topology, daemon: &mut Daemon, appliance: &Appliance) {
    let url = format!("{}metrics", daemon.web_url());
    let drops = "tapline_capture_kernel_drops_total{interface=\"span0\"} 0";
    let complete = format!(
        "tapline_recordings_total{{status=\"complete\"}} {}",
        CALLS.len()
    );
    eventually_or_log(
        daemon,
        Duration::from_secs(10),
        "/metrics to count the calls",
        || {
            let metrics = run(net
                .exec(&net.tap, "curl")
                .args(["--silent", "--show-error", "--fail", "--max-time", "10"])
                .arg("--cacert")
                .arg(appliance.cert())
                .arg(&url));
            let has = |line: &str| metrics.lines().any(|l| l == line);
            (has(drops) && has(&complete)).then_some(())
        },
    );
}

/// What Python's `wave` module and a little arithmetic make of a recording.
#[derive(Debug)]
struct WavReport {
    channels: u32,
    rate: u32,
    frames: u64,
    /// Left (the caller), then right (the callee).
    sides: [Side; 2],
}

/// One channel: where its talk starts and ends, and what is in between.
#[derive(Debug)]
struct Side {
    /// First and one-past-last non-zero sample.
    start: u64,
    end: u64,
    peak: f64,
    /// The largest difference between consecutive samples, and where it is.
    max_step: f64,
    max_step_at: u64,
    /// Samples of the talk that differ from sox's decoding of what SIPp sent.
    mismatches: u64,
    /// The share of each tone of [`CALLS`] in the talk, caller tones first.
    shares: Vec<(u32, f64)>,
}

/// Reads the recording at `path` with Python's `wave` module and measures each channel
/// against `reference`, what its party sent (decoded by sox), and the `tones`.
fn inspect(path: &Path, reference: [&Path; 2], tones: &[u32]) -> WavReport {
    let script = r#"
import math, struct, sys, wave
w = wave.open(sys.argv[1])
n, ch, rate = w.getnframes(), w.getnchannels(), w.getframerate()
data = struct.unpack('<%dh' % (n * ch), w.readframes(n))
print(ch, rate, n)
tones = [int(t) for t in sys.argv[4:]]
for side, ref_path in ((data[0::2], sys.argv[2]), (data[1::2], sys.argv[3])):
    talking = [i for i, v in enumerate(side) if v]
    if not talking:
        print(0, 0, 0, 0, 0, len(side), *('%d:0.0' % hz for hz in tones))
        continue
    start, end = talking[0], talking[-1] + 1
    talk = side[start:end]
    peak = max(abs(v) for v in talk)
    step, at = max((abs(b - a), start + i) for i, (a, b) in enumerate(zip(talk, talk[1:])))
    # The reference, from its own first sound on, should be the talk sample for sample.
    raw = open(ref_path, 'rb').read()
    ref = struct.unpack('<%dh' % (len(raw) // 2), raw)
    ref = ref[next(i for i, v in enumerate(ref) if v):]
    ref = ref[:max(i for i, v in enumerate(ref) if v) + 1]
    mismatches = sum(a != b for a, b in zip(talk, ref)) + abs(len(talk) - len(ref))
    shares = []
    for hz in tones:
        c = 2 * math.cos(2 * math.pi * hz / rate); s1 = s2 = 0.0
        for v in talk:
            s1, s2 = v + c * s1 - s2, s1
        total = sum(v * v for v in talk) or 1
        shares.append('%d:%r' % (hz, (s1 * s1 + s2 * s2 - c * s1 * s2) / (total * len(talk) / 2)))
    print(start, end, peak, step, at, mismatches, *shares)
"#;
    let out = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(script)
        .arg(path)
        .args(reference)
        .args(tones.iter().map(u32::to_string))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "Python could not read {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split(' ').collect()).collect();
    let side = |f: &[&str]| Side {
        start: f[0].parse().unwrap(),
        end: f[1].parse().unwrap(),
        peak: f[2].parse().unwrap(),
        max_step: f[3].parse().unwrap(),
        max_step_at: f[4].parse().unwrap(),
        mismatches: f[5].parse().unwrap(),
        shares: f[6..]
            .iter()
            .map(|s| {
                let (hz, share) = s.split_once(':').unwrap();
                (hz.parse().unwrap(), share.parse().unwrap())
            })
            .collect(),
    };
    WavReport {
        channels: lines[0][0].parse().unwrap(),
        rate: lines[0][1].parse().unwrap(),
        frames: lines[0][2].parse().unwrap(),
        sides: [side(&lines[1]), side(&lines[2])],
    }
}

/// The size of a µ-law quantisation step, in 16-bit linear units, for samples of magnitude up
/// to `peak`: 8 in the first segment, doubling with each segment up the scale (G.711).
fn ulaw_step(peak: f64) -> f64 {
    let biased = (peak / 4.0) as u32 + 33;
    let segment = (31 - biased.leading_zeros()).saturating_sub(5);
    f64::from(8u32 << segment)
}

/// The largest step between consecutive samples a clean tone can make: a sine of amplitude A
/// at f Hz moves at most 2·A·sin(π·f/8000) < 2π·f/8000·A per sample. G.711 adds up to half a
/// quantisation step of error to each sample, and the observed peak may sit up to half a step
/// under the true amplitude: two steps of slack cover both (for tones under 2.5 kHz). Anything
/// steeper is a click: a sample missing, repeated or misplaced where two packets join.
fn allowed_step(hz: u32, peak: f64) -> f64 {
    2.0 * std::f64::consts::PI * f64::from(hz) / f64::from(RATE) * peak + 2.0 * ulaw_step(peak)
}

/// Everything about one finished call.
#[track_caller]
fn check_call(n: usize, script: &Script, row: &RecordingRow, sipp: &SeenBySipp, audio: &Audio) {
    let tones: Vec<u32> = CALLS
        .iter()
        .map(|s| s.caller_hz)
        .chain(CALLS.iter().map(|s| s.callee_hz))
        .collect();
    check_recording(
        &format!("call {n}"),
        [script.caller_hz, script.callee_hz],
        &tones,
        "bye from caller",
        row,
        sipp,
        audio,
    );
}

/// Everything about one finished call, `label` in messages: its row (ended with
/// `end_reason`, every packet counted, none lost, size and hash), its length against what
/// SIPp saw, and each channel: the tone of its party (`hz`, caller first) and none of the
/// other `tones`, sample for sample what SIPp sent, and no clicks.
#[track_caller]
fn check_recording(
    label: &str,
    hz: [u32; 2],
    tones: &[u32],
    end_reason: &str,
    row: &RecordingRow,
    sipp: &SeenBySipp,
    audio: &Audio,
) {
    let n = label;
    assert_eq!(row.status, "complete", "{row:?}");
    assert_eq!(row.source, "span", "{row:?}");
    assert_eq!(row.end_reason.as_deref(), Some(end_reason), "{row:?}");

    // The recording runs from the 200 OK to the BYE, which the SPAN port sees within a
    // fraction of a millisecond of SIPp; 0.1 s leaves room for SIPp being scheduled late
    // when it logs a message on a busy machine, and is still far under the 300 ms a phone
    // stays on the line after its audio, or the seconds between two calls' lengths.
    let expected = sipp.bye.unwrap() - sipp.answered.unwrap();
    let duration = row.duration_ms.unwrap() as f64 / 1000.0;
    assert!(
        (duration - expected).abs() < 0.1,
        "{n}: duration {duration} s, SIPp saw {expected:.3} s from 200 OK to BYE"
    );
    assert_eq!(
        row.packets,
        (Some(audio.caller_packets), Some(audio.callee_packets)),
        "{n}: every packet SIPp sent each way: {row:?}"
    );
    assert_eq!(row.lost, (Some(0), Some(0)), "{n}: {row:?}");
    eprintln!(
        "{n}: duration {duration:.3} s (SIPp: {expected:.3} s from 200 OK to BYE), \
         packets {:?}/{:?} (SIPp sent {}/{}), lost 0/0",
        row.packets.0, row.packets.1, audio.caller_packets, audio.callee_packets
    );
    assert_eq!(
        row.size,
        Some(std::fs::metadata(&row.path).unwrap().len() as i64)
    );
    assert_eq!(
        row.sha256.as_deref(),
        Some(sha256sum(&row.path).as_str()),
        "{n}: the row's SHA-256 is the file's"
    );

    let report = inspect(&row.path, [&audio.caller_pcm, &audio.callee_pcm], tones);
    assert_eq!((report.channels, report.rate), (2, RATE), "{n}: {report:?}");
    // The file ends where the call does; the two differ only by rounding (to a sample, and
    // to a millisecond).
    let length = report.frames as f64 / f64::from(RATE);
    assert!(
        (length - duration).abs() < 0.002,
        "{n}: the file is as long as the call ({duration} s): {report:?}"
    );

    for (side, hz, name) in [
        (&report.sides[0], hz[0], "caller (left)"),
        (&report.sides[1], hz[1], "callee (right)"),
    ] {
        let allowed = allowed_step(hz, side.peak);
        eprintln!(
            "{n} {name}: {hz} Hz, talk {:.3}-{:.3} s, peak {}, max step {} at {:.4} s \
             (allowed {allowed:.0}), {} samples differ from what SIPp sent, shares {:?}",
            side.start as f64 / f64::from(RATE),
            side.end as f64 / f64::from(RATE),
            side.peak,
            side.max_step,
            side.max_step_at as f64 / f64::from(RATE),
            side.mismatches,
            side.shares,
        );
        // The talk starts within a moment of the answer: RTP flows as soon as the ACK does.
        assert!(
            side.start < u64::from(RATE) / 10,
            "{n} {name}: talk starts {} samples in: {report:?}",
            side.start
        );
        assert!(
            side.max_step <= allowed,
            "{n} {name}: a click: a step of {} at sample {} ({:.4} s), where a clean \
             {hz} Hz tone of peak {} moves at most {allowed:.0}: {report:?}",
            side.max_step,
            side.max_step_at,
            side.max_step_at as f64 / f64::from(RATE),
            side.peak
        );
        assert_eq!(
            side.mismatches, 0,
            "{n} {name}: the talk is sample for sample what SIPp sent: {report:?}"
        );
        for &(tone, share) in &side.shares {
            if tone == hz {
                assert!(share > 0.95, "{n} {name}: {tone} Hz dominates: {report:?}");
            } else {
                assert!(
                    share < 0.01,
                    "{n} {name}: no {tone} Hz from the other party or the other call: \
                     {report:?}"
                );
            }
        }
    }
}
