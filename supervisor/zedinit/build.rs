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

/// zedinit is linked as a static PIE: see `static_link.rs` (shared with the test that
/// checks a program linked this way still unwinds a panic).
fn link_statically() {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    println!("cargo:rerun-if-env-changed=CC");
    println!("cargo:rerun-if-changed=static_link.rs");
    let Some(out_dir) = std::env::var_os("OUT_DIR") else {
        return;
    };
    let dir = std::path::Path::new(&out_dir).join("static-libs");
    if let Err(why) = static_libs_dir(&cc, &dir) {
        println!("cargo:warning=zedinit: {why}: linked dynamically");
        return;
    }
    for arg in static_link_args(&dir) {
        println!("cargo:rustc-link-arg-bin=zedinit={arg}");
    }
}

include!("static_link.rs");
