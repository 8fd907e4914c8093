//! One plain-`http` request without reqwest: connect to the endpoint, send the request,
//! read the response head ([`crate::http1`]). The body is then read by the `.part`'s
//! direct receiver ([`crate::direct`]) straight from the socket. The same limits as the
//! reqwest path: connect and each read of the head within the stall timeout, the
//! endpoint's source address bound, no proxy, no redirect followed (a 3xx is an answer
//! like any other, which the engine refuses).

use crate::http1::{self, Framing, HEAD_LIMIT, Head};
use crate::resolve::Endpoint;
use reqwest::StatusCode;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::timeout;
use url::Url;

/// A response whose head was read.
pub struct Response {
    pub head: Head,
    pub framing: Framing,
    pub stream: TcpStream,
    /// Body bytes that came in with the head.
    pub early_body: Vec<u8>,
}

impl Response {
    /// Why this answer is better asked for again through reqwest, if it is: a 1xx, or a
    /// 200/206 whose body isn't framed by one `Content-Length` (chunked, a content
    /// coding). Other statuses are answers as they are (their body isn't read).
    pub fn wants_reqwest(&self) -> Option<&'static str> {
        let status = self.head.status;
        let body_wanted = status == StatusCode::OK || status == StatusCode::PARTIAL_CONTENT;
        match self.framing {
            Framing::Unusual(why) if body_wanted || status.is_informational() => Some(why),
            _ => None,
        }
    }
}

/// Why no response.
#[derive(Debug)]
pub enum Failure {
    /// The connect failed (refused, unreachable, timed out): the next bridge may do.
    Connect(String),
    /// The connection broke or timed out after connecting.
    Transport(String),
    Stalled,
    /// The server's head is not one we accept.
    Malformed(String),
}

/// `GET url` from `endpoint`, asking for the bytes from `from` on. `None`: the URL needs
/// the reqwest path.
pub async fn get(
    url: &Url,
    endpoint: &Endpoint,
    from: u64,
    stall: Duration,
) -> Option<Result<Response, Failure>> {
    let request = http1::request(url, from, crate::client::USER_AGENT)?;
    Some(exchange(&request, endpoint, stall).await)
}

async fn exchange(
    request: &[u8],
    endpoint: &Endpoint,
    stall: Duration,
) -> Result<Response, Failure> {
    let addr = endpoint.addr;
    let mut stream = match timeout(stall, connect(addr, endpoint)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(Failure::Connect(format!("cannot connect to {addr}: {e}"))),
        Err(_) => {
            return Err(Failure::Connect(format!(
                "cannot connect to {addr}: no answer within {}",
                humantime::format_duration(stall)
            )));
        }
    };
    let broken = |e: io::Error| Failure::Transport(format!("connection to {addr}: {e}"));
    match timeout(stall, stream.write_all(request)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(broken(e)),
        Err(_) => return Err(Failure::Stalled),
    }
    let mut buf = vec![0u8; HEAD_LIMIT];
    let mut filled = 0;
    loop {
        let n = match timeout(stall, stream.read(&mut buf[filled..])).await {
            Ok(Ok(0)) => {
                return Err(Failure::Transport(format!(
                    "connection to {addr} closed before a complete response head"
                )));
            }
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(broken(e)),
            Err(_) => return Err(Failure::Stalled),
        };
        filled += n;
        if let Some(head) = http1::parse(&buf[..filled]).map_err(Failure::Malformed)? {
            // Only a body that will be read needs its framing understood.
            let status = head.status;
            let framing = if status == StatusCode::OK
                || status == StatusCode::PARTIAL_CONTENT
                || status.is_informational()
            {
                http1::framing(&head).map_err(Failure::Malformed)?
            } else {
                Framing::Unusual("body not read")
            };
            buf.truncate(filled);
            let early_body = buf.split_off(head.len);
            return Ok(Response {
                head,
                framing,
                stream,
                early_body,
            });
        }
    }
}

/// A TCP connection to `addr` from the endpoint's source address, if it names one.
async fn connect(addr: SocketAddr, endpoint: &Endpoint) -> io::Result<TcpStream> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(source) = endpoint.source {
        socket.bind(SocketAddr::new(source, 0))?;
    }
    let stream = socket.connect(addr).await?;
    // As hyper does: the request goes out in one segment, without waiting for an ACK.
    stream.set_nodelay(true)?;
    Ok(stream)
}
