//! `start`, `stop`, `restart`: each service asked in turn, waiting for its state.

use super::{ANSWER_TIMEOUT, code, print_error, shown};
use crate::StateVerb;
use zedctr_proto::client::{Client, ClientError};
use zedctr_proto::protocol::{ErrorKind, Request, Verb};

pub fn state_verb(client: &mut Client, verb: Verb, v: StateVerb) -> Result<u8, ClientError> {
    let mut worst = code::OK;
    for service in &v.services {
        let wait_ms = if v.no_wait {
            0
        } else {
            v.timeout.as_millis() as u64
        };
        let request = Request {
            wait_ms: Some(wait_ms),
            ..Request::for_service(verb, service)
        };
        let response = client.call(&request, v.timeout + ANSWER_TIMEOUT)?;
        if response.ok {
            let state = response
                .data
                .as_ref()
                .and_then(|d| d["state"].as_str())
                .unwrap_or("?");
            println!("{}: {}", shown(service), shown(state));
        } else {
            print_error(&response);
            let code = match response.error {
                Some(ErrorKind::Timeout | ErrorKind::Failed | ErrorKind::InvalidState) => {
                    code::NOT_REACHED
                }
                _ => code::ERROR,
            };
            worst = worst.max(code);
        }
    }
    Ok(worst)
}
