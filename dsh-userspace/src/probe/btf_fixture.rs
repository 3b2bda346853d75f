//! Small raw BTF blobs for unit tests: the kernel layouts dsh must handle
//! but this machine's kernel does not have (older prototypes and structs).
use std::collections::BTreeMap;

use super::btf::{Btf, Param};

const INT: u32 = 1;
const PTR: u32 = 2;
const ARRAY: u32 = 3;
const STRUCT: u32 = 4;
const ENUM: u32 = 6;
const TYPEDEF: u32 = 8;
const FUNC_PROTO: u32 = 13;

/// A member of a fixture struct.
pub enum Field {
    Int,
    Struct(&'static str),
    /// `n` elements of a struct.
    Array(&'static str, u32),
}

/// A struct: name, size, and (member, type, byte offset)s.
type StructDef = (String, u32, Vec<(String, Field, u32)>);

/// Types added in any order; `build` writes them out as raw BTF.
#[derive(Default)]
pub struct Fixture {
    enums: BTreeMap<String, Vec<String>>,
    tracepoints: Vec<(String, Vec<Param>)>,
    structs: Vec<StructDef>,
}

#[derive(Default)]
struct Writer {
    types: Vec<u8>,
    strings: Vec<u8>,
    next_id: u32,
    structs: BTreeMap<String, u32>,
    int: u32,
}

impl Writer {
    fn string(&mut self, s: &str) -> u32 {
        let off = self.strings.len() as u32;
        self.strings.extend_from_slice(s.as_bytes());
        self.strings.push(0);
        off
    }

    fn ty(&mut self, name: &str, kind: u32, vlen: u32, size_or_type: u32, extra: &[u32]) -> u32 {
        let name = if name.is_empty() {
            0
        } else {
            self.string(name)
        };
        for w in [name, (kind << 24) | vlen, size_or_type]
            .iter()
            .chain(extra)
        {
            self.types.extend_from_slice(&w.to_le_bytes());
        }
        self.next_id += 1;
        self.next_id
    }

    /// A struct's id; one not defined (yet) is an empty, sizeless struct
    /// (a declaration, which struct lookups skip).
    fn struct_id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.structs.get(name) {
            return id;
        }
        let id = self.ty(name, STRUCT, 0, 0, &[]);
        self.structs.insert(name.to_owned(), id);
        id
    }
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
    pub fn strukt(&mut self, name: &str, size: u32, members: Vec<(&str, Field, u32)>) {
        let members = members
            .into_iter()
            .map(|(n, f, o)| (n.to_owned(), f, o))
            .collect();
        self.structs.push((name.to_owned(), size, members));
    }

    pub fn build(&self) -> Btf {
        let mut w = Writer {
            strings: vec![0],
            ..Writer::default()
        };
        w.int = w.ty("int", INT, 0, 4, &[32]);
        for (name, variants) in &self.enums {
            let mut extra = Vec::new();
            for (i, v) in variants.iter().enumerate() {
                extra.extend([w.string(v), i as u32]);
            }
            w.ty(name, ENUM, variants.len() as u32, 4, &extra);
        }
        // Structs with members first, in the order given (define a struct
        // before one that embeds it), so pointers to them find them.
        for (name, size, members) in &self.structs {
            let mut extra = Vec::new();
            for (m, field, off) in members {
                let ty = match field {
                    Field::Int => w.int,
                    Field::Struct(s) => w.struct_id(s),
                    Field::Array(s, n) => {
                        let elem = w.struct_id(s);
                        w.ty("", ARRAY, 0, 0, &[elem, w.int, *n])
                    }
                };
                extra.extend([w.string(m), ty, off * 8]);
            }
            let id = w.ty(name, STRUCT, members.len() as u32, *size, &extra);
            w.structs.insert(name.clone(), id);
        }
        for (tp, params) in &self.tracepoints {
            let void_ptr = w.ty("", PTR, 0, 0, &[]);
            let mut extra = vec![0, void_ptr];
            for p in params {
                let ty = match p {
                    Param::Int => w.int,
                    Param::StructPtr(s) => {
                        let s = w.struct_id(s);
                        w.ty("", PTR, 0, s, &[])
                    }
                    Param::Other => {
                        let int = w.int;
                        w.ty("", PTR, 0, int, &[])
                    }
                };
                extra.extend([0, ty]);
            }
            let proto = w.ty("", FUNC_PROTO, extra.len() as u32 / 2, 0, &extra);
            let ptr = w.ty("", PTR, 0, proto, &[]);
            w.ty(&format!("btf_trace_{tp}"), TYPEDEF, 0, ptr, &[]);
        }
        let mut raw = Vec::new();
        raw.extend_from_slice(&[0x9f, 0xeb, 1, 0]);
        let type_len = w.types.len() as u32;
        for v in [24, 0, type_len, type_len, w.strings.len() as u32] {
            raw.extend_from_slice(&u32::to_le_bytes(v));
        }
        raw.extend_from_slice(&w.types);
        raw.extend_from_slice(&w.strings);
        Btf::parse(&raw).expect("fixture BTF parses")
    }
}
