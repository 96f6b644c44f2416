package config

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// goldenName is the file name every golden case is parsed under.
const goldenName = "/etc/gnomon/gnomon.toml"

// Golden error messages: each bad configuration with every error it must
// produce, in file order, each naming its line and key.
var goldenCases = []struct {
	name string
	in   string
	want []string
}{
	{"typo in a source mode", `# A configuration with a typo in its second source.

[clock]
step-threshold = 0.1

[synchronization]
minimum-agreeing-sources = 1

[[source]]
mode = "nts"
address = "time.cloudflare.com"

[[source]]
mode = "sever"
address = "ntp.example.org"
`, []string{
		goldenName + `:14: source[1].mode: unknown mode "sever" (want server, pool, nts, gpsd, pps, shm, sock, ptp or csptp)`,
	}},
	{"unknown table", "[[sources]]\nmode = \"server\"\naddress = \"a.example\"\n", []string{
		goldenName + `:1: sources: unknown key (did you mean source?)`,
	}},
	{"unknown keys everywhere", `[clock]
step-treshold = 0.1
[synchronization]
minimum-sources = 2
[[source]]
mode = "server"
address = "a.example"
poll-interval-limits = { min = 4, mx = 8 }
maxpoll = 10
[[server]]
listen = "127.0.0.1:11123"
rate-limit = { interval = 1, burst = 4, leak = 2 }
allowlist = { filter = ["127.0.0.0/8"], action = "ignore", log = true }
[log]
verbose = true
[frobnicate]
x = 1
`, []string{
		goldenName + `:2: clock.step-treshold: unknown key (did you mean step-threshold?)`,
		goldenName + `:4: synchronization.minimum-sources: unknown key (want one of minimum-agreeing-sources, max-distance, accuracy, local-stratum, leap-seconds-file)`,
		goldenName + `:8: source[0].poll-interval-limits.mx: unknown key (did you mean max?)`,
		goldenName + `:9: source[0].maxpoll: unknown key (chrony's maxpoll is poll-interval-limits = { max = ... })`,
		goldenName + `:12: server[0].rate-limit.leak: unknown key (want one of interval, burst, kod, table-size)`,
		goldenName + `:13: server[0].allowlist.log: unknown key (want one of filter, action)`,
		goldenName + `:15: log.verbose: unknown key (want one of level, format)`,
		goldenName + `:16: frobnicate: unknown key (want one of clock, synchronization, source-defaults, source, server, nts-ke-server, ptp-port, csptp-server, log, security, authentication, dhcp)`,
	}},
	{"wrong types", `[clock]
step-threshold = "0.1"
step-limit = 2.5
drift-file = false
max-frequency = nan
panic-threshold = 1979-05-27
[synchronization]
local-stratum = 3.0
max-distance = [1, 2]
[[source]]
mode = 1
address = "a.example"
iburst = "yes"
poll-interval-limits = 4
[log]
level = ["info"]
[security]
seccomp = 1
`, []string{
		goldenName + `:2: clock.step-threshold: want a number, got the string "0.1"`,
		goldenName + `:3: clock.step-limit: want an integer, got the float 2.5`,
		goldenName + `:4: clock.drift-file: want a string, got the boolean false`,
		goldenName + `:5: clock.max-frequency: want a finite number, got the float NaN`,
		goldenName + `:6: clock.panic-threshold: want a number, got a date-time`,
		goldenName + `:8: synchronization.local-stratum: want an integer, got the float 3.0`,
		goldenName + `:9: synchronization.max-distance: want a number, got an array`,
		goldenName + `:11: source[0].mode: want a string, got the integer 1`,
		goldenName + `:13: source[0].iburst: want true or false, got the string "yes"`,
		goldenName + `:14: source[0].poll-interval-limits: want a table, got the integer 4`,
		goldenName + `:16: log.level: want a string, got an array`,
		goldenName + `:18: security.seccomp: want true or false, got the integer 1`,
	}},
	{"sections of the wrong type", "clock = 5\nsource = \"ntp.example.org\"\nlog = []\n[[server]]\nlisten = \"[::1]:123\"\nallowlist = [\"::1\"]\n", []string{
		goldenName + `:1: clock: want a table, got the integer 5`,
		goldenName + `:2: source: want an array of tables ([[source]]), got the string "ntp.example.org"`,
		goldenName + `:3: log: want a table, got an array`,
		goldenName + `:6: server[0].allowlist: want a table, got an array`,
	}},
	{"impossible clock values", `[clock]
step-threshold = -0.1
step-limit = -2
panic-threshold = -1
max-frequency = 501
drift-file = "var/lib/gnomon/drift"
`, []string{
		goldenName + `:2: clock.step-threshold: must not be negative (got -0.1)`,
		goldenName + `:3: clock.step-limit: must be -1 (always) or at least 0 (got -2)`,
		goldenName + `:4: clock.panic-threshold: must not be negative (got -1; 0 means no limit)`,
		goldenName + `:5: clock.max-frequency: must be between 1 and 500 ppm (got 501)`,
		goldenName + `:6: clock.drift-file: "var/lib/gnomon/drift" is not an absolute path`,
	}},
	{"panic threshold below step threshold", "[clock]\nstep-threshold = 2\npanic-threshold = 1\n", []string{
		goldenName + `:3: clock.panic-threshold: 1 s is below step-threshold (2 s); want 0 (no limit) or at least step-threshold`,
	}},
	{"too large a duration", "[clock]\npanic-threshold = 1e12\n", []string{
		goldenName + `:2: clock.panic-threshold: 1e+12 s is too large (at most 1e+09)`,
	}},
	{"impossible synchronization values", `[synchronization]
minimum-agreeing-sources = 0
max-distance = 0
accuracy = 1e-7
local-stratum = 17
`, []string{
		goldenName + `:2: synchronization.minimum-agreeing-sources: must be at least 1 (got 0)`,
		goldenName + `:3: synchronization.max-distance: must be more than 0 (got 0)`,
		goldenName + `:4: synchronization.accuracy: must be between 0.000001 and 10 s (got 1e-07)`,
		goldenName + `:5: synchronization.local-stratum: must be between 1 and 16 (got 17)`,
	}},
	{"poll interval limits", `[source-defaults]
poll-interval-limits = { min = -7, max = 18 }
[[source]]
mode = "server"
address = "a.example"
poll-interval-limits = { min = 12, max = 10 }
[[source]]
mode = "server"
address = "b.example"
poll-interval-limits.min = 11
`, []string{
		goldenName + `:2: source-defaults.poll-interval-limits.min: must be between -6 and 17 (log2 seconds; got -7)`,
		goldenName + `:2: source-defaults.poll-interval-limits.max: must be between -6 and 17 (log2 seconds; got 18)`,
		goldenName + `:6: source[0].poll-interval-limits: min (12) is larger than max (10)`,
	}},
	{"bad addresses", `[[source]]
mode = "server"
address = ""
[[source]]
mode = "server"
address = "ntp.example.org:0"
[[source]]
mode = "pool"
address = "pool.example.org:65536"
[[source]]
mode = "nts"
address = "2001:db8::1:4460:x"
[[source]]
mode = "server"
address = "ntp..example.org"
[[source]]
mode = "server"
address = "a.example:123"
[[source]]
mode = "server"
address = "A.example"
`, []string{
		goldenName + `:3: source[0].address: must not be empty (want host[:port])`,
		goldenName + `:6: source[1].address: "ntp.example.org:0": port 0 is out of range (want 1 to 65535)`,
		goldenName + `:9: source[2].address: "pool.example.org:65536": port 65536 is out of range (want 1 to 65535)`,
		goldenName + `:12: source[3].address: "2001:db8::1:4460:x" is not an IPv6 address (with a port, write [address]:port)`,
		goldenName + `:15: source[4].address: "ntp..example.org": "ntp..example.org" is not a valid host name`,
		goldenName + `:21: source[6].address: A.example:123 is the same address as source[5]`,
	}},
	{"missing mode and address", "[[source]]\n\n[[source]]\nmode = \"pool\"\n", []string{
		goldenName + `:1: source[0].mode: missing (want server, pool, nts, gpsd, pps, shm, sock, ptp or csptp)`,
		goldenName + `:1: source[0].address: missing (want host[:port])`,
		goldenName + `:3: source[1].address: missing (want host[:port])`,
	}},
	{"mode-only keys", `[[source]]
mode = "server"
address = "a.example"
count = 4
certificate-authority = "/etc/ssl/certs"
[[source]]
mode = "pool"
address = "pool.example"
count = 17
[[source]]
mode = "nts"
address = "nts.example"
certificate-authority = "/nonexistent/ca.pem"
[[source]]
mode = "nts"
address = "nts2.example"
certificate-authority = "/"
[[source]]
mode = "frobnicate"
address = "127.0.0.1:2947"
count = 2
`, []string{
		goldenName + `:4: source[0].count: only allowed with mode = "pool"`,
		goldenName + `:5: source[0].certificate-authority: only allowed with mode = "nts"`,
		goldenName + `:9: source[1].count: must be between 1 and 16 (got 17)`,
		goldenName + `:13: source[2].certificate-authority: /nonexistent/ca.pem: no such file or directory`,
		goldenName + `:17: source[3].certificate-authority: / is a directory`,
		goldenName + `:19: source[4].mode: unknown mode "frobnicate" (want server, pool, nts, gpsd, pps, shm, sock, ptp or csptp)`,
	}},
	{"sources as an inline array", `source = [
  { mode = "server", address = "a.example" },
  { mode = "server", adress = "b.example" },
]
`, []string{
		goldenName + `:3: source[1].adress: unknown key (did you mean address?)`,
		goldenName + `:3: source[1].address: missing (want host[:port])`,
	}},
	{"servers", `[[server]]
listen = "0.0.0.0:123"
allowlist = { filter = ["10.0.0.0/33", "192.0.2.0/24", 5, "fe80::1%eth0"], action = "drop" }
denylist = { filter = "192.0.2.0/24" }
[[server]]
listen = "0.0.0.0:123"
allowlist = { filter = [] }
rate-limit = { interval = 1, burst = 0, table-size = 16777217 }
workers = -1
[[server]]
listen = "localhost:123"
[[server]]
listen = "[::]"
[[server]]
rate-limit = { interval = -1 }
`, []string{
		goldenName + `:3: server[0].allowlist.filter[0]: "10.0.0.0/33" is not a valid CIDR prefix`,
		goldenName + `:3: server[0].allowlist.filter[2]: want a string, got the integer 5`,
		goldenName + `:3: server[0].allowlist.filter[3]: "fe80::1%eth0" is not an IP address or CIDR prefix`,
		goldenName + `:3: server[0].allowlist.action: unknown action "drop" (want ignore or deny)`,
		goldenName + `:4: server[0].denylist.filter: want an array of addresses or CIDR prefixes, got the string "192.0.2.0/24"`,
		goldenName + `:6: server[1].listen: 0.0.0.0:123 is already used by server[0]`,
		goldenName + `:7: server[1].allowlist.filter: an empty allowlist refuses every client; list prefixes, or remove allowlist to serve everyone`,
		goldenName + `:8: server[1].rate-limit.burst: must be between 1 and 65535 (got 0)`,
		goldenName + `:8: server[1].rate-limit.table-size: must be between 1 and 16777216 (got 16777217)`,
		goldenName + `:9: server[1].workers: must be between 0 (one per CPU) and 1024 (got -1)`,
		goldenName + `:11: server[2].listen: "localhost:123": "localhost" is not an IP address`,
		goldenName + `:13: server[3].listen: "[::]": want address:port, like "0.0.0.0:123" or "[::]:123"`,
		goldenName + `:14: server[4].listen: missing (want address:port, like "[::]:123")`,
		goldenName + `:15: server[4].rate-limit.interval: must be between 0 (off) and 4096 s (got -1)`,
	}},
	{"nts-ke servers", `[[nts-ke-server]]
listen = "[::]:4460"
key-exchange-timeout = 0
[[nts-ke-server]]
listen = "[::]:4460"
certificate-chain-path = "chain.pem"
private-key-path = "/nonexistent/key.pem"
`, []string{
		goldenName + `:1: nts-ke-server[0].certificate-chain-path: missing`,
		goldenName + `:1: nts-ke-server[0].private-key-path: missing`,
		goldenName + `:3: nts-ke-server[0].key-exchange-timeout: must be more than 0 and at most 3600 s (got 0)`,
		goldenName + `:5: nts-ke-server[1].listen: [::]:4460 is already used by nts-ke-server[0]`,
		goldenName + `:6: nts-ke-server[1].certificate-chain-path: "chain.pem" is not an absolute path`,
		goldenName + `:7: nts-ke-server[1].private-key-path: /nonexistent/key.pem: no such file or directory`,
	}},
	{"not a table in an array of sources", `source = [
  "ntp.example.org",
  { mode = "server", address = "b.example", count = 2 },
]
`, []string{
		goldenName + `:2: source[0]: want a table, got the string "ntp.example.org"`,
		goldenName + `:3: source[1].count: only allowed with mode = "pool"`,
	}},
	{"log", "[log]\nlevel = \"verbose\"\nformat = \"xml\"\n", []string{
		goldenName + `:2: log.level: unknown level "verbose" (want debug, info, warn or error)`,
		goldenName + `:3: log.format: unknown format "xml" (want auto, text or json)`,
	}},
	{"TOML syntax error", "[clock]\nstep-threshold = \n", []string{
		goldenName + `:2:18: invalid TOML: expected value but found '\n' instead`,
	}},
	{"TOML duplicate key", "[clock]\nstep-limit = 1\nstep-limit = 2\n", []string{
		goldenName + `:3:16: invalid TOML: Key 'clock.step-limit' has already been defined.`,
	}},
	{"TOML unterminated table", "[clock\nstep-limit = 1\n", []string{
		goldenName + `:2:7: invalid TOML: expected '.' or ']' to end table name, but got '\n' instead`,
	}},
	{"errors under quoted and dotted keys", "[clock]\n\"step threshold\" = 1\n[synchronization.\"max.distance\"]\nx = 1\n", []string{
		goldenName + `:2: clock."step threshold": unknown key (did you mean step-threshold?)`,
		goldenName + `:3: synchronization."max.distance": unknown key (did you mean max-distance?)`,
	}},
	{"lines past multi-line strings", "[clock]\ndrift-file = \"\"\"\n[[source]]\nmode = \"x\"\n\"\"\"\nstep-limit = \"many\"\n", []string{
		goldenName + `:2: clock.drift-file: "[[source]]\nmode = \"x\"\n" is not an absolute path`,
		goldenName + `:6: clock.step-limit: want an integer, got the string "many"`,
	}},
}

func TestGoldenErrors(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse(goldenName, []byte(tc.in), Options{CanSetClock: true})
			if c != nil {
				t.Errorf("Parse returned a config along with errors")
			}
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("Parse error = %v (%T), want Errors", err, err)
			}
			var got []string
			for _, e := range es {
				got = append(got, e.Error())
				if e.Line == 0 {
					t.Errorf("no line: %v", e)
				}
			}
			if os.Getenv("GOLDEN_PRINT") != "" {
				t.Logf("%s", strings.Join(got, "\n"))
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}
