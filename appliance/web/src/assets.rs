//! Static files, compiled into the binary: appliances are often air-gapped, so nothing is
//! fetched from elsewhere. Each file's URL carries its version or content hash, so browsers
//! may keep it for a year and a new release is fetched at once.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::routes::{Access, Route};

/// htmx, from the npm package `htmx.org`, unmodified (licence in `htmx-LICENSE.txt`).
const HTMX: &[u8] = include_bytes!("../assets/htmx-2.0.11.min.js");
pub(crate) const HTMX_PATH: &str = "/assets/htmx-2.0.11.min.js";
const HTMX_LICENSE: &[u8] = include_bytes!("../assets/htmx-LICENSE.txt");
const CSS: &[u8] = include_bytes!("../assets/tapline.css");
/// The client of the home page's live state (`/live`), loaded by every signed-in page.
const LIVE_JS: &[u8] = include_bytes!("../assets/live.js");
/// The copy buttons of the activity audit log, loaded by every signed-in page.
const COPY_JS: &[u8] = include_bytes!("../assets/copy.js");

pub(crate) fn routes() -> Vec<Route> {
    vec![Route::get("/assets/{file}", Access::Public, asset)]
}

/// The stylesheet's URL, named by its content hash.
pub(crate) fn css_path() -> &'static str {
    static PATH: OnceLock<String> = OnceLock::new();
    PATH.get_or_init(|| hashed("tapline", CSS, "css"))
}

/// The live-state script's URL, named by its content hash.
pub(crate) fn live_js_path() -> &'static str {
    static PATH: OnceLock<String> = OnceLock::new();
    PATH.get_or_init(|| hashed("live", LIVE_JS, "js"))
}

/// The copy buttons' script's URL, named by its content hash.
pub(crate) fn copy_js_path() -> &'static str {
    static PATH: OnceLock<String> = OnceLock::new();
    PATH.get_or_init(|| hashed("copy", COPY_JS, "js"))
}

fn hashed(stem: &str, content: &[u8], extension: &str) -> String {
    let digest = Sha256::digest(content);
    let short: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("/assets/{stem}-{short}.{extension}")
}

async fn asset(Path(file): Path<String>) -> Response {
    let path = format!("/assets/{file}");
    let (body, content_type) = if path == HTMX_PATH {
        (HTMX, "text/javascript; charset=utf-8")
    } else if path == css_path() {
        (CSS, "text/css; charset=utf-8")
    } else if path == live_js_path() {
        (LIVE_JS, "text/javascript; charset=utf-8")
    } else if path == copy_js_path() {
        (COPY_JS, "text/javascript; charset=utf-8")
    } else if file == "htmx-LICENSE.txt" {
        (HTMX_LICENSE, "text/plain; charset=utf-8")
    } else {
        return StatusCode::NOT_FOUND.into_response();
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        body,
    )
        .into_response()
}
