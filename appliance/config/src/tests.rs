use std::path::Path;

use super::*;

const MINIMAL: &str = "[tenant]\nname = \"AcmeJets\"\n";

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, "tapline.toml", Path::new("/etc/tapline"))
}

/// Checks that `text` is refused with exactly `expected` as the message.
#[track_caller]
fn check_error(text: &str, expected: &str) {
    match parse(text) {
        Ok(config) => panic!("accepted, expected an error:\n{text}\n{config:?}"),
        Err(err) => assert_eq!(err.to_string(), expected, "for input:\n{text}"),
    }
}

#[test]
fn defaults_fill_everything_but_the_tenant_name() {
    let config = parse(MINIMAL).unwrap();
    assert_eq!(config.tenant.name, "AcmeJets");
    assert_eq!(config.tenant.timezone_name, "UTC");
    assert_eq!(config.storage.data_dir, Path::new("/var/lib/tapline"));
    assert!(config.capture.interfaces.is_empty());
    assert_eq!(config.capture.replay, None);
    assert_eq!(config.web.listen.to_string(), "0.0.0.0:443");
    assert_eq!(config.sftp.listen.to_string(), "0.0.0.0:22");
    assert_eq!(config.turn.listen.to_string(), "0.0.0.0:3478");
    assert_eq!(
        config.turn.relay_ports,
        PortRange {
            first: 49152,
            last: 65535
        }
    );
}

#[test]
fn the_documented_example_parses() {
    let text = r#"
        [tenant]
        name = "AcmeJets"
        timezone = "America/Los_Angeles"
        [storage]
        data_dir = "/var/lib/tapline"
        [capture]
        interfaces = ["span0", "span1"]
        [web]
        listen = "0.0.0.0:443"
        [sftp]
        listen = "[::]:22"
        [turn]
        listen = "0.0.0.0:3478"
        relay_ports = "49152-65535"
    "#;
    let config = parse(text).unwrap();
    assert_eq!(
        config.tenant.timezone.iana_name(),
        Some("America/Los_Angeles")
    );
    assert_eq!(config.capture.interfaces, ["span0", "span1"]);
    assert_eq!(config.sftp.listen.to_string(), "[::]:22");
}

#[test]
fn relative_data_dir_is_taken_from_the_config_files_directory() {
    let config = parse(&format!("{MINIMAL}[storage]\ndata_dir = \"var/demo\"\n")).unwrap();
    assert_eq!(config.storage.data_dir, Path::new("/etc/tapline/var/demo"));
}

#[test]
fn effective_toml_reads_back_to_the_same_config() {
    let text = format!("{MINIMAL}timezone = \"Asia/Kolkata\"\n[web]\nlisten = \"127.0.0.1:0\"\n");
    let config = parse(&text).unwrap();
    let again = parse(&config.effective_toml()).unwrap();
    assert_eq!(again.effective_toml(), config.effective_toml());
    assert_eq!(again.tenant.timezone_name, "Asia/Kolkata");
}

#[test]
fn port_zero_means_any_free_port() {
    let text =
        format!("{MINIMAL}[web]\nlisten = \"127.0.0.1:0\"\n[sftp]\nlisten = \"127.0.0.1:0\"\n");
    assert_eq!(parse(&text).unwrap().web.listen.port(), 0);
}

#[test]
fn each_bad_value_names_key_value_and_reason() {
    let cases: &[(&str, &str)] = &[
        (
            "[tenant]\nname = \"x\"\ntimezone = \"Mars/Olympus_Mons\"\n",
            "tapline.toml: key `tenant.timezone` = \"Mars/Olympus_Mons\": not a known IANA time \
             zone name (for example \"UTC\", \"Europe/London\" or \"America/Los_Angeles\")",
        ),
        (
            "[tenant]\nname = \"x\"\ntimezone = \"+05:00\"\n",
            "tapline.toml: key `tenant.timezone` = \"+05:00\": not a known IANA time zone name \
             (for example \"UTC\", \"Europe/London\" or \"America/Los_Angeles\")",
        ),
        (
            "[tenant]\ntimezone = \"UTC\"\n",
            "tapline.toml: key `tenant.name`: is required but missing",
        ),
        (
            "[tenant]\nname = \"Acme Jets\"\n",
            "tapline.toml: key `tenant.name` = \"Acme Jets\": must be 1 to 64 letters, digits, \
             '.', '_' or '-', starting with a letter or digit (it is also the SFTP login name)",
        ),
        (
            "[tenant]\nname = 42\n",
            "tapline.toml: key `tenant.name` = 42: expected a string, found integer",
        ),
        (
            "[tenant]\nname = \"x\"\n[turn]\nrelay_ports = \"65535-49152\"\n",
            "tapline.toml: key `turn.relay_ports` = \"65535-49152\": the range is upside down: \
             65535 is above 49152",
        ),
        (
            "[tenant]\nname = \"x\"\n[turn]\nrelay_ports = \"0-100\"\n",
            "tapline.toml: key `turn.relay_ports` = \"0-100\": \"0\" is not a port number from 1 \
             to 65535",
        ),
        (
            "[tenant]\nname = \"x\"\n[turn]\nrelay_ports = 49152\n",
            "tapline.toml: key `turn.relay_ports` = 49152: expected a string, found integer",
        ),
        (
            "[tenant]\nname = \"x\"\n[turn]\nrelay_ports = \"3000-4000\"\n",
            "tapline.toml: key `turn.relay_ports` = \"3000-4000\": includes the TURN listening \
             port 3478 (`turn.listen`)",
        ),
        (
            "[tenant]\nname = \"x\"\n[web]\nlisten = \"localhost:443\"\n",
            "tapline.toml: key `web.listen` = \"localhost:443\": expected an IP address and port \
             such as \"0.0.0.0:443\" or \"[::]:443\" (port 0 picks a free port)",
        ),
        (
            "[tenant]\nname = \"x\"\n[sftp]\nlisten = \"127.0.0.1:443\"\n",
            "tapline.toml: key `sftp.listen` = \"127.0.0.1:443\": uses the same port as \
             `web.listen`",
        ),
        (
            "[tenant]\nname = \"x\"\n[capture]\ninterfaces = \"span0\"\n",
            "tapline.toml: key `capture.interfaces` = \"span0\": expected a list of strings, \
             found string",
        ),
        (
            "[tenant]\nname = \"x\"\n[capture]\ninterfaces = [\"span0\", \"a/b\"]\n",
            "tapline.toml: key `capture.interfaces[1]` = \"a/b\": not a network interface name \
             (1 to 15 characters, no '/', ':' or spaces)",
        ),
        (
            "[tenant]\nname = \"x\"\n[capture]\ninterfaces = [\"span0\", \"span0\"]\n",
            "tapline.toml: key `capture.interfaces` = [\"span0\", \"span0\"]: lists interface \
             \"span0\" twice",
        ),
        (
            "[tenant]\nname = \"x\"\n[storage]\ndata_dir = \"\"\n",
            "tapline.toml: key `storage.data_dir` = \"\": must not be empty",
        ),
    ];
    for (text, expected) in cases {
        check_error(text, expected);
    }
}

#[test]
fn unknown_keys_and_sections_are_refused() {
    check_error(
        "[tenant]\nname = \"x\"\ntimezon = \"UTC\"\n",
        "tapline.toml: key `tenant.timezon` = \"UTC\": unknown key (known keys here: `name`, \
         `timezone`)",
    );
    check_error(
        "[tenant]\nname = \"x\"\n[recorder]\nformat = \"wav\"\n",
        "tapline.toml: key `recorder` = { format = \"wav\" }: unknown key (known keys here: \
         `tenant`, `storage`, `capture`, `recording`, `web`, `sftp`, `turn`)",
    );
    check_error(
        "tenant = \"AcmeJets\"\n",
        "tapline.toml: key `tenant` = \"AcmeJets\": expected a table `[tenant]`, found string",
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    check_error(
        "[tenant]\nname = \"\"\ntimezone = \"Nowhere\"\n[web]\nlisten = \"443\"\n",
        "tapline.toml: 3 problems:\n  \
         key `tenant.name` = \"\": must be 1 to 64 letters, digits, '.', '_' or '-', starting \
         with a letter or digit (it is also the SFTP login name)\n  \
         key `tenant.timezone` = \"Nowhere\": not a known IANA time zone name (for example \
         \"UTC\", \"Europe/London\" or \"America/Los_Angeles\")\n  \
         key `web.listen` = \"443\": expected an IP address and port such as \"0.0.0.0:443\" \
         or \"[::]:443\" (port 0 picks a free port)",
    );
}

#[test]
fn syntax_errors_carry_the_toml_position() {
    let err = parse("[tenant\nname = \"x\"\n").unwrap_err().to_string();
    assert!(err.starts_with("tapline.toml: not valid TOML: "), "{err}");
    assert!(err.contains("line 1"), "{err}");
}

#[test]
fn data_dir_that_is_a_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"").unwrap();
    let text = format!("{MINIMAL}[storage]\ndata_dir = \"{}\"\n", file.display());
    let config = parse(&text).unwrap();
    let err = config
        .check_environment("tapline.toml")
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!(
            "tapline.toml: key `storage.data_dir` = \"{}\": exists but is not a directory",
            file.display()
        )
    );
}

#[test]
fn data_dir_under_a_file_cannot_be_created() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"").unwrap();
    let data_dir = file.join("data");
    let text = format!(
        "{MINIMAL}[storage]\ndata_dir = \"{}\"\n",
        data_dir.display()
    );
    let err = parse(&text)
        .unwrap()
        .check_environment("t")
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!(
            "t: key `storage.data_dir` = \"{}\": does not exist and cannot be created: {} is not \
             a directory",
            data_dir.display(),
            file.display()
        )
    );
}

#[test]
fn a_missing_data_dir_under_a_writable_parent_is_fine() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{MINIMAL}[storage]\ndata_dir = \"{}/a/b\"\n",
        dir.path().display()
    );
    parse(&text).unwrap().check_environment("t").unwrap();
}

#[test]
fn load_names_an_unreadable_file() {
    let err = Config::load(Path::new("/nonexistent/tapline.toml")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot read config file /nonexistent/tapline.toml"
    );
    assert!(std::error::Error::source(&err).is_some());
}

#[test]
fn a_replay_file_that_cannot_be_read_is_refused_with_the_environment() {
    let text = format!("{MINIMAL}[capture]\nreplay = \"/nonexistent/calls.pcap\"\n");
    let config = parse(&text).unwrap();
    assert_eq!(
        config.check_environment("t").unwrap_err().to_string(),
        "t: key `capture.replay` = \"/nonexistent/calls.pcap\": cannot open \
         /nonexistent/calls.pcap: No such file or directory (os error 2)"
    );
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{MINIMAL}[capture]\nreplay = \"{}\"\n",
        dir.path().display()
    );
    let err = parse(&text)
        .unwrap()
        .check_environment("t")
        .unwrap_err()
        .to_string();
    assert!(
        err.ends_with(&format!("{} is not a regular file", dir.path().display())),
        "{err}"
    );
}

#[test]
fn recording_defaults_and_overrides() {
    let config = parse(MINIMAL).unwrap();
    assert_eq!(config.recording.format, RecordingFormat::Pcm16);
    assert_eq!(config.recording.percentage, 100);
    assert_eq!(
        config.recording.headers.header("queue_name"),
        Some("X-Queue-Name")
    );
    let text = format!(
        "{MINIMAL}[recording]\nformat = \"mulaw\"\npercentage = 25\n\
         [recording.headers]\nqueue_name = \"X-Genesys-Queue\"\n"
    );
    let config = parse(&text).unwrap();
    assert_eq!(config.recording.format, RecordingFormat::MuLaw);
    assert_eq!(config.recording.percentage, 25);
    assert_eq!(
        config.recording.headers.header("queue_name"),
        Some("X-Genesys-Queue")
    );
    assert_eq!(
        config.recording.headers.header("case_id"),
        Some("X-Case-Id"),
        "others keep defaults"
    );
    assert_eq!(
        parse(&config.effective_toml()).unwrap().recording.headers,
        config.recording.headers
    );
}

#[test]
fn bad_recording_settings_name_their_key() {
    let cases: &[(&str, &str)] = &[
        (
            "[recording]\nformat = \"mp3\"\n",
            "tapline.toml: key `recording.format` = \"mp3\": expected \"pcm16\" (16-bit linear), \
             \"mulaw\" or \"alaw\" (G.711, half the size)",
        ),
        (
            "[recording]\npercentage = 150\n",
            "tapline.toml: key `recording.percentage` = 150: expected a percentage from 0 to 100",
        ),
        (
            "[recording]\npercentage = \"50%\"\n",
            "tapline.toml: key `recording.percentage` = \"50%\": expected a whole number, found string",
        ),
        (
            "[recording.headers]\nqueue = \"X Queue\"\n",
            "tapline.toml: key `recording.headers.queue` = \"X Queue\": not a SIP header name \
             (letters, digits and -.!%*_+`'~)",
        ),
        (
            "[recording.headers]\nqueu = \"X-Queue\"\n",
            "tapline.toml: key `recording.headers.queu` = \"X-Queue\": unknown key (known keys \
             here: `agent_name`, `call_type`, `queue`, `queue_name`, `case_id`, `account`, \
             `phone_channel`, `external_variable_1`, `external_variable_2`, `outdial_code`, \
             `wrap_up_code`)",
        ),
        (
            "[recording]\nheaders = \"X-Queue\"\n",
            "tapline.toml: key `recording.headers` = \"X-Queue\": expected a table \
             `[recording.headers]`, found string",
        ),
    ];
    for (text, expected) in cases {
        check_error(&format!("{MINIMAL}{text}"), expected);
    }
}

#[test]
fn sftp_limits_and_retention_have_defaults_and_bounds() {
    let config = parse(MINIMAL).unwrap();
    assert_eq!(
        config.storage.retention_days, 0,
        "keep for ever unless told"
    );
    assert_eq!(config.sftp.max_connections, 64);
    assert_eq!(config.sftp.max_connections_per_account, 8);
    assert_eq!(config.sftp.idle_timeout_seconds, 600);
    assert_eq!(config.sftp.failures_before_lockout, 5);
    assert_eq!(config.sftp.lockout_minutes, 15);

    let cases: &[(&str, &str)] = &[
        (
            "[storage]\nretention_days = -1\n",
            "tapline.toml: key `storage.retention_days` = -1: expected a whole number from 0 to \
             36500",
        ),
        (
            "[sftp]\nidle_timeout_seconds = 1\n",
            "tapline.toml: key `sftp.idle_timeout_seconds` = 1: expected a whole number from 10 \
             to 86400",
        ),
        (
            "[sftp]\nmax_connections = 4\nmax_connections_per_account = 5\n",
            "tapline.toml: key `sftp.max_connections_per_account` = 5: is more than \
             `sftp.max_connections`",
        ),
    ];
    for (text, expected) in cases {
        check_error(&format!("{MINIMAL}{text}"), expected);
    }
}

#[test]
fn turn_keys_read_as_documented_and_secrets_never_show() {
    let text = format!(
        "{MINIMAL}[turn]\nlisten = \"0.0.0.0:3478\"\ntls_listen = \"0.0.0.0:5349\"\n\
         relay_address = \"192.0.2.10\"\nrelay_ports = \"49152-65535\"\nrealm = \"tapline\"\n\
         secret = \"a shared secret of some length\"\n\
         users = [\"alice:alice's password\"]\nallowed_peers = [\"10.0.0.0/8\", \"fd00::/8\"]\n\
         danger_allow_loopback_peers = false\n"
    );
    let config = parse(&text).unwrap();
    let turn = &config.turn;
    assert_eq!(turn.tls_listen, Some("0.0.0.0:5349".parse().unwrap()));
    assert_eq!(turn.relay_address, Some("192.0.2.10".parse().unwrap()));
    assert_eq!(turn.realm, "tapline");
    assert_eq!(
        turn.secret.as_ref().map(Secret::expose),
        Some("a shared secret of some length")
    );
    assert_eq!(turn.users[0].name, "alice");
    assert_eq!(turn.users[0].password.expose(), "alice's password");
    assert_eq!(turn.allowed_peers.len(), 2);
    assert!(!turn.danger_allow_loopback_peers);

    let shown = format!("{config:?}\n{}", config.effective_toml());
    assert!(!shown.contains("shared secret"), "{shown}");
    assert!(!shown.contains("alice's password"), "{shown}");
    assert!(
        shown.contains("# users: alice (passwords not shown)"),
        "{shown}"
    );

    let defaults = parse(MINIMAL).unwrap().turn;
    assert_eq!(defaults.realm, "tapline");
    assert!(defaults.secret.is_none() && defaults.users.is_empty());
    assert!(defaults.allowed_peers.is_empty() && !defaults.danger_allow_loopback_peers);
    assert_eq!(defaults.relay_address, None);
    assert_eq!(
        (defaults.max_allocations, defaults.max_allocations_per_user),
        (16_384, 16)
    );
}

#[test]
fn bad_turn_values_name_the_key_but_never_a_secret() {
    let cases: &[(&str, &str)] = &[
        (
            "[turn]\nsecret = \"short one\"\n",
            "tapline.toml: key `turn.secret`: must be at least 16 characters (the value is not \
             shown)",
        ),
        (
            "[turn]\nusers = [\"alice-without-a-password\"]\n",
            "tapline.toml: key `turn.users[0]`: expected \"name:password\" (the value is not \
             shown)",
        ),
        (
            "[turn]\nusers = [\"alice:long enough pass\", \"ALICE:another long pass\"]\n",
            "tapline.toml: key `turn.users`: names the user \"ALICE\" twice",
        ),
        (
            "[turn]\nallowed_peers = [\"10.0.0.1/8\"]\n",
            "tapline.toml: key `turn.allowed_peers[0]` = \"10.0.0.1/8\": 10.0.0.1/8 has bits set \
             after the prefix; did you mean 10.0.0.0/8?",
        ),
        (
            "[turn]\ndanger_allow_loopback_peers = \"yes\"\n",
            "tapline.toml: key `turn.danger_allow_loopback_peers` = \"yes\": expected true or \
             false, found string",
        ),
        (
            "[turn]\nrelay_address = \"relay.example\"\n",
            "tapline.toml: key `turn.relay_address` = \"relay.example\": expected an IP address, \
             such as \"192.0.2.10\" or \"2001:db8::10\"",
        ),
        (
            "[turn]\nmax_allocations_per_user = 0\n",
            "tapline.toml: key `turn.max_allocations_per_user` = 0: expected a whole number from 1 to \
             1000000",
        ),
        (
            "[turn]\nrelay_address = \"0.0.0.0\"\n",
            "tapline.toml: key `turn.relay_address` = \"0.0.0.0\": 0.0.0.0 cannot be relayed \
             from: give the unicast address clients reach this appliance at",
        ),
        (
            "[turn]\nrealm = \"\"\n",
            "tapline.toml: key `turn.realm` = \"\": must be 1 to 127 printable ASCII characters \
             without quotes or backslashes",
        ),
    ];
    for (text, expected) in cases {
        check_error(&format!("{MINIMAL}{text}"), expected);
    }
}
