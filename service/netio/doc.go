// Package netio owns the UDP sockets of the NTP client and server and the
// kernel timestamps that come with their datagrams.
//
// It moves bytes and times only: it knows nothing of the NTP wire format.
//
// The client side (Dial, ClientConn) opens one connected UDP socket per
// exchange with a fresh ephemeral source port and asks the kernel for
// software receive timestamps and, where the kernel gives them, software
// transmit timestamps read back from the socket's error queue.
//
// The server side (ListenServer, AdoptServer, ServerConn) reads and writes
// datagrams in batches with recvmmsg/sendmmsg, learns from IP_PKTINFO /
// IPV6_PKTINFO which local address each request was sent to so that the reply
// leaves from that same address, and stamps each request with the kernel's
// receive time. In steady state neither side allocates per packet: the
// message headers, I/O vectors, address and control buffers are allocated
// once per socket.
//
// Sockets stay in Go's netpoller: reads and writes go through
// syscall.RawConn callbacks, so Close and context cancellation (which sets a
// read deadline in the past) interrupt a blocked read.
//
// Linux only.
package netio
