package admission

import "strings"

// The queue stores one opaque string per user (its "ClientSession"). Admission needs two things
// from it: the newest ClientSession and the client's IP, which CAR's ApplyConcurrent and
// CreateSession want as UserIp. The reaper admits users long after their request is gone, so the
// IP has to travel with the session. The stored form is
//
//	v1|<clientIP>|<clientSession>
//
// The IP never contains '|' (Pack drops any), so the first two separators are unambiguous and the
// ClientSession after them is kept byte for byte, whatever it contains (including '|'). An IP
// longer than MaxIPLen (not an address: a garbled header) is dropped, so the packed form is at
// most len(clientSession)+MaxIPLen+4 bytes (the queue allows 256 bytes of framing).
const packPrefix = "v1|"

// MaxIPLen is the longest client IP Pack keeps (an IPv6 address with a zone fits).
const MaxIPLen = 64

// Pack returns the string to store for a user. An empty clientSession packs to "" so that a
// request without a ClientSession does not overwrite the stored one (the queue refreshes only on
// non-empty values).
func Pack(clientIP, clientSession string) string {
	if clientSession == "" {
		return ""
	}
	ip := strings.ReplaceAll(clientIP, "|", "")
	if len(ip) > MaxIPLen {
		ip = ""
	}
	return packPrefix + ip + "|" + clientSession
}

// Unpack splits a stored string into the client IP and ClientSession. A string that was not made
// by Pack (an older format, or a raw ClientSession) comes back whole as the ClientSession with an
// empty IP, so no stored value can make admission fail here.
func Unpack(stored string) (clientIP, clientSession string) {
	rest, ok := strings.CutPrefix(stored, packPrefix)
	if !ok {
		return "", stored
	}
	ip, session, ok := strings.Cut(rest, "|")
	if !ok {
		return "", stored
	}
	return ip, session
}
