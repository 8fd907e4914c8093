//! `<config-dir>/<key>.json`: one download request, as another part of the device
//! writes it. Parsed field by field so an error names the file and the field; every
//! problem is reported together.
//!
//! ```json
//! {"name": "ubuntu", "url": "http://10.1.0.5/img.qcow2",
//!  "sha256": "<64 hex>", "size": 123456, "ca_chain": "<PEM, optional>"}
//! ```

use crate::client::parse_ca_chain;
use reqwest::{Certificate, Url};
use serde_json::{Map, Value};
use std::path::Path;

/// A valid request.
#[derive(Debug, Clone)]
pub struct Request {
    pub name: String,
    pub url: Url,
    /// Lowercase hex.
    pub sha256: String,
    pub size: u64,
    pub ca_chain: Option<Vec<Certificate>>,
}

/// Why a request file was refused: the file, and each problem (`field: message`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {}", problems.join("; "))]
pub struct RequestError {
    pub file: String,
    /// The `name` field when it could be read (status files carry it even on error).
    pub name: Option<String>,
    pub problems: Vec<String>,
}

const FIELDS: [&str; 5] = ["name", "url", "sha256", "size", "ca_chain"];

/// Parses the bytes of `file`.
pub fn parse(file: &Path, bytes: &[u8]) -> Result<Request, RequestError> {
    let fail = |name: Option<String>, problems: Vec<String>| RequestError {
        file: file.display().to_string(),
        name,
        problems,
    };
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| fail(None, vec![format!("not valid JSON: {e}")]))?;
    let Value::Object(obj) = value else {
        return Err(fail(None, vec!["not a JSON object".into()]));
    };
    let mut problems = Vec::new();
    for key in obj.keys() {
        if !FIELDS.contains(&key.as_str()) {
            problems.push(format!(
                "field `{key}`: unknown (known: {})",
                FIELDS.join(", ")
            ));
        }
    }
    let name = string(&obj, "name", &mut problems);
    if name.as_deref() == Some("") {
        problems.push("field `name`: empty".into());
    }
    let url = string(&obj, "url", &mut problems).and_then(|u| match Url::parse(&u) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Some(url),
        Ok(url) => {
            problems.push(format!(
                "field `url`: {u:?}: only http:// and https:// URLs with a host (got scheme {:?})",
                url.scheme()
            ));
            None
        }
        Err(e) => {
            problems.push(format!("field `url`: {u:?}: {e}"));
            None
        }
    });
    let sha256 = string(&obj, "sha256", &mut problems).and_then(|s| {
        if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            Some(s.to_ascii_lowercase())
        } else {
            problems.push(format!("field `sha256`: {s:?} is not 64 hex digits"));
            None
        }
    });
    let size = match obj.get("size") {
        None => {
            problems.push("field `size`: missing".into());
            None
        }
        Some(v) => match v.as_u64() {
            Some(n) => Some(n),
            None => {
                problems.push(format!("field `size`: {v} is not a whole number of bytes"));
                None
            }
        },
    };
    let ca_chain = match obj.get("ca_chain") {
        None | Some(Value::Null) => None,
        Some(Value::String(pem)) => match parse_ca_chain(pem) {
            Ok(certs) => Some(certs),
            Err(e) => {
                problems.push(format!("field `ca_chain`: {e}"));
                None
            }
        },
        Some(_) => {
            problems.push("field `ca_chain`: not a string (PEM text)".into());
            None
        }
    };
    match (name, url, sha256, size) {
        (Some(name), Some(url), Some(sha256), Some(size)) if problems.is_empty() => Ok(Request {
            name,
            url,
            sha256,
            size,
            ca_chain,
        }),
        (name, ..) => Err(fail(name, problems)),
    }
}

fn string(obj: &Map<String, Value>, field: &str, problems: &mut Vec<String>) -> Option<String> {
    match obj.get(field) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(v) => {
            problems.push(format!("field `{field}`: {v} is not a string"));
            None
        }
        None => {
            problems.push(format!("field `{field}`: missing"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn p(text: &str) -> Result<Request, RequestError> {
        parse(Path::new("/cfg/k.json"), text.as_bytes())
    }

    #[test]
    fn a_good_request() {
        let r = p(&format!(
            r#"{{"name":"img","url":"http://10.1.0.5:8080/a","sha256":"{}","size":4}}"#,
            SHA.to_uppercase()
        ))
        .expect("valid");
        assert_eq!(r.sha256, SHA);
        assert_eq!(r.size, 4);
        assert_eq!(r.url.port(), Some(8080));
        assert!(r.ca_chain.is_none());
    }

    #[test]
    fn errors_name_file_and_field() {
        let e = p(r#"{"name":"img","url":"ftp://x/a","sha256":"abc","size":-1,"colour":1}"#)
            .expect_err("invalid");
        let text = e.to_string();
        assert!(text.starts_with("/cfg/k.json: "), "{text}");
        for field in ["`url`", "`sha256`", "`size`", "`colour`"] {
            assert!(text.contains(field), "{field} missing in {text}");
        }
        assert_eq!(e.name.as_deref(), Some("img"));
    }

    #[test]
    fn missing_fields_and_bad_json() {
        let e = p(r#"{"url":"http://x/a"}"#).expect_err("invalid");
        for field in ["`name`: missing", "`sha256`: missing", "`size`: missing"] {
            assert!(e.problems.iter().any(|m| m.contains(field)), "{field}: {e}");
        }
        let e = p("{not json").expect_err("invalid");
        assert!(e.to_string().contains("not valid JSON"), "{e}");
    }

    #[test]
    fn a_bad_ca_chain_is_named() {
        let e = p(&format!(
            r#"{{"name":"i","url":"https://x/a","sha256":"{SHA}","size":1,"ca_chain":"nope"}}"#
        ))
        .expect_err("invalid");
        assert!(e.to_string().contains("`ca_chain`"), "{e}");
    }
}
