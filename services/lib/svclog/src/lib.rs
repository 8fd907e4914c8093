//! How zedctr's services log their own messages (not the data they carry: logtail's
//! followed lines stay on its stdout): through `tracing`, each event with a level,
//! a message and fields, written to stderr one line per event in one of two shapes:
//!
//! - **json**, EVE's: `{"time":"2026-12-05T18:50:01.234Z","level":"info","msg":"…",
//!   "source":"downloader", …fields}`, what EVE's agents write and its log pipeline
//!   (memlogd → newlogd) reads;
//! - **text**, for a person: `downloader: info: … key=value`.
//!
//! Chosen by `ZEDCTR_LOG_FORMAT` (`json` or `text`); without it, text on a terminal and
//! JSON otherwise (under zedinit a service's stderr is a pipe). `ZEDCTR_LOG_LEVEL`
//! (`error`, `warn`, `info`, `debug`, `trace`; default `info`) sets the least level kept.

use std::fmt::Write as _;
use std::io::IsTerminal;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The environment variable choosing the shape.
pub const FORMAT_ENV: &str = "ZEDCTR_LOG_FORMAT";
/// The environment variable choosing the least level written.
pub const LEVEL_ENV: &str = "ZEDCTR_LOG_LEVEL";

/// The two shapes of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Json,
    Text,
}

impl Shape {
    /// What `ZEDCTR_LOG_FORMAT` says, else text on a terminal and JSON otherwise.
    pub fn chosen(env: Option<&str>, stderr_is_terminal: bool) -> Result<Shape, String> {
        match env {
            Some("json") => Ok(Shape::Json),
            Some("text") => Ok(Shape::Text),
            Some(other) => Err(format!("{FORMAT_ENV}={other:?}: use json or text")),
            None if stderr_is_terminal => Ok(Shape::Text),
            None => Ok(Shape::Json),
        }
    }
}

/// Installs the process's subscriber: events go to stderr as `source` (the service's
/// name) in the chosen shape. A bad variable is said once, on stderr, and the default
/// is used: a service never fails to start over how it logs.
pub fn init(source: &'static str) {
    let terminal = std::io::stderr().is_terminal();
    let format = std::env::var(FORMAT_ENV).ok();
    let shape = Shape::chosen(format.as_deref(), terminal).unwrap_or_else(|e| {
        eprintln!("{source}: {e}");
        if terminal { Shape::Text } else { Shape::Json }
    });
    let level = std::env::var(LEVEL_ENV).ok();
    let level = match level.as_deref().map(str::parse::<Level>) {
        None => Level::INFO,
        Some(Ok(level)) => level,
        Some(Err(_)) => {
            eprintln!("{source}: {LEVEL_ENV}={level:?}: use error, warn, info, debug or trace");
            Level::INFO
        }
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .event_format(Line { source, shape })
        .try_init();
}

/// Formats one event as one line of its shape.
pub struct Line {
    pub source: &'static str,
    pub shape: Shape,
}

impl<S, N> FormatEvent<S, N> for Line
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let level = level_name(*event.metadata().level());
        let line = match self.shape {
            Shape::Json => json_line(self.source, level, &fields, std::time::SystemTime::now()),
            Shape::Text => text_line(self.source, level, &fields),
        };
        writeln!(writer, "{line}")
    }
}

/// The message and the other fields of an event, in the order given.
#[derive(Default, Debug)]
pub struct Fields {
    pub message: String,
    pub others: Vec<(&'static str, serde_json::Value)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, serde_json::Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, serde_json::Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, serde_json::Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, serde_json::Value::from(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        // `message` comes here as format_args!: its Debug is the text as written.
        self.put(field, serde_json::Value::from(format!("{value:?}")));
    }
}

impl Fields {
    fn put(&mut self, field: &Field, value: serde_json::Value) {
        if field.name() == "message" {
            self.message = match value {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
        } else {
            self.others.push((field.name(), value));
        }
    }
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::ERROR => "error",
        Level::WARN => "warning",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

/// EVE's shape: `time`, `level`, `msg`, `source`, then the event's own fields (a field
/// named like one of those four is kept as `field.<name>`, never overwriting them).
pub fn json_line(source: &str, level: &str, fields: &Fields, now: std::time::SystemTime) -> String {
    let mut object = serde_json::Map::new();
    object.insert(
        "time".into(),
        humantime::format_rfc3339_millis(now).to_string().into(),
    );
    object.insert("level".into(), level.into());
    object.insert("msg".into(), fields.message.clone().into());
    object.insert("source".into(), source.into());
    for (name, value) in &fields.others {
        let key = if object.contains_key(*name) {
            format!("field.{name}")
        } else {
            (*name).to_string()
        };
        object.insert(key, value.clone());
    }
    serde_json::Value::Object(object).to_string()
}

/// `source: level: message key=value …`, every control character escaped (a message
/// may carry a name or path a remote party chose).
pub fn text_line(source: &str, level: &str, fields: &Fields) -> String {
    let mut line = format!("{source}: {level}: {}", printable(&fields.message));
    for (name, value) in &fields.others {
        let value = match value {
            serde_json::Value::String(s) => printable(s),
            other => other.to_string(),
        };
        let _ = write!(line, " {name}={value}");
    }
    line
}

fn printable(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(message: &str, others: &[(&'static str, serde_json::Value)]) -> Fields {
        Fields {
            message: message.into(),
            others: others.to_vec(),
        }
    }

    #[test]
    fn json_lines_have_eves_keys_and_the_events_fields() {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_764_960_601_234);
        let line = json_line(
            "downloader",
            "warning",
            &fields(
                "stalled",
                &[
                    ("key", "app1".into()),
                    ("bytes", 42.into()),
                    ("msg", "x".into()),
                ],
            ),
            at,
        );
        let v: serde_json::Value = serde_json::from_str(&line).expect("one JSON object");
        assert_eq!(v["time"], "2025-12-05T18:50:01.234Z");
        assert_eq!(v["level"], "warning");
        assert_eq!(v["msg"], "stalled");
        assert_eq!(v["source"], "downloader");
        assert_eq!(v["key"], "app1");
        assert_eq!(v["bytes"], 42);
        assert_eq!(v["field.msg"], "x", "a field never overwrites EVE's keys");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn text_lines_say_source_level_and_message_with_controls_escaped() {
        let line = text_line(
            "logtail",
            "info",
            &fields(
                "a\u{1b}[2Jb\nc",
                &[("file", "/var/log/x\u{9b}.log".into()), ("n", 3.into())],
            ),
        );
        assert_eq!(
            line,
            "logtail: info: a\\u{1b}[2Jb\\nc file=/var/log/x\\u{9b}.log n=3"
        );
    }

    #[test]
    fn the_shape_is_the_variables_or_follows_the_terminal() {
        assert_eq!(Shape::chosen(Some("json"), true), Ok(Shape::Json));
        assert_eq!(Shape::chosen(Some("text"), false), Ok(Shape::Text));
        assert_eq!(Shape::chosen(None, true), Ok(Shape::Text));
        assert_eq!(Shape::chosen(None, false), Ok(Shape::Json));
        assert!(Shape::chosen(Some("xml"), false).is_err());
    }

    #[test]
    fn events_reach_the_line_with_their_level_message_and_fields() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().expect("lock").extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .event_format(Line {
                source: "zedwatchdog",
                shape: Shape::Json,
            })
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(reason = "victim failed", "NOT feeding");
        });
        let out = String::from_utf8(sink.0.lock().expect("lock").clone()).expect("utf-8");
        let v: serde_json::Value = serde_json::from_str(out.trim_end()).expect("{out}");
        assert_eq!(v["level"], "warning");
        assert_eq!(v["msg"], "NOT feeding");
        assert_eq!(v["reason"], "victim failed");
        assert_eq!(v["source"], "zedwatchdog");
    }
}
