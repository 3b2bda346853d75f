//! A network namespace's listening TCP ports through sock_diag, asking for
//! LISTEN sockets only: the kernel then walks its listening hash alone.
//! `/proc/PID/net/tcp` walks the whole established hash, every bucket, on
//! each read (3.4 ms per read on this project's test host, whatever the
//! namespace holds), which made the ports the agent's largest idle cost.
use std::{fs::File, io};

use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_sock_diag::{
    SockDiagMessage,
    constants::{AF_INET, AF_INET6, IPPROTO_TCP},
    inet::{ExtensionFlags, InetRequest, SocketId, StateFlags},
};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_SOCK_DIAG};
use nix::sched::CloneFlags;

/// One listening socket: for a listener sock_diag's receive queue is its
/// accept queue (connections the kernel completed, not yet accepted) and its
/// send queue the backlog it was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Listener {
    pub port: u16,
    pub queued: u32,
    pub backlog: u32,
}

/// A sock_diag socket inside one network namespace (it pins the namespace
/// while open).
pub struct ListenQuery(Socket);

impl ListenQuery {
    /// A socket in the namespace of process `pid`. A netlink socket answers
    /// for the namespace it was made in, so it is made on a short-lived
    /// thread that enters the namespace; the agent's own threads never move.
    pub fn open(pid: u32) -> io::Result<Self> {
        let ns = File::open(format!("/proc/{pid}/ns/net"))?;
        let made = std::thread::Builder::new()
            .name("dsh-netns".to_owned())
            .spawn(move || -> io::Result<Socket> {
                nix::sched::setns(&ns, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
                let mut socket = Socket::new(NETLINK_SOCK_DIAG)?;
                socket.bind_auto()?;
                socket.connect(&SocketAddr::new(0, 0))?;
                Ok(socket)
            })?
            .join()
            .map_err(|_| io::Error::other("the namespace thread panicked"))?;
        made.map(Self)
    }

    /// The TCP listeners (IPv4 and IPv6), by port.
    pub fn listeners(&self) -> io::Result<Vec<Listener>> {
        let mut found = Vec::new();
        for family in [AF_INET, AF_INET6] {
            self.dump(family, &mut found)?;
        }
        found.sort_unstable_by_key(|l| l.port);
        Ok(found)
    }

    /// The TCP ports listened on (IPv4 and IPv6), sorted, without repeats.
    pub fn ports(&self) -> io::Result<Vec<u16>> {
        Ok(ports_of(&self.listeners()?))
    }

    fn dump(&self, family: u8, found: &mut Vec<Listener>) -> io::Result<()> {
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        let socket_id = if family == AF_INET {
            SocketId::new_v4()
        } else {
            SocketId::new_v6()
        };
        let mut request = NetlinkMessage::new(
            header,
            SockDiagMessage::InetRequest(InetRequest {
                family,
                protocol: IPPROTO_TCP,
                extensions: ExtensionFlags::empty(),
                states: StateFlags::LISTEN,
                socket_id,
            })
            .into(),
        );
        request.finalize();
        let mut out = vec![0; request.buffer_len()];
        request.serialize(&mut out);
        self.0.send(&out, 0)?;

        let mut buf = Vec::with_capacity(32 * 1024);
        loop {
            buf.clear();
            let size = self.0.recv(&mut buf, 0)?;
            let mut offset = 0;
            while offset < size {
                let msg = <NetlinkMessage<SockDiagMessage>>::deserialize(&buf[offset..size])
                    .map_err(|e| io::Error::other(format!("sock_diag reply: {e}")))?;
                match msg.payload {
                    NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(r)) => {
                        found.push(Listener {
                            port: r.header.socket_id.source_port,
                            queued: r.header.recv_queue,
                            backlog: r.header.send_queue,
                        });
                    }
                    NetlinkPayload::Done(_) => return Ok(()),
                    NetlinkPayload::Error(e) => {
                        return Err(e.to_io());
                    }
                    _ => {}
                }
                let len = msg.header.length as usize;
                if len == 0 {
                    break;
                }
                offset += len;
            }
        }
    }
}

/// Listeners with a waiting accept queue kept per namespace.
pub const MAX_QUEUES: usize = 4;

/// Listeners with connections waiting, fullest (against the backlog) first.
pub fn fullest(listeners: &[Listener]) -> Vec<Listener> {
    let mut waiting: Vec<Listener> = listeners.iter().filter(|l| l.queued > 0).copied().collect();
    // queued/backlog compared without division: a/b > c/d as a*d > c*b.
    waiting.sort_by(|a, b| {
        (u64::from(b.queued) * u64::from(a.backlog.max(1)))
            .cmp(&(u64::from(a.queued) * u64::from(b.backlog.max(1))))
            .then(a.port.cmp(&b.port))
    });
    waiting.truncate(MAX_QUEUES);
    waiting
}

/// The ports of `listeners`, sorted, without repeats.
pub fn ports_of(listeners: &[Listener]) -> Vec<u16> {
    let mut ports: Vec<u16> = listeners.iter().map(|l| l.port).collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    #[test]
    fn fullest_listeners_first_and_few() {
        let l = |port, queued, backlog| Listener {
            port,
            queued,
            backlog,
        };
        let all: Vec<Listener> = (0..10)
            .map(|p| l(100 + p, u32::from(p), 10))
            .chain([l(7000, 2, 1), l(80, 0, 0)])
            .collect();
        let kept = fullest(&all);
        assert_eq!(kept.len(), MAX_QUEUES);
        assert_eq!(kept[0], l(7000, 2, 1));
        assert_eq!(kept[1], l(109, 9, 10));
        assert!(kept.iter().all(|k| k.queued > 0));
    }

    /// In the test's own namespace (entering it still takes CAP_SYS_ADMIN,
    /// as the unit tests run: as root): a port this test listens on is
    /// reported, one it closed is not.
    #[test]
    fn own_namespace_listeners() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let q = ListenQuery::open(std::process::id())
            .unwrap_or_else(|e| panic!("sock_diag socket in our own namespace: {e}"));
        assert!(q.ports().expect("dump").contains(&port));
        // A connection completed but not accepted waits in the queue.
        let _client = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let mine = q.listeners().expect("dump");
        let l = mine.iter().find(|l| l.port == port).expect("listed");
        assert_eq!(l.queued, 1, "{l:?}");
        assert!(l.backlog >= 1, "{l:?}");
        drop(listener);
        assert!(!q.ports().expect("dump").contains(&port));
    }
}
