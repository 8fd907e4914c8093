//! zedinit is linked as a static PIE (build.rs, `static_link.rs`). PID 1's event loop
//! relies on unwinding: a handler's panic is caught (`catch_unwind`) and the loop goes
//! on, where an abort would end the container. zedinit has no way to be made to panic
//! from outside, so this links a small program with the same recipe, the same compiler
//! and optimisation, and checks that it catches a panic on its main thread and joins a
//! panicking thread, and that it has no interpreter (it really is static).

include!("../static_link.rs");

const PROBE: &str = r#"
fn main() {
    std::panic::set_hook(Box::new(|_| {}));
    let caught = std::panic::catch_unwind(|| {
        let v: Vec<u8> = Vec::new();
        v[std::env::args().count()]
    });
    println!("main thread caught: {}", caught.is_err());
    let joined = std::thread::spawn(|| panic!("in a thread")).join();
    println!("thread caught: {}", joined.is_err());
}
"#;

/// Whether a 64-bit little-endian ELF has a PT_INTERP program header (a loader).
fn has_interpreter(elf: &[u8]) -> bool {
    let u16_at = |at: usize| u16::from_le_bytes([elf[at], elf[at + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().expect("e_phoff")) as usize;
    let (entsize, count) = (u16_at(0x36), u16_at(0x38));
    (0..count).any(|i| {
        let at = phoff + i * entsize;
        u32::from_le_bytes(elf[at..at + 4].try_into().expect("p_type")) == 3
    })
}

#[test]
fn a_program_linked_like_zedinit_still_unwinds_panics() {
    let dir = std::env::temp_dir().join(format!("zedinit-static-link.{}", std::process::id()));
    let libs = dir.join("libs");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    static_libs_dir(&cc, &libs).expect("the static archives zedinit links (libc6-dev, gcc)");
    let source = dir.join("probe.rs");
    std::fs::write(&source, PROBE).expect("probe source");
    let binary = dir.join("probe");
    let mut rustc = std::process::Command::new("rustc");
    rustc
        .current_dir(env!("CARGO_MANIFEST_DIR")) // the pinned toolchain (rust-toolchain.toml)
        .args([
            "--edition",
            "2021",
            "-C",
            "opt-level=3",
            "-C",
            "panic=unwind",
            "-o",
        ])
        .arg(&binary)
        .arg(&source);
    for arg in static_link_args(&libs) {
        rustc.arg("-C").arg(format!("link-arg={arg}"));
    }
    let built = rustc.output().expect("rustc");
    assert!(
        built.status.success(),
        "rustc: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    let elf = std::fs::read(&binary).expect("probe binary");
    assert!(
        !has_interpreter(&elf),
        "the probe has a PT_INTERP: not static"
    );
    assert!(
        has_interpreter(&std::fs::read("/bin/sh").expect("/bin/sh")),
        "the ELF reader finds a dynamic program's interpreter"
    );
    let ran = std::process::Command::new(&binary).output().expect("probe");
    let stdout = String::from_utf8_lossy(&ran.stdout);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(ran.status.success(), "probe: {:?}\n{stdout}", ran.status);
    assert!(stdout.contains("main thread caught: true"), "{stdout}");
    assert!(stdout.contains("thread caught: true"), "{stdout}");
}
