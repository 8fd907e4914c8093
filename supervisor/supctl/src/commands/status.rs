//! `status` (a table, or the versioned JSON) and `health`.

use super::{ANSWER_TIMEOUT, code, ok_data, shown};
use confkit::durations::format_duration;
use std::time::Duration;
use zedctr_proto::client::{Client, ClientError};
use zedctr_proto::protocol::{Request, Verb};
use zedctr_proto::status::{Health, StatusReport};

pub fn status(client: &mut Client, services: &[String], json: bool) -> Result<u8, ClientError> {
    let response = client.call(&Request::new(Verb::Status), ANSWER_TIMEOUT)?;
    let Some(data) = ok_data(&response) else {
        return Ok(code::ERROR);
    };
    let mut report: StatusReport = serde_json::from_value(data.clone())
        .map_err(|e| ClientError::Protocol(format!("bad status from zedinit: {e}")))?;
    let unknown: Vec<&String> = services
        .iter()
        .filter(|s| report.service(s).is_none())
        .collect();
    if !unknown.is_empty() {
        let unknown: Vec<&str> = unknown.iter().map(|s| s.as_str()).collect();
        eprintln!("supctl: unknown-service: {}", shown(&unknown.join(", ")));
        return Ok(code::ERROR);
    }
    if !services.is_empty() {
        report.services.retain(|s| services.contains(&s.name));
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        print_table(&report);
    }
    Ok(code::OK)
}

pub fn health(client: &mut Client, json: bool) -> Result<u8, ClientError> {
    let response = client.call(&Request::new(Verb::Health), ANSWER_TIMEOUT)?;
    let Some(data) = ok_data(&response) else {
        return Ok(code::ERROR);
    };
    let health: Health = serde_json::from_value(data.clone())
        .map_err(|e| ClientError::Protocol(format!("bad health from zedinit: {e}")))?;
    if json {
        println!("{}", serde_json::to_string(&health).unwrap_or_default());
    } else if health.healthy {
        println!("healthy");
    } else {
        println!("unhealthy");
        for reason in &health.reasons {
            println!("  {}", shown(reason));
        }
    }
    Ok(if health.healthy {
        code::OK
    } else {
        code::ERROR
    })
}

fn print_table(report: &StatusReport) {
    let ms = |v: Option<u64>| {
        v.map(|ms| format_duration(Duration::from_millis(ms)))
            .unwrap_or_else(|| "-".into())
    };
    let rows: Vec<[String; 9]> = report
        .services
        .iter()
        .map(|s| {
            [
                shown(&s.name).into_owned(),
                shown(&s.state).into_owned(),
                s.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                s.uptime_ms
                    .map(|ms| format_duration(Duration::from_millis(ms)))
                    .unwrap_or_else(|| "-".into()),
                s.restarts.to_string(),
                s.last_exit
                    .as_ref()
                    .map(|e| shown(&e.to_string()).into_owned())
                    .unwrap_or_else(|| "-".into()),
                ms(s.next_retry_ms),
                ms(s.heartbeat_age_ms),
                shown(s.note.as_ref().or(s.status_text.as_ref()).map_or("", |t| t)).into_owned(),
            ]
        })
        .collect();
    let header = [
        "NAME",
        "STATE",
        "PID",
        "UPTIME",
        "RESTARTS",
        "LAST-EXIT",
        "NEXT-RETRY",
        "BEAT",
        "NOTE",
    ];
    // In characters, as `{:<width$}` pads (a note may hold any letters).
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row.iter()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
    if !report.supervisor.definition_errors.is_empty() {
        println!("\ndefinition errors (these services are not loaded):");
        for e in &report.supervisor.definition_errors {
            println!("  {}", shown(e));
        }
    }
}
