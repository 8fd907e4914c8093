// The static-PIE link recipe for zedinit, included by build.rs and by
// tests/static_link.rs (which links a small program the same way and checks that it
// still unwinds a panic: PID 1's event loop relies on `catch_unwind`).
//
// zedinit is linked as a static PIE: glibc, its start files and the unwinder in the
// binary, no loader. At every start the dynamic loader cost zedinit ~0.17 ms of CPU
// before `main` (mapping libc, symbol relocations; `bench/probe-spawn.py` showed it
// counts under load: a PID 1 that has used less CPU when its first clone wakes a
// kworker keeps its CPU), and the loader's and libc's relocated data were ~40 KiB of its
// private memory. BENCHMARKS.md, issue 12, "A static zedinit".
//
// How, for this one binary (a `-C target-feature=+crt-static` would apply to every crate
// of the build, proc macros and the downloader, whose name lookups want a dynamic
// glibc): std asks the linker for `-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc`; a
// directory searched before the system's holds only the static archives under those
// names (`libgcc_s.a` is the C compiler's `libgcc_eh.a`, what `-static-libgcc` links
// for C), so each `-l` finds its archive, and `-static-pie` gives the start files and
// no interpreter. lld (rustc's linker here) resolves archives in any order. Without
// any of the archives (no libc6-dev), zedinit stays dynamic, with a warning.

/// The name std links by, and the C compiler's archive that answers it.
const STATIC_ARCHIVES: [(&str, &str); 8] = [
    ("libgcc_s.a", "libgcc_eh.a"),
    ("libgcc.a", "libgcc.a"),
    ("libc.a", "libc.a"),
    ("libm.a", "libm.a"),
    ("libpthread.a", "libpthread.a"),
    ("libdl.a", "libdl.a"),
    ("librt.a", "librt.a"),
    ("libutil.a", "libutil.a"),
];

/// Fills `dir` with links to the static archives, under the names std links by.
#[allow(dead_code)]
fn static_libs_dir(cc: &str, dir: &std::path::Path) -> Result<(), String> {
    let archive = |name: &str| -> Result<std::path::PathBuf, String> {
        let out = std::process::Command::new(cc)
            .arg(format!("-print-file-name={name}"))
            .output()
            .map_err(|e| format!("{cc}: {e}"))?;
        let path = std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        // Without the file, cc prints the bare name back.
        if path.is_absolute() && path.is_file() {
            Ok(path)
        } else {
            Err(format!("no {name}"))
        }
    };
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for (name, source) in STATIC_ARCHIVES {
        let from = archive(source)?;
        let to = dir.join(name);
        match std::fs::remove_file(&to) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(format!("{}: {e}", to.display()));
            }
            _ => {}
        }
        std::os::unix::fs::symlink(&from, &to).map_err(|e| format!("{}: {e}", to.display()))?;
    }
    Ok(())
}

/// The linker arguments that make a static PIE from `dir` (made by [`static_libs_dir`]).
#[allow(dead_code)]
fn static_link_args(dir: &std::path::Path) -> Vec<String> {
    vec![
        format!("-L{}", dir.display()),
        "-static-pie".to_string(),
        // Compiler support routines static glibc calls (what gcc adds for C).
        "-lgcc".to_string(),
    ]
}
