//! A small reader for raw BTF (the kernel's `/sys/kernel/btf/vmlinux`):
//! struct member offsets, struct sizes, enum values and tracepoint
//! prototypes. It knows nothing of dsh; `offsets.rs` asks it for what the
//! programs read.
//!
//! Hand-written on purpose: btf-rs (the crate that reads these) is LGPL,
//! and aya-obj, which parses the same bytes for the loader, keeps its type
//! and string accessors crate-private.
#[cfg(any(test, fuzzing))]
pub mod writer;

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error("reading {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("malformed BTF: {0}")]
    Malformed(&'static str),
    #[error("BTF has no struct {0}")]
    NoStruct(String),
    #[error("BTF struct {strukt} has no member {member}")]
    NoMember { strukt: String, member: String },
    #[error("BTF member {strukt}.{member} is a bitfield or not byte aligned")]
    Bitfield { strukt: String, member: String },
    #[error("BTF has no enum value {enum_name}::{variant}")]
    NoEnumValue { enum_name: String, variant: String },
}

/// Real kernels nest anonymous structs and unions three or four deep.
const MAX_ANONYMOUS_DEPTH: usize = 16;
/// Members looked at in one search; `task_struct` has a few hundred.
const MAX_MEMBER_VISITS: usize = 1 << 16;

const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

#[derive(Clone, Debug)]
struct Member {
    name: u32,
    ty: u32,
    /// Bit offset; `bitfield_size` is non-zero for bitfields.
    bit_offset: u32,
    bitfield_size: u32,
}

#[derive(Clone, Debug)]
struct Type {
    name: u32,
    kind: u32,
    /// Size for int/struct/union/enum; referenced type for ptr/typedef/...
    size_or_type: u32,
    members: Vec<Member>,
    /// (name, value) for enums; (name, type) for function prototypes.
    values: Vec<(u32, i64)>,
}

pub struct Btf {
    /// Index 0 is `void`.
    types: Vec<Type>,
    strings: Vec<u8>,
}

fn u32_at(b: &[u8], off: usize) -> Result<u32, BtfError> {
    b.get(off..off + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or(BtfError::Malformed("truncated"))
}

/// `struct btf_header`, the first bytes of a raw BTF blob: the magic
/// 0xeb9f, version, flags, then five u32s. The section offsets count from
/// the end of the header (`hdr_len` bytes). The reader and `writer` share
/// this one layout.
struct Header {
    hdr_len: u32,
    type_off: u32,
    type_len: u32,
    str_off: u32,
    str_len: u32,
}

impl Header {
    /// The header as the kernel writes it (a longer one is allowed).
    const LEN: usize = 24;
    /// 0xeb9f, little-endian (the only byte order this reader takes).
    const MAGIC: [u8; 2] = 0xeb9f_u16.to_le_bytes();

    fn read(b: &[u8]) -> Result<Self, BtfError> {
        if b.len() < Self::LEN || b[0..2] != Self::MAGIC {
            return Err(BtfError::Malformed("bad magic (not little-endian raw BTF)"));
        }
        let word = |i: usize| u32_at(b, 4 + 4 * i);
        Ok(Self {
            hdr_len: word(0)?,
            type_off: word(1)?,
            type_len: word(2)?,
            str_off: word(3)?,
            str_len: word(4)?,
        })
    }

    #[cfg(any(test, fuzzing))]
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&Self::MAGIC);
        out.extend_from_slice(&[1, 0]); // version 1, no flags
        let words = [
            self.hdr_len,
            self.type_off,
            self.type_len,
            self.str_off,
            self.str_len,
        ];
        for w in words {
            out.extend_from_slice(&w.to_le_bytes());
        }
    }
}

/// Where the running kernel publishes its own BTF.
pub const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

/// The raw bytes of a BTF file, for this reader and aya's loader alike
/// (the file is several MiB: read it once).
pub fn read(path: &Path) -> Result<Vec<u8>, BtfError> {
    std::fs::read(path).map_err(|source| BtfError::Io {
        path: path.display().to_string(),
        source,
    })
}

impl Btf {
    pub fn parse(b: &[u8]) -> Result<Self, BtfError> {
        let h = Header::read(b)?;
        let section = |off: u32, len: u32| {
            let start = (h.hdr_len as usize)
                .checked_add(off as usize)
                .ok_or(BtfError::Malformed("offset"))?;
            b.get(
                start
                    ..start
                        .checked_add(len as usize)
                        .ok_or(BtfError::Malformed("length"))?,
            )
            .ok_or(BtfError::Malformed("section outside the data"))
        };
        let tsec = section(h.type_off, h.type_len)?;
        let strings = section(h.str_off, h.str_len)?.to_vec();
        let mut types = vec![Type {
            name: 0,
            kind: 0,
            size_or_type: 0,
            members: vec![],
            values: vec![],
        }];
        let mut p = 0;
        while p < tsec.len() {
            let name = u32_at(tsec, p)?;
            let info = u32_at(tsec, p + 4)?;
            let size_or_type = u32_at(tsec, p + 8)?;
            p += 12;
            let kind = (info >> 24) & 0x1f;
            let vlen = (info & 0xffff) as usize;
            let kind_flag = info >> 31 == 1;
            let mut t = Type {
                name,
                kind,
                size_or_type,
                members: vec![],
                values: vec![],
            };
            match kind {
                KIND_INT | KIND_VAR | KIND_DECL_TAG => p += 4,
                KIND_ARRAY => p += 12,
                KIND_STRUCT | KIND_UNION => {
                    for _ in 0..vlen {
                        let off = u32_at(tsec, p + 8)?;
                        let (bit_offset, bitfield_size) = if kind_flag {
                            (off & 0xff_ffff, off >> 24)
                        } else {
                            (off, 0)
                        };
                        t.members.push(Member {
                            name: u32_at(tsec, p)?,
                            ty: u32_at(tsec, p + 4)?,
                            bit_offset,
                            bitfield_size,
                        });
                        p += 12;
                    }
                }
                KIND_ENUM => {
                    for _ in 0..vlen {
                        t.values
                            .push((u32_at(tsec, p)?, u32_at(tsec, p + 4)? as i32 as i64));
                        p += 8;
                    }
                }
                KIND_ENUM64 => {
                    for _ in 0..vlen {
                        let lo = u32_at(tsec, p + 4)? as u64;
                        let hi = u32_at(tsec, p + 8)? as u64;
                        t.values.push((u32_at(tsec, p)?, ((hi << 32) | lo) as i64));
                        p += 12;
                    }
                }
                KIND_FUNC_PROTO => {
                    for _ in 0..vlen {
                        t.values
                            .push((u32_at(tsec, p)?, u32_at(tsec, p + 4)? as i64));
                        p += 8;
                    }
                }
                KIND_DATASEC => p += 12 * vlen,
                0 | 20.. => return Err(BtfError::Malformed("unknown type kind")),
                _ => {}
            }
            types.push(t);
        }
        Ok(Self { types, strings })
    }

    fn name(&self, off: u32) -> &str {
        let s = self.strings.get(off as usize..).unwrap_or_default();
        let end = s.iter().position(|&c| c == 0).unwrap_or(s.len());
        std::str::from_utf8(&s[..end]).unwrap_or("")
    }

    fn ty(&self, id: u32) -> Option<&Type> {
        self.types.get(id as usize)
    }

    /// Follows typedefs and qualifiers to the underlying type.
    fn resolve(&self, mut id: u32) -> Option<&Type> {
        for _ in 0..32 {
            let t = self.ty(id)?;
            match t.kind {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    id = t.size_or_type
                }
                _ => return Some(t),
            }
        }
        None
    }

    fn find_composite(&self, name: &str) -> Result<&Type, BtfError> {
        self.types
            .iter()
            .find(|t| {
                (t.kind == KIND_STRUCT || t.kind == KIND_UNION)
                    && t.size_or_type > 0
                    && self.name(t.name) == name
            })
            .ok_or_else(|| BtfError::NoStruct(name.to_owned()))
    }

    /// Bit offset of `member` in `t`, searching anonymous members too.
    fn find_member<'a>(&'a self, t: &'a Type, member: &str) -> Option<(u32, &'a Member)> {
        let mut budget = MAX_MEMBER_VISITS;
        self.find_member_within(t, member, 0, &mut budget)
    }

    /// `find_member` to a bounded depth and number of members looked at: a
    /// damaged BTF can make anonymous members a cycle (a struct inside
    /// itself) or a wide tree whose walk would never end.
    fn find_member_within<'a>(
        &'a self,
        t: &'a Type,
        member: &str,
        depth: usize,
        budget: &mut usize,
    ) -> Option<(u32, &'a Member)> {
        for m in &t.members {
            *budget = budget.checked_sub(1)?;
            if self.name(m.name) == member {
                return Some((m.bit_offset, m));
            }
        }
        if depth == MAX_ANONYMOUS_DEPTH {
            return None;
        }
        for m in t.members.iter().filter(|m| m.name == 0) {
            let Some(inner) = self.resolve(m.ty) else {
                continue;
            };
            if let Some((off, found)) = self.find_member_within(inner, member, depth + 1, budget) {
                return Some((m.bit_offset.checked_add(off)?, found));
            }
        }
        None
    }

    /// Byte offset of `path` (member names, nested) in `struct strukt`.
    pub fn member_offset(&self, strukt: &str, path: &[&str]) -> Result<u32, BtfError> {
        let mut t = self.find_composite(strukt)?;
        let mut bits = 0;
        for (i, member) in path.iter().enumerate() {
            let err = || BtfError::NoMember {
                strukt: strukt.to_owned(),
                member: path[..=i].join("."),
            };
            let (off, m) = self.find_member(t, member).ok_or_else(err)?;
            if m.bitfield_size != 0 || off % 8 != 0 {
                return Err(BtfError::Bitfield {
                    strukt: strukt.to_owned(),
                    member: path.join("."),
                });
            }
            bits = off
                .checked_add(bits)
                .ok_or(BtfError::Malformed("member offset overflows"))?;
            if i + 1 < path.len() {
                t = self.resolve(m.ty).ok_or_else(err)?;
            }
        }
        Ok(bits / 8)
    }

    /// `sizeof(struct name)`.
    pub fn struct_size(&self, name: &str) -> Result<u32, BtfError> {
        Ok(self.find_composite(name)?.size_or_type)
    }

    pub fn enum_value(&self, enum_name: &str, variant: &str) -> Result<i64, BtfError> {
        self.types
            .iter()
            .filter(|t| {
                (t.kind == KIND_ENUM || t.kind == KIND_ENUM64) && self.name(t.name) == enum_name
            })
            .flat_map(|t| t.values.iter())
            .find(|(n, _)| self.name(*n) == variant)
            .map(|&(_, v)| v)
            .ok_or_else(|| BtfError::NoEnumValue {
                enum_name: enum_name.to_owned(),
                variant: variant.to_owned(),
            })
    }

    /// The arguments of tracepoint `tp` (from `btf_trace_<tp>`), not
    /// counting the leading context pointer; `None` when it does not exist.
    pub fn tracepoint_params(&self, tp: &str) -> Option<Vec<Param>> {
        let name = format!("btf_trace_{tp}");
        let td = self
            .types
            .iter()
            .find(|t| t.kind == KIND_TYPEDEF && self.name(t.name) == name)?;
        let ptr = self.ty(td.size_or_type).filter(|t| t.kind == KIND_PTR)?;
        let proto = self
            .ty(ptr.size_or_type)
            .filter(|t| t.kind == KIND_FUNC_PROTO)?;
        Some(
            proto
                .values
                .iter()
                .skip(1)
                .map(|&(_, ty)| self.param(ty as u32))
                .collect(),
        )
    }

    fn param(&self, ty: u32) -> Param {
        match self.resolve(ty) {
            Some(t) if t.kind == KIND_INT || t.kind == KIND_ENUM => Param::Int,
            Some(t) if t.kind == KIND_PTR => match self.resolve(t.size_or_type) {
                Some(s) if s.kind == KIND_STRUCT => Param::StructPtr(self.name(s.name).to_owned()),
                _ => Param::Other,
            },
            _ => Param::Other,
        }
    }
}

/// A tracepoint argument's type, as far as the loader tells them apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Param {
    /// An integer or enum (typedefs resolved).
    Int,
    /// A pointer to `struct <name>`.
    StructPtr(String),
    Other,
}

#[cfg(test)]
mod tests;
