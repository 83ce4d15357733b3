//! A TCP proxy that delays every byte by a fixed time in each direction, and can cap the
//! rate: a far-away server's link, on loopback. `scripts/bench` puts every tool behind
//! the same one (`remote-s3-rtt30`, `remote-sftp-rtt30`).
//!
//! ```text
//! latency_proxy --to 127.0.0.1:3900 --rtt-ms 30 [--listen 127.0.0.1:0] [--mbit 1000]
//! ```
//!
//! Prints the address it listens on as its first line, then serves until killed. Data is
//! forwarded in the pieces it arrives in, each held until half the round trip has passed
//! since it arrived (so a full pipe keeps its throughput), then paced to the rate cap,
//! which all connections share per direction, as they would share a link.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Link {
    /// One-way delay.
    delay: Duration,
    /// Bytes per second (0: no cap).
    rate: u64,
    /// When each direction's link is free again.
    up_free: Mutex<Instant>,
    down_free: Mutex<Instant>,
}

fn main() {
    let mut listen = "127.0.0.1:0".to_string();
    let (mut to, mut rtt_ms, mut mbit) = (None, 0u64, 0u64);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage(&format!("{a} needs a value")));
        match a.as_str() {
            "--listen" => listen = value(),
            "--to" => to = Some(value()),
            "--rtt-ms" => rtt_ms = value().parse().unwrap_or_else(|_| usage("--rtt-ms takes milliseconds")),
            "--mbit" => mbit = value().parse().unwrap_or_else(|_| usage("--mbit takes a number")),
            _ => usage(&format!("unknown argument {a}")),
        }
    }
    let to = to.unwrap_or_else(|| usage("--to HOST:PORT is required"));
    let listener = TcpListener::bind(&listen).unwrap_or_else(|e| usage(&format!("cannot listen on {listen}: {e}")));
    let now = Instant::now();
    let link = Arc::new(Link {
        delay: Duration::from_millis(rtt_ms) / 2,
        rate: mbit * 1_000_000 / 8,
        up_free: Mutex::new(now),
        down_free: Mutex::new(now),
    });
    println!("{}", listener.local_addr().map(|a| a.to_string()).unwrap_or_default());
    let _ = std::io::stdout().flush();
    for client in listener.incoming().flatten() {
        let (link, to) = (link.clone(), to.clone());
        std::thread::spawn(move || {
            let Ok(server) = TcpStream::connect(&to) else { return };
            let _ = (client.set_nodelay(true), server.set_nodelay(true));
            let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else { return };
            let l2 = link.clone();
            std::thread::spawn(move || pump(c2, s2, &l2, true));
            pump(server, client, &link, false);
        });
    }
}

fn usage(msg: &str) -> ! {
    eprintln!("latency_proxy: {msg}\nusage: latency_proxy --to HOST:PORT --rtt-ms MS [--listen ADDR] [--mbit N]");
    std::process::exit(2)
}

/// Forwards `from` to `to`, each piece delayed and paced; a half-close is passed on.
fn pump(mut from: TcpStream, mut to: TcpStream, link: &Link, up: bool) {
    let (tx, rx) = sync_channel::<Option<(Instant, Vec<u8>)>>(256);
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 256 << 10];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => {
                    let _ = tx.send(None);
                    return;
                }
                Ok(n) => {
                    if tx.send(Some((Instant::now(), buf[..n].to_vec()))).is_err() {
                        return;
                    }
                }
            }
        }
    });
    let free = if up { &link.up_free } else { &link.down_free };
    while let Ok(Some((arrived, data))) = rx.recv() {
        let mut due = arrived + link.delay;
        if link.rate > 0 {
            let mut f = free.lock().unwrap_or_else(|p| p.into_inner());
            let start = (*f).max(arrived);
            *f = start + Duration::from_secs_f64(data.len() as f64 / link.rate as f64);
            due = due.max(*f);
        }
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        if to.write_all(&data).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    // The reader ends at its next read (the socket closed) or send (the channel gone).
    drop((rx, reader));
}
