//! One module per concern; all share `maps` and `kernel`.
mod block;
mod cgroup;
mod churn;
mod events;
pub mod kernel;
mod maps;
mod net;
mod oom;
mod sched;
mod signal;
mod syscalls;
mod trace;
mod wakeup;

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any path that could reach here; there is no
    // unwinding in the kernel.
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
