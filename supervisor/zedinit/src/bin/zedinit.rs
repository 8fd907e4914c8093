//! zedinit: PID 1 of the zedctr container, supervising each service as a child.
//!
//! Usage: zedinit [--services-dir DIR]... [--control-socket PATH]
//!
//! No std `main`: the C runtime calls [`main`] below directly. std's start-up before
//! `main` (the main thread's stack bounds read from /proc/self/maps, an alternate signal
//! stack and SIGSEGV/SIGBUS handlers, all for a "stack overflow" message) was ~0.1 ms of
//! CPU at every start, before the first service (BENCHMARKS.md, "Start-up under load,
//! zedinit's own start"). What of it zedinit needs is done in `main` (`pid1::std_start`);
//! `std::env::args` still works (glibc hands argv to std's initialiser).

#![no_main]

use std::path::PathBuf;
use zedinit::core::Core;
use zedinit::event_loop::{EventLoop, exit_code};
use zedinit::server::{self, Server};
use zedinit::sys::cgroup::Cgroups;
use zedinit::sys::executor::OsExecutor;
use zedinit::sys::leftovers;
use zedinit::sys::output_pipes::{LogHub, ServiceOutput};
use zedinit::sys::pid1;
use zedinit::token;
use zedinit::verbs::Supervisor;
use zedinit::{log, parse};

struct Args {
    dirs: Vec<PathBuf>,
    socket: PathBuf,
    log_dir: PathBuf,
    heartbeat_dir: PathBuf,
    service_output: ServiceOutput,
}

const USAGE: &str = "usage: zedinit [--services-dir DIR]... [--control-socket PATH] [--service-output files|stdout|both]\n\
  --services-dir DIR     read service definitions (*.toml) from DIR; repeatable\n\
                         (default: /etc/zedctr/services and /run/zedctr/services)\n\
  --control-socket PATH  control socket (default: $ZEDCTR_CONTROL_SOCKET or /run/zedctr/control.sock)\n\
  --log-dir DIR          services' log files (default: /var/log/zedctr)\n\
  --heartbeat-dir DIR    services' <name>.touch heartbeat files (default: /run)\n\
  --service-output WHERE services' output besides `supctl logs`: files (per-service files\n\
                         in the log dir; the default), stdout (zedinit's stdout/stderr,\n\
                         tagged <service>.out/.err: a container's log), or both";

fn parse_args() -> Result<Args, String> {
    let mut dirs = Vec::new();
    let mut socket = None;
    let mut log_dir = PathBuf::from(zedinit::DEFAULT_LOG_DIR);
    let mut heartbeat_dir = PathBuf::from("/run");
    let mut service_output = ServiceOutput::parse("files");
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        let arg = arg.to_string_lossy().into_owned();
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(PathBuf::from(v))),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next().map(PathBuf::from))
                .ok_or(format!("{name} needs a value"))
        };
        match flag.as_str() {
            "--services-dir" => dirs.push(value("--services-dir")?),
            "--control-socket" => socket = Some(value("--control-socket")?),
            "--log-dir" => log_dir = value("--log-dir")?,
            "--heartbeat-dir" => heartbeat_dir = value("--heartbeat-dir")?,
            "--service-output" => {
                let v = value("--service-output")?;
                service_output = ServiceOutput::parse(&v.to_string_lossy());
                if service_output.is_none() {
                    return Err(format!(
                        "--service-output: {v:?} is not files, stdout or both"
                    ));
                }
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if dirs.is_empty() {
        dirs = zedinit::DEFAULT_SERVICES_DIRS
            .iter()
            .map(PathBuf::from)
            .collect();
    }
    Ok(Args {
        dirs,
        socket: zedctr_proto::client::socket_path(socket),
        log_dir,
        heartbeat_dir,
        service_output: service_output.ok_or("--service-output")?,
    })
}

/// The process's entry point (called by glibc's `__libc_start_main`).
#[unsafe(no_mangle)]
extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    pid1::std_start();
    // As under std's `main`: a panic that reaches here exits 101 (after the hook, set
    // in `start`, has said why) instead of aborting at the C boundary; `process::exit`
    // flushes std's stdout, as returning from std's `main` did.
    let code = std::panic::catch_unwind(start).unwrap_or(101);
    std::process::exit(code)
}

fn start() -> i32 {
    // A readiness probe run by zedinit as a child (never as PID 1 itself).
    let argv: Vec<String> = std::env::args().collect();
    if argv.len() == 3 && argv[1] == zedinit::sys::executor::PROBE_TCP_FLAG {
        return zedinit::sys::executor::probe_tcp(&argv[2]);
    }
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("zedinit: {e}");
            }
            eprintln!("{USAGE}");
            return if e.is_empty() { 0 } else { exit_code::STARTUP };
        }
    };
    // One malloc arena: the log writer thread would otherwise get its own (~132 kB of
    // private memory for a few kB in use). zedinit's memory is measured in BENCHMARKS.md.
    // SAFETY: mallopt only tunes glibc's allocator; called before any other thread exists.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
    log::init("zedinit");
    std::panic::set_hook(Box::new(|info| log::warn(format_args!("panic: {info}"))));
    run(args)
}

fn run(args: Args) -> i32 {
    let pid = std::process::id() as i32;
    pid1::reset_dispositions();
    pid1::cloexec_inherited_fds();
    // Signals are blocked before any child exists, so none is missed.
    let signal_fd = match pid1::block_and_open() {
        Ok(fd) => fd,
        Err(e) => {
            log::warn(format_args!("cannot set up signals: {e}"));
            return exit_code::STARTUP;
        }
    };
    // Before any thread or child exists: root services without CAP_KILL can no longer
    // signal zedinit (README, "Signals").
    if let Err(e) = pid1::shield() {
        log::warn(format_args!("{e}"));
    }
    let subreaper = pid != 1 && pid1::become_subreaper();
    if pid != 1 && !subreaper {
        log::warn(format_args!(
            "not PID 1 and cannot become a child subreaper: orphans will go elsewhere"
        ));
    }
    let listener = match server::bind(&args.socket) {
        Ok(l) => l,
        Err(e) => {
            log::warn(format_args!("{e}"));
            return exit_code::STARTUP;
        }
    };
    let loaded = parse::load_dirs(&args.dirs);
    log::info(format_args!(
        "pid {pid}{}, {} service(s) from {}, control socket {}",
        if subreaper { " (subreaper)" } else { "" },
        loaded.definitions.len(),
        args.dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        args.socket.display()
    ));
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        ^ (pid as u64) << 32;
    // Notify sockets and service roots live beside the control socket (/run/zedctr/).
    let run_dir = args
        .socket
        .parent()
        .unwrap_or(std::path::Path::new("/run/zedctr"))
        .to_path_buf();
    let logs = LogHub::new(
        args.log_dir.clone(),
        token::FIRST_OUTPUT,
        args.service_output,
    );
    let cgroups = Cgroups::discover();
    // A zedinit killed on this socket may have left its services running (as a
    // subreaper): they end before any service starts again (sys/leftovers.rs).
    leftovers::end(&args.socket, &cgroups);
    leftovers::record(&args.socket, &cgroups);
    let exec = OsExecutor::new(
        &run_dir,
        &args.heartbeat_dir,
        logs,
        cgroups,
        token::FIRST_REPORT,
    );
    let core = Core::new(exec, loaded, seed);
    let sup = Supervisor {
        core,
        dirs: args.dirs,
        pid,
        subreaper,
        rescans: 0,
        one_off_requests: 0,
    };
    let server = Server::new(listener, token::FIRST_CONN, nix::unistd::geteuid().as_raw());
    let code = match EventLoop::new(sup, server, signal_fd) {
        Ok(event_loop) => event_loop.run(),
        Err(e) => {
            log::warn(format_args!("{e}"));
            exit_code::STARTUP
        }
    };
    leftovers::forget(&args.socket);
    let _ = std::fs::remove_file(&args.socket);
    code
}
