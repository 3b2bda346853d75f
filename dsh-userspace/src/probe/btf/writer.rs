//! Writes small raw BTF blobs (the format of `/sys/kernel/btf/vmlinux`), for
//! tests that need a kernel other than the running one and for the fuzz
//! target's seed: a damaged vmlinux starts from a well-formed one.
//! Layout per the kernel's Documentation/bpf/btf.rst. `Fixture` builds on
//! it for tests that describe a kernel by name (older prototypes and
//! structs this machine's kernel does not have).
use std::collections::BTreeMap;

use super::{
    Btf, Header, KIND_ARRAY, KIND_ENUM, KIND_FUNC_PROTO, KIND_INT, KIND_PTR, KIND_STRUCT,
    KIND_TYPEDEF, KIND_UNION, Param,
};

/// Builds one BTF blob; type ids are given out in order, from 1.
pub struct BtfWriter {
    types: Vec<u8>,
    strings: Vec<u8>,
    next_id: u32,
}

impl Default for BtfWriter {
    fn default() -> Self {
        Self {
            types: Vec::new(),
            strings: vec![0], // offset 0 is the empty name
            next_id: 1,
        }
    }
}

impl BtfWriter {
    fn name(&mut self, s: &str) -> u32 {
        if s.is_empty() {
            return 0;
        }
        let off = self.strings.len() as u32;
        self.strings.extend_from_slice(s.as_bytes());
        self.strings.push(0);
        off
    }

    fn put(&mut self, words: &[u32]) {
        for w in words {
            self.types.extend_from_slice(&w.to_le_bytes());
        }
    }

    fn head(&mut self, name: &str, kind: u32, vlen: usize, size_or_type: u32) -> u32 {
        let name = self.name(name);
        self.put(&[name, (kind << 24) | vlen as u32, size_or_type]);
        self.next_id += 1;
        self.next_id - 1
    }

    /// A signed integer of `size` bytes.
    pub fn int(&mut self, name: &str, size: u32) -> u32 {
        let id = self.head(name, KIND_INT, 0, size);
        // encoding: signed, offset 0, `size * 8` bits.
        self.put(&[(1 << 24) | (size * 8)]);
        id
    }

    pub fn ptr(&mut self, to: u32) -> u32 {
        self.head("", KIND_PTR, 0, to)
    }

    /// `elem[n]`, indexed by the integer type `index`.
    pub fn array(&mut self, elem: u32, index: u32, n: u32) -> u32 {
        let id = self.head("", KIND_ARRAY, 0, 0);
        self.put(&[elem, index, n]);
        id
    }

    /// A struct (or, with `union`, a union) with (name, type, byte offset)
    /// members; an empty name is an anonymous member.
    pub fn composite(
        &mut self,
        name: &str,
        union: bool,
        size: u32,
        members: &[(&str, u32, u32)],
    ) -> u32 {
        let kind = if union { KIND_UNION } else { KIND_STRUCT };
        let id = self.head(name, kind, members.len(), size);
        for &(m, ty, byte_off) in members {
            let m = self.name(m);
            self.put(&[m, ty, byte_off * 8]);
        }
        id
    }

    pub fn enumeration(&mut self, name: &str, values: &[(&str, i32)]) -> u32 {
        let id = self.head(name, KIND_ENUM, values.len(), 4);
        for &(v, n) in values {
            let v = self.name(v);
            self.put(&[v, n as u32]);
        }
        id
    }

    pub fn typedef(&mut self, name: &str, to: u32) -> u32 {
        self.head(name, KIND_TYPEDEF, 0, to)
    }

    pub fn func_proto(&mut self, ret: u32, params: &[u32]) -> u32 {
        let id = self.head("", KIND_FUNC_PROTO, params.len(), ret);
        for &p in params {
            self.put(&[0, p]);
        }
        id
    }

    /// The blob: header, types, strings.
    pub fn finish(self) -> Vec<u8> {
        let type_len = self.types.len() as u32;
        let mut out = Vec::new();
        Header {
            hdr_len: Header::LEN as u32,
            type_off: 0,
            type_len,
            str_off: type_len,
            str_len: self.strings.len() as u32,
        }
        .write(&mut out);
        out.extend_from_slice(&self.types);
        out.extend_from_slice(&self.strings);
        out
    }
}

/// Every struct member `resolve_offsets` reads, each member `i` of a struct
/// at byte offset `8 * i`. (`sock_common`'s are laid out by hand below.)
pub const KERNEL_STRUCTS: &[(&str, &[&str])] = &[
    (
        "task_struct",
        &[
            "pid",
            "tgid",
            "comm",
            "cgroups",
            "exit_code",
            "signal",
            "real_parent",
            "start_time",
        ],
    ),
    ("css_set", &["dfl_cgrp", "subsys"]),
    ("cgroup_subsys_state", &["cgroup"]),
    ("cgroup", &["kn", "level", "root"]),
    ("cgroup_root", &["hierarchy_id"]),
    ("kernfs_node", &["id", "name"]),
    ("signal_struct", &["live"]),
    ("request", &["cmd_flags", "__data_len", "bio"]),
    ("bio", &["bi_blkg"]),
    ("blkcg_gq", &["blkcg"]),
    ("blkcg", &["css"]),
    ("linux_binprm", &["filename"]),
    ("mem_cgroup", &["css", "memory"]),
    ("page_counter", &["usage", "max"]),
];

/// `memory_cgrp_id` in the synthetic kernel's `enum cgroup_subsys_id`.
pub const MEMORY_CGRP_ID: i32 = 4;

/// A small kernel's BTF: what dsh resolves at load time, with an anonymous
/// union and struct in `sock_common` (as the real one has) and the
/// `sys_exit` tracepoint's prototype.
pub fn synthetic_kernel() -> Vec<u8> {
    let mut w = BtfWriter::default();
    let long = w.int("long", 8);
    let short = w.int("short unsigned int", 2);
    for (name, members) in KERNEL_STRUCTS {
        let m: Vec<(&str, u32, u32)> = members
            .iter()
            .enumerate()
            .map(|(i, member)| (*member, long, 8 * i as u32))
            .collect();
        w.composite(name, false, 8 * members.len() as u32, &m);
    }
    // sock_common { skc_family @0; union { struct { skc_dport @8; skc_num
    // @10 } } @8; skc_rcv_saddr @16; skc_v6_rcv_saddr @24 }
    let ports = w.composite(
        "",
        false,
        4,
        &[("skc_dport", short, 0), ("skc_num", short, 2)],
    );
    let union = w.composite("", true, 4, &[("", ports, 0)]);
    let sock_common = w.composite(
        "sock_common",
        false,
        40,
        &[
            ("skc_family", short, 0),
            ("", union, 8),
            ("skc_rcv_saddr", long, 16),
            ("skc_v6_rcv_saddr", long, 24),
        ],
    );
    w.composite(
        "sock",
        false,
        48,
        &[("__sk_common", sock_common, 0), ("sk_err", long, 40)],
    );
    w.enumeration(
        "cgroup_subsys_id",
        &[("cpuset_cgrp_id", 0), ("memory_cgrp_id", MEMORY_CGRP_ID)],
    );
    let ctx = w.ptr(0);
    let proto = w.func_proto(0, &[ctx, long, long]);
    let ptr = w.ptr(proto);
    w.typedef("btf_trace_sys_exit", ptr);
    w.finish()
}

/// A member of a `Fixture` struct.
pub enum Field {
    Int,
    Struct(&'static str),
    /// `n` elements of a struct.
    Array(&'static str, u32),
}

/// A struct: name, size, and (member, type, byte offset)s.
type StructDef = (String, u32, Vec<(String, Field, u32)>);

/// A kernel described by name, types added in any order; `build` writes it
/// out and parses it.
#[derive(Default)]
pub struct Fixture {
    enums: BTreeMap<String, Vec<String>>,
    tracepoints: Vec<(String, Vec<Param>)>,
    structs: Vec<StructDef>,
}

impl Fixture {
    pub fn enum_value(&mut self, enum_name: &str, variant: &str) {
        self.enums
            .entry(enum_name.to_owned())
            .or_default()
            .push(variant.to_owned());
    }

    /// `typedef void (*btf_trace_<tp>)(void *, params...)`.
    pub fn tracepoint(&mut self, tp: &str, params: &[Param]) {
        self.tracepoints.retain(|(t, _)| t != tp);
        self.tracepoints.push((tp.to_owned(), params.to_vec()));
    }

    /// `struct name` of `size` bytes with `(member, type, byte offset)`s.
    /// Define a struct before one that embeds it.
    pub fn strukt(&mut self, name: &str, size: u32, members: Vec<(&str, Field, u32)>) {
        let members = members
            .into_iter()
            .map(|(n, f, o)| (n.to_owned(), f, o))
            .collect();
        self.structs.push((name.to_owned(), size, members));
    }

    pub fn build(&self) -> Btf {
        let mut w = BtfWriter::default();
        let int = w.int("int", 4);
        // A struct not defined (yet) is an empty, sizeless one: a
        // declaration, which struct lookups skip.
        let mut structs: BTreeMap<String, u32> = BTreeMap::new();
        let mut struct_id = |w: &mut BtfWriter, name: &str| {
            *structs
                .entry(name.to_owned())
                .or_insert_with(|| w.composite(name, false, 0, &[]))
        };
        for (name, variants) in &self.enums {
            let values: Vec<(&str, i32)> = variants
                .iter()
                .enumerate()
                .map(|(i, v)| (v.as_str(), i as i32))
                .collect();
            w.enumeration(name, &values);
        }
        let mut defined = BTreeMap::new();
        for (name, size, members) in &self.structs {
            let mut m = Vec::new();
            for (member, field, off) in members {
                let ty = match field {
                    Field::Int => int,
                    Field::Struct(s) => defined
                        .get(*s)
                        .copied()
                        .unwrap_or_else(|| struct_id(&mut w, s)),
                    Field::Array(s, n) => {
                        let elem = defined
                            .get(*s)
                            .copied()
                            .unwrap_or_else(|| struct_id(&mut w, s));
                        w.array(elem, int, *n)
                    }
                };
                m.push((member.as_str(), ty, *off));
            }
            let id = w.composite(name, false, *size, &m);
            defined.insert(name.as_str(), id);
        }
        for (tp, params) in &self.tracepoints {
            let mut types = vec![w.ptr(0)];
            for p in params {
                let ty = match p {
                    Param::Int => int,
                    Param::StructPtr(s) => {
                        let s = defined
                            .get(s.as_str())
                            .copied()
                            .unwrap_or_else(|| struct_id(&mut w, s));
                        w.ptr(s)
                    }
                    Param::Other => w.ptr(int),
                };
                types.push(ty);
            }
            let proto = w.func_proto(0, &types);
            let ptr = w.ptr(proto);
            w.typedef(&format!("btf_trace_{tp}"), ptr);
        }
        Btf::parse(&w.finish()).expect("fixture BTF parses")
    }
}
