//! A local HTTP/1.1 file server that honours `Range` (206 with `Content-Range`), answers `HEAD` with
//! the size, 404 for missing files, keeps connections alive, and can drop every n-th ranged GET half
//! way through its body, to test remote token files and measure the loader over HTTP. Test code:
//! panics are test failures.
#![allow(dead_code)]
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub struct RangeServer {
    pub url: String,
    ranged_gets: Arc<AtomicUsize>,
    dropped: Arc<AtomicUsize>,
}

impl RangeServer {
    /// Serves the files of `root` on a free loopback port until the process ends; with
    /// `drop_every = Some(n)`, every n-th ranged GET sends half its body and closes the connection.
    pub fn start(root: &Path, drop_every: Option<usize>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let ranged_gets = Arc::new(AtomicUsize::new(0));
        let dropped = Arc::new(AtomicUsize::new(0));
        let (root, gets, drops) = (root.to_path_buf(), ranged_gets.clone(), dropped.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (root, gets, drops) = (root.clone(), gets.clone(), drops.clone());
                std::thread::spawn(move || serve(stream, &root, drop_every, &gets, &drops));
            }
        });
        Self {
            url,
            ranged_gets,
            dropped,
        }
    }

    pub fn ranged_gets(&self) -> usize {
        self.ranged_gets.load(Ordering::SeqCst)
    }

    pub fn dropped(&self) -> usize {
        self.dropped.load(Ordering::SeqCst)
    }
}

struct Request {
    method: String,
    path: String,
    range: Option<(u64, u64)>,
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut range = None;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        if name.eq_ignore_ascii_case("range") {
            let spec = value.trim().strip_prefix("bytes=")?;
            let (a, b) = spec.split_once('-')?;
            range = Some((a.parse().ok()?, b.parse().ok()?));
        }
    }
    Some(Request {
        method,
        path,
        range,
    })
}

fn serve(
    stream: TcpStream,
    root: &Path,
    drop_every: Option<usize>,
    gets: &AtomicUsize,
    drops: &AtomicUsize,
) {
    // One write per response and no Nagle delay: a 40 ms delayed-ACK stall per request would measure
    // the server, not the loader.
    let _ = stream.set_nodelay(true);
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    while let Some(req) = read_request(&mut reader) {
        let file = resolve(root, &req.path).and_then(|p| File::open(p).ok());
        let Some(file) = file else {
            let _ = writer.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
            continue;
        };
        let size = file.metadata().unwrap().len();
        let etag = format!("\"{size}\"");
        if req.method == "HEAD" {
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {size}\r\nAccept-Ranges: bytes\r\nETag: {etag}\r\n\r\n");
            if writer.write_all(head.as_bytes()).is_err() {
                return;
            }
            continue;
        }
        let (status, start, end) = match req.range {
            Some((a, b)) if a <= b && b < size => ("206 Partial Content", a, b + 1),
            Some(_) => {
                let _ = writer.write_all(
                    format!("HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{size}\r\nContent-Length: 0\r\n\r\n").as_bytes(),
                );
                continue;
            }
            None => ("200 OK", 0, size),
        };
        let mut body = vec![0u8; (end - start) as usize];
        file.read_exact_at(&mut body, start).unwrap();
        let content_range = if req.range.is_some() {
            format!("Content-Range: bytes {start}-{}/{size}\r\n", end - 1)
        } else {
            String::new()
        };
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\n{content_range}Accept-Ranges: bytes\r\nETag: {etag}\r\n\r\n",
            body.len()
        );
        let n = if req.range.is_some() {
            gets.fetch_add(1, Ordering::SeqCst) + 1
        } else {
            0
        };
        if drop_every.is_some_and(|k| n > 0 && n % k == 0) && body.len() > 1 {
            drops.fetch_add(1, Ordering::SeqCst);
            let _ = writer.write_all(head.as_bytes());
            let _ = writer.write_all(&body[..body.len() / 2]);
            let _ = writer.flush();
            let _ = writer.shutdown(std::net::Shutdown::Both);
            return;
        }
        let mut response = head.into_bytes();
        response.extend_from_slice(&body);
        if writer.write_all(&response).is_err() {
            return;
        }
    }
}

/// The file under `root` that a request path names (no `..`).
fn resolve(root: &Path, path: &str) -> Option<PathBuf> {
    let rel = path.trim_start_matches('/');
    if rel.split('/').any(|c| c == ".." || c.is_empty()) {
        return None;
    }
    let p = root.join(rel);
    p.is_file().then_some(p)
}
