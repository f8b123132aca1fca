//! A `redis-server` on a free port of 127.0.0.1 with nothing saved, killed when dropped: for
//! the tests of `--shared-limit` and for bench/shared.rs, which includes this file (a bench is
//! a crate of its own), so it stands alone.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Redis {
    pub port: u16,
    pub child: Child,
}

impl Redis {
    pub fn start() -> Redis {
        Redis::on(free_port())
    }

    /// On `port`: again on the one a stopped Redis was on, with nothing kept.
    pub fn on(port: u16) -> Redis {
        let mut server = Redis::command();
        server.args(["--port", &port.to_string()]);
        Redis::started(port, server, |s| {
            let mut pong = [0u8; 7];
            s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut pong).is_ok()
        })
    }

    /// `redis-server` listening on 127.0.0.1 only and saving nothing; its port is the
    /// caller's.
    pub fn command() -> Command {
        let mut c = Command::new("redis-server");
        c.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null());
        c
    }

    /// `server` spawned, once a connection to `port` is `ready`.
    pub fn started(
        port: u16,
        mut server: Command,
        ready: impl Fn(&mut TcpStream) -> bool,
    ) -> Redis {
        let child = server
            .spawn()
            .expect("redis-server must be installed: apt-get install -y redis-server");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !TcpStream::connect(("127.0.0.1", port)).is_ok_and(|mut s| ready(&mut s)) {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis { port, child }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
