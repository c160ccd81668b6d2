//! Response headers every answer carries, and the same-origin check of state-changing requests.
//!
//! The content security policy allows scripts, styles and images only from this origin, and no
//! inline script or style (htmx is configured through a `<meta>` tag, which is not script), no
//! framing (`frame-ancestors 'none'`), and forms that post only here.

use axum::extract::Request;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; media-src 'self'; connect-src 'self'; \
     form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// Adds the security headers, and `Cache-Control: no-store` to everything but the assets,
/// which set their own.
pub(crate) async fn headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let fixed = [
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        // Not `no-referrer`: under it Chromium sends `Origin: null` with form posts, which
        // the guard's same-origin check must refuse. `same-origin` still never sends a
        // referrer to another site.
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ),
        (
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        ),
        (
            header::HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ),
    ];
    for (name, value) in fixed {
        headers.insert(name, value);
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Whether a state-changing request comes from our own pages, as far as the browser says:
/// `Sec-Fetch-Site` must be `same-origin` and `Origin` must be this host over HTTPS when the
/// browser sends them. Clients that send neither (curl, scripts) are not browsers a
/// third-party page can drive; the session's CSRF token still applies to them.
pub(crate) fn same_origin(headers: &HeaderMap, host: Option<&str>) -> bool {
    if let Some(site) = headers.get("sec-fetch-site")
        && site.as_bytes() != b"same-origin"
    {
        return false;
    }
    match headers.get(header::ORIGIN) {
        None => true,
        Some(origin) => match (origin.to_str(), host) {
            (Ok(origin), Some(host)) => origin
                .strip_prefix("https://")
                .is_some_and(|rest| rest.eq_ignore_ascii_case(host)),
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn cross_site_requests_are_refused() {
        let host = Some("tapline.example:443");
        assert!(same_origin(&headers(&[]), host));
        assert!(same_origin(
            &headers(&[
                ("origin", "https://tapline.example:443"),
                ("sec-fetch-site", "same-origin")
            ]),
            host
        ));
        assert!(!same_origin(
            &headers(&[("origin", "https://evil.example")]),
            host
        ));
        assert!(!same_origin(
            &headers(&[("origin", "http://tapline.example:443")]),
            host
        ));
        assert!(!same_origin(
            &headers(&[("sec-fetch-site", "cross-site")]),
            host
        ));
        assert!(!same_origin(&headers(&[("sec-fetch-site", "none")]), host));
        assert!(!same_origin(&headers(&[("origin", "null")]), host));
    }
}
