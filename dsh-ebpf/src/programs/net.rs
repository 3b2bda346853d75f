//! TCP listening sockets, for the `endpoint` column; connects (`tcp`).
use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};
use dsh_ebpf::{ListenEvent, TCP_LISTEN, channel, kind};

use super::{
    events::{emit, header},
    failures::count,
    kernel::{Failure, off, read},
};

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

/// `inet_sock_set_state(const struct sock *sk, const int oldstate, const int newstate)`:
/// a socket entering or leaving `TCP_LISTEN`.
#[btf_tracepoint(function = "inet_sock_set_state")]
pub fn dsh_inet_sock_set_state(ctx: BtfTracePointContext) -> u32 {
    let sk: *const u8 = ctx.arg(0);
    let old_state: i32 = ctx.arg(1);
    let new_state: i32 = ctx.arg(2);
    super::tcp::on_state(sk, old_state, new_state);
    if old_state != TCP_LISTEN as i32 && new_state != TCP_LISTEN as i32 {
        return 0;
    }
    emit::<ListenEvent>(channel::CHATTY, |e| {
        e.hdr = header(kind::LISTEN);
        e.old_state = old_state as u16;
        e.new_state = new_state as u16;
        if let Err(f) = fill_socket(e, sk) {
            count(f);
        }
    });
    0
}

#[inline(always)]
fn fill_socket(e: &mut ListenEvent, sk: *const u8) -> Result<(), Failure> {
    let family: u16 = read(sk, off!(skc_family))?;
    e.family = family;
    e.port = read(sk, off!(skc_num))?;
    if family == AF_INET {
        let a: [u8; 4] = read(sk, off!(skc_rcv_saddr))?;
        e.addr[..4].copy_from_slice(&a);
    } else if family == AF_INET6 {
        e.addr = read(sk, off!(skc_v6_rcv_saddr))?;
    }
    Ok(())
}
