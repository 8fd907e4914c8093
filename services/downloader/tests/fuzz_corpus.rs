//! The committed fuzz corpus replayed through this crate's fuzz entry points
//! (`lab::replay_corpus`). Fuzzing itself: `bench/fuzz`.

use lab::replay_corpus as replay;

#[test]
fn downloader_request_corpus() {
    replay("downloader_request", downloader::fuzzing::request);
}
