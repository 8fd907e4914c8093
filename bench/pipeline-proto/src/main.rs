//! pipeline-proto URL OUT MODE — fetch URL into OUT, print the sha256.
//! MODE tokio: as the downloader does today (tokio::fs::File, one write in flight,
//!             hash on the receiving task);
//! MODE thread: hash on the receiving task, writes on one std thread fed `Bytes`
//!             by refcount through a bounded channel (no copy, no per-chunk spawn_blocking);
//! MODE split: the receiving task only forwards; one thread hashes, one writes.
//! pipeline-proto hash FILE sha2|ring [KIB] — the hash alone (sha2 0.10 or ring 0.17),
//! reading the file in KIB-sized blocks (default 1024).
use sha2::{Digest, Sha256};
use std::io::Write;
use tokio::io::AsyncWriteExt;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a[1] == "hash" {
        // pipeline-proto hash FILE sha2|ring [KIB]: the hash alone over a file read in
        // KIB-sized blocks (default 1024, as part.rs's hash_reader).
        use std::io::Read;
        let mut f = std::fs::File::open(&a[2]).expect("open");
        let kib: usize = a.get(4).and_then(|k| k.parse().ok()).unwrap_or(1024);
        let mut buf = vec![0u8; kib << 10];
        let mut h = Sha256::new();
        let mut r = ring::digest::Context::new(&ring::digest::SHA256);
        let t = std::time::Instant::now();
        loop {
            let n = f.read(&mut buf).expect("read");
            if n == 0 {
                break;
            }
            if a[3] == "ring" {
                r.update(&buf[..n])
            } else {
                h.update(&buf[..n])
            }
        }
        let hex: String = if a[3] == "ring" {
            r.finish().as_ref().iter().map(|b| format!("{b:02x}")).collect()
        } else {
            h.finalize().iter().map(|b| format!("{b:02x}")).collect()
        };
        println!("{hex} {} {:.3} s", a[3], t.elapsed().as_secs_f64());
        return;
    }
    let (url, out, mode) = (&a[1], a[2].clone(), a[3].as_str());
    let client = reqwest::Client::builder().no_proxy().build().expect("client");
    let mut resp = client.get(url.as_str()).send().await.expect("send");
    let digest = match mode {
        "tokio" => {
            let mut f = tokio::fs::File::create(&out).await.expect("create");
            let mut h = Sha256::new();
            while let Some(c) = resp.chunk().await.expect("chunk") {
                f.write_all(&c).await.expect("write");
                h.update(&c);
            }
            f.flush().await.expect("flush");
            f.sync_all().await.expect("fsync");
            h.finalize()
        }
        "thread" => {
            let (tx, rx) = std::sync::mpsc::sync_channel::<bytes::Bytes>(256);
            let w = std::thread::spawn(move || {
                let mut f = std::fs::File::create(&out).expect("create");
                for c in rx {
                    f.write_all(&c).expect("write");
                }
                f.sync_all().expect("fsync");
            });
            let mut h = Sha256::new();
            while let Some(c) = resp.chunk().await.expect("chunk") {
                h.update(&c);
                tx.send(c).expect("send");
            }
            drop(tx);
            w.join().expect("writer");
            h.finalize()
        }
        _ => {
            let (tx, rx) = std::sync::mpsc::sync_channel::<bytes::Bytes>(256);
            let (htx, hrx) = std::sync::mpsc::sync_channel::<bytes::Bytes>(256);
            let w = std::thread::spawn(move || {
                let mut f = std::fs::File::create(&out).expect("create");
                for c in rx {
                    f.write_all(&c).expect("write");
                }
                f.sync_all().expect("fsync");
            });
            let hs = std::thread::spawn(move || {
                let mut h = Sha256::new();
                for c in hrx {
                    h.update(&c);
                }
                h.finalize()
            });
            while let Some(c) = resp.chunk().await.expect("chunk") {
                htx.send(c.clone()).expect("send");
                tx.send(c).expect("send");
            }
            drop(tx);
            drop(htx);
            w.join().expect("writer");
            hs.join().expect("hasher")
        }
    };
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    println!("{hex}");
}
