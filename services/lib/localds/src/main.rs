//! localds: resolve a `.local` host the way the downloader does, for a person or a test.
//!
//!   localds resolve HOST [--instances DIR] [--methods a-query,workstation,http,https]
//!                        [--budget-ms N] [--set-aside BRIDGE=IP]...
//! `--set-aside`: an address on that bridge that failed a download before (refused
//! connections, or served what failed it), as the downloader's retries pass it: used
//! only if nothing else answers.
//! Prints the result as JSON; exit 0 found, 1 not found, 2 usage.

use localds::{Method, Options};
use std::path::PathBuf;
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!(
                "localds: {e}\nusage: localds resolve HOST [--instances DIR] [--methods LIST] [--budget-ms N] [--set-aside BRIDGE=IP]..."
            );
            2
        }
    };
    std::process::exit(code);
}

fn run(args: &[String]) -> Result<i32, String> {
    let [cmd, host, rest @ ..] = args else {
        return Err("missing arguments".into());
    };
    if cmd != "resolve" {
        return Err(format!("unknown command {cmd:?}"));
    }
    let mut dir = PathBuf::from(netinst::DEFAULT_DIR);
    let mut opts = Options::default();
    let mut it = rest.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--instances" => dir = PathBuf::from(value),
            "--methods" => {
                opts.methods = value
                    .split(',')
                    .map(Method::parse)
                    .collect::<Result<_, _>>()?
            }
            "--budget-ms" => {
                opts.budget = Duration::from_millis(
                    value
                        .parse()
                        .map_err(|_| format!("bad --budget-ms {value:?}"))?,
                )
            }
            "--set-aside" => {
                let (bridge, ip) = value
                    .split_once('=')
                    .and_then(|(b, ip)| Some((b.to_string(), ip.parse().ok()?)))
                    .ok_or(format!("bad --set-aside {value:?} (BRIDGE=IPv4)"))?;
                opts.set_aside.push((bridge, ip));
            }
            other => return Err(format!("unknown flag {other:?}")),
        }
    }
    let loaded = netinst::load_dir(&dir);
    for e in &loaded.errors {
        eprintln!("localds: {e}");
    }
    match localds::resolve(host, &loaded.instances, &opts) {
        Ok(found) => {
            println!("{}", serde_json::to_string(&found).unwrap_or_default());
            Ok(0)
        }
        Err(nf) => {
            println!("{}", serde_json::to_string(&nf).unwrap_or_default());
            eprintln!("localds: {host}: {nf}");
            Ok(1)
        }
    }
}
