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
    static_unwinder();
    println!("cargo:rerun-if-changed=zedinit.order");
    println!("cargo:rerun-if-changed=build.rs");
}

/// The unwinder linked into zedinit instead of loaded as libgcc_s.so.1: std asks for
/// `-lgcc_s`, and a `libgcc_s.a` that is the C compiler's `libgcc_eh.a`, in a directory
/// searched before the compiler's own, answers it (what `-static-libgcc` does for C).
/// Loading libgcc_s cost zedinit ~0.1 ms of CPU at every start, before its first service:
/// its mapping and relocations, and its constructor `__cpu_indicator_init`, a dozen
/// CPUID instructions that each trap to the hypervisor (~4 µs each on the bench VM).
/// BENCHMARKS.md, "Start-up under load, zedinit's own start". Only zedinit is linked
/// so (a link argument for that binary); without a `libgcc_eh.a` it stays dynamic.
fn static_unwinder() {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let Ok(out) = std::process::Command::new(&cc)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
    else {
        println!("cargo:warning=zedinit: {cc} not found: libgcc_s stays a shared library");
        return;
    };
    let eh = std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    // Without the file, cc prints the bare name back.
    if !eh.is_absolute() || !eh.is_file() {
        println!("cargo:warning=zedinit: no libgcc_eh.a: libgcc_s stays a shared library");
        return;
    }
    let Some(out_dir) = std::env::var_os("OUT_DIR") else {
        return;
    };
    let dir = std::path::Path::new(&out_dir).join("static-unwinder");
    let lib = dir.join("libgcc_s.a");
    let made = std::fs::create_dir_all(&dir)
        .and_then(|()| match std::fs::remove_file(&lib) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        })
        .and_then(|()| std::fs::copy(&eh, &lib));
    if let Err(e) = made {
        println!(
            "cargo:warning=zedinit: {}: {e}: libgcc_s stays a shared library",
            lib.display()
        );
        return;
    }
    println!("cargo:rustc-link-arg-bin=zedinit=-L{}", dir.display());
    println!("cargo:rerun-if-env-changed=CC");
}
