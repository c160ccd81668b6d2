//! `tapline turn` as a browser uses it: headless Chromium with two `RTCPeerConnection`s in one
//! page, `iceTransportPolicy: "relay"` and our relay as their only ICE server, signed in with
//! TURN REST credentials computed from the shared secret as the monitoring broker will. The
//! pair must connect, carry data-channel messages both ways and an audio track, and its
//! selected candidate pair must be relay to relay on our relay's ports.

// A test's helpers fail the test on anything unexpected, like its body does.
#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha1::Sha1;
use tapline_tests::browser::Browser;
use tapline_tests::{Appliance, Daemon, tapline_bin};

/// The REST secret shared with the relay; the browser only ever sees derived credentials.
const SECRET: &str = "browser relay test secret 7f3a";
const RELAY_PORTS: std::ops::RangeInclusive<u16> = 50400..=50499;

/// Two peer connections, a data channel each way and a WebAudio tone from `a` to `b`, all in
/// `window.rig`. `startRig(server)` returns once offer and answer are exchanged; candidates
/// trickle in afterwards, held back until the other side has its remote description.
const RIG: &str = r#"
window.startRig = async (server) => {
    const config = {iceServers: [server], iceTransportPolicy: "relay"};
    const rig = window.rig = {
        a: new RTCPeerConnection(config), b: new RTCPeerConnection(config),
        errors: [], candidates: {a: [], b: []}, atA: [], atB: [],
    };
    const held = {a: [], b: []};
    const deliver = (to, name, candidate) => to.addIceCandidate(candidate)
        .catch((e) => rig.errors.push(`${name}: addIceCandidate: ${e}`));
    for (const [me, other, name, otherName] of [[rig.a, rig.b, "a", "b"], [rig.b, rig.a, "b", "a"]]) {
        me.onicecandidate = (e) => {
            if (!e.candidate) return;
            rig.candidates[name].push(e.candidate.candidate);
            if (other.remoteDescription) deliver(other, otherName, e.candidate);
            else held[otherName].push(e.candidate);
        };
        me.onicecandidateerror = (e) => {
            const text = `${name}: ${e.url} ${e.errorCode} ${e.errorText}`;
            rig.errors.push(text);
            console.warn("ICE candidate error", text);
        };
        me.onconnectionstatechange = () => console.log(`${name}: connection ${me.connectionState}`);
    }
    const flush = (pc, name) => { for (const c of held[name].splice(0)) deliver(pc, name, c); };

    const audio = new AudioContext();
    const tone = audio.createOscillator();
    tone.frequency.value = 440;
    const out = audio.createMediaStreamDestination();
    tone.connect(out);
    tone.start();
    rig.a.addTrack(out.stream.getAudioTracks()[0], out.stream);
    rig.b.ontrack = (e) => { rig.remoteTrack = e.track; };

    rig.toB = rig.a.createDataChannel("tapline", {ordered: true});
    rig.toB.onmessage = (e) => rig.atA.push(e.data);
    rig.b.ondatachannel = (e) => {
        rig.toA = e.channel;
        e.channel.onmessage = (m) => rig.atB.push(m.data);
    };

    await rig.a.setLocalDescription(await rig.a.createOffer());
    await rig.b.setRemoteDescription(rig.a.localDescription);
    flush(rig.b, "b");
    await rig.b.setLocalDescription(await rig.b.createAnswer());
    await rig.a.setRemoteDescription(rig.b.localDescription);
    flush(rig.a, "a");
    return true;
};

// The selected candidate pair of `pc` and its two candidates, from getStats.
window.selectedPair = async (pc) => {
    const stats = new Map();
    (await pc.getStats()).forEach((s) => stats.set(s.id, s));
    const all = [...stats.values()];
    const transport = all.find((s) => s.type === "transport" && s.selectedCandidatePairId);
    if (!transport) return null;
    const pair = stats.get(transport.selectedCandidatePairId);
    const local = stats.get(pair.localCandidateId);
    const remote = stats.get(pair.remoteCandidateId);
    const types = (kind) => all.filter((s) => s.type === kind).map((s) => s.candidateType);
    return {
        state: pair.state, nominated: pair.nominated,
        bytesSent: pair.bytesSent, bytesReceived: pair.bytesReceived,
        local: {type: local.candidateType, address: local.address, port: local.port,
                relayProtocol: local.relayProtocol, url: local.url},
        remote: {type: remote.candidateType, address: remote.address, port: remote.port},
        localTypes: types("local-candidate"), remoteTypes: types("remote-candidate"),
    };
};

// Audio packets `pc` has received, from getStats.
window.audioPacketsReceived = async (pc) => {
    let packets = 0;
    (await pc.getStats()).forEach((s) => {
        if (s.type === "inbound-rtp" && s.kind === "audio") packets += s.packetsReceived;
    });
    return packets;
};
"#;

#[test]
fn a_browser_peer_connection_pair_talks_only_through_the_relay() {
    let appliance = Appliance::new(&turn_config());
    let (mut daemon, port) = start(&appliance);
    let (username, credential) = rest_credentials(SECRET, "supervisor", Duration::from_secs(600));
    let mut browser = Browser::launch("turn_browser-relay_pair");
    browser.eval(RIG);
    let server = json!({
        "urls": [format!("turn:127.0.0.1:{port}?transport=udp")],
        "username": username,
        "credential": credential,
    });
    browser.call("startRig", &[server]);

    wait(
        &mut browser,
        &daemon,
        "rig.a.connectionState === 'connected' && rig.b.connectionState === 'connected' \
         && rig.toA !== undefined && rig.toA.readyState === 'open' \
         && rig.toB.readyState === 'open'",
        "both peer connections to connect and their data channel to open",
    );

    // Messages both ways, and one far larger than a datagram (SCTP splits it across many).
    let big = 64 * 1024;
    browser.call(
        "(big) => {
            for (let i = 0; i < 20; i++) {
                rig.toB.send(`a to b ${i}`);
                rig.toA.send(`b to a ${i}`);
            }
            rig.toB.send('A'.repeat(big));
            rig.toA.send('B'.repeat(big));
        }",
        &[json!(big)],
    );
    wait(
        &mut browser,
        &daemon,
        "rig.atA.length === 21 && rig.atB.length === 21",
        "21 messages at each end",
    );
    let at_b = browser.eval("rig.atB.slice(0, 20)");
    let at_a = browser.eval("rig.atA.slice(0, 20)");
    let expected = |from: &str, to: &str| {
        Value::Array(
            (0..20)
                .map(|i| json!(format!("{from} to {to} {i}")))
                .collect(),
        )
    };
    assert_eq!(at_b, expected("a", "b"), "messages from a, at b, in order");
    assert_eq!(at_a, expected("b", "a"), "messages from b, at a, in order");
    assert_eq!(
        browser.eval("rig.atB[20] === 'A'.repeat(65536) && rig.atA[20] === 'B'.repeat(65536)"),
        json!(true),
        "the 64 KiB messages arrived whole"
    );

    let packets = wait(
        &mut browser,
        &daemon,
        "audioPacketsReceived(rig.b).then((n) => n >= 50 ? n : 0)",
        "50 audio packets at b (a second of the tone)",
    );
    assert!(packets.as_u64().unwrap() >= 50);

    for side in ["a", "b"] {
        let pair = browser.eval(&format!("selectedPair(rig.{side})"));
        let context = format!("side {side}: {pair:#}");
        assert_eq!(pair["state"], "succeeded", "{context}");
        assert_eq!(pair["nominated"], true, "{context}");
        assert_eq!(pair["local"]["type"], "relay", "{context}");
        assert_eq!(pair["remote"]["type"], "relay", "{context}");
        assert_eq!(pair["local"]["relayProtocol"], "udp", "{context}");
        assert_eq!(pair["local"]["address"], "127.0.0.1", "{context}");
        for end in ["local", "remote"] {
            let relayed_port = u16::try_from(pair[end]["port"].as_u64().unwrap()).unwrap();
            assert!(
                RELAY_PORTS.contains(&relayed_port),
                "{end} candidate's port is not one of our relay's: {context}"
            );
        }
        assert!(
            pair["local"]["url"]
                .as_str()
                .unwrap()
                .contains(&format!("127.0.0.1:{port}")),
            "{context}"
        );
        for kinds in ["localTypes", "remoteTypes"] {
            let all: Vec<&Value> = pair[kinds].as_array().unwrap().iter().collect();
            assert!(
                !all.is_empty() && all.iter().all(|t| *t == "relay"),
                "only relay candidates, never host or server-reflexive: {context}"
            );
        }
        // Each side sent and received one 64 KiB message through this pair.
        assert!(pair["bytesSent"].as_u64().unwrap() > 64 * 1024, "{context}");
        assert!(
            pair["bytesReceived"].as_u64().unwrap() > 64 * 1024,
            "{context}"
        );
    }
    let errors = browser.eval("rig.errors");
    assert_eq!(errors, json!([]), "ICE errors in the page");

    let log = daemon.stderr();
    assert!(
        log.matches("turn allocation started").count() >= 2,
        "an allocation for each peer connection:\n{log}"
    );
    assert!(
        log.contains(&username),
        "allocations under the REST user name:\n{log}"
    );
    browser.screenshot("connected");
    drop(browser);
    daemon.stop(rustix::process::Signal::TERM);
}

#[test]
fn a_browser_with_wrong_or_expired_rest_credentials_gets_no_relay_candidate() {
    let appliance = Appliance::new(&turn_config());
    let (mut daemon, port) = start(&appliance);
    let (username, _) = rest_credentials(SECRET, "supervisor", Duration::from_secs(600));
    let expired = rest_credentials(SECRET, "supervisor", Duration::ZERO);
    let wrong = (username, BASE64.encode([0u8; 20]));
    let mut browser = Browser::launch("turn_browser-refused_credentials");
    browser.eval(RIG);
    for (what, (username, credential)) in [("wrong password", wrong), ("expired", expired)] {
        let server = json!({
            "urls": [format!("turn:127.0.0.1:{port}?transport=udp")],
            "username": username,
            "credential": credential,
        });
        browser.call("startRig", &[server]);
        wait(
            &mut browser,
            &daemon,
            "rig.a.iceGatheringState === 'complete' && rig.b.iceGatheringState === 'complete'",
            &format!("ICE gathering to give up ({what} credentials)"),
        );
        let candidates = browser.eval("rig.candidates");
        assert_eq!(
            candidates,
            json!({"a": [], "b": []}),
            "{what}: a relay candidate without valid credentials"
        );
        let errors = browser.eval("rig.errors");
        assert!(
            errors.as_array().is_some_and(|e| !e.is_empty()),
            "{what}: the browser saw no error from the relay"
        );
        browser.eval("rig.a.close(); rig.b.close()");
    }
    assert!(
        !daemon.stderr().contains("turn allocation started"),
        "an allocation without valid credentials:\n{}",
        daemon.stderr()
    );
    drop(browser);
    daemon.stop(rustix::process::Signal::TERM);
}

fn turn_config() -> String {
    format!(
        "secret = \"{SECRET}\"\n\
         danger_allow_loopback_peers = true\n\
         relay_ports = \"{}-{}\"\n",
        RELAY_PORTS.start(),
        RELAY_PORTS.end()
    )
}

/// TURN REST API credentials: the user name `expiry:user` and its password,
/// base64(HMAC-SHA1(secret, user name)), valid for `lifetime` from now.
fn rest_credentials(secret: &str, user: &str, lifetime: Duration) -> (String, String) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    // An expiry of now, not in the future, means already expired.
    let expiry = (now + lifetime).as_secs() - u64::from(lifetime.is_zero());
    let username = format!("{expiry}:{user}");
    let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(username.as_bytes());
    let password = BASE64.encode(mac.finalize().into_bytes());
    (username, password)
}

/// Starts `tapline turn` and returns it with its port.
fn start(appliance: &Appliance) -> (Daemon, u16) {
    let mut command = Command::new(tapline_bin());
    command
        .args(["turn", "--config"])
        .arg(&appliance.config)
        .env_remove("TAPLINE_CONFIG")
        .env_remove("NOTIFY_SOCKET")
        .env(
            "TAPLINE_LOG",
            std::env::var("TAPLINE_LOG").unwrap_or_else(|_| "info".to_owned()),
        );
    let mut daemon = Daemon::spawn(command);
    let endpoint = daemon.wait_for_stdout("listening: turn turn:", Duration::from_secs(30));
    let addr: std::net::SocketAddr = endpoint.trim().parse().unwrap();
    (daemon, addr.port())
}

/// Waits up to 30 s for `condition` in the page; on time-out, fails with the relay's log and
/// the page's ICE errors as well as the browser's own report.
fn wait(browser: &mut Browser, daemon: &Daemon, condition: &str, what: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(value) = browser.try_eval(condition)
            && value != json!(false)
            && value != json!(0)
            && !value.is_null()
        {
            return value;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let errors = browser.try_eval("rig.errors").unwrap_or_default();
    let states = browser
        .try_eval(
            "({a: [rig.a.iceGatheringState, rig.a.iceConnectionState, rig.a.connectionState], \
               b: [rig.b.iceGatheringState, rig.b.iceConnectionState, rig.b.connectionState], \
               candidates: rig.candidates})",
        )
        .unwrap_or_default();
    eprintln!(
        "ICE errors in the page: {errors}\nstates: {states:#}\nrelay log:\n{}",
        daemon.stderr()
    );
    // The browser's own report: screenshot, URL and console.
    browser.wait_until(condition, what, Duration::ZERO)
}
