//! downloader: being written (issue 5).
fn main() {
    eprintln!("downloader: not built yet");
    std::process::exit(2);
}
