package envconf

import (
	"net"
	"strings"
)

// CIDRs parses a list of trusted proxy addresses for the variable name: each
// item is a CIDR, or a bare address taken as a /32 (or /128). A bad item is
// an Invalid error naming the variable.
func CIDRs(name string, list []string) ([]*net.IPNet, error) {
	var out []*net.IPNet
	for _, p := range list {
		if !strings.Contains(p, "/") {
			if ip := net.ParseIP(p); ip != nil {
				bits := 8 * net.IPv6len
				if ip.To4() != nil {
					ip, bits = ip.To4(), 8*net.IPv4len
				}
				out = append(out, &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)})
				continue
			}
		}
		_, n, err := net.ParseCIDR(p)
		if err != nil {
			return nil, Invalid(name, "%q is not an address or CIDR", p)
		}
		out = append(out, n)
	}
	return out, nil
}
