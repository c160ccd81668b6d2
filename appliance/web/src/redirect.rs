//! The optional plain-HTTP listener (`[web] http_redirect_listen`, usually port 80). It serves
//! nothing: every request is answered with a permanent redirect to the same path over HTTPS,
//! so a browser pointed at `http://appliance/` lands on the sign-in page.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tapline_runtime::CancellationToken;
use tokio::net::TcpListener;

/// A request line and headers that have not arrived in this time close the connection.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) async fn serve(
    listener: TcpListener,
    https_port: u16,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let http = auto::Builder::new(TokioExecutor::new());
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::debug!(error = %err, "accept failed on the redirect listener");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => return Ok(()),
        };
        let http = http.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                    std::future::ready(Ok::<_, Infallible>(redirect(&request, https_port)))
                });
            let connection = http.serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(READ_TIMEOUT * 3, connection).await;
        });
    }
}

/// The answer to every request: 308 to the HTTPS URL of the same host and path.
fn redirect<B>(request: &Request<B>, https_port: u16) -> Response<Body> {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(strip_port)
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        });
    let Some(host) = host else {
        return plain(StatusCode::BAD_REQUEST, "a Host header is needed");
    };
    let path = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let location = if https_port == 443 {
        format!("https://{host}{path}")
    } else {
        format!("https://{host}:{https_port}{path}")
    };
    Response::builder()
        .status(StatusCode::PERMANENT_REDIRECT)
        .header(header::LOCATION, location)
        .body(Body::empty())
        .unwrap_or_else(|_| plain(StatusCode::BAD_REQUEST, "bad request"))
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::from(text));
    *response.status_mut() = status;
    response
}

/// `host:80` → `host`, `[::1]:80` → `[::1]`.
fn strip_port(host: &str) -> &str {
    match host.rfind(':') {
        Some(colon) if !host[colon..].contains(']') => &host[..colon],
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(host: &str, uri: &str, port: u16) -> (StatusCode, String) {
        let request = Request::builder()
            .uri(uri)
            .header(header::HOST, host)
            .body(())
            .unwrap();
        let response = redirect(&request, port);
        let location = response
            .headers()
            .get(header::LOCATION)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (response.status(), location)
    }

    #[test]
    fn every_request_goes_to_https() {
        assert_eq!(
            location("tapline.example", "/accounts?x=1", 443),
            (
                StatusCode::PERMANENT_REDIRECT,
                "https://tapline.example/accounts?x=1".into()
            )
        );
        assert_eq!(
            location("127.0.0.1:8080", "/", 8443).1,
            "https://127.0.0.1:8443/"
        );
        assert_eq!(location("[::1]:80", "/", 443).1, "https://[::1]/");
        assert_eq!(location("evil\"><x", "/", 443).0, StatusCode::BAD_REQUEST);
    }
}
