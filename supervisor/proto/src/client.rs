//! A control-socket client: one request, one answer. Used by supctl and the tests.

use crate::protocol::{Request, Response};
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug)]
pub enum ClientError {
    /// The socket is root-only and we are not root.
    PermissionDenied(PathBuf),
    /// Nothing listens there.
    NotRunning(PathBuf, std::io::Error),
    /// The connection broke or the answer was not a response.
    Protocol(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::PermissionDenied(p) => {
                write!(
                    f,
                    "permission denied: the control socket is root-only ({})",
                    p.display()
                )
            }
            ClientError::NotRunning(p, e) => {
                write!(f, "cannot reach zedinit at {}: {e}", p.display())
            }
            ClientError::Protocol(m) => write!(f, "{m}"),
        }
    }
}

pub struct Client {
    path: PathBuf,
    reader: BufReader<UnixStream>,
}

impl Client {
    pub fn connect(path: &Path) -> Result<Client, ClientError> {
        let stream = UnixStream::connect(path).map_err(|e| match e.kind() {
            ErrorKind::PermissionDenied => ClientError::PermissionDenied(path.to_path_buf()),
            _ => ClientError::NotRunning(path.to_path_buf(), e),
        })?;
        Ok(Client {
            path: path.to_path_buf(),
            reader: BufReader::new(stream),
        })
    }

    /// Sends `request` and waits up to `timeout` for its answer.
    pub fn call(&mut self, request: &Request, timeout: Duration) -> Result<Response, ClientError> {
        let mut line =
            serde_json::to_vec(request).map_err(|e| ClientError::Protocol(e.to_string()))?;
        line.push(b'\n');
        if let Err(send_error) = self.send_raw(&line) {
            // The server may have refused us (and closed) before reading: its answer is
            // still waiting to be read and says why.
            return match self.read_response(Duration::from_secs(1)) {
                Err(ClientError::Protocol(_)) => Err(send_error),
                other => other,
            };
        }
        self.read_response(timeout)
    }

    /// Sends bytes as they are (tests use this for garbage).
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.reader
            .get_mut()
            .write_all(bytes)
            .map_err(|e| self.broken(e))
    }

    pub fn read_response(&mut self, timeout: Duration) -> Result<Response, ClientError> {
        let timeout = timeout.max(Duration::from_millis(1));
        self.reader
            .get_ref()
            .set_read_timeout(Some(timeout))
            .map_err(|e| self.broken(e))?;
        let mut answer = String::new();
        match self.reader.read_line(&mut answer) {
            Ok(0) => return Err(self.refused_or_closed()),
            Ok(_) => {}
            Err(e) => return Err(self.broken(e)),
        }
        let response: Response = serde_json::from_str(&answer).map_err(|e| {
            ClientError::Protocol(format!("bad answer from zedinit: {e}: {answer:?}"))
        })?;
        // The server's own peer check (the socket mode was loosened): same as EACCES.
        if response.error == Some(crate::protocol::ErrorKind::PermissionDenied) {
            return Err(ClientError::PermissionDenied(self.path.clone()));
        }
        Ok(response)
    }

    fn broken(&self, e: std::io::Error) -> ClientError {
        if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut {
            ClientError::Protocol(format!("no answer from {} in time", self.path.display()))
        } else {
            ClientError::Protocol(format!("connection to {} broke: {e}", self.path.display()))
        }
    }

    fn refused_or_closed(&self) -> ClientError {
        ClientError::Protocol(format!("{} closed the connection", self.path.display()))
    }
}

/// The socket path from the flag, else `ZEDCTR_CONTROL_SOCKET`, else the default.
pub fn socket_path(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| std::env::var_os(crate::CONTROL_SOCKET_ENV).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(crate::DEFAULT_CONTROL_SOCKET))
}
