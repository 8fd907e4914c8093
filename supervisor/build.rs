//! Link settings for zedinit. It is PID 1 for the container's life, and its own pages are
//! what a device pays for it (bench/supervisors.py measures them: BENCHMARKS.md, issue 4).

fn main() {
    // Packed relative relocations (DT_RELR, glibc ≥ 2.36; the image is bookworm's 2.36):
    // a position-independent executable's relocation table shrinks from ~28 KiB to
    // under 4 KiB, pages that the loader reads at start and that then stay mapped.
    println!("cargo:rustc-link-arg-bin=zedinit=-Wl,-z,pack-relative-relocs");
    println!("cargo:rerun-if-changed=build.rs");
}
