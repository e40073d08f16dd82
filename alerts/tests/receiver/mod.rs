//! A real HTTP receiver on loopback, recording what is posted to it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// One request received.
#[derive(Debug, Clone)]
pub struct Request {
    pub path: String,
    pub body: serde_json::Value,
}

/// Answers 500 to the first `failures` requests, then 200; each answer after `delay`.
pub struct Receiver {
    pub url: String,
    received: Arc<Mutex<Vec<Request>>>,
    pub attempts: Arc<Mutex<u32>>,
}

impl Receiver {
    pub fn start(failures: u32, delay: Duration) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Vec::new()));
        let attempts = Arc::new(Mutex::new(0u32));
        {
            let received = Arc::clone(&received);
            let attempts = Arc::clone(&attempts);
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(mut stream) = stream else { return };
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut line = String::new();
                    if reader.read_line(&mut line).is_err() {
                        continue;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                    let mut length = 0;
                    loop {
                        let mut header = String::new();
                        if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                            break;
                        }
                        let lower = header.to_ascii_lowercase();
                        if let Some(v) = lower.strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    std::thread::sleep(delay);
                    let n = {
                        let mut a = attempts.lock();
                        *a += 1;
                        *a
                    };
                    let status = if n <= failures {
                        "500 Internal Server Error"
                    } else {
                        received.lock().push(Request {
                            path,
                            body: serde_json::from_slice(&body).unwrap(),
                        });
                        "200 OK"
                    };
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                }
            });
        }
        Receiver {
            url,
            received,
            attempts,
        }
    }

    /// Waits (up to 10 s) until `n` requests were accepted, and returns them.
    pub fn wait_for(&self, n: usize) -> Vec<Request> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.received.lock().clone();
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
