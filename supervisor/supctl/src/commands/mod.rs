//! supctl's verbs, one file per group (youki's `commands/`): what each asks zedinit
//! and how it prints the answer. Everything printed for a person goes through `shown`:
//! service names, states, notes, reasons and log lines come from services and
//! definitions, and must not reach the terminal as control sequences. `--json` output
//! stays JSON (serde escapes it).

pub mod definitions;
pub mod logs;
pub mod rescan;
pub mod state;
pub mod status;

use std::time::Duration;
use zedctr_proto::client::{Client, ClientError};
use zedctr_proto::protocol::{ErrorKind, Request, Response};
pub use zedinit::escape::for_terminal as shown;

/// supctl's exit codes (README.md, "supctl").
pub mod code {
    pub const OK: u8 = 0;
    /// zedinit answered with an error, or `check` found problems.
    pub const ERROR: u8 = 1;
    /// A state-changing verb did not reach its state in time (or the service failed).
    pub const NOT_REACHED: u8 = 3;
    /// zedinit is not reachable.
    pub const UNREACHABLE: u8 = 4;
    /// The control socket is root-only.
    pub const PERMISSION: u8 = 77;
}

/// How long zedinit may take to answer a request that does not wait for a state.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// A request whose answer is printed as it is (or its error).
pub fn simple(client: &mut Client, request: Request) -> Result<u8, ClientError> {
    let response = client.call(&request, ANSWER_TIMEOUT)?;
    if response.ok {
        if let Some(data) = &response.data {
            println!("{}", shown(&data.to_string()));
        }
        Ok(code::OK)
    } else {
        print_error(&response);
        Ok(code::ERROR)
    }
}

/// The answer's data, or `None` with the error printed.
pub fn ok_data(response: &Response) -> Option<&serde_json::Value> {
    if response.ok {
        response.data.as_ref()
    } else {
        print_error(response);
        None
    }
}

pub fn print_error(response: &Response) {
    let kind = response.error.map(ErrorKind::as_str).unwrap_or("error");
    eprintln!(
        "supctl: {kind}: {}",
        shown(response.message.as_deref().unwrap_or(""))
    );
}
