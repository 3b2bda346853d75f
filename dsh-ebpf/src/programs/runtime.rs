//! What every object needs: a panic handler and the licence the kernel
//! checks before it lets programs call GPL-only helpers.

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any path that could reach here; there is no
    // unwinding in the kernel.
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
