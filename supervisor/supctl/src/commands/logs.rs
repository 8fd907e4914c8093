//! `logs [-f]`: a service's last lines, then (following) each new one as it comes.

use super::{ANSWER_TIMEOUT, code, ok_data, shown};
use std::time::Duration;
use zedctr_proto::client::{Client, ClientError};
use zedctr_proto::protocol::{Request, Verb};

pub fn logs(
    client: &mut Client,
    service: &str,
    lines: usize,
    follow: bool,
) -> Result<u8, ClientError> {
    let request = Request {
        lines: Some(lines),
        follow: Some(follow),
        ..Request::for_service(Verb::Logs, service)
    };
    let mut response = client.call(&request, ANSWER_TIMEOUT)?;
    loop {
        let Some(data) = ok_data(&response) else {
            return Ok(code::ERROR);
        };
        for line in data["lines"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            println!("{}", shown(line.as_str().unwrap_or_default()));
        }
        if !follow {
            return Ok(code::OK);
        }
        // Following: new lines come as they are written, however long that takes.
        response = loop {
            match client.read_response(Duration::from_secs(3600)) {
                Ok(r) => break r,
                Err(ClientError::Protocol(m)) if m.starts_with("no answer") => continue,
                Err(e) => return Err(e),
            }
        };
    }
}
