//! One module per concern; all share `maps`, `kernel` and `failures`.
mod block;
mod cgroup;
mod events;
mod failures;
pub mod kernel;
mod maps;
mod net;
mod oom;
mod sched;
mod signal;
mod syscalls;
mod trace;

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any path that could reach here; there is no
    // unwinding in the kernel.
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
