//! Request bodies read a piece at a time, so that no client decides how much is held in
//! memory: the guard reads only the first field of a multipart form, an upload is read up to
//! its limit and refused beyond it.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use hyper::body::{Body as HttpBody, Frame};

/// The next chunk of data of a request body, skipping trailers; `None` at its end.
pub(crate) async fn next_data(body: &mut Body) -> Option<Result<Bytes, axum::Error>> {
    loop {
        let frame = std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await?;
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    return Some(Ok(data));
                }
            }
            Err(err) => return Some(Err(err)),
        }
    }
}

/// Why a body was not read whole.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    #[error("the body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the request body could not be read")]
    Failed(#[source] axum::Error),
}

/// The whole body, if it is at most `limit` bytes; reading stops at the first chunk beyond,
/// leaving the rest in `body` (for [`drain`]).
pub(crate) async fn read_limited(body: &mut Body, limit: usize) -> Result<Vec<u8>, ReadError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = next_data(body).await {
        let chunk = chunk.map_err(ReadError::Failed)?;
        if bytes.len() + chunk.len() > limit {
            return Err(ReadError::TooLarge { limit });
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// Reads and drops what the client is still sending, at most `limit` bytes and for at most
/// `within`. Over HTTP/2 an answer sent while the request body is still arriving ends the
/// stream with a reset, which clients (curl among them) report as a failed transfer rather
/// than showing the answer: draining first lets a refusal arrive as an ordinary response.
pub(crate) async fn drain(mut body: Body, limit: usize, within: Duration) {
    let read = async {
        let mut read = 0;
        while read < limit
            && let Some(Ok(chunk)) = next_data(&mut body).await
        {
            read += chunk.len();
        }
    };
    let _ = tokio::time::timeout(within, read).await;
}

/// The bytes already read from a body, then the rest of it unless it has `ended`.
pub(crate) fn prefixed(prefix: Vec<u8>, rest: Body, ended: bool) -> Body {
    let prefix = Bytes::from(prefix);
    if ended {
        return Body::from(prefix);
    }
    Body::new(Prefixed {
        prefix: Some(prefix).filter(|p| !p.is_empty()),
        rest,
    })
}

/// A request body whose first bytes were read already.
struct Prefixed {
    prefix: Option<Bytes>,
    rest: Body,
}

impl HttpBody for Prefixed {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        if let Some(prefix) = self.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        let mut hint = self.rest.size_hint();
        let prefix = self.prefix.as_ref().map_or(0, |p| p.len() as u64);
        hint.set_lower(hint.lower() + prefix);
        if let Some(upper) = hint.upper() {
            hint.set_upper(upper + prefix);
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_prefixed_body_gives_back_every_byte_in_order() {
        let rest = Body::from("world");
        let mut body = prefixed(b"hello ".to_vec(), rest, false);
        let bytes = read_limited(&mut body, 64).await.unwrap();
        assert_eq!(bytes, b"hello world");
    }

    #[tokio::test]
    async fn reading_stops_beyond_the_limit() {
        let mut body = Body::from(vec![b'x'; 11]);
        assert!(matches!(
            read_limited(&mut body, 10).await,
            Err(ReadError::TooLarge { limit: 10 })
        ));
        let mut body = Body::from(vec![b'x'; 10]);
        assert_eq!(read_limited(&mut body, 10).await.unwrap().len(), 10);
    }
}
