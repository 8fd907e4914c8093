//! `rescan`: what changed, and the definition errors.

use super::{ANSWER_TIMEOUT, code, ok_data, shown};
use zedctr_proto::client::{Client, ClientError};
use zedctr_proto::protocol::{Request, Verb};

pub fn rescan(client: &mut Client) -> Result<u8, ClientError> {
    let response = client.call(&Request::new(Verb::Rescan), ANSWER_TIMEOUT)?;
    let Some(data) = ok_data(&response) else {
        return Ok(code::ERROR);
    };
    for (key, label) in [
        ("added", "added"),
        ("removed", "removed"),
        ("changed", "changed"),
    ] {
        let names: Vec<&str> = data[key]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        if !names.is_empty() {
            println!("{label}: {}", shown(&names.join(", ")));
        }
    }
    let errors: Vec<&str> = data["definition_errors"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    for e in &errors {
        eprintln!("{}", shown(e));
    }
    Ok(if errors.is_empty() {
        code::OK
    } else {
        code::ERROR
    })
}
