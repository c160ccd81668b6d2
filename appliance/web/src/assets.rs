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

pub(crate) fn routes() -> Vec<Route> {
    vec![Route::get("/assets/{file}", Access::Public, asset)]
}

/// The stylesheet's URL, named by its content hash.
pub(crate) fn css_path() -> &'static str {
    static PATH: OnceLock<String> = OnceLock::new();
    PATH.get_or_init(|| {
        let digest = Sha256::digest(CSS);
        let short: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
        format!("/assets/tapline-{short}.css")
    })
}

async fn asset(Path(file): Path<String>) -> Response {
    let path = format!("/assets/{file}");
    let (body, content_type) = if path == HTMX_PATH {
        (HTMX, "text/javascript; charset=utf-8")
    } else if path == css_path() {
        (CSS, "text/css; charset=utf-8")
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
