//! The JIT gate: what makes "access only while approved" observable.
//!
//! For every TCP port in a JIT policy, the gate listens on the VM's public IP (a loopback
//! address). A connection is let through only while a JIT request has an `Initiated` rule for
//! that VM and port whose prefix contains the connection's source address; any other is closed
//! at once. Connections already let through are not cut when the rule expires, as an NSG does
//! not cut established flows.
//!
//! Where a port cannot be bound (22 without root, or an address already taken), the VM is
//! put behind the simulated Azure Firewall: the gate listens on the firewall address with an
//! ephemeral port, the policy's VM entry carries `publicIpAddress`, and request ports carry
//! `mappedPort`, as JIT does for VMs behind Azure Firewall.
//!
//! When a public (not loopback) address is set (the tenant's `public_ip`, or
//! `POST /_sim/ip`), a connection from a loopback address counts as coming from it, as a
//! laptop behind a NAT reaches the internet from its public address.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::arm::Prefix;
use crate::server::{Shared, Sim};
use crate::tenant::OsType;

/// One listening port of the gate.
#[derive(Debug, Clone, Serialize)]
pub struct Endpoint {
    pub vm: String,
    pub port: i64,
    pub address: SocketAddr,
    pub mapped: bool,
}

struct Listener {
    endpoint: Endpoint,
    task: JoinHandle<()>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub struct Gate {
    listeners: Mutex<HashMap<(String, i64), Listener>>,
    shutdown: watch::Receiver<bool>,
}

impl Gate {
    pub fn new(shutdown: watch::Receiver<bool>) -> Gate {
        Gate {
            listeners: Mutex::new(HashMap::new()),
            shutdown,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, i64), Listener>> {
        self.listeners.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The firewall port that stands for `vm:port`, when the VM is behind the firewall.
    pub fn mapped_port(&self, vm_id: &str, port: i64) -> Option<u16> {
        self.lock()
            .get(&(vm_id.to_ascii_lowercase(), port))
            .filter(|l| l.endpoint.mapped)
            .map(|l| l.endpoint.address.port())
    }

    pub fn endpoints(&self) -> Vec<Endpoint> {
        let mut out: Vec<Endpoint> = self.lock().values().map(|l| l.endpoint.clone()).collect();
        out.sort_by(|a, b| (&a.vm, a.port).cmp(&(&b.vm, b.port)));
        out
    }
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("endpoints", &self.endpoints())
            .finish()
    }
}

/// What the gate should be listening for, read from the JIT policies.
struct Wanted {
    vm_id: String,
    port: i64,
    ip: std::net::Ipv4Addr,
    behind_firewall: bool,
}

/// Brings the listeners in line with the JIT policies. Call after any policy change.
pub fn reconcile(sim: &Shared) {
    let (wanted, firewall) = {
        let world = sim.world();
        let mut wanted = Vec::new();
        for policy in &world.jit_policies {
            for pvm in &policy.vms {
                let Some(vm) = world
                    .vms
                    .iter()
                    .find(|v| v.id().eq_ignore_ascii_case(&pvm.id))
                else {
                    continue;
                };
                for rule in &pvm.ports {
                    let tcp = matches!(rule.protocol.to_ascii_uppercase().as_str(), "TCP" | "*");
                    if tcp && (1..=65535).contains(&rule.number) {
                        wanted.push(Wanted {
                            vm_id: vm.id().to_ascii_lowercase(),
                            port: rule.number,
                            ip: vm.public_ip,
                            behind_firewall: vm.behind_firewall,
                        });
                    }
                }
            }
        }
        (wanted, world.tenant.firewall_ip)
    };
    let mut firewalled = Vec::new();
    {
        let mut listeners = sim.gate.lock();
        listeners.retain(|key, _| wanted.iter().any(|w| (w.vm_id.clone(), w.port) == *key));
        for w in &wanted {
            let key = (w.vm_id.clone(), w.port);
            if listeners.contains_key(&key) {
                if listeners[&key].endpoint.mapped {
                    firewalled.push(w.vm_id.clone());
                }
                continue;
            }
            let direct = if w.behind_firewall {
                None
            } else {
                u16::try_from(w.port)
                    .ok()
                    .and_then(|p| bind(SocketAddr::from((w.ip, p))))
            };
            let (listener, mapped) = match direct {
                Some(l) => (l, false),
                None => match bind(SocketAddr::from((firewall, 0))) {
                    Some(l) => (l, true),
                    None => {
                        tracing::warn!("the JIT gate cannot listen for {}:{}", w.vm_id, w.port);
                        continue;
                    }
                },
            };
            let Ok(address) = listener.local_addr() else {
                continue;
            };
            if mapped {
                firewalled.push(w.vm_id.clone());
            }
            let endpoint = Endpoint {
                vm: w.vm_id.clone(),
                port: w.port,
                address,
                mapped,
            };
            let task = tokio::spawn(accept_loop(
                listener,
                Arc::downgrade(sim),
                endpoint.clone(),
                sim.gate.shutdown.clone(),
            ));
            listeners.insert(key, Listener { endpoint, task });
        }
    }
    let mut world = sim.world();
    for policy in &mut world.jit_policies {
        for vm in &mut policy.vms {
            let behind = firewalled.iter().any(|f| f.eq_ignore_ascii_case(&vm.id));
            vm.public_ip_address = behind.then(|| firewall.to_string());
        }
    }
}

fn bind(addr: SocketAddr) -> Option<TcpListener> {
    let std = std::net::TcpListener::bind(addr).ok()?;
    std.set_nonblocking(true).ok()?;
    TcpListener::from_std(std).ok()
}

async fn accept_loop(
    listener: TcpListener,
    sim: Weak<Sim>,
    endpoint: Endpoint,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let Some(sim) = sim.upgrade() else { return };
        tokio::spawn(admit(sim, stream, peer, endpoint.clone()));
    }
}

/// Whether an active JIT rule lets `source` reach `vm:port` now.
fn is_admitted(sim: &Sim, vm: &str, port: i64, source: IpAddr) -> bool {
    let now = sim.clock.now();
    let world = sim.world();
    world
        .jit_policies
        .iter()
        .flat_map(|p| &p.requests)
        .flat_map(|r| &r.virtual_machines)
        .filter(|v| v.id.eq_ignore_ascii_case(vm))
        .flat_map(|v| &v.ports)
        .filter(|p| p.number == port && p.status == "Initiated")
        .filter(|p| crate::state::parse_time(&p.end_time_utc).is_some_and(|end| now < end))
        .any(|p| {
            p.sources
                .all()
                .iter()
                .any(|s| Prefix::parse(s).is_some_and(|prefix| prefix.contains(source)))
        })
}

/// The source address JIT sees a connection from. With a public (not loopback) address set
/// (the tenant's `public_ip` or `POST /_sim/ip`), a loopback peer is the laptop behind its
/// NAT, seen from the internet at that address. Any other peer is seen as itself; so is every
/// peer when the address set is itself a loopback one, which is how a test makes ARM and the
/// gate see different sources.
pub fn seen_source(sim: &Sim, peer: IpAddr) -> IpAddr {
    let loopback = match peer {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    };
    match sim.world().ip_override {
        Some(public) if loopback && !public.is_loopback() => IpAddr::V4(public),
        _ => peer,
    }
}

async fn admit(sim: Arc<Sim>, mut stream: TcpStream, peer: SocketAddr, endpoint: Endpoint) {
    let source = seen_source(&sim, peer.ip());
    let admitted = is_admitted(&sim, &endpoint.vm, endpoint.port, source);
    let (backend, os) = {
        let mut world = sim.world();
        world.record(
            sim.clock.now(),
            if admitted {
                "gate.admitted"
            } else {
                "gate.refused"
            },
            json!({"vm": endpoint.vm, "port": endpoint.port, "source": source.to_string(), "peer": peer.ip().to_string()}),
        );
        let vm = world
            .vms
            .iter()
            .find(|v| v.id().eq_ignore_ascii_case(&endpoint.vm));
        (vm.and_then(|v| v.backend.clone()), vm.map(|v| v.os))
    };
    if !admitted {
        // Dropping the stream closes it before the client can say anything.
        return;
    }
    drop(sim);
    if let Some(backend) = backend {
        if let Ok(mut upstream) = TcpStream::connect(&backend).await {
            let _ = tokio::io::copy_bidirectional(&mut stream, &mut upstream).await;
        }
        return;
    }
    let ssh = endpoint.port == 22 || (endpoint.port != 3389 && os == Some(OsType::Linux));
    if ssh {
        let _ = stream
            .write_all(b"SSH-2.0-OpenSSH_9.2p1 jumpgate-sim\r\n")
            .await;
    } else if !answer_x224(&mut stream).await {
        return;
    }
    // Hold the connection open until the client leaves, as a real server would.
    let mut sink = [0u8; 4096];
    while let Ok(n) = stream.read(&mut sink).await {
        if n == 0 {
            break;
        }
    }
}

/// Reads an X.224 Connection Request and answers with a Connection Confirm that selects
/// standard RDP security, which is what an RDP server's first packet looks like.
async fn answer_x224(stream: &mut TcpStream) -> bool {
    let mut header = [0u8; 4];
    let read = tokio::time::timeout(Duration::from_secs(30), stream.read_exact(&mut header)).await;
    if !matches!(read, Ok(Ok(_))) || header[0] != 3 {
        return false;
    }
    let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
    if !(7..=4096).contains(&length) {
        return false;
    }
    let mut rest = vec![0u8; length - 4];
    if stream.read_exact(&mut rest).await.is_err() || rest.get(1) != Some(&0xE0) {
        return false;
    }
    const CONFIRM: [u8; 19] = [
        0x03, 0x00, 0x00, 0x13, // TPKT, length 19
        0x0E, 0xD0, 0x00, 0x00, 0x12, 0x34, 0x00, // X.224 Connection Confirm
        0x02, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, // RDP_NEG_RSP: PROTOCOL_RDP
    ];
    stream.write_all(&CONFIRM).await.is_ok()
}
