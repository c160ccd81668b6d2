//! A headless Chromium for the end-to-end tests, driven over the Chrome DevTools Protocol.
//!
//! Each [`Browser`] is one Chromium (Debian's `chromium`) with a fresh temporary profile and
//! one page, spoken to over `--remote-debugging-pipe`: no port, no driver process, and the
//! conversation ends when the browser does. Every process of it is killed when the `Browser`
//! is dropped.
//!
//! ```text
//! use std::time::Duration;
//! use tapline_tests::browser::Browser;
//!
//! let mut browser = Browser::options("audit_log_filter")
//!     .trust_certificate(&appliance.cert()) // the appliance's own certificate, nothing else
//!     .downloads(&download_dir)
//!     .launch();
//! browser.sign_in(&format!("{web}sign-in"), "alice", "alice password 1");
//! browser.wait_for("#audit-log", Duration::from_secs(10));
//! browser.fill("input[name=user]", "bob");
//! browser.expect_navigation(|b| b.submit("form#filter"));
//! assert_eq!(browser.text("#audit-log tbody tr:first-child .event"), "Sign in");
//! browser.screenshot("audit-log");
//! let session = browser.cookie("tapline_session").expect("a session cookie");
//! assert!(session.secure && session.http_only);
//! browser.click("a#export-csv");
//! let csv = browser.wait_for_download(Duration::from_secs(10));
//! let total = browser.eval("fetch('/api/v1/recordings').then(r => r.json()).then(j => j.total)");
//! ```
//!
//! Every wait is bounded. When one runs out, or a command fails, the test panics with what was
//! waited for, the page's URL, the page's last console lines and the path of a screenshot.
//! A test that panics for any other reason while a `Browser` is alive gets a screenshot too.
//! Screenshots are PNG files under `target/test-artifacts/<test>/`.
//!
//! Without Chromium installed, [`Browser::launch`] fails the test, naming the package and
//! `cargo xtask test`, which installs it.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// How long a browser has to answer one protocol command.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the element helpers (`click`, `fill`, `text`...) wait for their element.
const DEFAULT_WAIT: Duration = Duration::from_secs(10);

/// Console lines kept for failure messages.
const CONSOLE_KEPT: usize = 200;

/// What to launch: see [`Browser::options`].
pub struct Options {
    test: String,
    trusted_spki: Vec<String>,
    downloads: Option<PathBuf>,
    wait: Duration,
}

impl Options {
    /// Accepts the HTTPS certificate in the PEM file `cert_pem` (the appliance's self-signed
    /// one) by its public key, and no other invalid certificate.
    pub fn trust_certificate(mut self, cert_pem: &Path) -> Options {
        let pem = std::fs::read_to_string(cert_pem)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", cert_pem.display()));
        self.trusted_spki.push(spki_sha256_base64(&pem));
        self
    }

    /// Saves downloads into `dir` (see [`Browser::wait_for_download`]).
    pub fn downloads(mut self, dir: &Path) -> Options {
        self.downloads = Some(dir.to_owned());
        self
    }

    /// How long `click`, `fill`, `text`, `goto` and the like wait (10 s unless set).
    pub fn wait(mut self, wait: Duration) -> Options {
        self.wait = wait;
        self
    }

    /// Starts Chromium and opens its page on `about:blank`.
    pub fn launch(self) -> Browser {
        Browser::start(self)
    }
}

/// A cookie as the browser holds it, with its flags.
#[derive(Debug, Clone, PartialEq)]
pub struct Cookie {
    pub name: String,
    pub value: String,
    pub domain: String,
    pub path: String,
    pub secure: bool,
    pub http_only: bool,
    /// `Strict`, `Lax` or `None`; absent when the server did not say.
    pub same_site: Option<String>,
    /// True for a cookie that ends with the browser session (no Expires or Max-Age).
    pub session: bool,
}

/// One headless Chromium with one page. See the module docs.
pub struct Browser {
    child: Child,
    to_browser: ChildStdin,
    from_browser: mpsc::Receiver<Value>,
    next_id: u64,
    target_id: String,
    session_id: String,
    wait: Duration,
    console: Vec<String>,
    downloads: Downloads,
    artifacts: PathBuf,
    failures: u32,
    log: PathBuf,
    // Removed after the browser is killed: fields drop in declaration order, after `drop`.
    _profile: tempfile::TempDir,
}

/// Downloads announced and finished, by the browser's id for each.
#[derive(Default)]
struct Downloads {
    dir: Option<PathBuf>,
    names: HashMap<String, String>,
    finished: Vec<(String, String)>,
    handed_out: usize,
}

impl Browser {
    /// A browser for the test named `test` (the name of its artifacts directory), with the
    /// defaults: no certificate trusted, downloads refused.
    pub fn launch(test: &str) -> Browser {
        Browser::options(test).launch()
    }

    /// A browser to configure before [`Options::launch`].
    pub fn options(test: &str) -> Options {
        Options {
            test: test.to_owned(),
            trusted_spki: Vec::new(),
            downloads: None,
            wait: DEFAULT_WAIT,
        }
    }

    /// Opens `url` and waits for its load to complete; panics if it cannot be opened.
    pub fn goto(&mut self, url: &str) {
        if let Err(error) = self.try_goto(url) {
            self.fail(&format!("cannot open {url}"), &error);
        }
    }

    /// Opens `url` and waits for its load to complete; `Err` holds the browser's reason when
    /// the page cannot be opened at all (`net::ERR_CERT_AUTHORITY_INVALID`...).
    pub fn try_goto(&mut self, url: &str) -> Result<(), String> {
        let reply = self.page_command("Page.navigate", json!({ "url": url }), COMMAND_TIMEOUT);
        if let Some(error) = reply["errorText"].as_str().filter(|e| !e.is_empty()) {
            return Err(error.to_owned());
        }
        let wait = self.wait;
        self.wait_until(
            "document.readyState === 'complete'",
            &format!("{url} to load"),
            wait,
        );
        Ok(())
    }

    /// The page's URL, as the browser reports it (works even when the page's scripts do not).
    pub fn url(&mut self) -> String {
        self.try_url()
            .unwrap_or_else(|e| panic!("cannot read the page's URL: {e}"))
    }

    /// Evaluates the JavaScript expression `js` in the page, awaits it if it is a promise, and
    /// returns its value as JSON (`undefined` as `null`). Panics on a thrown exception.
    pub fn eval(&mut self, js: &str) -> Value {
        match self.try_eval(js) {
            Ok(value) => value,
            Err(error) => self.fail(&format!("evaluating {}", abbreviate(js)), &error),
        }
    }

    /// [`Browser::eval`], with the exception's text as `Err`.
    pub fn try_eval(&mut self, js: &str) -> Result<Value, String> {
        let reply = self.try_page_command(
            "Runtime.evaluate",
            json!({
                "expression": js,
                "awaitPromise": true,
                "returnByValue": true,
                "userGesture": true,
            }),
            COMMAND_TIMEOUT,
        )?;
        if let Some(details) = reply.get("exceptionDetails") {
            let text = details["exception"]["description"]
                .as_str()
                .or(details["text"].as_str())
                .unwrap_or("an exception");
            return Err(format!("threw: {text}"));
        }
        Ok(reply["result"].get("value").cloned().unwrap_or(Value::Null))
    }

    /// Calls the JavaScript function `function` (source text, e.g. `async (a, b) => a + b`)
    /// with `args` and returns its awaited value.
    pub fn call(&mut self, function: &str, args: &[Value]) -> Value {
        let args = Value::Array(args.to_vec());
        self.eval(&format!("({function})(...{args})"))
    }

    /// Evaluates `condition` every 100 ms until its value is truthy, and returns it. An
    /// exception counts as not yet (the page may be between documents). Panics after
    /// `timeout`, naming `what`.
    pub fn wait_until(&mut self, condition: &str, what: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match self.try_eval(condition) {
                Ok(value) if truthy(&value) => return value,
                Ok(value) => format!("last value: {value}"),
                Err(error) => format!("last error: {error}"),
            };
            if Instant::now() >= deadline {
                self.fail(
                    &format!("timed out after {timeout:?} waiting for {what}"),
                    &last,
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until an element matching the CSS `selector` is in the page and rendered (has a
    /// box: not `display: none`).
    pub fn wait_for(&mut self, selector: &str, timeout: Duration) {
        let condition = format!(
            "(() => {{ const e = document.querySelector({}); \
             return e !== null && e.getClientRects().length > 0; }})()",
            js_string(selector)
        );
        self.wait_until(&condition, &format!("element {selector}"), timeout);
    }

    /// Clicks the middle of the element matching `selector` (of its first line, for a link that
    /// wraps) with real mouse events, as a user would; panics if another element covers that
    /// point.
    pub fn click(&mut self, selector: &str) {
        let wait = self.wait;
        self.wait_for(selector, wait);
        let point = self.call(
            "(selector) => {
                const e = document.querySelector(selector);
                e.scrollIntoView({block: 'center', inline: 'center'});
                // A link that wraps has a box per line: the middle of the whole may fall
                // between them, so aim at its first line.
                const r = e.getClientRects()[0];
                const x = r.left + r.width / 2, y = r.top + r.height / 2;
                const hit = document.elementFromPoint(x, y);
                const covered = hit !== null && hit !== e && !e.contains(hit);
                return {x, y, covered: covered ? hit.outerHTML.slice(0, 200) : null};
            }",
            &[json!(selector)],
        );
        if let Some(cover) = point["covered"].as_str() {
            self.fail(
                &format!("cannot click {selector}"),
                &format!("covered by {cover}"),
            );
        }
        let (x, y) = (point["x"].clone(), point["y"].clone());
        self.page_command(
            "Input.dispatchMouseEvent",
            json!({ "type": "mouseMoved", "x": x, "y": y }),
            COMMAND_TIMEOUT,
        );
        for kind in ["mousePressed", "mouseReleased"] {
            self.page_command(
                "Input.dispatchMouseEvent",
                json!({ "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1 }),
                COMMAND_TIMEOUT,
            );
        }
    }

    /// Replaces the value of the form field matching `selector` with `value`, typed as text
    /// input (a `<select>` gets the option with that value); panics if the field does not
    /// end up holding `value`.
    pub fn fill(&mut self, selector: &str, value: &str) {
        let wait = self.wait;
        self.wait_for(selector, wait);
        let kind = self.call(
            "(selector, value) => {
                const e = document.querySelector(selector);
                e.focus();
                if (e.tagName === 'SELECT') {
                    e.value = value;
                    e.dispatchEvent(new Event('input', {bubbles: true}));
                    e.dispatchEvent(new Event('change', {bubbles: true}));
                    return 'select';
                }
                e.value = '';
                e.dispatchEvent(new Event('input', {bubbles: true}));
                return 'text';
            }",
            &[json!(selector), json!(value)],
        );
        if kind == "text" {
            self.page_command(
                "Input.insertText",
                json!({ "text": value }),
                COMMAND_TIMEOUT,
            );
            self.call(
                "(selector) => document.querySelector(selector)
                    .dispatchEvent(new Event('change', {bubbles: true}))",
                &[json!(selector)],
            );
        }
        let held = self.call(
            "(selector) => document.querySelector(selector).value",
            &[json!(selector)],
        );
        if held != value {
            self.fail(
                &format!("cannot fill {selector}"),
                &format!("it holds {held} instead of {value:?}"),
            );
        }
    }

    /// Chooses `files` in the file input matching `selector`, as a user picking them in the
    /// file dialog would (the input's `input` and `change` events fire); panics if the input
    /// does not end up holding them.
    pub fn set_files(&mut self, selector: &str, files: &[&Path]) {
        let wait = self.wait;
        self.wait_for(selector, wait);
        let document = self.page_command("DOM.getDocument", json!({ "depth": 0 }), COMMAND_TIMEOUT);
        let root = document["root"]["nodeId"].clone();
        let found = self.page_command(
            "DOM.querySelector",
            json!({ "nodeId": root, "selector": selector }),
            COMMAND_TIMEOUT,
        );
        let node = found["nodeId"].clone();
        if node.as_u64().unwrap_or(0) == 0 {
            self.fail(
                &format!("cannot choose files in {selector}"),
                "no such element",
            );
        }
        let paths: Vec<String> = files
            .iter()
            .map(|f| {
                std::path::absolute(f)
                    .unwrap_or_else(|e| panic!("{}: {e}", f.display()))
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        self.page_command(
            "DOM.setFileInputFiles",
            json!({ "files": paths, "nodeId": node }),
            COMMAND_TIMEOUT,
        );
        let names: Vec<String> = files
            .iter()
            .map(|f| {
                f.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        let held = self.call(
            "(selector) => [...document.querySelector(selector).files].map(f => f.name)",
            &[json!(selector)],
        );
        if held != json!(names) {
            self.fail(
                &format!("cannot choose files in {selector}"),
                &format!("it holds {held} instead of {names:?}"),
            );
        }
    }

    /// Submits the form matching `selector` as its submit button would (validation and
    /// `submit` handlers run).
    pub fn submit(&mut self, form_selector: &str) {
        let wait = self.wait;
        self.wait_for(form_selector, wait);
        self.call(
            "(selector) => { document.querySelector(selector).requestSubmit(); }",
            &[json!(form_selector)],
        );
    }

    /// Runs `action` (a click or a submit) and waits until it has brought a new document and
    /// that document has loaded.
    pub fn expect_navigation<R>(&mut self, action: impl FnOnce(&mut Browser) -> R) -> R {
        self.eval("window.__taplineLeaving = true");
        let result = action(self);
        let wait = self.wait;
        self.wait_until(
            "window.__taplineLeaving === undefined && document.readyState === 'complete'",
            "the next page after a navigation",
            wait,
        );
        result
    }

    /// Signs in through the form on the page at `url`: fills its `username` and `password`
    /// fields, submits their form and waits for the next page (which may be the same form
    /// with an error, for a wrong password).
    pub fn sign_in(&mut self, url: &str, username: &str, password: &str) {
        self.goto(url);
        self.fill("input[name=username]", username);
        self.fill("input[name=password]", password);
        self.expect_navigation(|b| {
            b.call(
                "() => document.querySelector('input[name=password]').form.requestSubmit()",
                &[],
            )
        });
    }

    /// The rendered text of the element matching `selector` (`innerText`).
    pub fn text(&mut self, selector: &str) -> String {
        let wait = self.wait;
        self.wait_for(selector, wait);
        let text = self.call(
            "(selector) => document.querySelector(selector).innerText",
            &[json!(selector)],
        );
        text.as_str().unwrap_or_default().to_owned()
    }

    /// Every cookie the browser holds, for every site, with its flags.
    pub fn cookies(&mut self) -> Vec<Cookie> {
        let reply = self.browser_command("Storage.getCookies", json!({}), COMMAND_TIMEOUT);
        let Some(cookies) = reply["cookies"].as_array() else {
            panic!("Storage.getCookies answered without cookies: {reply}");
        };
        cookies
            .iter()
            .map(|c| Cookie {
                name: string_field(c, "name"),
                value: string_field(c, "value"),
                domain: string_field(c, "domain"),
                path: string_field(c, "path"),
                secure: c["secure"].as_bool().unwrap_or(false),
                http_only: c["httpOnly"].as_bool().unwrap_or(false),
                same_site: c["sameSite"].as_str().map(str::to_owned),
                session: c["session"].as_bool().unwrap_or(false),
            })
            .collect()
    }

    /// Grants every site the browser's `permissions` (`clipboardReadWrite`,
    /// `clipboardSanitizedWrite`...: the protocol's `Browser.PermissionType` names), which a
    /// user would otherwise be asked for.
    pub fn grant_permissions(&mut self, permissions: &[&str]) {
        self.browser_command(
            "Browser.grantPermissions",
            json!({ "permissions": permissions }),
            COMMAND_TIMEOUT,
        );
    }

    /// The cookie named `name`, if the browser holds one.
    pub fn cookie(&mut self, name: &str) -> Option<Cookie> {
        self.cookies().into_iter().find(|c| c.name == name)
    }

    /// Saves a PNG of the page's viewport as `<artifacts>/<name>.png` and returns its path.
    pub fn screenshot(&mut self, name: &str) -> PathBuf {
        self.try_screenshot(name)
            .unwrap_or_else(|e| panic!("cannot take screenshot {name}: {e}"))
    }

    /// The directory this test's screenshots go to: `target/test-artifacts/<test>/`.
    pub fn artifacts_dir(&self) -> &Path {
        &self.artifacts
    }

    /// Waits for the next download to finish and returns its file, named as the server or
    /// the link suggested, in the directory given to [`Options::downloads`].
    pub fn wait_for_download(&mut self, timeout: Duration) -> PathBuf {
        let Some(dir) = self.downloads.dir.clone() else {
            panic!("downloads are refused: launch with Browser::options(..).downloads(dir)");
        };
        let deadline = Instant::now() + timeout;
        while self.downloads.finished.len() <= self.downloads.handed_out {
            if !self.pump(deadline) {
                let pending = self.downloads.names.values().cloned().collect::<Vec<_>>();
                self.fail(
                    &format!("timed out after {timeout:?} waiting for a download"),
                    &format!("begun but not finished: {pending:?}"),
                );
            }
        }
        let (guid, state) = self.downloads.finished[self.downloads.handed_out].clone();
        self.downloads.handed_out += 1;
        let suggested = self.downloads.names.get(&guid).cloned().unwrap_or_default();
        if state != "completed" {
            self.fail(
                &format!("download {suggested:?}"),
                &format!("it ended {state}"),
            );
        }
        // Saved under its id ("allowAndName"), so a name from the network never picks the
        // path; the suggested name is used only when it is a plain file name.
        let saved = dir.join(&guid);
        let plain = !suggested.is_empty()
            && !suggested.starts_with('.')
            && !suggested.contains(['/', '\\']);
        if !plain {
            return saved;
        }
        let named = dir.join(&suggested);
        std::fs::rename(&saved, &named)
            .unwrap_or_else(|e| panic!("cannot rename {} to {suggested}: {e}", saved.display()));
        named
    }

    /// The browser's process id, which is also its process group's.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The page's console output, uncaught exceptions and the browser's messages about the page
    /// (refused by the Content-Security-Policy, failed to load...) so far, oldest first.
    pub fn console(&self) -> &[String] {
        &self.console
    }
}

/// Starting and stopping Chromium.
impl Browser {
    fn start(options: Options) -> Browser {
        // Only to fail with the package's name and the command that installs it.
        crate::peer("chromium", "chromium");
        let profile = tempfile::Builder::new()
            .prefix("tapline-chromium-")
            .tempdir()
            .expect("a temporary directory for the browser profile");
        let log = profile.path().join("chromium.log");
        let log_file = File::create(&log).expect("a log file in the new profile");

        let mut args = vec![
            "--headless=new".to_owned(),
            "--remote-debugging-pipe".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
            "--no-first-run".to_owned(),
            "--no-default-browser-check".to_owned(),
            // Sites are air-gapped, and tests must not depend on the internet either.
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-features=Translate,MediaRouter,OptimizationHints".to_owned(),
            "--password-store=basic".to_owned(),
            "--window-size=1280,900".to_owned(),
            "--mute-audio".to_owned(),
            // Audio made by the page (WebAudio into a WebRTC track) plays without a click.
            "--autoplay-policy=no-user-gesture-required".to_owned(),
        ];
        if rustix::process::geteuid().is_root() {
            // Chromium refuses to start as root with its sandbox on: the sandbox's namespaces
            // and setuid helper are built to drop a normal user's rights, not root's. CI and
            // containers run the tests as root; as any other user the sandbox stays on.
            args.push("--no-sandbox".to_owned());
        }
        if !options.trusted_spki.is_empty() {
            // Accepts exactly these public keys despite their self-signed certificates;
            // every other certificate error still blocks the page.
            args.push(format!(
                "--ignore-certificate-errors-spki-list={}",
                options.trusted_spki.join(",")
            ));
        }
        args.push("about:blank".to_owned());

        // The protocol runs over the browser's fds 3 (commands in) and 4 (replies out). The
        // shell moves our stdin and stdout pipes there before becoming Chromium.
        let mut child = Command::new("sh")
            .args([
                "-c",
                "exec \"$0\" \"$@\" 3<&0 4>&1 0</dev/null 1>&2",
                "chromium",
            ])
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log_file)
            // Its own process group, so the renderers, GPU and utility processes it starts
            // are killed with it.
            .process_group(0)
            .spawn()
            .expect("sh, to start chromium");
        let to_browser = child.stdin.take().expect("stdin was piped");
        let replies = child.stdout.take().expect("stdout was piped");
        let (tx, from_browser) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(replies);
            let mut message = Vec::new();
            // Each message is one JSON text followed by a NUL byte.
            while reader.read_until(0, &mut message).is_ok_and(|n| n > 0) {
                if message.last() == Some(&0) {
                    message.pop();
                }
                if let Ok(value) = serde_json::from_slice::<Value>(&message)
                    && tx.send(value).is_err()
                {
                    return;
                }
                message.clear();
            }
        });

        let artifacts = artifacts_root().join(sanitize(&options.test));
        let mut browser = Browser {
            child,
            to_browser,
            from_browser,
            next_id: 0,
            target_id: String::new(),
            session_id: String::new(),
            wait: options.wait,
            console: Vec::new(),
            downloads: Downloads {
                dir: options.downloads.clone(),
                ..Downloads::default()
            },
            artifacts,
            failures: 0,
            log,
            _profile: profile,
        };
        browser.browser_command("Browser.getVersion", json!({}), COMMAND_TIMEOUT);
        if let Some(dir) = &options.downloads {
            std::fs::create_dir_all(dir)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
            browser.browser_command(
                "Browser.setDownloadBehavior",
                json!({
                    "behavior": "allowAndName",
                    "downloadPath": dir,
                    "eventsEnabled": true,
                }),
                COMMAND_TIMEOUT,
            );
        }
        let target = browser.browser_command(
            "Target.createTarget",
            json!({ "url": "about:blank" }),
            COMMAND_TIMEOUT,
        );
        browser.target_id = string_field(&target, "targetId");
        let attached = browser.browser_command(
            "Target.attachToTarget",
            json!({ "targetId": browser.target_id, "flatten": true }),
            COMMAND_TIMEOUT,
        );
        browser.session_id = string_field(&attached, "sessionId");
        browser.page_command("Runtime.enable", json!({}), COMMAND_TIMEOUT);
        // The browser's own messages about the page: CSP refusals, failed loads...
        browser.page_command("Log.enable", json!({}), COMMAND_TIMEOUT);
        browser
    }

    /// Kills Chromium and every process it started.
    fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let group = i32::try_from(self.child.id())
                .ok()
                .and_then(rustix::process::Pid::from_raw);
            if let Some(group) = group {
                let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if std::thread::panicking() && !self.session_id.is_empty() {
            match self.try_screenshot("at-panic") {
                Ok(path) => eprintln!("browser screenshot at the panic: {}", path.display()),
                Err(error) => eprintln!("no browser screenshot at the panic: {error}"),
            }
            eprintln!("browser console:\n{}", self.console_tail());
        }
        self.kill();
    }
}

/// The protocol: commands, replies and events.
impl Browser {
    fn browser_command(&mut self, method: &str, params: Value, timeout: Duration) -> Value {
        self.command(None, method, params, timeout)
            .unwrap_or_else(|e| self.fail_without_page(method, &e))
    }

    fn page_command(&mut self, method: &str, params: Value, timeout: Duration) -> Value {
        match self.try_page_command(method, params, timeout) {
            Ok(reply) => reply,
            Err(error) => self.fail(&format!("{method} failed"), &error),
        }
    }

    fn try_page_command(
        &mut self,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, String> {
        let session = self.session_id.clone();
        self.command(Some(&session), method, params, timeout)
    }

    /// Sends one command and waits for its reply, handling the events that come first.
    fn command(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        let mut bytes = message.to_string().into_bytes();
        bytes.push(0);
        self.to_browser
            .write_all(&bytes)
            .and_then(|()| self.to_browser.flush())
            .map_err(|e| format!("the browser is gone ({e}); its log:\n{}", self.log_tail()))?;
        let deadline = Instant::now() + timeout;
        loop {
            let Some(reply) = self.next_message(deadline) else {
                return Err(format!(
                    "no reply to {method} within {timeout:?}; the browser's log:\n{}",
                    self.log_tail()
                ));
            };
            if reply["id"].as_u64() != Some(id) {
                continue;
            }
            if let Some(error) = reply.get("error") {
                return Err(format!("{method}: {error}"));
            }
            return Ok(reply.get("result").cloned().unwrap_or(Value::Null));
        }
    }

    /// Handles messages until `deadline`; false if none came (or the browser is gone).
    fn pump(&mut self, deadline: Instant) -> bool {
        self.next_message(deadline).is_some()
    }

    /// The next message, after noting what it says if it is an event.
    fn next_message(&mut self, deadline: Instant) -> Option<Value> {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = self.from_browser.recv_timeout(left).ok()?;
        if let Some(method) = message["method"].as_str() {
            self.note_event(method, &message["params"]);
        }
        Some(message)
    }

    fn note_event(&mut self, method: &str, params: &Value) {
        match method {
            "Runtime.consoleAPICalled" => {
                let words = params["args"]
                    .as_array()
                    .map(|args| args.iter().map(console_word).collect::<Vec<_>>())
                    .unwrap_or_default();
                let kind = params["type"].as_str().unwrap_or("log");
                self.note_console(format!("console.{kind}: {}", words.join(" ")));
            }
            "Runtime.exceptionThrown" => {
                let details = &params["exceptionDetails"];
                let text = details["exception"]["description"]
                    .as_str()
                    .or(details["text"].as_str())
                    .unwrap_or("an exception");
                self.note_console(format!("uncaught: {text}"));
            }
            "Log.entryAdded" => {
                let entry = &params["entry"];
                let level = entry["level"].as_str().unwrap_or("info");
                let text = entry["text"].as_str().unwrap_or_default();
                let url = entry["url"].as_str().unwrap_or_default();
                self.note_console(
                    format!("browser {level}: {text} {url}")
                        .trim_end()
                        .to_owned(),
                );
            }
            "Inspector.targetCrashed" => self.note_console("the page crashed".to_owned()),
            "Browser.downloadWillBegin" => {
                let guid = string_field(params, "guid");
                let name = string_field(params, "suggestedFilename");
                self.downloads.names.insert(guid, name);
            }
            "Browser.downloadProgress" => {
                let state = string_field(params, "state");
                if state == "completed" || state == "canceled" {
                    self.downloads
                        .finished
                        .push((string_field(params, "guid"), state));
                }
            }
            _ => {}
        }
    }

    fn note_console(&mut self, line: String) {
        if self.console.len() == CONSOLE_KEPT {
            self.console.remove(0);
        }
        self.console.push(line);
    }
}

/// Failures, screenshots and logs.
impl Browser {
    /// Panics with `what`, `detail`, the page's URL, a screenshot and the console's last lines.
    fn fail(&mut self, what: &str, detail: &str) -> ! {
        self.failures += 1;
        let url = self.try_url().unwrap_or_else(|e| format!("unknown ({e})"));
        let name = format!("failure-{}", self.failures);
        let screenshot = match self.try_screenshot(&name) {
            Ok(path) => path.display().to_string(),
            Err(error) => format!("none ({error})"),
        };
        panic!(
            "{what}\n  {detail}\n  page: {url}\n  screenshot: {screenshot}\n  console:\n{}",
            self.console_tail()
        );
    }

    /// Panics for a command to the browser itself, with the browser's log.
    fn fail_without_page(&self, method: &str, error: &str) -> ! {
        panic!("browser command {method} failed: {error}");
    }

    fn try_url(&mut self) -> Result<String, String> {
        let target = self.target_id.clone();
        let info = self.command(
            None,
            "Target.getTargetInfo",
            json!({ "targetId": target }),
            COMMAND_TIMEOUT,
        )?;
        Ok(string_field(&info["targetInfo"], "url"))
    }

    fn try_screenshot(&mut self, name: &str) -> Result<PathBuf, String> {
        let shot = self.try_page_command(
            "Page.captureScreenshot",
            json!({ "format": "png" }),
            Duration::from_secs(10),
        )?;
        let png = BASE64
            .decode(shot["data"].as_str().unwrap_or_default())
            .map_err(|e| format!("the screenshot is not base64: {e}"))?;
        std::fs::create_dir_all(&self.artifacts)
            .map_err(|e| format!("cannot create {}: {e}", self.artifacts.display()))?;
        let path = self.artifacts.join(format!("{}.png", sanitize(name)));
        std::fs::write(&path, png).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(path)
    }

    fn console_tail(&self) -> String {
        let start = self.console.len().saturating_sub(20);
        let lines: Vec<String> = self.console[start..]
            .iter()
            .map(|l| format!("    {l}"))
            .collect();
        if lines.is_empty() {
            "    (nothing)".to_owned()
        } else {
            lines.join("\n")
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

/// The base64 SHA-256 of the public key (SubjectPublicKeyInfo) of the first certificate in
/// `pem`: the form Chromium's `--ignore-certificate-errors-spki-list` takes.
pub fn spki_sha256_base64(pem: &str) -> String {
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE-----"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END CERTIFICATE-----"))
        .collect();
    let der = BASE64
        .decode(body.trim())
        .expect("a PEM certificate with a base64 body");
    BASE64.encode(Sha256::digest(subject_public_key_info(&der)))
}

/// The DER SubjectPublicKeyInfo inside a DER X.509 certificate (RFC 5280, 4.1).
fn subject_public_key_info(cert: &[u8]) -> &[u8] {
    const SEQUENCE: u8 = 0x30;
    const INTEGER: u8 = 0x02;
    const VERSION: u8 = 0xa0;
    let (_, certificate, _) = der_element(cert, SEQUENCE);
    let (_, mut tbs, _) = der_element(certificate, SEQUENCE);
    if tbs.first() == Some(&VERSION) {
        tbs = der_element(tbs, VERSION).2;
    }
    tbs = der_element(tbs, INTEGER).2; // serialNumber
    for _signature_issuer_validity_subject in 0..4 {
        tbs = der_element(tbs, SEQUENCE).2;
    }
    der_element(tbs, SEQUENCE).0
}

/// Splits the DER element at the start of `input`, which must have `tag`, into the whole
/// element, its contents and what follows it.
fn der_element(input: &[u8], tag: u8) -> (&[u8], &[u8], &[u8]) {
    assert_eq!(
        input.first(),
        Some(&tag),
        "not a certificate: expected DER tag {tag:#x}"
    );
    let first = *input.get(1).expect("a DER length");
    let (length, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let count = usize::from(first & 0x7f);
        assert!((1..=4).contains(&count), "a DER length of {count} bytes");
        let bytes = input.get(2..2 + count).expect("a DER length");
        let length = bytes.iter().fold(0, |n, b| n << 8 | usize::from(*b));
        (length, 2 + count)
    };
    assert!(input.len() >= header + length, "a truncated DER element");
    let (whole, rest) = input.split_at(header + length);
    (whole, &whole[header..], rest)
}

/// Where the tests' artifacts go: `target/test-artifacts`, next to the profile directory
/// that holds the test executable (`target/<profile>/deps/<test>`).
fn artifacts_root() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    exe.ancestors()
        .nth(3)
        .map_or_else(|| PathBuf::from("target"), Path::to_path_buf)
        .join("test-artifacts")
}

/// `name` made safe as a file name.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect::<String>()
        .trim_start_matches('.')
        .to_owned()
}

/// JavaScript's idea of truth, for a JSON value.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// `text` as a JavaScript string literal.
fn js_string(text: &str) -> String {
    Value::String(text.to_owned()).to_string()
}

fn abbreviate(js: &str) -> String {
    let one_line = js.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 120 {
        one_line.chars().take(117).chain("...".chars()).collect()
    } else {
        one_line
    }
}

fn string_field(value: &Value, key: &str) -> String {
    value[key].as_str().unwrap_or_default().to_owned()
}

fn console_word(arg: &Value) -> String {
    match arg.get("value") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => arg["description"]
            .as_str()
            .or(arg["type"].as_str())
            .unwrap_or("?")
            .to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::panic::{AssertUnwindSafe, catch_unwind};

    use super::*;
    use crate::{Appliance, peer};

    #[test]
    fn public_key_hash_is_the_one_openssl_computes() {
        let dir = tempfile::tempdir().unwrap();
        for (kind, options) in [
            ("ec", "ec_paramgen_curve:P-256"),
            ("rsa", "rsa_keygen_bits:2048"),
        ] {
            let cert = dir.path().join(format!("{kind}.pem"));
            let key = dir.path().join(format!("{kind}.key"));
            let made = peer("openssl", "openssl")
                .args([
                    "req",
                    "-x509",
                    "-nodes",
                    "-days",
                    "1",
                    "-subj",
                    "/CN=tapline.local",
                ])
                .args(["-newkey", kind, "-pkeyopt", options, "-keyout"])
                .arg(&key)
                .arg("-out")
                .arg(&cert)
                .output()
                .unwrap();
            assert!(
                made.status.success(),
                "{}",
                String::from_utf8_lossy(&made.stderr)
            );
            let script = format!(
                "openssl x509 -in '{}' -pubkey -noout | openssl pkey -pubin -outform der \
                 | openssl dgst -sha256 -binary | base64",
                cert.display()
            );
            let theirs = peer("sh", "dash").args(["-c", &script]).output().unwrap();
            let pem = std::fs::read_to_string(&cert).unwrap();
            assert_eq!(
                spki_sha256_base64(&pem),
                String::from_utf8(theirs.stdout).unwrap().trim(),
                "{kind}"
            );
        }
    }

    #[test]
    fn trusts_the_appliances_certificate_and_no_other() {
        let appliance = Appliance::new("");
        let mut daemon = appliance.start(None, None);
        let web = daemon.web_url();

        let mut stranger = Browser::launch("browser-untrusted");
        let refused = stranger.try_goto(&format!("{web}health"));
        assert_eq!(refused, Err("net::ERR_CERT_AUTHORITY_INVALID".to_owned()));
        drop(stranger);

        let mut browser = Browser::options("browser-trusted")
            .trust_certificate(&appliance.cert())
            .launch();
        browser.goto(&format!("{web}health"));
        assert_eq!(browser.url(), format!("{web}health"));
        assert!(!browser.text("body").is_empty());
        daemon.stop(rustix::process::Signal::TERM);
    }

    #[test]
    fn fills_submits_clicks_downloads_and_reads_cookies() {
        let appliance = Appliance::new("");
        let mut daemon = appliance.start(None, None);
        let web = daemon.web_url();
        let downloads = tempfile::tempdir().unwrap();
        let mut browser = Browser::options("browser-forms")
            .trust_certificate(&appliance.cert())
            .downloads(downloads.path())
            .launch();
        browser.goto(&format!("{web}health"));
        browser.eval(
            "document.body.innerHTML = `
                <button id=count>click me</button>
                <a id=export href=/health download=health.txt>export</a>
                <input id=pick type=file>`;
            // The appliance's Content-Security-Policy refuses inline handlers.
            document.querySelector('#count')
                .addEventListener('click', (e) => { e.target.textContent = 'clicked'; });",
        );

        browser.click("#count");
        assert_eq!(browser.text("#count"), "clicked");

        let picked = downloads.path().join("picked.csv");
        std::fs::write(&picked, "a,b\r\n1,2\r\n").unwrap();
        browser.set_files("#pick", &[&picked]);
        let read = browser.eval("document.querySelector('#pick').files[0].text()");
        assert_eq!(
            read,
            json!("a,b\r\n1,2\r\n"),
            "the page reads the chosen file"
        );
        std::fs::remove_file(&picked).unwrap();

        browser.click("#export");
        let file = browser.wait_for_download(Duration::from_secs(10));
        assert_eq!(file, downloads.path().join("health.txt"));
        assert!(!std::fs::read(&file).unwrap().is_empty());

        browser.eval("document.cookie = 'pref=1; Secure; SameSite=Strict'");
        let cookie = browser.cookie("pref").expect("the cookie just set");
        assert_eq!(cookie.value, "1");
        assert!(cookie.secure && !cookie.http_only && cookie.session);
        assert_eq!(cookie.same_site.as_deref(), Some("Strict"));

        // A form needs an HTML page: Python's static file server serves one.
        let site = tempfile::tempdir().unwrap();
        std::fs::write(
            site.path().join("search.html"),
            "<!doctype html><form id=search action=results.html method=get>\
             <input name=agent value=old><select name=kind><option value=all>All</option>\
             <option value=span>SPAN</option></select></form>",
        )
        .unwrap();
        std::fs::write(
            site.path().join("results.html"),
            "<!doctype html><p>results</p>",
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let _server = KillOnDrop(
            peer("python3", "python3")
                .args([
                    "-m",
                    "http.server",
                    "--bind",
                    "127.0.0.1",
                    &port.to_string(),
                ])
                .arg("--directory")
                .arg(site.path())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
        crate::eventually(Duration::from_secs(10), "python3 -m http.server", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        let site_url = format!("http://127.0.0.1:{port}/");
        browser.goto(&format!("{site_url}search.html"));
        browser.fill("input[name=agent]", "Dana Scully");
        browser.fill("select[name=kind]", "span");
        browser.expect_navigation(|b| b.submit("#search"));
        assert_eq!(
            browser.url(),
            format!("{site_url}results.html?agent=Dana+Scully&kind=span")
        );
        assert_eq!(browser.text("p"), "results");

        let shot = browser.screenshot("metrics");
        assert!(shot.starts_with(artifacts_root()));
        assert!(
            std::fs::read(&shot)
                .unwrap()
                .starts_with(b"\x89PNG\r\n\x1a\n")
        );
        daemon.stop(rustix::process::Signal::TERM);
    }

    /// A peer process, killed when the test ends however it ends.
    struct KillOnDrop(std::process::Child);

    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[test]
    fn a_wait_that_runs_out_says_what_where_and_shows_it() {
        let mut browser = Browser::launch("browser-timeout");
        browser.eval("console.log('about to wait'); document.title = 'waiting'");
        let failed = catch_unwind(AssertUnwindSafe(|| {
            browser.wait_for("#never", Duration::from_millis(300));
        }));
        let message = *failed.unwrap_err().downcast::<String>().unwrap();
        assert!(message.contains("waiting for element #never"), "{message}");
        assert!(message.contains("page: about:blank"), "{message}");
        assert!(message.contains("console.log: about to wait"), "{message}");
        let shot = browser.artifacts_dir().join("failure-1.png");
        assert!(message.contains(&shot.display().to_string()), "{message}");
        assert!(shot.exists());
    }

    #[test]
    fn awaits_promises_and_reports_exceptions() {
        let mut browser = Browser::launch("browser-eval");
        let value = browser.eval("new Promise((ok) => setTimeout(() => ok({n: 42}), 50))");
        assert_eq!(value, json!({"n": 42}));
        assert_eq!(
            browser.call("(a, b) => a + b", &[json!(2), json!(3)]),
            json!(5)
        );
        let thrown = browser.try_eval("Promise.reject(new Error('refused'))");
        assert!(thrown.unwrap_err().contains("Error: refused"));
    }

    #[test]
    fn every_process_is_gone_after_drop() {
        let browser = Browser::launch("browser-drop");
        let group = rustix::process::Pid::from_raw(i32::try_from(browser.pid()).unwrap()).unwrap();
        let members = std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|entry| {
                let stat = std::fs::read_to_string(entry.ok()?.path().join("stat")).ok()?;
                // After the command's closing parenthesis: state, parent, process group.
                let (_, fields) = stat.rsplit_once(')')?;
                fields.split_whitespace().nth(2)?.parse::<i32>().ok()
            })
            .filter(|pgrp| *pgrp == group.as_raw_nonzero().get())
            .count();
        assert!(
            members > 1,
            "renderer and helpers share the browser's group"
        );
        drop(browser);
        crate::eventually(
            Duration::from_secs(5),
            "the browser's processes to go",
            || {
                rustix::process::test_kill_process_group(group)
                    .is_err()
                    .then_some(())
            },
        );
    }
}
