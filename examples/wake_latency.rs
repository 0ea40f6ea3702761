//! The floor of `watch_notify` on a machine: how long a blocked OS thread
//! takes to run after another thread wakes it (condvar, and park/unpark),
//! with nothing of pandodb involved. 40 trials each, the waiter blocked for
//! 20 ms first, as in the watch workloads.
//!
//! ```sh
//! cargo run --release --example wake_latency
//! ```

use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::{Duration, Instant};

fn report(what: &str, mut ns: Vec<u128>) {
    ns.sort_unstable();
    println!(
        "{what}: min {} ns, median {} ns, max {} ns ({} trials)",
        ns[0],
        ns[ns.len() / 2],
        ns[ns.len() - 1],
        ns.len()
    );
}

fn main() {
    let mut lat = Vec::new();
    for _ in 0..40 {
        let pair = Arc::new((Mutex::new(false), Condvar::new()));
        let (tx, rx) = mpsc::channel();
        let p2 = pair.clone();
        let h = std::thread::spawn(move || {
            let (m, c) = &*p2;
            let mut g = m.lock().expect("lock");
            while !*g {
                g = c.wait(g).expect("wait");
            }
            tx.send(Instant::now()).expect("send");
        });
        std::thread::sleep(Duration::from_millis(20));
        let t0 = Instant::now();
        {
            let (m, c) = &*pair;
            *m.lock().expect("lock") = true;
            c.notify_one();
        }
        lat.push((rx.recv().expect("recv") - t0).as_nanos());
        h.join().expect("join");
    }
    report("condvar wake-up", lat);
    let mut lat = Vec::new();
    for _ in 0..40 {
        let (tx, rx) = mpsc::channel();
        let h = std::thread::spawn(move || {
            std::thread::park();
            tx.send(Instant::now()).expect("send");
        });
        std::thread::sleep(Duration::from_millis(20));
        let t0 = Instant::now();
        h.thread().unpark();
        lat.push((rx.recv().expect("recv") - t0).as_nanos());
        h.join().expect("join");
    }
    report("park/unpark wake-up", lat);
}
