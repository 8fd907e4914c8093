//! Link settings for zedinit. It is PID 1 for the container's life, and its own pages are
//! what a device pays for it (bench/supervisors.py measures them: BENCHMARKS.md, issue 4).

fn main() {
    // Packed relative relocations (DT_RELR, glibc ≥ 2.36; the image is bookworm's 2.36):
    // a position-independent executable's relocation table shrinks from ~28 KiB to
    // under 4 KiB, pages that the loader reads at start and that then stay mapped.
    println!("cargo:rustc-link-arg-bin=zedinit=-Wl,-z,pack-relative-relocs");
    // Code layout: the functions zedinit runs, steady state first, then start-up, packed
    // at the start of .text (lld; rustc's default linker on x86_64 Linux). A page fault
    // maps up to 64 KiB of neighbours (the kernel's fault-around), so scattered hot code
    // keeps most of the binary resident. The list is made by bench/zedinit-order; names
    // it lists that a build lacks are skipped, so a stale list costs memory, not a link.
    let order = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("zedinit.order");
    println!(
        "cargo:rustc-link-arg-bin=zedinit=-Wl,--symbol-ordering-file={}",
        order.display()
    );
    println!("cargo:rustc-link-arg-bin=zedinit=-Wl,--no-warn-symbol-ordering");
    link_statically();
    println!("cargo:rerun-if-changed=zedinit.order");
    println!("cargo:rerun-if-changed=build.rs");
}

/// zedinit is linked as a static PIE: glibc, its start files and the unwinder in the
/// binary, no loader. At every start the dynamic loader cost zedinit ~0.12 ms of CPU
/// before `main` (mapping libc, symbol relocations; `bench/probe-spawn.py` showed it
/// counts under load: a PID 1 that has used less CPU when its first clone wakes a
/// kworker keeps its CPU), and the loader's and libc's relocated data were ~48 KiB of
/// its private memory. BENCHMARKS.md, issue 12, "a static zedinit".
///
/// How, for this one binary (a `-C target-feature=+crt-static` would apply to every
/// crate of the build, proc macros and the downloader, whose name lookups want a
/// dynamic glibc): std asks the linker for `-lgcc_s -lutil -lrt -lpthread -lm -ldl
/// -lc`; a directory searched before the system's holds only the static archives under
/// those names (`libgcc_s.a` is the C compiler's `libgcc_eh.a`, what `-static-libgcc`
/// links for C), so each `-l` finds its archive, and `-static-pie` gives the start
/// files and no interpreter. lld (rustc's linker here) resolves archives in any order.
/// Without any of the archives (no libc6-dev), zedinit stays dynamic, with a warning.
fn link_statically() {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    println!("cargo:rerun-if-env-changed=CC");
    let archive = |name: &str| -> Result<std::path::PathBuf, String> {
        let out = std::process::Command::new(&cc)
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
    // The name std links by, and the archive that answers it.
    let wanted = [
        ("libgcc_s.a", "libgcc_eh.a"),
        ("libgcc.a", "libgcc.a"),
        ("libc.a", "libc.a"),
        ("libm.a", "libm.a"),
        ("libpthread.a", "libpthread.a"),
        ("libdl.a", "libdl.a"),
        ("librt.a", "librt.a"),
        ("libutil.a", "libutil.a"),
    ];
    let Some(out_dir) = std::env::var_os("OUT_DIR") else {
        return;
    };
    let dir = std::path::Path::new(&out_dir).join("static-libs");
    let made = std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()));
    let made = made.and_then(|()| {
        for (name, source) in wanted {
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
    });
    if let Err(why) = made {
        println!("cargo:warning=zedinit: {why}: linked dynamically");
        return;
    }
    println!("cargo:rustc-link-arg-bin=zedinit=-L{}", dir.display());
    println!("cargo:rustc-link-arg-bin=zedinit=-static-pie");
    // Compiler support routines static glibc calls (what gcc adds for C).
    println!("cargo:rustc-link-arg-bin=zedinit=-lgcc");
}
