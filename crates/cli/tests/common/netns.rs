//! The hospital's network on one machine, as separate hosts: Linux network namespaces (`ip netns`,
//! root only) joined by bridges in a namespace of their own, addressed from 198.18.0.0/15
//! (RFC 2544, set aside for network tests) so that nothing here can reach, or be mistaken for, a
//! real network. Nothing touches the machine's own namespace.
//!
//! ```text
//!   phones ──br-pub── gateways ──br-dmz── servers ──br-his── HIS
//!                                            │
//!                                          br-db ── db (PostgreSQL relay, NTP)
//! ```
//!
//! | bridge | subnet         | hosts                                                       |
//! |--------|----------------|-------------------------------------------------------------|
//! | br-pub | 198.18.3.0/24  | gateway j .21+j, phones .100+k (one address per phone)      |
//! | br-dmz | 198.18.2.0/24  | server i .11+i, gateway j .21+j                             |
//! | br-his | 198.18.4.0/24  | server i .11+i, HIS .20                                     |
//! | br-db  | 198.18.1.0/24  | db .1, server i .11+i                                       |
//!
//! No namespace has a route beyond its own subnets and servers do not forward, so a phone has no
//! way to a server, the HIS none to a gateway, a gateway none to the database.
//!
//! A thread of the test process makes its connections from one of these hosts with [`enter`]:
//! `common::connect` does so by itself for the client hosts (phones by their source address, the
//! HIS for the addresses only it reaches). Processes run inside a host with [`Net::command`].

use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A host of the layout.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Host {
    /// the database and time host
    Db,
    Server(usize),
    Gateway(usize),
    /// every phone, each with its own address
    Phones,
    His,
}

/// A client host the test's own connections may come from.
struct Client {
    tag: String,
    ns: File,
    /// source addresses it owns (inclusive range)
    from: (Ipv4Addr, Ipv4Addr),
    /// the /24 only it reaches among the client hosts (connections without a source go there)
    reach: [u8; 3],
}

static CLIENTS: Mutex<Vec<Client>> = Mutex::new(Vec::new());

/// This thread, inside another network namespace until dropped.
pub struct Entered {
    back: File,
}

impl Drop for Entered {
    fn drop(&mut self) {
        nix::sched::setns(&self.back, nix::sched::CloneFlags::CLONE_NEWNET).expect("back to the own namespace");
    }
}

/// Move this thread into the network namespace `ns` until the guard is dropped; sockets it makes
/// meanwhile belong there for good.
pub fn enter(ns: &File) -> io::Result<Entered> {
    let back = File::open("/proc/thread-self/ns/net")?;
    nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
    Ok(Entered { back })
}

/// The client host a connection from `from` to `to` is made on, entered; none when no layout
/// claims it (loopback tests).
pub fn enter_for(from: Option<IpAddr>, to: &SocketAddr) -> io::Result<Option<Entered>> {
    let clients = CLIENTS.lock().unwrap();
    let pick = clients.iter().find(|c| match (from, to.ip()) {
        (Some(IpAddr::V4(f)), _) => c.from.0 <= f && f <= c.from.1,
        (None, IpAddr::V4(t)) => t.octets()[..3] == c.reach,
        _ => false,
    });
    pick.map(|c| enter(&c.ns)).transpose()
}

/// The layout: its namespaces exist while this lives.
pub struct Net {
    tag: String,
    made: Vec<String>,
    pub servers: usize,
    pub gateways: usize,
    pub phones: usize,
}

const PUB: [u8; 3] = [198, 18, 3];
const DMZ: [u8; 3] = [198, 18, 2];
const HIS: [u8; 3] = [198, 18, 4];
const DB: [u8; 3] = [198, 18, 1];

fn v4(net: [u8; 3], host: usize) -> Ipv4Addr {
    Ipv4Addr::new(net[0], net[1], net[2], u8::try_from(host).expect("a host number under 256"))
}

impl Net {
    /// Make the layout, or say why it cannot be made here (not root, no `ip`, no namespaces).
    pub fn try_new(servers: usize, gateways: usize, phones: usize) -> Result<Net, String> {
        assert!(servers <= 9 && gateways <= 9 && phones <= 150, "the address plan holds 9 + 9 + 150");
        sweep();
        let mut net = Net { tag: format!("ms{}", std::process::id()), made: Vec::new(), servers, gateways, phones };
        net.build()?;
        Ok(net)
    }

    /// The namespace of `h`.
    pub fn ns(&self, h: Host) -> String {
        match h {
            Host::Db => format!("{}-db", self.tag),
            Host::Server(i) => format!("{}-srv{i}", self.tag),
            Host::Gateway(j) => format!("{}-gw{j}", self.tag),
            Host::Phones => format!("{}-phones", self.tag),
            Host::His => format!("{}-his", self.tag),
        }
    }

    pub fn db(&self) -> Ipv4Addr {
        v4(DB, 1)
    }
    /// Server `i` on the HIS side: where it listens (and nowhere else).
    pub fn server_api(&self, i: usize) -> Ipv4Addr {
        v4(HIS, 11 + i)
    }
    pub fn server_dmz(&self, i: usize) -> Ipv4Addr {
        v4(DMZ, 11 + i)
    }
    /// Gateway `j` in the DMZ: where the servers' tunnels come in.
    pub fn gateway_dmz(&self, j: usize) -> Ipv4Addr {
        v4(DMZ, 21 + j)
    }
    /// Gateway `j` on the phones' side.
    pub fn gateway_public(&self, j: usize) -> Ipv4Addr {
        v4(PUB, 21 + j)
    }
    pub fn phone(&self, k: usize) -> Ipv4Addr {
        assert!(k < self.phones);
        v4(PUB, 100 + k)
    }
    pub fn his(&self) -> Ipv4Addr {
        v4(HIS, 20)
    }

    /// `cmd` run inside `h` (`ip netns exec`), with its arguments and environment; stdout to
    /// nothing, stderr piped (as `Server::spawn` reads it).
    pub fn command(&self, h: Host, cmd: &Command) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns(h)]).arg(cmd.get_program()).args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        c.stdout(Stdio::null()).stderr(Stdio::piped());
        c
    }

    /// A TCP connection from `h` to `to` (2 s at most): whether the layout lets it through.
    pub fn probe(&self, h: Host, to: SocketAddr) -> io::Result<()> {
        let ns = File::open(format!("/run/netns/{}", self.ns(h)))?;
        std::thread::scope(|s| {
            s.spawn(|| {
                let _in = enter(&ns)?;
                TcpStream::connect_timeout(&to, Duration::from_secs(2)).map(drop)
            })
            .join()
            .unwrap()
        })
    }

    fn ip(&self, args: &[&str]) -> Result<(), String> {
        let o = Command::new("ip").args(args).output().map_err(|e| format!("ip: {e}"))?;
        match o.status.success() {
            true => Ok(()),
            false => Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&o.stderr).trim())),
        }
    }

    fn add(&mut self, name: &str) -> Result<(), String> {
        self.ip(&["netns", "add", name])?;
        self.made.push(name.to_string());
        self.ip(&["-n", name, "link", "set", "lo", "up"])?;
        // no host routes between its networks (a new namespace may inherit the machine's setting)
        let o = Command::new("ip")
            .args(["netns", "exec", name, "sysctl", "-qw", "net.ipv4.ip_forward=0"])
            .output()
            .map_err(|e| e.to_string())?;
        match o.status.success() {
            true => Ok(()),
            false => Err(format!("sysctl in {name}: {}", String::from_utf8_lossy(&o.stderr))),
        }
    }

    fn build(&mut self) -> Result<(), String> {
        let sw = format!("{}-sw", self.tag);
        self.add(&sw)?;
        for br in ["br-pub", "br-dmz", "br-his", "br-db"] {
            self.ip(&["-n", &sw, "link", "add", br, "type", "bridge"])?;
            self.ip(&["-n", &sw, "link", "set", br, "up"])?;
        }
        let mut port = 0;
        // host namespace `ns` gets interface `dev` on bridge `br` with these addresses
        let mut attach = |net: &Net, ns: &str, dev: &str, br: &str, addrs: &[Ipv4Addr]| -> Result<(), String> {
            port += 1;
            let p = format!("p{port}");
            net.ip(&["link", "add", dev, "netns", ns, "type", "veth", "peer", "name", &p, "netns", &sw])?;
            net.ip(&["-n", &sw, "link", "set", &p, "master", br, "up"])?;
            for a in addrs {
                net.ip(&["-n", ns, "addr", "add", &format!("{a}/24"), "dev", dev])?;
            }
            net.ip(&["-n", ns, "link", "set", dev, "up"])
        };
        let db = self.ns(Host::Db);
        self.add(&db)?;
        attach(self, &db, "eth0", "br-db", &[self.db()])?;
        for i in 0..self.servers {
            let ns = self.ns(Host::Server(i));
            self.add(&ns)?;
            attach(self, &ns, "eth0", "br-db", &[v4(DB, 11 + i)])?;
            attach(self, &ns, "eth1", "br-his", &[self.server_api(i)])?;
            attach(self, &ns, "eth2", "br-dmz", &[self.server_dmz(i)])?;
        }
        for j in 0..self.gateways {
            let ns = self.ns(Host::Gateway(j));
            self.add(&ns)?;
            attach(self, &ns, "eth0", "br-dmz", &[self.gateway_dmz(j)])?;
            attach(self, &ns, "eth1", "br-pub", &[self.gateway_public(j)])?;
        }
        let phones = self.ns(Host::Phones);
        self.add(&phones)?;
        let addrs: Vec<Ipv4Addr> = (0..self.phones).map(|k| self.phone(k)).collect();
        attach(self, &phones, "eth0", "br-pub", &addrs)?;
        let his = self.ns(Host::His);
        self.add(&his)?;
        attach(self, &his, "eth0", "br-his", &[self.his()])?;
        let open = |ns: &str| File::open(format!("/run/netns/{ns}")).map_err(|e| format!("/run/netns/{ns}: {e}"));
        let mut clients = CLIENTS.lock().unwrap();
        let last_phone = self.phone(self.phones.max(1) - 1);
        clients.push(Client {
            tag: self.tag.clone(),
            ns: open(&phones)?,
            from: (self.phone(0), last_phone),
            reach: PUB,
        });
        clients.push(Client { tag: self.tag.clone(), ns: open(&his)?, from: (self.his(), self.his()), reach: HIS });
        Ok(())
    }
}

/// Remove the namespaces of layouts whose test process is gone (killed before it could clean up).
fn sweep() {
    let Ok(dir) = std::fs::read_dir("/run/netns") else { return };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("ms").and_then(|r| r.split('-').next()).and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["netns", "del", &name]).output();
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        CLIENTS.lock().unwrap().retain(|c| c.tag != self.tag);
        for ns in self.made.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// A TCP relay inside `h` at `listen`, to `upstream` in the test process's own namespace: the
/// database host's port for PostgreSQL (which scripts/test runs on loopback).
pub struct Relay {
    stop: Arc<AtomicBool>,
}

impl Relay {
    pub fn start(net: &Net, h: Host, listen: SocketAddr, upstream: SocketAddr) -> io::Result<Relay> {
        let home = File::open("/proc/thread-self/ns/net")?;
        let ns = File::open(format!("/run/netns/{}", net.ns(h)))?;
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let halt = stop.clone();
        std::thread::spawn(move || {
            // this thread lives in `h`; each connection's upstream is made back home
            let bound = enter(&ns).and_then(|inside| {
                let l = TcpListener::bind(listen)?;
                l.set_nonblocking(true)?;
                Ok((inside, l))
            });
            let (_inside, l) = match bound {
                Ok(l) => {
                    ready_tx.send(Ok(())).unwrap();
                    l
                }
                Err(e) => return ready_tx.send(Err(e)).unwrap(),
            };
            let home = Arc::new(home);
            while !halt.load(Ordering::SeqCst) {
                let Ok((down, _)) = l.accept() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                let home = home.clone();
                std::thread::spawn(move || {
                    let up = enter(&home).and_then(|_home| TcpStream::connect(upstream));
                    let (Ok(up), Ok(_)) = (up, down.set_nonblocking(false)) else { return };
                    pipe(down, up);
                });
            }
        });
        ready_rx.recv().unwrap()?;
        Ok(Relay { stop })
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Copy both ways until either side ends, then close both.
fn pipe(a: TcpStream, b: TcpStream) {
    let (a2, b2) = (a.try_clone().unwrap(), b.try_clone().unwrap());
    let t = std::thread::spawn(move || {
        let _ = io::copy(&mut &a2, &mut &b2);
        let _ = a2.shutdown(std::net::Shutdown::Both);
        let _ = b2.shutdown(std::net::Shutdown::Both);
    });
    let _ = io::copy(&mut &b, &mut &a);
    let _ = a.shutdown(std::net::Shutdown::Both);
    let _ = b.shutdown(std::net::Shutdown::Both);
    let _ = t.join();
}
