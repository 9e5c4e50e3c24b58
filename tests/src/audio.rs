//! Audio for the voice tests: a tone as a WAV file, and a one-file HTTP server that serves it.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A WAV (16 kHz mono 16-bit) of `ms` milliseconds of a 440 Hz tone.
pub fn tone_wav(ms: u32) -> Vec<u8> {
    let rate = 16_000u32;
    let n = rate * ms / 1000;
    let mut data = Vec::with_capacity(n as usize * 2);
    for i in 0..n {
        let v = (f64::from(i) * 440.0 * 2.0 * std::f64::consts::PI / f64::from(rate)).sin();
        data.extend_from_slice(&((v * 8000.0) as i16).to_le_bytes());
    }
    let mut w = Vec::new();
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes()); // PCM
    w.extend_from_slice(&1u16.to_le_bytes()); // mono
    w.extend_from_slice(&rate.to_le_bytes());
    w.extend_from_slice(&(rate * 2).to_le_bytes());
    w.extend_from_slice(&2u16.to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&(data.len() as u32).to_le_bytes());
    w.extend_from_slice(&data);
    w
}

/// Serves `body` as `audio/wav` to every GET on an ephemeral port; returns its base URL.
pub fn serve_file(body: Vec<u8>) -> String {
    serve(body, Some("audio/wav"), Arc::new(AtomicUsize::new(0)))
}

/// Serves `body` (with `content_type`, if any) as 200 to every request on 127.0.0.1, counting
/// requests in `requests`; returns the base URL.
pub fn serve(
    body: Vec<u8>,
    content_type: Option<&'static str>,
    requests: Arc<AtomicUsize>,
) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            requests.fetch_add(1, Ordering::SeqCst);
            let mut reader = BufReader::new(&stream);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let mut s = &stream;
            let content_type = content_type
                .map(|t| format!("Content-Type: {t}\r\n"))
                .unwrap_or_default();
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\n{content_type}Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(&body);
        }
    });
    url
}
