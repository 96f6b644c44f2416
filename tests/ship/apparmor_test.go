package ship

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gnomon.dev/gnomon/tests/peers"
)

const profile = "debian/usr.sbin.gnomond"

// TestAppArmorParses compiles the profile with apparmor_parser without
// loading it (this kernel has no AppArmor), and checks that a broken copy
// does not compile.
func TestAppArmorParses(t *testing.T) {
	parser := peers.NeedTool(t, "apparmor_parser")
	path := abs(t, profile)
	code, out := run(t, filepath.Dir(path), parser, "-Q", "-K", path)
	if code != 0 {
		t.Fatalf("apparmor_parser -Q -K %s: exit %d\n%s", profile, code, out)
	}
	code, out = run(t, filepath.Dir(path), parser, "-Q", "-K", "-d", path)
	if code != 0 || !strings.Contains(out, "sys_time") {
		t.Errorf("the compiled profile does not grant sys_time (exit %d):\n%s", code, out)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "usr.sbin.gnomond")
	broken := strings.Replace(string(b), "  /usr/sbin/gnomond mr,", "  /usr/sbin/gnomond mr", 1)
	if broken == string(b) {
		t.Fatal("negative control did not change the profile")
	}
	if err := os.WriteFile(bad, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _ := run(t, filepath.Dir(bad), parser, "-Q", "-K", bad); code == 0 {
		t.Error("apparmor_parser accepted a profile with a syntax error")
	}
}

// fileRule is one path rule of the profile.
type fileRule struct {
	re    *regexp.Regexp
	perms string
	text  string
}

var ruleRE = regexp.MustCompile(`^\s*((?:/|@\{)\S*)\s+([rwaklmix]+),\s*$`)

// apparmorGlob turns an AppArmor path glob (with the variables this profile
// uses) into an anchored regular expression.
func apparmorGlob(g string) *regexp.Regexp {
	vars := map[string]string{"@{run}": "{/run,/var/run}", "@{sys}": "/sys", "@{PROC}": "/proc", "@{pid}": "\x00", "@{tid}": "\x00"}
	for k, v := range vars {
		g = strings.ReplaceAll(g, k, v)
	}
	var sb strings.Builder
	sb.WriteString("^")
	for i := 0; i < len(g); i++ {
		switch c := g[i]; c {
		case 0:
			sb.WriteString("[0-9]+")
		case '*':
			if i+1 < len(g) && g[i+1] == '*' {
				sb.WriteString(".*")
				i++
			} else {
				sb.WriteString("[^/]*")
			}
		case '?':
			sb.WriteString("[^/]")
		case '{':
			sb.WriteString("(?:")
		case '}':
			sb.WriteString(")")
		case ',':
			sb.WriteString("|")
		case '[':
			j := strings.IndexByte(g[i:], ']')
			sb.WriteString(g[i : i+j+1])
			i += j
		default:
			sb.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	sb.WriteString("$")
	return regexp.MustCompile(sb.String())
}

func profileRules(t *testing.T) []fileRule { return rulesOf(t, profile) }

func rulesOf(t *testing.T, profile string) []fileRule {
	t.Helper()
	f, err := os.Open(abs(t, profile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rules []fileRule
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := ruleRE.FindStringSubmatch(sc.Text()); m != nil {
			rules = append(rules, fileRule{re: apparmorGlob(m[1]), perms: m[2], text: strings.TrimSpace(sc.Text())})
		}
	}
	if len(rules) < 8 {
		t.Fatalf("found only %d path rules in %s", len(rules), profile)
	}
	return rules
}

// TestAppArmorCoversPaths checks that the profile's own rules (not the
// abstractions it includes) grant each path gnomond touches: measured with
// strace on a running gnomond (docs/security.md), plus the files the
// D-Bus services write.
func TestAppArmorCoversPaths(t *testing.T) {
	rules := profileRules(t)
	for _, tc := range []struct{ path, need string }{
		{"/usr/sbin/gnomond", "m"},
		{"/etc/gnomon/gnomon.toml", "r"},
		{"/etc/gnomon/nts/server.key", "r"},
		{"/var/lib/gnomon/drift", "rw"},
		{"/var/lib/gnomon/.drift.tmp-123456", "rw"},
		{"/var/lib/gnomon/ntp-disabled", "w"},
		{"/var/lib/gnomon/", "rw"},
		{"/dev/rtc", "r"},
		{"/dev/rtc0", "r"},
		{"/etc/localtime", "rwl"},
		{"/etc/.localtime.tmp-0123456789abcdef", "rwl"},
		{"/etc/", "r"},
		{"/var/lib/gnomon/.ntp-disabled.tmp-0123456789abcdef", "w"},
		{"/etc/adjtime", "rw"},
		{"/usr/share/zoneinfo/Europe/Berlin", "r"},
		{"/usr/share/zoneinfo/tzdata.zi", "r"},
		{"/usr/share/zoneinfo/leap-seconds.list", "r"},
		{"/etc/chrony/chrony.keys", "r"},
		{"/run/gnomon/dhcp/", "r"},
		{"/run/gnomon/dhcp/eth0.servers", "r"},
		{"/run/systemd/netif/state", "r"},
		{"/proc/4242/exe", "r"},
		{"/proc/4242/smaps", "r"},
		{"/run/systemd/notify", "w"},
		{"/run/systemd/journal/socket", "w"},
		{"/sys/kernel/mm/transparent_hugepage/hpage_pmd_size", "r"},
		{"/proc/4242/cgroup", "r"},
		{"/proc/4242/mountinfo", "r"},
		{"/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "r"},
		{"/sys/fs/cgroup/system.slice/gnomond.service/cpu.max", "r"},
		{"/run/gnomon/timedate-helper.sock", "w"},
		{"/run/gpsd.sock", "rw"},
		{"/run/chrony.ttyS0.sock", "rw"},
	} {
		granted := ""
		for _, r := range rules {
			if r.re.MatchString(tc.path) {
				granted += r.perms
			}
		}
		for _, p := range tc.need {
			if !strings.ContainsRune(granted, p) {
				t.Errorf("%s: needs %q, the profile grants %q", tc.path, tc.need, granted)
				break
			}
		}
	}
	// And it is an allow list: nothing here grants writing elsewhere.
	for _, path := range []string{"/etc/passwd", "/etc/gnomon/gnomon.toml", "/usr/sbin/gnomond", "/root/.ssh/authorized_keys", "/var/lib/chrony/drift", "/dev/sda"} {
		for _, r := range rules {
			if r.re.MatchString(path) && strings.ContainsAny(r.perms, "wa") {
				t.Errorf("%s: writable through %q", path, r.text)
			}
		}
	}
	// Least privilege for devices: the RTC read-only, and no PTP hardware
	// clock or PPS device until a feature uses them.
	for _, path := range []string{"/dev/rtc0", "/dev/rtc"} {
		for _, r := range rules {
			if r.re.MatchString(path) && strings.ContainsAny(r.perms, "wa") {
				t.Errorf("%s: writable through %q", path, r.text)
			}
		}
	}
	for _, path := range []string{"/dev/ptp0", "/dev/pps0", "/sys/class/ptp/", "/sys/class/pps/"} {
		for _, r := range rules {
			if r.re.MatchString(path) {
				t.Errorf("%s: granted through %q", path, r.text)
			}
		}
	}
}

const helperProfile = "debian/usr.lib.gnomon.gnomon-timedate-helper"

// TestAppArmorHelper compiles the helper's profile and checks that it
// grants the helper's few paths and writes nothing else in /etc.
func TestAppArmorHelper(t *testing.T) {
	parser := peers.NeedTool(t, "apparmor_parser")
	path := abs(t, helperProfile)
	if code, out := run(t, filepath.Dir(path), parser, "-Q", "-K", path); code != 0 {
		t.Fatalf("apparmor_parser -Q -K %s: exit %d\n%s", helperProfile, code, out)
	}
	rules := rulesOf(t, helperProfile)
	granted := func(p string) string {
		g := ""
		for _, r := range rules {
			if r.re.MatchString(p) {
				g += r.perms
			}
		}
		return g
	}
	for _, tc := range []struct{ path, need string }{
		{"/usr/lib/gnomon/gnomon-timedate-helper", "m"},
		{"/etc/localtime", "rwl"},
		{"/etc/.localtime.tmp-0123456789abcdef", "rwl"},
		{"/etc/", "r"},
		{"/etc/.localtime.0123456789abcdef", "rwl"},
		{"/etc/adjtime", "rw"},
		{"/etc/.adjtime.0123456789abcdef", "rw"},
		{"/usr/share/zoneinfo/Europe/Berlin", "r"},
		{"/dev/rtc", "r"},
		{"/dev/rtc0", "r"},
	} {
		g := granted(tc.path)
		for _, p := range tc.need {
			if !strings.ContainsRune(g, p) {
				t.Errorf("%s: needs %q, the profile grants %q", tc.path, tc.need, g)
				break
			}
		}
	}
	for _, p := range []string{"/etc/passwd", "/etc/shadow", "/etc/sudoers.d/x", "/etc/systemd/system/x.service", "/etc/gnomon/gnomon.toml",
		"/usr/share/zoneinfo/Europe/Berlin", "/usr/lib/gnomon/gnomon-timedate-helper", "/root/.ssh/authorized_keys", "/dev/sda", "/etc/.localtime"} {
		if g := granted(p); strings.ContainsAny(g, "wal") {
			t.Errorf("%s: writable (%q)", p, g)
		}
	}
}
