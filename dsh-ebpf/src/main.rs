//! dsh's kernel programs, one object for `bpfel-unknown-none`.
//!
//! Hooks are BTF tracepoints (`tp_btf`): typed arguments, no tracefs, no
//! kprobes (this kernel has none). Kernel struct fields are read at offsets
//! resolved by user space from the kernel's BTF (see `kernel.rs`).
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
// `core` offers no `fetch_add` on this target (it has no compare-and-swap),
// but LLVM lowers the intrinsic to BPF's `lock add`, which the kernel has.
#![cfg_attr(target_arch = "bpf", feature(core_intrinsics))]
#![cfg_attr(
    target_arch = "bpf",
    expect(internal_features, reason = "atomic_xadd, see above")
)]

#[cfg(target_arch = "bpf")]
pub mod programs;

#[cfg(not(target_arch = "bpf"))]
fn main() {}
