//! The plain-`http` path's HTTP/1.1 wire format: the request it sends and the response
//! head it accepts ([`crate::plain`]). Strict and small on purpose: the head is parsed
//! by `httparse` (hyper's parser) within [`HEAD_LIMIT`] bytes and [`MAX_HEADERS`]
//! fields, and only one body framing is taken: a single `Content-Length`, no
//! `Transfer-Encoding`, no content coding. Anything else a server may legally send
//! (chunked, a coding, a 1xx) is [`Framing::Unusual`]: the caller then makes the attempt
//! through reqwest, as before this path existed.

use reqwest::StatusCode;
use reqwest::header::{
    CONTENT_ENCODING, CONTENT_LENGTH, HeaderMap, HeaderName, HeaderValue, TRANSFER_ENCODING,
};
use url::Url;

/// The response head must end within this many bytes (hyper's default buffer is 400
/// KiB; a datastore's head is a few hundred bytes).
pub const HEAD_LIMIT: usize = 16 << 10;
/// At most this many header fields.
pub const MAX_HEADERS: usize = 64;

/// A parsed response head.
#[derive(Debug)]
pub struct Head {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// Bytes of the head, blank line included: the body starts after them.
    pub len: usize,
}

/// How the body of a 200 or 206 is delimited, as far as this path is concerned.
#[derive(Debug, PartialEq, Eq)]
pub enum Framing {
    /// Exactly this many bytes follow the head.
    Length(u64),
    /// Something this path leaves to reqwest; the text says what (for the debug log).
    Unusual(&'static str),
}

/// The request for `url`'s path and query, with `Range: bytes=FROM-` when `from > 0`.
/// `None` when the URL needs what only reqwest does (credentials in it).
pub fn request(url: &Url, from: u64, user_agent: &str) -> Option<Vec<u8>> {
    if !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    let host = url.host_str()?;
    let target = &url[url::Position::BeforePath..url::Position::AfterQuery];
    let target = if target.is_empty() { "/" } else { target };
    let mut text = format!("GET {target} HTTP/1.1\r\nHost: {host}");
    if let Some(port) = url.port() {
        text.push_str(&format!(":{port}"));
    }
    text.push_str(&format!(
        "\r\nUser-Agent: {user_agent}\r\nAccept: */*\r\nAccept-Encoding: identity\r\n"
    ));
    if from > 0 {
        text.push_str(&format!("Range: bytes={from}-\r\n"));
    }
    // One request per connection, as the reqwest path (no pool): the server may close
    // after the body, and a retry never reuses a half-dead connection.
    text.push_str("Connection: close\r\n\r\n");
    // Url has percent-encoded everything outside visible ASCII: no CR or LF can be in it.
    if text
        .bytes()
        .any(|b| b.is_ascii_control() && b != b'\r' && b != b'\n')
    {
        return None;
    }
    Some(text.into_bytes())
}

/// Parses the head at the start of `buf`: `Ok(None)` when it is not complete yet (read
/// more), an error when it is malformed or can no longer end within [`HEAD_LIMIT`].
pub fn parse(buf: &[u8]) -> Result<Option<Head>, String> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut fields);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len <= HEAD_LIMIT => len,
        Ok(httparse::Status::Complete(_)) => return Err(too_long()),
        Ok(httparse::Status::Partial) if buf.len() >= HEAD_LIMIT => return Err(too_long()),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("malformed response head: {e}")),
    };
    let code = response.code.ok_or("malformed response head: no status")?;
    let status = StatusCode::from_u16(code).map_err(|_| format!("malformed status code {code}"))?;
    let mut headers = HeaderMap::with_capacity(response.headers.len());
    for field in response.headers.iter() {
        let name = HeaderName::from_bytes(field.name.as_bytes())
            .map_err(|_| format!("malformed header name {:?}", field.name))?;
        let value = HeaderValue::from_bytes(field.value)
            .map_err(|_| format!("malformed value of header {:?}", field.name))?;
        headers.append(name, value);
    }
    Ok(Some(Head {
        status,
        headers,
        len,
    }))
}

fn too_long() -> String {
    format!("response head longer than {HEAD_LIMIT} bytes")
}

/// The body framing of `head` (meaningful for a 200 or a 206). Several
/// `Content-Length`s must agree (RFC 9112 §6.3); one that isn't a plain decimal number
/// is an error, as hyper makes it.
pub fn framing(head: &Head) -> Result<Framing, String> {
    if head.status.is_informational() {
        return Ok(Framing::Unusual("1xx response"));
    }
    if head.headers.contains_key(TRANSFER_ENCODING) {
        return Ok(Framing::Unusual("Transfer-Encoding"));
    }
    for coding in head.headers.get_all(CONTENT_ENCODING) {
        if !coding.as_bytes().eq_ignore_ascii_case(b"identity") {
            return Ok(Framing::Unusual("Content-Encoding"));
        }
    }
    let mut length = None;
    for value in head.headers.get_all(CONTENT_LENGTH) {
        // A list (`10, 10`) is legal when its members agree.
        for member in value.as_bytes().split(|b| *b == b',') {
            let n = decimal(member.trim_ascii())
                .ok_or_else(|| format!("bad Content-Length {value:?}"))?;
            if length.is_some_and(|l| l != n) {
                return Err("Content-Length values disagree".into());
            }
            length = Some(n);
        }
    }
    Ok(length.map_or(Framing::Unusual("no Content-Length"), Framing::Length))
}

/// ASCII digits only (no sign, no space inside), at most 19 of them: fits a u64.
fn decimal(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > 19 || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Head {
        match parse(text.as_bytes()) {
            Ok(Some(h)) => h,
            other => panic!("{text:?}: {other:?}"),
        }
    }

    #[test]
    fn a_plain_200_and_206() {
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 12\r\nServer: x\r\n\r\nbody");
        assert_eq!(h.status, StatusCode::OK);
        assert_eq!(h.len, 50);
        assert_eq!(framing(&h), Ok(Framing::Length(12)));
        let h = head(
            "HTTP/1.0 206 Partial Content\r\ncontent-length: 5, 5\r\nContent-Range: bytes 5-9/10\r\n\r\n",
        );
        assert_eq!(h.status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(framing(&h), Ok(Framing::Length(5)));
    }

    #[test]
    fn an_incomplete_head_asks_for_more_until_the_limit() {
        assert!(matches!(parse(b""), Ok(None)));
        assert!(matches!(parse(b"HTTP/1.1 200 OK\r\nContent-Le"), Ok(None)));
        let mut long = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        long.resize(HEAD_LIMIT, b'a');
        assert!(parse(&long).expect_err("too long").contains("longer than"));
        // Complete, but past the limit.
        long.extend_from_slice(b"\r\n\r\n");
        assert!(parse(&long).is_err());
    }

    #[test]
    fn what_this_path_leaves_to_reqwest() {
        for (text, why) in [
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                "Transfer-Encoding",
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
                "Transfer-Encoding",
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 3\r\n\r\n",
                "Content-Encoding",
            ),
            ("HTTP/1.1 100 Continue\r\n\r\n", "1xx response"),
            (
                "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n",
                "no Content-Length",
            ),
        ] {
            assert_eq!(framing(&head(text)), Ok(Framing::Unusual(why)), "{text:?}");
        }
        let h = head("HTTP/1.1 200 OK\r\nContent-Encoding: Identity\r\nContent-Length: 1\r\n\r\n");
        assert_eq!(framing(&h), Ok(Framing::Length(1)));
    }

    #[test]
    fn hostile_heads_are_refused() {
        for text in [
            "HTTP/1.1 200 OK\r\nContent-Length: 10\r\nContent-Length: 11\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 10, 11\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1 0\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",
        ] {
            assert!(framing(&head(text)).is_err(), "{text:?}");
        }
        for text in [
            "HTTP/1.1 2000 OK\r\n\r\n",
            "HTTP/2 200 OK\r\n\r\n",
            "ICY 200 OK\r\n\r\n",
            "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
            "HTTP/1.1 200 OK\r\nX: a\0b\r\n\r\n",
            // Obsolete line folding: refused, not joined.
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n 0\r\n\r\n",
        ] {
            assert!(parse(text.as_bytes()).is_err(), "{text:?}");
        }
        let mut many = "HTTP/1.1 200 OK\r\n".to_string();
        for i in 0..=MAX_HEADERS {
            many.push_str(&format!("X-{i}: y\r\n"));
        }
        many.push_str("\r\n");
        assert!(parse(many.as_bytes()).is_err());
    }

    #[test]
    fn the_request() {
        let url = Url::parse("http://datastore.test:8001/a%20b/image.bin?x=1#frag").expect("url");
        let text = String::from_utf8(request(&url, 0, "ua/1").expect("request")).expect("utf8");
        assert_eq!(
            text,
            "GET /a%20b/image.bin?x=1 HTTP/1.1\r\nHost: datastore.test:8001\r\nUser-Agent: ua/1\r\n\
             Accept: */*\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n"
        );
        let url = Url::parse("http://[fe80::1]/x").expect("url");
        let text = String::from_utf8(request(&url, 7, "ua").expect("request")).expect("utf8");
        assert!(
            text.starts_with("GET /x HTTP/1.1\r\nHost: [fe80::1]\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nRange: bytes=7-\r\n"), "{text}");
        let url = Url::parse("http://user:pw@h/x").expect("url");
        assert!(request(&url, 0, "ua").is_none());
    }
}
