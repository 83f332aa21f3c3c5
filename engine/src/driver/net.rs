//! Socket helpers the reactors share.

use std::io;
use std::mem;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::FromRawFd;

/// Starts a non-blocking TCP connect (returns at once; completion shows as writability).
pub fn connect_nonblocking(addr: SocketAddr) -> io::Result<TcpStream> {
    let domain = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: plain syscall; on success the fd is owned by the TcpStream built below.
    let fd = unsafe {
        libc::socket(
            domain,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh socket we own; the stream closes it on drop, also on error.
    let stream = unsafe { TcpStream::from_raw_fd(fd) };
    let (storage, len) = sockaddr(addr);
    // SAFETY: `storage` holds a valid sockaddr of `len` bytes for the socket's family.
    let rc = unsafe { libc::connect(fd, (&storage as *const libc::sockaddr_storage).cast(), len) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(e);
        }
    }
    Ok(stream)
}

/// A `sockaddr_storage` for `addr` and its length.
pub fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v4.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in fits in sockaddr_storage; both are plain old data.
            unsafe {
                std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin);
            }
            mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: v6.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: v6.scope_id(),
            };
            // SAFETY: sockaddr_in6 fits in sockaddr_storage; both are plain old data.
            unsafe {
                std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6);
            }
            mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// The address in the raw `sockaddr` bytes a kernel wrote (`sockaddr_in` or `sockaddr_in6`,
/// possibly followed by padding), or `None` for another family or too few bytes.
pub fn socket_addr_from_bytes(bytes: &[u8]) -> Option<SocketAddr> {
    let family = libc::sa_family_t::from_ne_bytes(bytes.get(..2)?.try_into().ok()?);
    match libc::c_int::from(family) {
        libc::AF_INET if bytes.len() >= mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the length is checked above; sockaddr_in is plain old data, and the read
            // is unaligned because `bytes` carries no alignment guarantee.
            let sin: libc::sockaddr_in = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
            let ip = std::net::Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::from((ip, u16::from_be(sin.sin_port))))
        }
        libc::AF_INET6 if bytes.len() >= mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6: libc::sockaddr_in6 =
                unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
            let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// The IP and UDP header bytes in front of a datagram's payload.
fn ip_udp_overhead(peer: SocketAddr) -> usize {
    if peer.is_ipv4() { 20 + 8 } else { 40 + 8 }
}

/// The largest UDP payload that reaches `peer` without IP fragmentation: the route's MTU as
/// the kernel knows it (`IP_MTU` / `IPV6_MTU` on a socket connected to `peer`; that includes
/// what path-MTU discovery learnt), less the IP and UDP headers, and never above the largest
/// datagram UDP carries. Falls back to a 1,500-byte Ethernet MTU if the kernel cannot say.
pub fn udp_payload_max(peer: SocketAddr) -> usize {
    let overhead = ip_udp_overhead(peer);
    let datagram_max = 65_535 - overhead;
    let fallback = 1500 - overhead;
    let Ok(socket) = std::net::UdpSocket::bind(if peer.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    }) else {
        return fallback;
    };
    if socket.connect(peer).is_err() {
        return fallback;
    }
    let (level, name) = if peer.is_ipv4() {
        (libc::IPPROTO_IP, libc::IP_MTU)
    } else {
        (libc::IPPROTO_IPV6, libc::IPV6_MTU)
    };
    let mut mtu: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `socket` is open for the call; `mtu` and `len` are valid for writes of an int.
    let rc = unsafe {
        libc::getsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&socket),
            level,
            name,
            (&mut mtu as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc < 0 || mtu <= 0 {
        return fallback;
    }
    (mtu as usize).saturating_sub(overhead).min(datagram_max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_path_takes_large_datagrams() {
        // Loopback's MTU is 65,536: the payload is capped by UDP itself.
        assert_eq!(udp_payload_max("127.0.0.1:9".parse().unwrap()), 65_535 - 28);
    }
}
