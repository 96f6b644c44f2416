package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// ParseSourceAddress checks a source address as written in the file (or
// given on D-Bus or the command line): host[:port], a host being a DNS name,
// an IPv4 address or an IPv6 address ("[2001:db8::1]:123" with a port,
// "2001:db8::1" without). It returns "host:port", with mode's default port
// when none is given.
func ParseSourceAddress(s string, mode SourceMode) (string, error) {
	return normalizeSourceAddress(s, mode.DefaultPort())
}

func normalizeSourceAddress(s string, defaultPort uint16) (string, error) {
	if s == "" {
		return "", errors.New("must not be empty (want host[:port])")
	}
	if strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return "", fmt.Errorf("%q contains spaces or control characters", s)
	}
	host, portText, hasPort := s, "", false
	switch {
	case strings.HasPrefix(s, "["):
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", fmt.Errorf("%q: missing ']'", s)
		}
		host = s[1:end]
		rest := s[end+1:]
		if rest != "" {
			if !strings.HasPrefix(rest, ":") {
				return "", fmt.Errorf("%q: want [address]:port", s)
			}
			portText, hasPort = rest[1:], true
		}
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() || !validZone(a.Zone()) {
			return "", fmt.Errorf("%q: %q in brackets is not an IPv6 address", s, host)
		}
		host = a.String()
	case strings.Count(s, ":") > 1:
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is6() || !validZone(a.Zone()) {
			return "", fmt.Errorf("%q is not an IPv6 address (with a port, write [address]:port)", s)
		}
		host = a.String()
	default:
		if i := strings.IndexByte(s, ':'); i >= 0 {
			host, portText, hasPort = s[:i], s[i+1:], true
		}
		if host == "" {
			return "", fmt.Errorf("%q has no host", s)
		}
		if a, err := netip.ParseAddr(host); err == nil {
			host = a.String()
		} else if err := checkHostname(host); err != nil {
			return "", fmt.Errorf("%q: %v", s, err)
		}
	}
	port := defaultPort
	if hasPort {
		p, err := parsePort(portText)
		if err != nil {
			return "", fmt.Errorf("%q: %v", s, err)
		}
		port = p
	}
	return net.JoinHostPort(host, strconv.Itoa(int(port))), nil
}

// validZone accepts the zones of link-local IPv6 addresses: interface
// names ("eth0", "enp0s31f6", "br-lan.10") or numbers.
func validZone(z string) bool {
	for i := 0; i < len(z); i++ {
		if c := z[i]; !(isBareKeyByte(c) || c == '.' || c == '@') {
			return false
		}
	}
	return true
}

// parsePort accepts 1..65535 in decimal.
func parsePort(s string) (uint16, error) {
	if s == "" {
		return 0, errors.New("empty port")
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("port %q is not a number", s)
		}
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %s is out of range (want 1 to 65535)", s)
	}
	return uint16(n), nil
}

// checkHostname accepts DNS names: labels of letters, digits, '-' and '_'
// (seen in the wild), 1..63 bytes, not starting or ending with '-', 253
// bytes in all, an optional final dot. An all-digit last label is refused,
// since it means a mistyped IPv4 address (like 192.0.2.300).
func checkHostname(h string) error {
	name := strings.TrimSuffix(h, ".")
	if name == "" || len(name) > 253 {
		return fmt.Errorf("%q is not a valid host name", h)
	}
	labels := strings.Split(name, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("%q is not a valid host name", h)
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("%q is not a valid host name or IP address", h)
			}
		}
	}
	last := labels[len(labels)-1]
	if strings.Trim(last, "0123456789") == "" {
		return fmt.Errorf("%q is not a valid IP address", h)
	}
	return nil
}

// parseListen accepts "address:port" with an IP address (IPv6 in
// brackets, optionally with a zone) and a port of 1..65535.
func parseListen(s string) (netip.AddrPort, error) {
	host, portText, err := net.SplitHostPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%q: want address:port, like \"0.0.0.0:123\" or \"[::]:123\"", s)
	}
	a, err := netip.ParseAddr(host)
	if err != nil || !validZone(a.Zone()) {
		return netip.AddrPort{}, fmt.Errorf("%q: %q is not an IP address", s, host)
	}
	port, err := parsePort(portText)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%q: %v", s, err)
	}
	// SplitHostPort also takes "[192.0.2.1]:123"; ParseAddrPort does not.
	if _, err := netip.ParseAddrPort(s); err != nil {
		return netip.AddrPort{}, fmt.Errorf("%q: want address:port, like \"0.0.0.0:123\" or \"[::]:123\"", s)
	}
	return netip.AddrPortFrom(a, port), nil
}

// parsePrefix accepts a CIDR prefix ("192.0.2.0/24", "2001:db8::/32") or a
// single address (as a /32 or /128). Host bits are cleared.
func parsePrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR prefix", s)
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a valid CIDR prefix", s)
	}
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}
