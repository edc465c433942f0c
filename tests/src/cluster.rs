//! A Redis Cluster of a test's own on loopback: 3 masters and 3 replicas, each a
//! `redis-server` child process, with a one-second node timeout so a failover takes about
//! two seconds. Stopped and removed when dropped; never the shared Redis.

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::{TestDir, test_dir, wait_for_redis};

const NODES: usize = 6;
/// How long a cluster may take to form, or to recover from a failover.
const SETTLE_WITHIN: Duration = Duration::from_secs(30);

pub struct OwnCluster {
    nodes: Vec<Node>,
    dir: TestDir,
}

struct Node {
    port: u16,
    child: Option<Child>,
}

impl OwnCluster {
    /// A cluster shared by the tests of this process running at the same time (each in a
    /// namespace of its own), started by the first and stopped when the last one drops it;
    /// `None` as for [`OwnCluster::start`]. Tests that kill nodes or move slots start their
    /// own.
    pub fn shared() -> Option<Arc<Self>> {
        static SHARED: Mutex<Weak<OwnCluster>> = Mutex::new(Weak::new());
        let mut shared = SHARED
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(cluster) = shared.upgrade() {
            return Some(cluster);
        }
        let cluster = Arc::new(Self::start()?);
        *shared = Arc::downgrade(&cluster);
        Some(cluster)
    }

    /// Starts the cluster and waits until every slot is served and every replica is in
    /// sync; `None`, saying why, where `redis-server` or `redis-cli` cannot run a cluster.
    pub fn start() -> Option<Self> {
        if let Err(why) = cluster_support() {
            eprintln!("skipped: no Redis Cluster on this machine ({why})");
            return None;
        }
        let dir = test_dir("lockstep-redis-cluster");
        let ports = free_ports(NODES);
        let mut cluster = Self {
            nodes: ports
                .iter()
                .map(|&port| Node { port, child: None })
                .collect(),
            dir,
        };
        for index in 0..NODES {
            cluster.spawn(index);
        }
        let addresses: Vec<String> = ports
            .iter()
            .map(|port| format!("127.0.0.1:{port}"))
            .collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            created.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&created.stderr)
        );
        cluster.wait_until_settled();
        Some(cluster)
    }

    /// `redis+cluster://` naming every node.
    pub fn url(&self) -> String {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port))
            .collect();
        format!("redis+cluster://{}", nodes.join(","))
    }

    /// The ports of the masters serving slots now.
    pub fn masters(&self) -> Vec<u16> {
        self.cluster_nodes()
            .into_iter()
            .filter(|node| node.master && node.connected && !node.slots.is_empty())
            .map(|node| node.port)
            .collect()
    }

    /// The port of the master serving `slot` now.
    pub fn master_of(&self, slot: u16) -> u16 {
        self.cluster_nodes()
            .into_iter()
            .find(|node| node.master && node.connected && node.serves(slot))
            .map(|node| node.port)
            .unwrap_or_else(|| panic!("no master serves slot {slot}"))
    }

    /// SIGKILL for the node on `port`: its replica takes over after the node timeout.
    pub fn kill(&mut self, port: u16) {
        let node = self
            .nodes
            .iter_mut()
            .find(|node| node.port == port)
            .expect("a node of this cluster");
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits until every live node says the cluster is ok, every slot is served by a
    /// connected master, and every live replica is in sync with its master.
    pub fn wait_until_settled(&self) {
        let deadline = Instant::now() + SETTLE_WITHIN;
        loop {
            if self.settled() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster did not settle within {SETTLE_WITHIN:?}:\n{}",
                self.cli(self.live_port(), &["cluster", "nodes"])
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Moves `slot` (with its keys) from the master on `from` to the master on `to` the way
    /// `redis-cli --cluster reshard` does: importing/migrating marks, `MIGRATE` of the
    /// keys in batches, then the new owner told to every master. Clients see `ASK`
    /// redirections while it runs and `MOVED` after.
    pub fn migrate_slot(&self, slot: u16, from: u16, to: u16) {
        let slot = slot.to_string();
        let (from_id, to_id) = (self.node_id(from), self.node_id(to));
        self.cli_ok(to, &["cluster", "setslot", &slot, "importing", &from_id]);
        self.cli_ok(from, &["cluster", "setslot", &slot, "migrating", &to_id]);
        loop {
            let keys = self.cli(from, &["cluster", "getkeysinslot", &slot, "10"]);
            let keys: Vec<&str> = keys.lines().filter(|key| !key.is_empty()).collect();
            if keys.is_empty() {
                break;
            }
            let to_port = to.to_string();
            let mut migrate = vec!["migrate", "127.0.0.1", &to_port, "", "0", "5000", "keys"];
            migrate.extend(&keys);
            self.cli_ok(from, &migrate);
            // Slowly, so reads run while the slot is half moved.
            std::thread::sleep(Duration::from_millis(20));
        }
        for port in [to, from] {
            self.cli_ok(port, &["cluster", "setslot", &slot, "node", &to_id]);
        }
        for master in self.masters() {
            if master != to && master != from {
                self.cli_ok(master, &["cluster", "setslot", &slot, "node", &to_id]);
            }
        }
    }

    /// The slot of `key` (`CLUSTER KEYSLOT`).
    pub fn slot_of(&self, key: &[u8]) -> u16 {
        let key = String::from_utf8_lossy(key).into_owned();
        self.cli(self.live_port(), &["cluster", "keyslot", &key])
            .trim()
            .parse()
            .expect("a slot number")
    }

    /// `redis-cli -p port args…`'s output.
    pub fn cli(&self, port: u16, args: &[&str]) -> String {
        let output = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(args)
            .output()
            .expect("run redis-cli");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn cli_ok(&self, port: u16, args: &[&str]) {
        let answer = self.cli(port, args);
        assert!(
            answer.trim() == "OK" || answer.trim() == "NOKEY",
            "redis-cli -p {port} {}: {answer}",
            args.join(" ")
        );
    }

    fn node_id(&self, port: u16) -> String {
        self.cli(port, &["cluster", "myid"]).trim().to_owned()
    }

    fn live_port(&self) -> u16 {
        self.nodes
            .iter()
            .find(|node| node.child.is_some())
            .expect("a live node")
            .port
    }

    fn settled(&self) -> bool {
        let live: Vec<u16> = self
            .nodes
            .iter()
            .filter(|node| node.child.is_some())
            .map(|node| node.port)
            .collect();
        let ok = live.iter().all(|&port| {
            self.cli(port, &["cluster", "info"])
                .contains("cluster_state:ok")
        });
        let nodes = self.cluster_nodes();
        let served: usize = nodes
            .iter()
            .filter(|node| node.master && node.connected)
            .flat_map(|node| &node.slots)
            .map(|(first, last)| usize::from(last - first) + 1)
            .sum();
        let in_sync = nodes
            .iter()
            .filter(|node| !node.master && live.contains(&node.port))
            .all(|node| {
                self.cli(node.port, &["info", "replication"])
                    .contains("master_link_status:up")
            });
        ok && served == 16_384 && in_sync
    }

    /// `CLUSTER NODES` as a live node sees it.
    fn cluster_nodes(&self) -> Vec<NodeInfo> {
        self.cli(self.live_port(), &["cluster", "nodes"])
            .lines()
            .filter_map(NodeInfo::parse)
            .collect()
    }

    fn spawn(&mut self, index: usize) {
        let port = self.nodes[index].port;
        let config = self.dir.join(format!("nodes-{port}.conf"));
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "1000"])
            .arg("--cluster-config-file")
            .arg(&config)
            .arg("--dir")
            .arg(&*self.dir)
            .args(["--save", "", "--appendonly", "no"])
            .args([
                "--repl-diskless-sync",
                "yes",
                "--repl-diskless-sync-delay",
                "0",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is on the PATH");
        self.nodes[index].child = Some(child);
        wait_for_redis(port);
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// One line of `CLUSTER NODES`.
struct NodeInfo {
    port: u16,
    master: bool,
    connected: bool,
    slots: Vec<(u16, u16)>,
}

impl NodeInfo {
    fn parse(line: &str) -> Option<Self> {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let address = fields.get(1)?.split('@').next()?;
        let port = address.rsplit_once(':')?.1.parse().ok()?;
        let flags = fields.get(2)?;
        let slots = fields
            .iter()
            .skip(8)
            .filter(|range| !range.starts_with('['))
            .filter_map(|range| match range.split_once('-') {
                Some((first, last)) => Some((first.parse().ok()?, last.parse().ok()?)),
                None => range.parse().ok().map(|slot| (slot, slot)),
            })
            .collect();
        Some(Self {
            port,
            master: flags.contains("master"),
            connected: *fields.get(7)? == "connected" && !flags.contains("fail"),
            slots,
        })
    }

    fn serves(&self, slot: u16) -> bool {
        self.slots
            .iter()
            .any(|&(first, last)| (first..=last).contains(&slot))
    }
}

/// Why this machine cannot run a cluster, if it cannot.
fn cluster_support() -> Result<(), String> {
    let help = Command::new("redis-cli")
        .args(["--cluster", "help"])
        .output()
        .map_err(|e| format!("redis-cli: {e}"))?;
    let text = String::from_utf8_lossy(&help.stdout) + String::from_utf8_lossy(&help.stderr);
    if !text.contains("create") {
        return Err("redis-cli has no --cluster create".into());
    }
    let version = Command::new("redis-server")
        .arg("--version")
        .output()
        .map_err(|e| format!("redis-server: {e}"))?;
    let version = String::from_utf8_lossy(&version.stdout);
    let major: u32 = version
        .split("v=")
        .nth(1)
        .and_then(|v| v.split('.').next())
        .and_then(|major| major.parse().ok())
        .ok_or_else(|| format!("unknown redis-server version: {version}"))?;
    if major < 5 {
        return Err(format!("redis-server {major}.x is older than 5"));
    }
    Ok(())
}

/// `count` loopback ports that are free along with their cluster bus ports (port + 10000),
/// below the kernel's ephemeral range so an outgoing socket cannot take a bus port.
fn free_ports(count: usize) -> Vec<u16> {
    use std::sync::atomic::{AtomicU16, Ordering};
    // Clusters started at once by this process (or by others) start their search apart.
    static STARTED: AtomicU16 = AtomicU16::new(0);
    let mut ports = Vec::with_capacity(count);
    let spread =
        (std::process::id() % 500) as u16 * 11 + STARTED.fetch_add(1, Ordering::Relaxed) * 97;
    let mut candidate = 10_000 + spread % 11_000;
    while ports.len() < count {
        candidate = if candidate >= 21_990 {
            10_000
        } else {
            candidate + 1
        };
        let free = |port: u16| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
        if free(candidate) && free(candidate + 10_000) {
            ports.push(candidate);
        }
    }
    ports
}
