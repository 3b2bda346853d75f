//! Decoding ring-buffer records into owned, printable events.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use dsh_ebpf::{
    CgroupEvent, EventHeader, ExecEvent, ExitEvent, ListenEvent, OomEvent, OutsideSignal, kind,
};
use serde::Serialize;

use crate::{
    cgroup::CgroupId,
    signal::{ExitStatus, Signal},
};

/// What every event says about the task the kernel was running.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Task {
    pub pid: u32,
    pub tgid: u32,
    pub comm: String,
    pub cgroup_id: CgroupId,
}

/// An OOM victim's memory cgroup at the moment of the kill.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct VictimMemory {
    pub used_bytes: u64,
    /// `None` when unlimited.
    pub limit_bytes: Option<u64>,
}

/// Limits from here up are the kernel's "no limit" (`PAGE_COUNTER_MAX`
/// pages, about 2^63 bytes); no real limit comes near.
const NO_LIMIT: u64 = 1 << 62;

impl VictimMemory {
    /// The figures of an `OomEvent`: none when the kernel read none (a
    /// memcg at an OOM kill is never empty, so a zero use is "not read").
    fn of(e: &OomEvent) -> Option<Self> {
        (e.mem_usage_bytes != 0).then(|| Self {
            used_bytes: e.mem_usage_bytes,
            limit_bytes: (e.mem_limit_bytes < NO_LIMIT).then_some(e.mem_limit_bytes),
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    Exec {
        ppid: u32,
        filename: String,
    },
    /// A process (the last thread of a thread group) ended.
    Exit {
        ppid: u32,
        /// Its exit code, or the signal that killed it.
        status: ExitStatus,
        start_ns: u64,
        /// For a cgroup's main process: the last stop signal, then the last
        /// other default-fatal signal, sent to it from outside its cgroup.
        outside: Vec<SignalSender>,
    },
    Oom {
        victim_pid: u32,
        victim_tgid: u32,
        victim_cgroup_id: CgroupId,
        /// The victim's memory cgroup at the kill, read in the kernel;
        /// `None` where it could not be (see `OomEvent`).
        memory: Option<VictimMemory>,
    },
    CgroupMkdir {
        id: CgroupId,
        level: u32,
        hierarchy_id: u32,
        path: String,
    },
    CgroupRmdir {
        id: CgroupId,
        level: u32,
        hierarchy_id: u32,
        path: String,
    },
    Listen {
        addr: IpAddr,
        port: u16,
        /// true when the socket started listening, false when it stopped.
        listening: bool,
    },
}

/// Who sent a signal, as the kernel noted it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SignalSender {
    pub signal: Signal,
    pub pid: u32,
    pub comm: String,
}

impl SignalSender {
    /// None for an empty slot.
    fn of(s: &OutsideSignal) -> Option<Self> {
        (s.signal != 0).then(|| Self {
            signal: Signal::from_raw(s.signal),
            pid: s.sender_tgid,
            comm: c_str(&s.sender_comm),
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Event {
    /// Nanoseconds since boot (`CLOCK_BOOTTIME`).
    pub boot_ns: u64,
    pub cpu: u32,
    pub task: Task,
    #[serde(flatten)]
    pub kind: EventKind,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("ring-buffer record of {len} bytes is too short for kind {kind}")]
    Short { kind: u32, len: usize },
    #[error("ring-buffer record has unknown kind {0}")]
    UnknownKind(u32),
}

/// A NUL-terminated kernel string; anything after the NUL is ignored and
/// invalid UTF-8 becomes `\xNN` escapes (comm and cgroup names are the
/// container's choice). Control characters stay: the terminal gate is
/// `untrusted::name`.
pub fn c_str(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    crate::untrusted::from_utf8_escaped(&bytes[..end]).into_owned()
}

fn read<T: aya::Pod>(bytes: &[u8], kind: u32) -> Result<T, DecodeError> {
    if bytes.len() < size_of::<T>() {
        return Err(DecodeError::Short {
            kind,
            len: bytes.len(),
        });
    }
    // SAFETY: length checked; T is Pod (valid for any bit pattern);
    // read_unaligned needs no alignment.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

impl Event {
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let hdr: EventHeader = read(bytes, 0)?;
        let k = hdr.kind;
        let kind = match k {
            kind::EXEC => {
                let e: ExecEvent = read(bytes, k)?;
                EventKind::Exec {
                    ppid: e.ppid,
                    filename: c_str(&e.filename),
                }
            }
            kind::EXIT => {
                let e: ExitEvent = read(bytes, k)?;
                EventKind::Exit {
                    ppid: e.ppid,
                    status: ExitStatus::from_wait(e.exit_code),
                    start_ns: e.start_ns,
                    outside: [e.outside.stop, e.outside.other]
                        .iter()
                        .filter_map(SignalSender::of)
                        .collect(),
                }
            }
            kind::OOM => {
                let e: OomEvent = read(bytes, k)?;
                EventKind::Oom {
                    victim_pid: e.victim_pid,
                    victim_tgid: e.victim_tgid,
                    victim_cgroup_id: CgroupId::new(e.victim_cgroup_id),
                    memory: VictimMemory::of(&e),
                }
            }
            kind::CGROUP_MKDIR | kind::CGROUP_RMDIR => {
                let e: CgroupEvent = read(bytes, k)?;
                let (id, level, hierarchy_id, path) =
                    (CgroupId::new(e.id), e.level, e.hierarchy_id, c_str(&e.path));
                if k == kind::CGROUP_MKDIR {
                    EventKind::CgroupMkdir {
                        id,
                        level,
                        hierarchy_id,
                        path,
                    }
                } else {
                    EventKind::CgroupRmdir {
                        id,
                        level,
                        hierarchy_id,
                        path,
                    }
                }
            }
            kind::LISTEN => {
                let e: ListenEvent = read(bytes, k)?;
                let addr = if e.family == libc::AF_INET6 as u16 {
                    IpAddr::V6(Ipv6Addr::from(e.addr))
                } else {
                    IpAddr::V4(Ipv4Addr::new(e.addr[0], e.addr[1], e.addr[2], e.addr[3]))
                };
                EventKind::Listen {
                    addr,
                    port: e.port,
                    listening: e.new_state == dsh_ebpf::TCP_LISTEN,
                }
            }
            other => return Err(DecodeError::UnknownKind(other)),
        };
        Ok(Self {
            boot_ns: hdr.ts_ns,
            cpu: hdr.cpu,
            task: Task {
                pid: hdr.pid,
                tgid: hdr.tgid,
                comm: c_str(&hdr.comm),
                cgroup_id: CgroupId::new(hdr.cgroup_id),
            },
            kind,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsh_ebpf::OutsideSignals;

    fn header(kind: u32) -> EventHeader {
        let mut comm = [0u8; 16];
        comm[..4].copy_from_slice(b"sh\0x");
        EventHeader {
            kind,
            cpu: 1,
            ts_ns: 42,
            cgroup_id: 7,
            pid: 10,
            tgid: 10,
            comm,
        }
    }

    fn bytes<T: aya::Pod>(v: &T) -> Vec<u8> {
        // SAFETY: Pod types have no padding; reading their bytes is defined.
        unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
    }

    #[test]
    fn decodes_exit_with_core() {
        let e = ExitEvent {
            hdr: header(kind::EXIT),
            exit_code: 11 | 0x80,
            ppid: 1,
            start_ns: 5,
            outside: OutsideSignals::default(),
        };
        let ev = Event::decode(&bytes(&e)).unwrap();
        assert_eq!(ev.task.comm, "sh");
        assert_eq!(ev.task.cgroup_id, CgroupId::new(7));
        assert_eq!(
            ev.kind,
            EventKind::Exit {
                ppid: 1,
                status: ExitStatus::Killed {
                    signal: Signal::from_raw(11),
                    core_dumped: true
                },
                start_ns: 5,
                outside: Vec::new(),
            }
        );
    }

    #[test]
    fn exit_names_the_outside_senders_of_its_filled_slots() {
        let outside = OutsideSignals {
            stop: OutsideSignal::default(),
            other: OutsideSignal {
                signal: 10,
                sender_tgid: 812,
                target_tgid: 10,
                _pad: 0,
                sender_comm: fixed(b"bash"),
            },
        };
        let e = ExitEvent {
            hdr: header(kind::EXIT),
            exit_code: 10,
            ppid: 1,
            start_ns: 5,
            outside,
        };
        let ev = Event::decode(&bytes(&e)).unwrap();
        let EventKind::Exit { outside, .. } = ev.kind else {
            panic!("{ev:?}")
        };
        assert_eq!(
            outside,
            [SignalSender {
                signal: Signal::from_raw(10),
                pid: 812,
                comm: "bash".into()
            }]
        );
    }

    #[test]
    fn short_and_unknown_records_are_errors() {
        let e = ExitEvent {
            hdr: header(kind::EXIT),
            exit_code: 0,
            ppid: 1,
            start_ns: 5,
            outside: OutsideSignals::default(),
        };
        let b = bytes(&e);
        assert!(matches!(
            Event::decode(&b[..50]),
            Err(DecodeError::Short { kind: 2, .. })
        ));
        assert!(matches!(
            Event::decode(&b[..3]),
            Err(DecodeError::Short { .. })
        ));
        let unknown = bytes(&header(99));
        assert_eq!(Event::decode(&unknown), Err(DecodeError::UnknownKind(99)));
    }

    fn fixed<const N: usize>(s: &[u8]) -> [u8; N] {
        let mut out = [0u8; N];
        out[..s.len()].copy_from_slice(s);
        out
    }

    /// One record of every kind, hostile strings included: the seeds of the
    /// `ring_record` fuzz target.
    #[test]
    fn every_kind_decodes_and_seeds_the_fuzzer() {
        let mut hostile = header(kind::EXEC);
        hostile.comm = fixed(b"\x1b]0;x\x07\xff\xfe");
        let records: [(&str, Vec<u8>); 8] = [
            (
                "exec",
                bytes(&ExecEvent {
                    hdr: hostile,
                    ppid: 1,
                    old_pid: 10,
                    filename: fixed(b"/bin/\x1b[31msh"),
                }),
            ),
            (
                "exit",
                bytes(&ExitEvent {
                    hdr: header(kind::EXIT),
                    exit_code: 15,
                    ppid: 1,
                    start_ns: 5,
                    outside: OutsideSignals {
                        stop: OutsideSignal {
                            signal: 15,
                            sender_tgid: 812,
                            target_tgid: 10,
                            _pad: 0,
                            sender_comm: fixed(b"\x1b]2;pwn\x07"),
                        },
                        other: OutsideSignal::default(),
                    },
                }),
            ),
            (
                "oom",
                bytes(&OomEvent {
                    hdr: header(kind::OOM),
                    victim_pid: 11,
                    victim_tgid: 11,
                    victim_cgroup_id: 7,
                    mem_usage_bytes: 32 << 20,
                    mem_limit_bytes: 32 << 20,
                }),
            ),
            (
                "oom-no-memcg",
                bytes(&OomEvent {
                    hdr: header(kind::OOM),
                    victim_pid: 12,
                    victim_tgid: 12,
                    victim_cgroup_id: 7,
                    mem_usage_bytes: 0,
                    mem_limit_bytes: 0,
                }),
            ),
            (
                "oom-unlimited",
                bytes(&OomEvent {
                    hdr: header(kind::OOM),
                    victim_pid: 13,
                    victim_tgid: 13,
                    victim_cgroup_id: 7,
                    mem_usage_bytes: 5 << 30,
                    // PAGE_COUNTER_MAX pages of 4 KiB.
                    mem_limit_bytes: (i64::MAX as u64 / 4096) * 4096,
                }),
            ),
            (
                "cgroup-mkdir",
                bytes(&CgroupEvent {
                    hdr: header(kind::CGROUP_MKDIR),
                    id: 4242,
                    level: 1,
                    hierarchy_id: 0,
                    path: fixed(b"/evil\x1b[31mRED\x1b]0;title\x07\xff"),
                }),
            ),
            (
                "listen-v4",
                bytes(&ListenEvent {
                    hdr: header(kind::LISTEN),
                    family: libc::AF_INET as u16,
                    port: 6379,
                    old_state: 7,
                    new_state: dsh_ebpf::TCP_LISTEN,
                    addr: fixed(&[172, 17, 0, 2]),
                }),
            ),
            (
                "listen-v6",
                bytes(&ListenEvent {
                    hdr: header(kind::LISTEN),
                    family: libc::AF_INET6 as u16,
                    port: 80,
                    old_state: dsh_ebpf::TCP_LISTEN,
                    new_state: 7,
                    addr: fixed(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
                }),
            ),
        ];
        for (name, record) in &records {
            let ev = Event::decode(record).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(ev.task.cgroup_id, CgroupId::new(7), "{name}");
            crate::fuzz_seeds::seed("ring_record", name, record);
        }
        let memory = |name: &str| {
            let (_, record) = records.iter().find(|(n, _)| *n == name).unwrap();
            match Event::decode(record).unwrap().kind {
                EventKind::Oom { memory, .. } => memory,
                other => panic!("{name}: {other:?}"),
            }
        };
        assert_eq!(
            memory("oom"),
            Some(VictimMemory {
                used_bytes: 32 << 20,
                limit_bytes: Some(32 << 20)
            })
        );
        assert_eq!(memory("oom-no-memcg"), None);
        assert_eq!(
            memory("oom-unlimited"),
            Some(VictimMemory {
                used_bytes: 5 << 30,
                limit_bytes: None
            })
        );
        let exec = Event::decode(&records[0].1).unwrap();
        assert_eq!(exec.task.comm, "\x1b]0;x\x07\\xff\\xfe");
        assert!(
            matches!(exec.kind, EventKind::Exec { filename, .. } if filename == "/bin/\x1b[31msh")
        );
    }

    #[test]
    fn comm_with_invalid_utf8_is_escaped() {
        assert_eq!(c_str(b"a\xffb\0zz"), "a\\xffb");
        assert_eq!(c_str(b"full"), "full");
    }
}
