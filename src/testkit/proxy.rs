//! A TCP proxy on loopback that a test can cut and restore: an outage of
//! the service behind it, as the daemon sees one (connections reset, new
//! ones refused), without stopping the service itself.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Proxy {
    pub addr: SocketAddr,
    upstream: SocketAddr,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    listener: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let p = Proxy {
            addr: listener.local_addr().expect("proxy address"),
            upstream,
            up: Arc::new(AtomicBool::new(true)),
            conns: Arc::default(),
            listener: Mutex::new(None),
        };
        p.serve(listener);
        p
    }

    fn serve(&self, listener: TcpListener) {
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let (up, conns, upstream) = (self.up.clone(), self.conns.clone(), self.upstream);
        let handle = std::thread::spawn(move || {
            while up.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let Ok(server) =
                            TcpStream::connect_timeout(&upstream, Duration::from_secs(2))
                        else {
                            continue;
                        };
                        let _ = client.set_nonblocking(false);
                        for s in [&client, &server] {
                            if let Ok(c) = s.try_clone() {
                                conns.lock().unwrap().push(c);
                            }
                        }
                        pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                        pipe(server, client);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
            // Dropping the listener here refuses new connections.
        });
        *self.listener.lock().unwrap() = Some(handle);
    }

    /// The outage: every connection reset, new ones refused.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        if let Some(h) = self.listener.lock().unwrap().take() {
            let _ = h.join();
        }
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }

    /// The service is back, on the same address.
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
        let listener = TcpListener::bind(self.addr).expect("rebind the proxy's address");
        self.serve(listener);
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(std::net::Shutdown::Write);
    });
}
