//! The config file as an administrator meets it: `tapline check-config` and `tapline run`
//! given good and bad files. Messages are compared whole: they are the interface.

// A test's helpers fail the test on anything unexpected, like its body does.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use tapline_tests::{Appliance, tapline};

const EX_CONFIG: i32 = 78;

fn write(dir: &Path, text: &str) -> String {
    let path = dir.join("tapline.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// Runs `tapline ARGS` and checks the exit code and the whole of stderr.
#[track_caller]
fn check(args: &[&str], code: i32, stderr: &str) {
    let out = tapline(args);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        stderr,
        "stderr of tapline {args:?}"
    );
    assert_eq!(
        out.status.code(),
        Some(code),
        "exit code of tapline {args:?}"
    );
}

#[test]
fn check_config_prints_the_configuration_in_force() {
    let appliance = Appliance::new("");
    let config = appliance.config.to_str().unwrap();
    // `--config` is accepted before and after the subcommand.
    for args in [
        ["check-config", "--config", config],
        ["--config", config, "check-config"],
    ] {
        let out = tapline(&args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        let expected = format!(
            "# {config}: OK. The configuration in force, defaults included:\n\n\
             [tenant]\nname = \"AcmeJets\"\ntimezone = \"America/Los_Angeles\"\n\n\
             [storage]\ndata_dir = \"{}\"\nretention_days = 0\n\n\
             [capture]\ninterfaces = []\n\n\
             [recording]\nformat = \"pcm16\"\npercentage = 100\n\n\
             [recording.headers]\nagent_name = \"X-Agent-Name\"\ncall_type = \"X-Call-Type\"\n\
             queue = \"X-Queue\"\nqueue_name = \"X-Queue-Name\"\ncase_id = \"X-Case-Id\"\n\
             account = \"X-Account\"\nphone_channel = \"X-Phone-Channel\"\n\
             external_variable_1 = \"X-External-Variable-1\"\n\
             external_variable_2 = \"X-External-Variable-2\"\n\
             outdial_code = \"X-Outdial-Code\"\nwrap_up_code = \"X-Wrap-Up-Code\"\n\n\
             [web]\nlisten = \"127.0.0.1:0\"\nidle_timeout_minutes = 30\n\
             session_lifetime_hours = 12\n\
             # http_redirect_listen: not set (no plain HTTP listener)\n\n\
             [sftp]\nlisten = \"127.0.0.1:0\"\nmax_connections = 64\n\
             max_connections_per_account = 8\nidle_timeout_seconds = 600\n\
             failures_before_lockout = 5\nlockout_minutes = 15\n\n\
             [turn]\nlisten = \"127.0.0.1:0\"\nrelay_ports = \"49152-65535\"\n\
             realm = \"tapline\"\nallowed_peers = []\ndanger_allow_loopback_peers = false\n\
             max_allocations = 16384\nmax_allocations_per_user = 16\n\
             # secret: not set\n",
            appliance.data_dir().display()
        );
        assert_eq!(stdout, expected);
    }
}

#[test]
fn bad_values_are_refused_naming_key_value_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[tenant]\nname = \"AcmeJets\"\ntimezone = \"America/Springfield\"\n",
            "key `tenant.timezone` = \"America/Springfield\": not a known IANA time zone name \
             (for example \"UTC\", \"Europe/London\" or \"America/Los_Angeles\")",
        ),
        (
            "[tenant]\nname = \"AcmeJets\"\n[turn]\nrelay_ports = \"60000-50000\"\n",
            "key `turn.relay_ports` = \"60000-50000\": the range is upside down: 60000 is above \
             50000",
        ),
        (
            "[tenant]\nname = \"AcmeJets\"\n[web]\nlisten = 443\n",
            "key `web.listen` = 443: expected a string, found integer",
        ),
        (
            "[tenant]\nname = \"AcmeJets\"\n[sftp]\nport = 22\n",
            "key `sftp.port` = 22: unknown key (known keys here: `listen`, `max_connections`, \
             `max_connections_per_account`, `idle_timeout_seconds`, `failures_before_lockout`, \
             `lockout_minutes`)",
        ),
        (
            "[storage]\ndata_dir = \"/srv\"\n",
            "key `tenant.name`: is required but missing",
        ),
    ];
    for (text, problem) in cases {
        let path = write(dir.path(), text);
        let expected = format!("tapline: {path}: {problem}\n");
        check(&["check-config", "--config", &path], EX_CONFIG, &expected);
        // The daemon refuses to start with the very same message.
        check(&["run", "--config", &path], EX_CONFIG, &expected);
    }
}

#[test]
fn several_problems_are_listed_together() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "[tenant]\nname = \"Acme Jets\"\n[capture]\ninterfaces = [\"span0\", \"span0\"]\n",
    );
    check(
        &["check-config", "--config", &path],
        EX_CONFIG,
        &format!(
            "tapline: {path}: 2 problems:\n  \
             key `tenant.name` = \"Acme Jets\": must be 1 to 64 letters, digits, '.', '_' or \
             '-', starting with a letter or digit (it is also the SFTP login name)\n  \
             key `capture.interfaces` = [\"span0\", \"span0\"]: lists interface \"span0\" twice\n"
        ),
    );
}

#[test]
fn toml_syntax_errors_point_at_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "[tenant]\nname = \"AcmeJets\ntimezone = \"UTC\"\n",
    );
    let out = tapline(&["check-config", "--config", &path]);
    assert_eq!(out.status.code(), Some(EX_CONFIG));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!("tapline: {path}: not valid TOML: ")),
        "{stderr}"
    );
    assert!(stderr.contains("line 2"), "{stderr}");
}

#[test]
fn a_missing_file_is_named() {
    check(
        &["check-config", "--config", "/nonexistent/tapline.toml"],
        EX_CONFIG,
        "tapline: cannot read config file /nonexistent/tapline.toml: No such file or directory \
         (os error 2)\n",
    );
}

#[test]
fn a_data_dir_that_cannot_be_used_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-directory");
    std::fs::write(&blocker, b"").unwrap();
    let path = write(
        dir.path(),
        &format!(
            "[tenant]\nname = \"AcmeJets\"\n[storage]\ndata_dir = \"{}\"\n",
            blocker.display()
        ),
    );
    check(
        &["run", "--config", &path],
        EX_CONFIG,
        &format!(
            "tapline: {path}: key `storage.data_dir` = \"{}\": exists but is not a directory\n",
            blocker.display()
        ),
    );
}

#[test]
fn help_explains_every_subcommand() {
    let out = tapline(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for line in [
        "run           Run every service until stopped (the systemd entry point)",
        "demo          Run a self-contained demo appliance with embedded defaults",
        "check-config  Check the configuration file and print the configuration in force",
        "--config <FILE>",
    ] {
        assert!(help.contains(line), "missing {line:?} in:\n{help}");
    }
}
